"""Every default a user can change, defined once: the CLI's options, the Python API, `run --resume` and the
studies all read them here, so that a default and the help text that states it cannot drift apart.

Trade-off of each figure (the reasons live with the code that uses them): a larger budget narrows the interval
of every median and lengthens the suite in proportion; more units (worker processes per backend) give
`compare` more independent evidence for the same budget, at one interpreter start and framework import each.
"""

PRESET = "seed"  # `opbench run`: the seed article's shapes
DTYPE = "float32"
SEED = 0  # input generator seed
RUN_BUDGET_S = 0.5  # seconds of timed samples per case, split across the units
# The same on a GPU backend, unless `--budget` (which then sets both) or `--gpu-budget` says otherwise. A GPU
# case of 50 us or more is stable within a unit's share (cuda's units spread 0.5 % there), and one under 50 us
# is limited by the spread between processes, which more samples inside a process do not narrow: at 0.5 s the
# timed samples were 35 of the 65 s of the H100's cuda suite (results/h100-suite); at 0.2 s the A/A pair of
# cuda called 0 of 46 rows of 50 us or more different and found a planted 10 % slowdown on 46 of 46
# (results/h100-defaults). Over 3 units: the first unit's 0.1 s energy region and 0.05 s for each later one
# (`TimingSettings.later_unit`). A smaller budget is the next thing to measure, not assumed.
GPU_RUN_BUDGET_S = 0.2
RUN_MIN_SAMPLES = 5  # samples per case, split across the units (at least `timing.MIN_UNIT_SAMPLES` each)
UNITS = 3  # worker processes (independent units) per backend and case
ALL_UNITS = False  # False: a case whose call takes longer than the whole budget gets one unit, not UNITS
# (`opbench.engine.passes`); `run --all-units` measures every unit of every case
# A case's time-out floor: this much for preparation, compilation and the reference, plus this many times the
# budget (a case whose costs predict more gets more: `engine.worker.CaseCost`).
CASE_TIMEOUT_BASE_S = 300.0
CASE_TIMEOUT_BUDGETS = 20.0
SWEEP_BUDGET_S = 2.0  # `opbench sweep`, per size and backend
SWEEP_MIN_SAMPLES = 5
CALIBRATION_BUDGET_S = 1.0  # `opbench calibrate`, per probe measurement
NOISE_PRESET = "quick"  # `opbench noise`: two like runs of these cases
