"""The seed article's Detailed and Average tables, built from results and rendered as Markdown or rich.

Layout is the seed's: one row per case (Detailed) or family (Average), one column per backend in the seed's
order, times in ms with two decimals, then `A/B speedup` columns. The speedup of A over B is
(t_B / t_A − 1)·100 %, printed with a sign and truncated toward zero as the seed's code does (`int(x)`).
The Average table is the arithmetic mean of a family's times per backend (the seed's), or the geometric mean
on request; its speedups are computed from those means.

Marks (`report.marks`): `✗` wrong result, `†` reduced precision (under the mode the backend reported), `~`
noisy (the worker processes disagree too much for a comparison with a like run to detect a 10 % change nine
times in ten: `CaseResult.detectable_change`), `‡` measured on a busy machine (`opbench.engine.contention`; a
speedup from such a cell carries it too, so no busy number reads as clean), `*` an average or speedup over only
some of the family's cases (`report.averages`: speedups compare like with like). Each table carries its own
legend, naming the marks that appear in it. A cell without a time reads `nan`, and a note under the table says
why.
A cell whose timing mode does not apply to its backend says so (`n/a: CPU`); `°`: the GPU was throttled or
below 90 % of its clock under load (`engine.telemetry`). A table shows one timing mode (`opbench.engine.modes`),
named in its title: results of several modes are split with `by_mode` first, never laid side by side as if they
were alike (`modes_table` shows them as columns).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from opbench.engine.contention import MARK_BUSY, busy_warning
from opbench.engine.passes import ONE_UNIT, one_unit
from opbench.engine.telemetry import gpu_warning
from opbench.report.averages import average_notes, family_averages, format_speedup, speedup, time_marks
from opbench.report.marks import (
    BUSY_TEXT,
    GPU_TEXT,
    MARK_PARTIAL,
    MARK_REDUCED,
    MARK_WRONG,
    NOISY_TEXT,
    NOT_APPLICABLE_TEXT,
    REDUCED_TEXT,
    WRONG_TEXT,
    legend,
)
from opbench.report.rows import case_rows
from opbench.results import CaseResult
from opbench.results.files import atomic_write
from opbench.results.status import Status

DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (
    ("mlx_gpu_compile", "mlx_gpu"), ("mlx_gpu", "mps"), ("mlx_gpu", "mlx_cpu"), ("cuda", "cpu"),
    ("cuda_compile", "cuda"),
)

# Every mark at once (documentation; a rendered table carries `report.marks.legend` of what it shows).
LEGEND = " · ".join((WRONG_TEXT, REDUCED_TEXT + " (the mode is named)", NOISY_TEXT, BUSY_TEXT, GPU_TEXT,
                     f"{MARK_PARTIAL} average or speedup over part of the family", "nan: not measured (see notes)",
                     NOT_APPLICABLE_TEXT))


@dataclass(frozen=True)
class Cell:
    value: float
    marks: str = ""
    label: str = ""  # shown instead of `nan` for a cell whose timing mode does not apply (`n/a: CPU`)

    def text(self, digits: int = 2) -> str:
        if math.isnan(self.value):
            return self.label or "nan"
        return f"{self.value:.{digits}f}{self.marks}"


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    caption: str = ""  # printed under the rich table: what the marks and units mean


def parse_pairs(text: str | None) -> list[tuple[str, str]] | None:
    """`cuda/cpu,mlx_gpu/mps` -> [('cuda', 'cpu'), ('mlx_gpu', 'mps')]."""
    if not text:
        return None
    from opbench.errors import UsageError

    pairs = []
    for item in text.split(","):
        a, sep, b = item.strip().partition("/")
        if not sep or not a or not b:
            raise UsageError(f"malformed speedup pair {item.strip()!r}; write A/B, e.g. cuda/cpu")
        pairs.append((a, b))
    return pairs


def choose_pairs(backends: Sequence[str], pairs: Sequence[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """The requested pairs whose two backends are present; by default the seed's three plus cuda/cpu and
    cuda_compile/cuda, or each backend against `cpu` when none of those is present."""
    present = set(backends)
    if pairs is not None:
        return [p for p in pairs if p[0] in present and p[1] in present]
    chosen = [p for p in DEFAULT_PAIRS if p[0] in present and p[1] in present]
    if not chosen and "cpu" in present:
        chosen = [(b, "cpu") for b in backends if b != "cpu"]
    return chosen


def by_mode(results: Sequence[CaseResult]) -> dict[str, list[CaseResult]]:
    """`results` split by timing mode, modes in `opbench.engine.modes.MODES` order: each table shows one mode."""
    from opbench.engine.modes import MODES

    order = list(MODES)
    groups: dict[str, list[CaseResult]] = {}
    for r in results:
        groups.setdefault(r.mode, []).append(r)
    return {m: groups[m] for m in sorted(groups, key=lambda m: order.index(m) if m in order else len(order))}


def mode_title(results: Sequence[CaseResult]) -> str:
    """`throughput mode: back-to-back calls, one sync per block`, for the tables' titles. Refuses mixed modes: a
    table never lays two modes side by side as if they were alike (split with `by_mode`, or `modes_table`)."""
    from opbench.engine.modes import MODES

    modes = list(dict.fromkeys(r.mode for r in results)) or ["throughput"]
    if len(modes) > 1:
        raise ValueError(f"a table of several timing modes ({', '.join(modes)}): split the results with by_mode")
    return f"{modes[0]} mode: {MODES.get(modes[0], 'unknown mode')}"


def _cell(result: CaseResult | None) -> Cell:
    from opbench.engine.modes import is_not_applicable, short_reason

    if result is not None and not result.timed and is_not_applicable(result.error):
        return Cell(math.nan, label=short_reason(result.error))
    if result is None or not result.timed:
        return Cell(math.nan)
    return Cell(result.median_ms, time_marks(result))


def _index(results: Sequence[CaseResult]) -> tuple[list[str], list[str], dict[tuple[str, str], CaseResult]]:
    from opbench.backends import backend_names

    order = list(backend_names())
    cases = list(dict.fromkeys(r.case for r in results))
    backends = sorted(dict.fromkeys(r.backend for r in results),
                      key=lambda b: order.index(b) if b in order else len(order))
    return cases, backends, {(r.case, r.backend): r for r in results}


def _notes(results: Sequence[CaseResult]) -> list[str]:
    """The busy-machine warning, if any, then one note per (backend, status, reason), listing its cases."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for r in results:
        if not r.timed:
            groups.setdefault((r.backend, r.status, r.error or r.detail or "no time"), []).append(r.case)
        elif r.status != Status.OK:
            what = f"rel. error {r.rel_error:.2g} (tolerance {r.tolerance:.2g})" if r.rel_error is not None else ""
            groups.setdefault((r.backend, r.status, what), []).append(r.case)
    notes = [f"warning: {w}" for w in (busy_warning(results), gpu_warning(results)) if w]
    for (backend, status, reason), cases in groups.items():
        notes.append(f"{backend}: {status}: {reason} — {_shown(cases)}")
    return notes + _one_unit_notes(results)


def _shown(cases: Sequence[str]) -> str:
    return ", ".join(cases[:4]) + (f" and {len(cases) - 4} more" if len(cases) > 4 else "")


def _one_unit_notes(results: Sequence[CaseResult]) -> list[str]:
    """One note per backend naming its results complete after one unit (`opbench.engine.passes`: a call took
    longer than the case's whole budget) and the statistics they have."""
    groups: dict[str, list[CaseResult]] = {}
    for r in results:
        if r.timed and one_unit(r):
            groups.setdefault(r.backend, []).append(r)
    notes = []
    for backend, rs in groups.items():
        sizes = sorted({r.n for r in rs})
        n = f"n = {sizes[0]}" if len(sizes) == 1 else f"n = {sizes[0]}-{sizes[-1]}"
        notes.append(f"{backend}: {ONE_UNIT}, so one worker process measured it ({n} timed call(s) after its "
                     "untimed first call: no spread between processes for `compare` to test against; `opbench "
                     f"run --all-units` measures every process) — {_shown([r.case for r in rs])}")
    return notes


def _row(name: str, cells: list[Cell], backends: list[str], pairs: list[tuple[str, str]]) -> list[str]:
    by_backend = dict(zip(backends, cells))
    speedups = []
    for a, b in pairs:
        text = format_speedup(speedup(by_backend[a].value, by_backend[b].value))
        both = by_backend[a].marks + by_backend[b].marks
        text += "".join(mark for mark in (MARK_WRONG, MARK_BUSY) if mark in both)
        speedups.append(text)
    return [name, *(c.text() for c in cells), *speedups]


def detailed_table(results: Sequence[CaseResult], pairs: Sequence[tuple[str, str]] | None = None,
                   peak: Callable[[CaseResult], str] | None = None) -> Table:
    """The seed's Detailed table. With `peak` (see `report.roofline.roofline_column`), one optional
    `<backend> % peak` column per backend is appended after the speedups; the seed's columns are unchanged."""
    cases, backends, index = _index(results)
    chosen = choose_pairs(backends, pairs)
    headers = ["Operation", *backends, *(f"{a}/{b} speedup" for a, b in chosen)]
    rows = [_row(case, [_cell(index.get((case, b))) for b in backends], backends, chosen) for case in cases]
    if peak is not None:
        headers += [f"{b} % peak" for b in backends]
        for row, case in zip(rows, cases):
            row += [peak(index[(case, b)]) if (case, b) in index else "–" for b in backends]
    n = len(backends)
    caption = legend(results, [c for row in rows for c in row[1:1 + n]],
                     [c for row in rows for c in row[1 + n:1 + n + len(chosen)]])
    return Table(f"Detailed benchmark (median ms per call; {mode_title(results)})", headers, rows, _notes(results),
                 caption)


def modes_table(results: Sequence[CaseResult]) -> Table:
    """One row per case, one column per (backend, timing mode) in `opbench.engine.modes.MODES` order (the same
    case timed each way), then, per backend with device times, `latency/device`: how many times its device time
    one synchronized call costs (host dispatch and sync; 1.0 where the device is the bottleneck)."""
    from opbench.engine.modes import MODES

    modes = list(by_mode(results))
    cases, backends, _ = _index(results)
    index = {(r.case, r.backend, r.mode): r for r in results}
    columns = [(b, m) for b in backends for m in modes if any((c, b, m) in index for c in cases)]
    ratio_of = [b for b in backends if (b, "latency") in columns
                and any(r.timed for k, r in index.items() if k[1:] == (b, "device"))]
    headers = ["Operation", *(f"{b} {m}" for b, m in columns), *(f"{b} latency/device" for b in ratio_of)]
    rows = []
    for case in cases:
        cells = {col: _cell(index.get((case, *col))) for col in columns}
        ratios = []
        for b in ratio_of:
            lat, dev = cells[(b, "latency")].value, cells[(b, "device")].value
            ratios.append("–" if math.isnan(lat) or math.isnan(dev) or dev <= 0 else f"{lat / dev:.2f}")
        rows.append([case, *(cells[col].text(3) for col in columns), *ratios])
    methods = sorted({f"{r.backend} {r.mode}: {r.method}" for r in results if r.timed and r.method})
    notes = _notes(results) + [f"method: {m}" for m in methods]
    caption = " · ".join(f"{m}: {MODES.get(m, '?')}" for m in modes)
    marks = legend(results, [c for row in rows for c in row[1:1 + len(columns)]])
    return Table("Timing modes side by side (median ms per call)", headers, rows, notes,
                 caption + (f" · {marks}" if marks else ""))


def average_table(results: Sequence[CaseResult], pairs: Sequence[tuple[str, str]] | None = None,
                  geometric: bool = False) -> Table:
    """The seed's Average table: per family the mean time of each backend and like-with-like speedups
    (`report.averages`); the notes say which means and speedups cover only part of their family."""
    rows = case_rows(results)
    _, backends, _ = _index(results)
    chosen = choose_pairs(backends, pairs)
    averages = family_averages(rows, backends, chosen, geometric)
    headers = ["Operation", *backends, *(f"{a}/{b} speedup" for a, b in chosen)]
    table_rows = [[avg.family, *(avg.means[b].text() for b in backends),
                   *(avg.speedups[p].text() for p in chosen)] for avg in averages]
    times = [c for row in table_rows for c in row[1:1 + len(backends)]]
    speedups = [c for row in table_rows for c in row[1 + len(backends):]]
    title = (f"Average benchmark (ms, {'geometric' if geometric else 'arithmetic'} mean per family; "
             f"{mode_title(results)})")
    return Table(title, headers, table_rows, average_notes(averages),
                 legend(results, times, speedups, average=True))


def to_markdown(table: Table, legend: bool = True) -> str:
    """A GitHub pipe table rendered by tabulate (every column padded to its widest cell, numbers
    right-aligned with `---:`), then the legend and the notes."""
    from tabulate import tabulate

    numeric = [i > 0 and _numeric(table, i) for i in range(len(table.headers))]
    text = tabulate([[c.replace("|", "\\|") for c in row] for row in table.rows], headers=table.headers,
                    tablefmt="pipe", disable_numparse=True,
                    colalign=["right" if n else "left" for n in numeric]) if table.headers else ""
    if legend and table.caption:
        text += f"\n\n{table.caption}"
    if table.notes:
        text += "\n\nNotes:\n" + "\n".join(f"- {n}" for n in table.notes)
    return text + "\n"


def _numeric(table: Table, column: int) -> bool:
    """Whether a column holds numbers, speedups or nan (right-aligned) rather than words."""
    return all(re.match(r"^[+-]?(\d|nan|–|-$)", row[column]) for row in table.rows
               if column < len(row) and row[column])


def to_rich(table: Table, width: int | None = None, caption: bool = True) -> object:
    """A rich Table for the terminal (imported lazily: rendering only), its caption (legend, units) underneath.

    Case names (`Family / shape`) are never folded: when the table would be wider than `width` (the
    terminal's columns), each family gets a heading row and its cases show only their shapes, which fit."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table as RichTable

    rows = [list(r) for r in table.rows]
    grouped = width is not None and _too_wide(table, width) and all(" / " in r[0] for r in rows)
    frame = {"box": box.SIMPLE_HEAD, "pad_edge": False, "collapse_padding": True} if grouped else {}
    rt = RichTable(title=escape(table.title), show_lines=False, header_style="bold",
                   caption=escape(table.caption) if caption and table.caption else None, caption_justify="left",
                   **frame)
    for i, h in enumerate(table.headers):
        rt.add_column(escape(h), justify="right" if i and _numeric(table, i) else "left",
                      overflow="fold", no_wrap=i == 0, min_width=None if i == 0 else min(len(h), 8))
    family = None
    for row in rows:
        if grouped:
            head, _, shape = row[0].partition(" / ")
            if head != family:
                family = head
                rt.add_row(f"[bold]{escape(head)}[/]", *([""] * (len(row) - 1)))
            row[0] = "  " + shape
        styled = [escape(row[0])]
        for c in row[1:]:
            c = escape(c)
            style = "red" if MARK_WRONG in c else "yellow" if MARK_REDUCED in c else ""
            if re.search(f"%[{MARK_WRONG}{MARK_BUSY}{MARK_PARTIAL}]*$", c):
                style = style or ("green" if c.startswith("+") else "magenta" if c.startswith("-") else "")
            styled.append(f"[{style}]{c}[/]" if style else c)
        rt.add_row(*styled)
    return rt


def _too_wide(table: Table, width: int) -> bool:
    """Whether the table, every cell on one line, is wider than `width` (rich's box: 3 columns per cell + 1)."""
    widths = [max(len(h.split()[0]) if h else 0, *(len(r[i]) for r in table.rows if i < len(r)))
              for i, h in enumerate(table.headers)]
    return sum(widths) + 3 * len(widths) + 1 > width


def write_run_tables(out_dir: Path, results: Sequence[CaseResult], pairs: list[tuple[str, str]] | None = None,
                     geometric: bool = False) -> None:
    """A run directory's rendered tables, next to its run.json: detailed.md and average.md (atomically), one
    table per timing mode, each titled with its mode."""
    groups = by_mode(results) or {"throughput": []}
    atomic_write(out_dir / "detailed.md", "# Detailed benchmark (ms)\n\n" + "\n".join(
        f"## {table.title}\n\n" + to_markdown(table)
        for table in (detailed_table(group, pairs) for group in groups.values())))
    atomic_write(out_dir / "average.md", "# Average benchmark (ms)\n\n" + "\n".join(
        f"## {table.title}\n\n" + to_markdown(table)
        for table in (average_table(group, pairs, geometric) for group in groups.values())))
