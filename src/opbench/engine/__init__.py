"""The measurement path: how one case is timed, verified and recorded.

`task` says what to measure (`Task`: a catalog case or a calibration probe) and what was found
(`Measurement`); `execute.run_task` is the one place that prepares, times and verifies, in whatever process
runs it; `engine.Engine` hands every study's tasks to the right `worker` process; `runner` drives a run
(backends x cases, passes) through `worker` processes; `timing` takes the samples, `verify` checks every
output against float64 (references from `reference_cache`; which narrower arithmetic a backend runs in is its
adapter's to say, `backends.arithmetic`), `contention` records how busy the machine was, `passes` merges
several worker processes per case into one result, `resume` finishes an interrupted run and `eta` estimates
what is left. `phases` records where each case's wall time went; `input_cache` and `reference_cache` (over
`disk_cache`) make each input and float64 expectation once for every backend, pass and run; `prefetch` makes
them ahead while a GPU measures. Nothing here imports the studies, the commands or the reports
(tests/test_architecture.py checks it).
"""
