"""The Average table's numbers: per family and backend a mean, per pair of backends a like-with-like speedup.

A family's mean on one backend is over the cases that backend timed (arithmetic, the seed's, or geometric on
request), marked `*` when that is only part of the family. A speedup of A over B is *not* the ratio of those
two means: when A timed one case and B three, that ratio compares different work (the H100 Sort row once read
mlx_gpu/mlx_cpu +624650 %: one small mlx_gpu case against the mean of three mlx_cpu cases). It is computed
from the means of A and of B over the same cases, those that both timed and both verified `ok` or
`reduced-precision` (a wrong output's time is not the op's), so it always compares the same work. It is
marked `*` when those are only part of the family, and reads `–` when there are none (the seed's `nan%` when
one of the two timed nothing in the family); a note names how many cases it uses and why the others are left
out. Trade-off: a marked speedup no longer equals the ratio of the
two printed means, which is why it is marked.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from opbench.report.marks import MARK_NOISY, MARK_PARTIAL, MARK_REDUCED, MARK_WRONG, NO_COMMON
from opbench.report.rows import CaseRow, families
from opbench.results import CaseResult
from opbench.results.status import Status

VERIFIED = ("ok", "reduced-precision")


def mean(values: Sequence[float], geometric: bool) -> float:
    """Arithmetic (the seed's) or geometric mean; nan for none."""
    if not values:
        return math.nan
    if geometric:
        return float(np.exp(np.mean(np.log(np.maximum(values, 1e-12)))))
    return float(np.mean(values))


def speedup(t_a: float, t_b: float) -> float:
    """Speedup of A over B in percent: (t_B / t_A − 1)·100. Positive when A is faster."""
    if math.isnan(t_a) or math.isnan(t_b) or t_a <= 0:
        return math.nan
    return (t_b / t_a - 1.0) * 100.0


def format_speedup(value: float) -> str:
    """The seed's format: sign for positive values, truncated toward zero, `nan%` when undefined."""
    if math.isnan(value):
        return "nan%"
    return f"{'+' if value > 0 else ''}{int(value)}%"


def time_marks(result: CaseResult) -> str:
    """The marks of one time: verdict, noisy, busy machine, a slowed GPU (`engine.telemetry.gpu_flag`)."""
    from opbench.engine.contention import MARK_BUSY
    from opbench.engine.telemetry import MARK_GPU, gpu_flag

    out = MARK_WRONG if result.status == Status.WRONG else MARK_REDUCED if result.status == Status.REDUCED else ""
    return (out + (MARK_NOISY if result.noisy else "") + (MARK_BUSY if result.busy else "")
            + (MARK_GPU if gpu_flag(result.conditions) else ""))


def _why_not(result: CaseResult | None, backend: str) -> str | None:
    """Why a result cannot enter a like-with-like speedup (None: it can)."""
    if result is None:
        return f"{backend} not run"
    if not result.timed:
        return f"{backend} {result.status}"
    if result.status not in VERIFIED:
        return f"{backend} {result.status}"
    return None


@dataclass(frozen=True)
class FamilyMean:
    """One backend's mean over the family's cases it timed: `timed` of `total`, `untimed` by status."""

    value: float
    marks: str
    timed: int
    total: int
    untimed: dict[str, int] = field(default_factory=dict)

    def text(self, missing: str = "nan", fmt: str = "{:.2f}") -> str:
        return missing if math.isnan(self.value) else fmt.format(self.value) + self.marks


@dataclass(frozen=True)
class PairSpeedup:
    """A over B over the `used` cases (of the family's `total`) that both timed and verified."""

    value: float
    marks: str
    used: int
    total: int
    left_out: dict[str, int] = field(default_factory=dict)
    one_side_untimed: bool = False  # A or B timed no case of the family at all: the seed's `nan%`

    def text(self) -> str:
        if self.used == 0:
            return "nan%" if self.one_side_untimed else NO_COMMON
        return format_speedup(self.value) + self.marks

    def describe(self, family: str, pair: tuple[str, str]) -> str:
        why = ", ".join(f"{reason} {n}" for reason, n in self.left_out.items())
        head = f"{family}: {pair[0]}/{pair[1]} speedup"
        if self.used == 0:
            return f"{head}: no case that both timed and verified (left out: {why})"
        return f"{head} over {self.used} of {self.total} cases, the ones both timed and verified (left out: {why})"


@dataclass
class FamilyAverage:
    family: str
    total: int
    means: dict[str, FamilyMean]
    speedups: dict[tuple[str, str], PairSpeedup]


def family_averages(rows: Sequence[CaseRow], backends: Sequence[str], pairs: Sequence[tuple[str, str]],
                    geometric: bool = False) -> list[FamilyAverage]:
    """One FamilyAverage per family of `rows` (`report.rows.case_rows`), in their order."""
    from opbench.engine.contention import MARK_BUSY

    out = []
    for fam in families(rows):
        members = [r for r in rows if r.family == fam]
        means = {}
        for b in backends:
            results = [r.results.get(b) for r in members]
            timed = [r for r in results if r is not None and r.timed]
            marks = "".join(dict.fromkeys(ch for r in timed for ch in time_marks(r) if ch != MARK_NOISY))
            if timed and len(timed) < len(members):
                marks += MARK_PARTIAL
            untimed = Counter("not run" if r is None else r.status for r in results if r is None or not r.timed)
            means[b] = FamilyMean(mean([r.median_ms for r in timed], geometric), marks, len(timed), len(members),
                                  dict(untimed))
        speedups = {}
        for a, b in pairs:
            used, left_out = [], Counter()
            for row in members:
                ra, rb = row.results.get(a), row.results.get(b)
                reasons = [w for w in (_why_not(ra, a), _why_not(rb, b)) if w]
                if reasons:
                    left_out.update(reasons)
                else:
                    used.append((ra, rb))
            value = speedup(mean([ra.median_ms for ra, _ in used], geometric),
                            mean([rb.median_ms for _, rb in used], geometric))
            marks = MARK_PARTIAL if used and len(used) < len(members) else ""
            if any(x.busy for pair in used for x in pair):
                marks += MARK_BUSY
            untimed = means[a].timed == 0 or means[b].timed == 0
            speedups[(a, b)] = PairSpeedup(value, marks, len(used), len(members), dict(left_out), untimed)
        out.append(FamilyAverage(fam, len(members), means, speedups))
    return out


def average_notes(averages: Sequence[FamilyAverage]) -> list[str]:
    """One note per partial mean and per speedup over part of its family: how many cases, and why not the rest."""
    notes = []
    for avg in averages:
        for b, m in avg.means.items():
            if 0 < m.timed < m.total:
                why = ", ".join(f"{status} {n}" for status, n in m.untimed.items())
                notes.append(f"{avg.family}: {b}'s mean is over {m.timed} of {m.total} cases (no time: {why})")
        for pair, s in avg.speedups.items():
            if s.used < s.total and not s.one_side_untimed:
                notes.append(s.describe(avg.family, pair))
    return notes
