"""What a reader of a run wants first: who won where, what failed verification and why, how noisy it was.

- Winners: per family and size class, the backend with the fastest median on the most cases. Only results whose
  output passed verification (`ok` or `reduced-precision`) compete: a wrong answer wins nothing. A case's size
  class comes from the bytes one call reads and writes (`CaseResult.bytes`, the same on every backend): small
  under `SMALL_BYTES` (fits in a GPU's L2 or a CPU's last-level cache), large from `LARGE_BYTES` (memory-bound
  streaming), medium between. Results without byte counts (imported tables) fall into one class, `any size`.
  Alongside the win count stands the geometric mean, over the class's cases both backends timed, of the
  runner-up's time over the winner's, so "3 of 4, 2.1x" says both how often and by how much.
- Problems: every result that failed verification (wrong, with its relative error and tolerance), passed only at
  a reduced precision, or has no time (error, oom, timeout, skipped), with its one-line reason.
- Noise: how many timed results are noisy (IQR over 10 % of the median, or process medians over 10 % apart), the
  median IQR/median, and how busy the machine was (`opbench.engine.contention`); runs made before opbench recorded the
  load say so instead of pretending it was idle.

Trade-off: a win count ignores margins and a geometric mean hides spread; the summary shows both, and the
tables below it hold every number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from opbench.engine.contention import MARK_BUSY, busy_warning
from opbench.report.rows import CaseRow, backend_order, case_rows, families
from opbench.results import CaseResult
from opbench.results.status import Status

SMALL_BYTES = 16 * 2**20
LARGE_BYTES = 256 * 2**20
SIZE_CLASSES = ("small", "medium", "large", "any size")
SIZE_HELP = {"small": "under 16 MiB read+written per call", "medium": "16 to 256 MiB per call",
             "large": "256 MiB or more per call", "any size": "no byte counts recorded"}
VERIFIED = ("ok", "reduced-precision")


def size_class(row: CaseRow) -> str:
    sizes = [r.bytes for r in row.results.values() if r.bytes]
    if not sizes:
        return "any size"
    size = max(sizes)
    return "small" if size < SMALL_BYTES else "large" if size >= LARGE_BYTES else "medium"


@dataclass(frozen=True)
class Win:
    """The winner of one (family, size class): its wins among `cases`, the margin over the runner-up."""

    backend: str
    wins: int
    cases: int
    runner_up: str = ""
    margin: float = math.nan  # geomean of runner-up time / winner time over the cases both timed
    others: dict[str, int] = field(default_factory=dict)  # every backend's wins
    busy: bool = False  # a winning time was measured on a busy machine

    @property
    def text(self) -> str:
        """`cpu 3 of 4, 2.1× ahead of mlx_cpu`; a winner by count that is slower on the geometric mean says so:
        `mlx_cpu 2 of 4, but 1.6× behind cpu (geomean)`."""
        if math.isnan(self.margin):
            margin = ""
        elif self.margin >= 1:
            margin = f", {_times(self.margin)} ahead of {self.runner_up}"
        else:
            margin = f", but {_times(1 / self.margin)} behind {self.runner_up} (geomean)"
        return f"{self.backend} {self.wins} of {self.cases}{margin}{MARK_BUSY if self.busy else ''}"


def _times(ratio: float) -> str:
    """`1.04×`, `12.3×`, `157×`: two decimals below 10, so a near-tie never reads `1×`."""
    return f"{ratio:.2f}×" if ratio < 10 else f"{ratio:.3g}×"


@dataclass(frozen=True)
class Problem:
    case: str
    backend: str
    status: str
    reason: str


@dataclass(frozen=True)
class Noise:
    timed: int
    noisy: int
    median_spread: float  # median over timed results of IQR / median
    busy: int
    recorded: int  # results that carry a load reading
    busy_line: str | None


@dataclass(frozen=True)
class RunSummary:
    backends: list[str]
    sizes: list[str]  # the size classes present, in SIZE_CLASSES order
    winners: dict[str, dict[str, Win | None]]  # family -> size class -> winner (None: no verified time)
    overall: dict[str, int]  # backend -> cases won over the whole run
    cases: int
    wrong: list[Problem]
    reduced: list[Problem]
    untimed: list[Problem]
    noise: Noise


def _fastest(row: CaseRow) -> tuple[str, CaseResult] | None:
    timed = [(b, r) for b, r in row.results.items() if r.timed and r.status in VERIFIED and r.median_ms > 0]
    return min(timed, key=lambda t: t[1].median_ms) if timed else None


def _win(rows: Sequence[CaseRow], backends: Sequence[str]) -> Win | None:
    counts = dict.fromkeys(backends, 0)
    busy: dict[str, bool] = dict.fromkeys(backends, False)
    for row in rows:
        best = _fastest(row)
        if best is not None:
            counts[best[0]] += 1
            busy[best[0]] |= best[1].busy
    ranked = sorted((b for b in backends if counts[b]), key=lambda b: -counts[b])
    if not ranked:
        return None
    winner = ranked[0]
    rivals = [b for b in backends if b != winner]
    margins = {b: _margin(rows, winner, b) for b in rivals}
    margins = {b: m for b, m in margins.items() if not math.isnan(m)}
    runner_up = min(margins, key=lambda b: margins[b]) if margins else ""  # the closest rival
    return Win(winner, counts[winner], len(rows), runner_up, margins.get(runner_up, math.nan),
               {b: c for b, c in counts.items() if c}, busy[winner])


def _margin(rows: Sequence[CaseRow], winner: str, rival: str) -> float:
    ratios = []
    for row in rows:
        w, r = row.results.get(winner), row.results.get(rival)
        if w and r and w.timed and r.timed and w.status in VERIFIED and r.status in VERIFIED and w.median_ms > 0:
            ratios.append(r.median_ms / w.median_ms)
    return float(np.exp(np.mean(np.log(ratios)))) if ratios else math.nan


def _reason(r: CaseResult) -> str:
    if r.status == Status.WRONG or r.status == Status.REDUCED:
        if r.rel_error is not None:
            tol = f" > tolerance {r.tolerance:.2g}" if r.tolerance is not None and r.status == Status.WRONG else ""
            return f"relative error {r.rel_error:.2g}{tol}" + (f"; {r.detail}" if r.detail else "")
        return r.detail or r.error or r.status
    text = (r.error or r.detail or r.status).strip()
    return text.splitlines()[0][:200] if text else r.status


def summarize(results: Sequence[CaseResult]) -> RunSummary:
    rows, backends = case_rows(results), backend_order(results)
    classes = {id(row): size_class(row) for row in rows}
    sizes = [s for s in SIZE_CLASSES if s in classes.values()]
    winners = {fam: {s: _win([r for r in rows if r.family == fam and classes[id(r)] == s], backends)
                     for s in sizes if any(r.family == fam and classes[id(r)] == s for r in rows)}
               for fam in families(rows)}
    overall = dict.fromkeys(backends, 0)
    for row in rows:
        best = _fastest(row)
        if best is not None:
            overall[best[0]] += 1
    problems = [Problem(r.case, r.backend, r.status, _reason(r)) for r in results if r.status != Status.OK]
    timed = [r for r in results if r.timed]
    spreads = [r.iqr_ms / r.median_ms for r in timed if r.n >= 2 and r.median_ms > 0]
    noise = Noise(len(timed), sum(r.noisy for r in timed), float(np.median(spreads)) if spreads else math.nan,
                  sum(r.busy for r in timed), sum("other_cpu_cores" in r.conditions for r in timed),
                  busy_warning(results))
    return RunSummary(backends, sizes, winners, overall, len(rows),
                      [p for p in problems if p.status == Status.WRONG],
                      [p for p in problems if p.status == Status.REDUCED],
                      [p for p in problems if p.status not in (Status.WRONG, Status.REDUCED)], noise)
