"""The roofline table: one row per (case, backend), sorted by % of peak, lowest first.

The cases furthest under their limit — the interesting ones — come first and carry `↓`; a case above a
calibrated ceiling carries `!` and a note: one per case whose working set is too large for a cache (a timing
bug is likely), one summary line for the small, cache-resident ones. Cases without a calibration come last.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from opbench.report.tables import Table
from opbench.results import CaseResult
from opbench.studies.calibrate import Calibration
from opbench.studies.roofline import (
    ABOVE,
    AT_CEILING_PCT,
    CACHE_RESIDENT_BYTES,
    FAR_BELOW_PCT,
    MARK_ABOVE,
    MARK_FAR_BELOW,
    Peaks,
    Roofline,
    peaks_for,
    roofline,
    rooflines,
)

LEGEND = (f"% of peak of the limiting bound (C compute, M memory) · {MARK_FAR_BELOW} under {FAR_BELOW_PCT:.0f}% · "
          f"{MARK_ABOVE} above a calibrated ceiling (a timing bug, or the case ran from cache) · "
          "– no calibration (run `opbench calibrate`)")


ROOFLINE_HEADERS = ("Operation", "Backend", "ms", "GFLOP/s", "GB/s", "Bound", "% peak")


def _fmt(x: float, digits: int = 1) -> str:
    return "nan" if math.isnan(x) else f"{x:.{digits}f}"


def _shown(names: list[str]) -> str:
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def roofline_entries(results: Sequence[CaseResult], calibration: Calibration | None,
                     settings: dict[str, dict[str, Any]] | None = None,
                     ) -> tuple[list[tuple[CaseResult, Roofline]], list[str]]:
    """Every timed result with its roofline, lowest % of peak first (uncalibrated last), and the notes: the
    ceilings each backend was held to, then the cases above a ceiling (see the module docstring)."""
    timed = [r for r in results if r.timed]
    pairs = list(zip(timed, rooflines(timed, calibration, settings)))
    pairs.sort(key=lambda p: (1, 0.0) if p[1].pct is None else (0, p[1].pct))
    return pairs, _ceiling_notes(timed, calibration, settings or {}) + _above_notes(pairs)


def _ceiling_notes(timed: Sequence[CaseResult], calibration: Calibration | None,
                   settings: dict[str, dict[str, Any]]) -> list[str]:
    """One line per backend and dtype; where its families are held to different matmul ceilings (torch's
    float32 convolutions on TF32 while its matmuls are strict), one line per ceiling, naming the families."""
    groups: dict[tuple[str, str], dict[str, tuple[Peaks | None, dict[str, None]]]] = {}
    for r in timed:
        p = peaks_for(calibration, r.backend, r.dtype, settings.get(r.backend), r.family)
        by_ceiling = groups.setdefault((r.backend, r.dtype), {})
        by_ceiling.setdefault(p.matmul_dtype if p else "", (p, {}))[1][r.family] = None
    notes = []
    for (backend, dtype), by_ceiling in groups.items():
        for p, families in by_ceiling.values():
            if p is None:
                notes.append(f"{backend}: no calibration on this machine — "
                             f"run `opbench calibrate --backends {backend}`")
                continue
            flops = (f"{p.gflops:.0f} GFLOP/s ({p.matmul_dtype} matmul, by {p.flops_from})" if p.gflops
                     else f"no {p.matmul_dtype} matmul peak")
            memory = (f"{p.gbs:.1f} GB/s (memory: the faster of copy and read, by {p.gbs_from})" if p.gbs
                      else "no memory ceiling")
            which = "" if len(by_ceiling) == 1 else (f" for {', '.join(families)}" if len(families) <= 5
                                                     else " for the other families")
            notes.append(f"{backend}/{dtype}{which}: peaks {flops}, {memory}")
    return notes


def _above_notes(pairs: Sequence[tuple[CaseResult, Roofline]]) -> list[str]:
    notes, cached, at_ceiling = [], [], []
    for r, rf in pairs:
        if rf.flag != ABOVE:
            continue
        if rf.cache_resident:
            cached.append(f"{r.case} on {r.backend}")
        elif rf.pct is not None and rf.pct <= AT_CEILING_PCT:
            at_ceiling.append(f"{r.case} on {r.backend} ({rf.pct:.0f}%)")
        else:
            notes.append(f"SUSPECT TIMING: {r.case} on {r.backend} at {rf.pct:.0f}% of its {rf.bound} ceiling with "
                         f"a {r.bytes / 2**20:.0f} MiB working set, too large to run from cache")
    if at_ceiling:
        notes.append(f"{len(at_ceiling)} case(s) at 100-{AT_CEILING_PCT:.0f}% of their ceiling, within calibration "
                     f"noise (a ceiling is the fastest sample of one measurement): {_shown(at_ceiling)}")
    if cached:
        notes.append(f"{len(cached)} case(s) above 100% have working sets <= {CACHE_RESIDENT_BYTES >> 20} MiB, "
                     f"which can run from cache faster than the calibrated memory ceiling: {_shown(cached)}")
    return notes


def roofline_table(results: Sequence[CaseResult], calibration: Calibration | None,
                   settings: dict[str, dict[str, Any]] | None = None) -> Table:
    pairs, notes = roofline_entries(results, calibration, settings)
    rows = [[r.case, r.backend, f"{r.median_ms:.3f}", _fmt(rf.gflops), _fmt(rf.gbs), rf.bound or "–", rf.text()]
            for r, rf in pairs]
    return Table("Roofline (lowest % of peak first)", list(ROOFLINE_HEADERS), rows, notes)


def roofline_column(calibration: Calibration | None,
                    settings: dict[str, dict[str, Any]] | None = None) -> Callable[[CaseResult], str]:
    """The optional `% peak` cell of `tables.detailed_table`."""
    settings = settings or {}
    return lambda r: roofline(r, peaks_for(calibration, r.backend, r.dtype, settings.get(r.backend), r.family)).text()
