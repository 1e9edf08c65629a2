"""Reasoning over stored results: nothing here measures.

`compare` matches two runs case by case and gives each row a verdict, `significance` is the statistical model
behind those verdicts (between-process spread, moderated t, geometric-mean intervals), and `steps` finds the
change points in a history of runs.
"""
