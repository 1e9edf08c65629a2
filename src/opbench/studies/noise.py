"""How noisy this machine is: an A/A comparison turned into a noise floor that `opbench compare` uses.

`opbench noise` measures the same cases twice (two runs, each with the default units) and compares them
(`compare.compare_runs`). Every difference it finds is noise, so per backend and duration class (A's time
under or at least `SHORT_CASE_MS`) it reports:
- the false-positive rate: rows called faster or slower (the goal is at most 5 %);
- `floor`: the run-to-run change that 95 % of the rows stay within (the 95th percentile of |log B/A|), the
  smallest difference this machine can tell from noise at all;
- `detectable`: the median, over the rows, of the smallest slowdown that would be called "slower" nine times
  in ten: exp((t + z₀.₉)·se) − 1 with se the row's standard error of log B/A and t for 2·PRIOR_DF degrees of
  freedom (the normal approximation to the power of the t interval), and never below `floor`.

The result is saved as JSON next to the calibration (`<data dir>/noise/<machine fingerprint>.json`) with the
machine's metadata; `machine_floors` gives `compare` the floors of run A's machine, so that a comparison on
a noisy host does not call its noise a change. Trade-off: one A/A pair is a small sample of the machine's
states (a shared host's load comes and goes); run it again when the machine's load changes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from opbench.analysis.compare import Comparison
from opbench.analysis.significance import PRIOR_DF
from opbench.errors import UsageError
from opbench.paths import data_dir
from opbench.results.formats import NOISE, check_header
from opbench.results.model import SHORT_CASE_MS, Run
from opbench.studies.calibrate import machine_fingerprint

POWER_Z = 1.2816  # one-sided z for 90 % power
CLASSES = ("short", "long")


@dataclass(frozen=True)
class ClassNoise:
    """The A/A figures of one backend's rows in one duration class."""

    rows: int
    different: int
    floor: float
    detectable: float

    @property
    def false_positive_rate(self) -> float:
        return self.different / self.rows if self.rows else math.nan


def measure_noise(comparison: Comparison) -> dict[str, dict[str, ClassNoise]]:
    """Per backend, per class ("short": A under `SHORT_CASE_MS`, "long": the others), the A/A figures."""
    from scipy.stats import t as student

    q = float(student.ppf(0.975, 2 * PRIOR_DF)) + POWER_Z
    groups: dict[str, dict[str, list]] = {}
    for row in comparison.rows:
        cls = "short" if row.time_a_ms < SHORT_CASE_MS else "long"
        groups.setdefault(row.backend, {}).setdefault(cls, []).append(row)
    out: dict[str, dict[str, ClassNoise]] = {}
    for backend, classes in groups.items():
        for cls, rows in classes.items():
            logs = np.abs(np.log([r.ratio for r in rows]))
            floor = float(math.expm1(np.percentile(logs, 95)))
            ses = [r.log_se for r in rows if r.log_se is not None]
            detectable = max(floor, float(math.expm1(q * np.median(ses)))) if ses else math.nan
            different = sum(r.verdict in ("slower", "faster") for r in rows)
            out.setdefault(backend, {})[cls] = ClassNoise(len(rows), different, floor, detectable)
    return out


def noise_path(info: dict[str, Any]) -> Path:
    return data_dir() / "noise" / f"{machine_fingerprint(info)}.json"


def save_noise(figures: dict[str, dict[str, ClassNoise]], machine: dict[str, Any], runs: tuple[str, str],
               created: str) -> Path:
    path = noise_path(machine)
    doc = {**NOISE.header(), "fingerprint": machine_fingerprint(machine),
           "created": created, "runs": list(runs), "machine": machine,
           "backends": {b: {c: vars(n) for c, n in classes.items()} for b, classes in figures.items()}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write the noise result {path}: {exc.strerror or exc}") from None
    return path


def load_noise(machine: dict[str, Any]) -> dict[str, Any] | None:
    """The saved noise document of this machine, or None; a corrupt file is a one-line UsageError."""
    path = noise_path(machine)
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"corrupt noise result {path} ({exc}); run `opbench noise` again or delete it") from None
    check_header(doc, NOISE)
    return doc


def machine_floors(run: Run) -> tuple[dict[tuple[str, bool], float], str]:
    """The noise floors `opbench noise` measured on `run`'s machine, keyed by (backend, short), and a note
    saying where they come from; ({}, "") for an imported run or a machine never checked."""
    if run.imported or not run.machine:
        return {}, ""
    doc = load_noise(run.machine)
    if doc is None:
        return {}, ""
    floors = {}
    try:
        for backend, classes in doc["backends"].items():
            for cls, figures in classes.items():
                if math.isfinite(figures["floor"]):
                    floors[(backend, cls == "short")] = float(figures["floor"])
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"malformed noise result {noise_path(run.machine)}: {exc}") from None
    return floors, (f"noise floors from `opbench noise` of {doc.get('created', '?')} on A's machine "
                    f"({len(floors)} backend classes)")
