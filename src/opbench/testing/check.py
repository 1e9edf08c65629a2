"""Performance assertions for a user's test suite: "my op on backend X is verified and not slower than the
stored baseline by more than P %".

`check_op` measures the op now (through `opbench.run`: worker process, verification against the float64
reference), then compares it with a baseline run using the store's comparison rules (`compare.compare_runs`,
through `opbench.compare`): a case fails only when it is *significantly* slower (Mann-Whitney p < alpha, the
bootstrap interval of the ratio excludes 1, and the change is above the noise floor) and by more than P %
(`Comparison.regressions`). Noise never fails a test; a baseline that has no comparable result for a measured
case does, since a check that compared nothing must not pass.

The baseline is resolved before measuring, so `baseline="latest"` means the latest run stored before this
check (the new run is stored too, and becomes the next `latest`). Used by the pytest fixture `opbench_check`
(`opbench.testing.pytest_plugin`), and usable without pytest: failures raise `OpbenchCheckFailed`, an
`AssertionError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opbench.api import ComparisonResults, RunLike, RunResults, compare, load, run

VERIFIED = ("ok",)


class OpbenchCheckFailed(AssertionError):
    """An op was not verified, could not be compared with its baseline, or regressed; the message says which."""


@dataclass(frozen=True)
class CheckOutcome:
    """What a passing check measured: the new run, and its comparison with the baseline (None without one)."""

    run: RunResults
    comparison: ComparisonResults | None


def check_op(ops: str | Sequence[str], backend: str, *, baseline: RunLike | None = None,
             max_slowdown_pct: float = 5.0, baseline_backend: str | None = None,
             catalog: str | Path | Sequence[str | Path] | None = None, store: str | Path | None = None,
             allow_reduced_precision: bool = False, **run_options: Any) -> CheckOutcome:
    """Measure `ops` (families or case names) on `backend`, assert every result verified, and, with a
    `baseline` (a run id/prefix/`latest` in `store`, a run file, or a loaded run), assert that no case is
    significantly slower than there by more than `max_slowdown_pct` percent. `baseline_backend` compares with
    another backend of the baseline run. `run_options` go to `opbench.run` (preset, dtype, budget,
    min_samples, processes, ...)."""
    if not max_slowdown_pct >= 0:
        raise ValueError(f"max_slowdown_pct must be a percentage >= 0, got {max_slowdown_pct}")
    base = load(baseline, store) if baseline is not None else None  # before this run becomes `latest`
    current = run(ops, [backend], catalog=catalog, store=store, **run_options)
    accepted = VERIFIED + (("reduced-precision",) if allow_reduced_precision else ())
    bad = [r for r in current.results if r.status not in accepted]
    if bad:
        raise OpbenchCheckFailed("not verified on " + backend + ": " + "; ".join(
            f"{r.case}: {r.status}{f' ({r.error or r.detail})' if r.error or r.detail else ''}" for r in bad))
    if not current.results:
        raise OpbenchCheckFailed(f"nothing was measured for {ops!r} on {backend}")
    if base is None:
        return CheckOutcome(current, None)
    mapping = {backend: baseline_backend} if baseline_backend and baseline_backend != backend else None
    comparison = compare(base, current, map=mapping, store=store)
    compared = {row.case for row in comparison.rows}
    missing = [r.case for r in current.results if r.case not in compared]
    if missing:
        notes = "; ".join(comparison.comparison.notes)
        raise OpbenchCheckFailed(f"baseline {base.run_id} has no comparable result on "
                                 f"{baseline_backend or backend} for {', '.join(missing)}"
                                 + (f" ({notes})" if notes else ""))
    regressions = comparison.regressions(max_slowdown_pct)
    if regressions:
        raise OpbenchCheckFailed(
            f"slower than baseline {base.run_id} by more than {max_slowdown_pct:g}% on {backend}: " + "; ".join(
                f"{r.case}: {r.time_a_ms:.4g} -> {r.time_b_ms:.4g} ms ({r.ratio:.3g}x, "
                f"{_interval(r)}p={r.p_value:.2g})" for r in regressions))
    return CheckOutcome(current, comparison)


def _interval(row: Any) -> str:
    if row.ci_low is None or row.ci_high is None:
        return ""
    return f"CI {row.ci_low:.3g}-{row.ci_high:.3g}, "
