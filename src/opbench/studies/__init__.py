"""Things a user runs that produce results, built on the engine: each builds tasks, hands them to the engine
(`opbench.engine.Engine`, worker processes) and presents the measurements; none times or verifies anything.

`dtypes` the dtype support and precision matrix, `sweep` a family over
growing sizes, `calibrate` the memory bandwidth and matmul ceilings of each backend, `roofline` where each case
sits under those ceilings, and `noise` the A/A check that saves a machine's noise floor.
"""
