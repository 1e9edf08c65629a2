"""Things a user runs that produce results, built on the engine.

`dtypes` (with `dtype_process`, its worker side) the dtype support and precision matrix, `sweep` a family over
growing sizes, `calibrate` the memory bandwidth and matmul ceilings of each backend, `roofline` where each case
sits under those ceilings, and `noise` the A/A check that saves a machine's noise floor.
"""
