"""The sweep table: one row per (size, backend) with time, rates, the ratio to the baseline, % of peak, verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from opbench.report.tables import Table
from opbench.studies.calibrate import Calibration
from opbench.studies.roofline import peaks_for, roofline
from opbench.studies.sweep import SweepPoint, ratios


def _f(x: float, digits: int) -> str:
    return "nan" if x is None or math.isnan(x) else f"{x:,.{digits}f}"


def _first_shape(case_name: str) -> str:
    """`Softmax / dim=16x1000000 axi=-1` -> `16x1000000` (the full name is in the table's title)."""
    return case_name.split("dim=", 1)[1].split()[0] if "dim=" in case_name else case_name


def sweep_table(points: Sequence[SweepPoint], baseline: str, calibration: Calibration | None,
                settings: dict[str, dict[str, Any]] | None = None, show_shape: bool = False) -> Table:
    settings = settings or {}
    r = ratios(points, baseline)
    headers = ["Size", *(["Input"] if show_shape else []), "Backend", "median ms", "GFLOP/s", "GB/s",
               f"× {baseline}", "% peak", "Verdict"]
    rows, notes = [], []
    untimed: dict[tuple[str, str, str], list[int]] = {}  # one note per (backend, status, reason)
    for p in points:
        res = p.result
        rf = roofline(res, peaks_for(calibration, res.backend, res.dtype, settings.get(res.backend), res.family))
        verdict = res.status + (" ~" if res.noisy else "")
        rows.append([str(p.size), *([_first_shape(res.case)] if show_shape else []), res.backend,
                     _f(res.median_ms, 3) if res.timed else "nan", _f(rf.gflops, 1), _f(rf.gbs, 1),
                     _f(r[(p.size, p.backend)], 2), rf.text(), verdict])
        if not res.timed:
            untimed.setdefault((res.backend, res.status, res.error or res.detail), []).append(p.size)
        elif "graphs" in p.compile:  # a compiler that counts what it built (`Backend.compile_counters`)
            notes.append(f"{p.size} {res.backend}: {p.compile.get('compiler')} built {p.compile.get('graphs')} "
                         f"graph(s), {p.compile.get('frames_ok')}/{p.compile.get('frames_total')} frames compiled")
    for (backend, status, reason), sizes in untimed.items():
        shown = ", ".join(map(str, sizes)) if len(sizes) <= 3 else f"{sizes[0]} to {sizes[-1]} ({len(sizes)} sizes)"
        notes.append(f"{backend} at {shown}: {status}: {reason}")
    return Table("Sweep", headers, rows, notes)
