"""How noisy this machine is: an A/A comparison turned into a noise floor that `opbench compare` uses.

`opbench noise` measures the same cases twice (two runs, each with the default units) and compares them
(`compare.compare_runs`). Every difference it finds is noise, so per backend and duration class (A's time
under or at least `SHORT_CASE_MS`) it reports:
- the false-positive rate: rows called faster or slower (the goal is at most 5 %);
- `floor`: the run-to-run change that 95 % of the rows stay within (the 95th percentile of |log B/A|), the
  smallest difference this machine can tell from noise at all;
- `sigma2_run`: the run-to-run variance component σ²_run (`significance.run_variance`, median-based: the
  smallest σ²_run at which the median p of the A/A rows is 1/2; 0 when the rows are within the units'
  noise), with the rows behind it (`run_rows`) and the plain method-of-moments value
  max(0, mean(d²) − mean(se²))/2 (`sigma2_run_moments`, for information; d the row's log ratio, se its
  within-run standard error);
- `different_with_run`: the rows still called different with the component added (in-sample: the component
  was fitted to these rows, so this is not an honest A/A figure; `benchmarks/significance.py holdout` measures
  one on another pair of runs);
- `detectable`: the median, over the rows, of the smallest slowdown that would be called "slower" nine times
  in ten: exp((t + z₀.₉)·se) − 1 with se the row's standard error of log B/A *with the run component* and t
  for 2·PRIOR_DF degrees of freedom (the normal approximation to the power of the t interval), and never below
  `floor`.

The result is saved as JSON next to the calibration (`<data dir>/noise/<machine fingerprint>.json`) with the
machine's metadata; `machine_noise` gives `compare` the floors and σ²_run of run A's machine, so that a
comparison on a noisy host does not call its noise a change. Trade-off: one A/A pair is a small sample of the
machine's states (a shared host's load comes and goes), and its rows share much of the pair's difference, so
σ²_run rests on about one pair's worth of evidence; run it again when the machine's load changes. Noise
results of format version 1 (before σ²_run) still load: compare then uses their floors and models no
run-to-run drift.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from opbench.analysis.compare import Comparison, ComparisonRow, compare_runs
from opbench.analysis.significance import PRIOR_DF, moment_run_variance, run_variance
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
    sigma2_run: float = 0.0
    run_rows: int = 0
    sigma2_run_moments: float = 0.0
    different_with_run: int | None = None

    @property
    def false_positive_rate(self) -> float:
        return self.different / self.rows if self.rows else math.nan


def estimate_run_variances(rows: tuple[ComparisonRow, ...] | list[ComparisonRow]
                           ) -> dict[tuple[str, bool], tuple[float, float, int]]:
    """From the rows of an A/A comparison made *without* a run component: per (backend, A's time under
    `SHORT_CASE_MS`), (σ²_run by `significance.run_variance`, by `moment_run_variance`, rows used). Rows tested
    on units only (one-process rows and untested ones have no within-run model to correct)."""
    groups: dict[tuple[str, bool], list[ComparisonRow]] = {}
    for row in rows:
        if row.log_df is not None and row.log_se is not None and row.ratio > 0:
            groups.setdefault((row.backend.split(" [")[0], row.time_a_ms < SHORT_CASE_MS), []).append(row)
    out = {}
    for key, members in groups.items():
        logs = [math.log(r.ratio) for r in members]
        ses = [float(r.log_se) for r in members if r.log_se is not None]
        out[key] = (run_variance(logs, ses, [float(r.log_df) for r in members if r.log_df is not None]),
                    moment_run_variance(logs, ses), len(members))
    return out


def measure_noise(comparison: Comparison) -> dict[str, dict[str, ClassNoise]]:
    """Per backend, per class ("short": A under `SHORT_CASE_MS`, "long": the others), the A/A figures of
    `comparison` (an A/A pair compared without a run component), σ²_run among them, and the figures of the
    same pair compared again with it."""
    from scipy.stats import t as student

    q = float(student.ppf(0.975, 2 * PRIOR_DF)) + POWER_Z
    estimates = estimate_run_variances(comparison.rows)
    again = compare_runs(comparison.run_a, comparison.run_b, alpha=comparison.alpha,
                         noise_floor=comparison.noise_floor,
                         run_variances={key: v[0] for key, v in estimates.items()})
    groups: dict[str, dict[str, list]] = {}
    for row, row_with in zip(comparison.rows, again.rows):
        cls = "short" if row.time_a_ms < SHORT_CASE_MS else "long"
        groups.setdefault(row.backend, {}).setdefault(cls, []).append((row, row_with))
    out: dict[str, dict[str, ClassNoise]] = {}
    for backend, classes in groups.items():
        for cls, pairs in classes.items():
            rows = [r for r, _ in pairs]
            logs = np.abs(np.log([r.ratio for r in rows]))
            floor = float(math.expm1(np.percentile(logs, 95)))
            ses = [w.log_se for _, w in pairs if w.log_se is not None]
            detectable = max(floor, float(math.expm1(q * np.median(ses)))) if ses else math.nan
            different = sum(r.verdict in ("slower", "faster") for r in rows)
            with_run = sum(w.verdict in ("slower", "faster") for _, w in pairs)
            robust, moments, used = estimates.get((backend.split(" [")[0], cls == "short"), (0.0, 0.0, 0))
            out.setdefault(backend, {})[cls] = ClassNoise(len(rows), different, floor, detectable, robust, used,
                                                          moments, with_run)
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
    floors, _, note = machine_noise(run)
    return floors, note


def machine_noise(run: Run) -> tuple[dict[tuple[str, bool], float], dict[tuple[str, bool], float] | None, str]:
    """What `opbench noise` measured on `run`'s machine: (noise floors, σ²_run, note), both keyed by
    (backend, short). σ²_run is None for an imported run, a machine never checked, or a noise result of format
    version 1 (measured before the run component): `compare` then models no run-to-run drift."""
    if run.imported or not run.machine:
        return {}, None, ""
    doc = load_noise(run.machine)
    if doc is None:
        return {}, None, ""
    floors: dict[tuple[str, bool], float] = {}
    variances: dict[tuple[str, bool], float] | None = {} if doc.get("schema_version", 1) >= 2 else None
    try:
        for backend, classes in doc["backends"].items():
            for cls, figures in classes.items():
                if math.isfinite(figures["floor"]):
                    floors[(backend, cls == "short")] = float(figures["floor"])
                if variances is not None and figures.get("sigma2_run") is not None:
                    value = float(figures["sigma2_run"])
                    if not (math.isfinite(value) and value >= 0):
                        raise ValueError(f"sigma2_run {value!r} of {backend} {cls}")
                    variances[(backend, cls == "short")] = value
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"malformed noise result {noise_path(run.machine)}: {exc}") from None
    what = ("noise floors and run-to-run variance" if variances is not None else
            "noise floors (a noise result from before the run-to-run variance: run `opbench noise` again to "
            "measure it)")
    return floors, variances, (f"{what} from `opbench noise` of {doc.get('created', '?')} on A's machine "
                               f"({len(floors)} backend classes)")
