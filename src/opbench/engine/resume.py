"""Resuming a stored run: may it be resumed here, with which options, and what is still missing.

A run is resumed with its own preset, dtype, backends, case selection and timing settings unless the user
overrides them; only the (backend, case) pairs with no result in the run's dtype are measured. Results are
merged into the run only when the machine and software match on `machine.MERGE_KEYS`, so a resumed run
never mixes numbers from two machines.
"""

from __future__ import annotations

import argparse
from typing import Any

import opbench.defaults as defaults
import opbench.machine as machine
from opbench.engine.modes import DEFAULT_MODE
from opbench.errors import UsageError
from opbench.results import CaseResult, Run

# run option -> (key in Run.settings or a Run attribute, default for a new run)
RESUMABLE_OPTIONS: dict[str, tuple[str, Any]] = {
    "preset": ("preset", defaults.PRESET),
    "dtype": ("dtype", defaults.DTYPE),
    "backends": ("backends", None),
    "ops": ("ops", None),
    "budget": ("budget_s", defaults.RUN_BUDGET_S),
    "gpu_budget": ("gpu_budget_s", defaults.GPU_RUN_BUDGET_S),  # see `fill_options`
    "min_samples": ("min_samples", defaults.RUN_MIN_SAMPLES),
    "seed": ("seed", defaults.SEED),
    "processes": ("processes", defaults.UNITS),
    "mode": ("modes", DEFAULT_MODE),
    "all_units": ("all_units", defaults.ALL_UNITS),
}


def check_resumable(run: Run, here: dict[str, Any]) -> None:
    """Refuse (one line) to resume an imported run, or a run measured on another machine or software."""
    if run.imported:
        raise UsageError(f"run {run.run_id} was imported from {run.source or 'a file'}; imported runs are "
                         "read-only and cannot be resumed")
    refuse_other_machine(f"run {run.run_id}", run.machine, here)


def refuse_other_machine(what: str, measured_on: dict[str, Any], here: dict[str, Any] | None = None) -> None:
    """One line, exit 2, when `what` (a run, a sweep, a dtype study) was measured on another machine or software
    (`machine.MERGE_KEYS`) than `here` (default: this one): resuming it would mix numbers from both."""
    conflicts = machine.merge_conflicts(measured_on, machine.collect() if here is None else here)
    if conflicts:
        raise UsageError(f"cannot resume {what}: it was measured on another machine or software "
                         f"({'; '.join(conflicts)})")


def asked_gpu_budget(budget: float | None, gpu_budget: float | None) -> float | None:
    """The GPU budget the user asked for: `--gpu-budget`, else a `--budget` (which sets both), else None."""
    return gpu_budget if gpu_budget is not None else budget


def fill_options(args: argparse.Namespace, run: Run | None) -> None:
    """Set every option the user left out (None) from the resumed run, or to its default for a new run.
    The GPU budget follows a `--budget` the user gave (it sets both), else the resumed run's (a run from before
    GPU budgets measured its GPU backends at its one budget), else `defaults.GPU_RUN_BUDGET_S`."""
    args.gpu_budget = asked_gpu_budget(getattr(args, "budget", None), getattr(args, "gpu_budget", None))
    for option, (key, default) in RESUMABLE_OPTIONS.items():
        if getattr(args, option, None) is not None:
            continue
        value = default
        if run is not None and key == "gpu_budget_s":
            value = run.settings.get(key, run.settings.get("budget_s", default))
        elif run is not None:
            if key in ("preset", "dtype"):
                value = getattr(run, key)
            elif key == "backends":
                value = ",".join(run.settings.get("backends", [])) or None
            elif key == "modes":  # a run from before modes was measured in the default one
                value = ",".join(run.settings.get("modes", [])) or default
            else:
                value = run.settings.get(key, default)
        setattr(args, option, value)


def measured_results(run: Run, dtype: str) -> dict[tuple[str, str, str], CaseResult]:
    """The results already in `run` in `dtype`, by (backend, case name, mode): a resume measures only the
    passes they lack (`passes.passes_done`)."""
    return {(r.backend, r.case, r.mode): r for r in run.results if r.dtype == dtype}
