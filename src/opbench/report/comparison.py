"""A `Comparison` rendered as tables: one row per case and backend, then geometric means per family and overall.

Only presentation: the numbers come from `opbench.analysis.compare`. Ratios are B/A with four significant digits (> 1: B
is slower); `Change` reads `1.23x slower`, `1.23x faster`, `same`, `ambiguous` (too noisy to tell), or
`... (untested)` where a side has no raw samples (an imported table: only the published number is known,
nothing can be tested). Geometric means carry their interval and the same verdicts (`compare.Summary`).
"""

from __future__ import annotations

import math
from typing import Any

from opbench.analysis.compare import Comparison, Summary
from opbench.analysis.significance import EQUIVALENCE
from opbench.report.tables import Table, to_markdown, to_rich
from opbench.results.model import SHORT_CASE_MS, Run


def describe_run(run: Run) -> str:
    """`20261124-... (AMD EPYC ... · Python 3.11.7; float32, preset seed)` or `pub-m3-max-... (published: M3 Max)`."""
    from opbench.machine import describe

    if run.imported:
        return f"{run.run_id} ({describe(run.machine)})"
    label = f" {run.label}" if run.label else ""
    return f"{run.run_id}{label} ({describe(run.machine)}; {run.dtype}, preset {run.preset})"


def _num(x: float | None, fmt: str) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def ratio_text(x: float | None) -> str:
    """A ratio with four significant digits, never in e-notation: `0.8731`, `0.00008933`, `11,195`."""
    if x is None or not math.isfinite(x):
        return "—"
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:.4g}"
    if abs(x) >= 1e4:
        return f"{x:,.0f}"
    return f"{x:.{3 - math.floor(math.log10(abs(x)))}f}"


def drop_empty_columns(table: Table, empty: str = "—") -> Table:
    """`table` without the columns in which every row reads `empty` (a published side has no CI or p)."""
    if not table.rows:
        return table
    keep = [i for i in range(len(table.headers)) if i == 0 or any(row[i] != empty for row in table.rows)]
    return Table(table.title, [table.headers[i] for i in keep], [[row[i] for i in keep] for row in table.rows],
                 table.notes, table.caption)


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def rows_table(comparison: Comparison) -> Table:
    level = round(100 * (1 - comparison.alpha))
    headers = ["Case", "Backend", "A (ms)", "B (ms)", "B/A", f"{level}% CI", "p", "Change", "Note"]
    rows = []
    for r in comparison.rows:
        ci = "—" if r.ci_low is None or r.ci_high is None else f"{ratio_text(r.ci_low)}–{ratio_text(r.ci_high)}"
        rows.append([r.case, r.backend, _num(r.time_a_ms, ".3f"), _num(r.time_b_ms, ".3f"), ratio_text(r.ratio), ci,
                     _p(r.p_value), r.change, r.note])
    if not any(r.note for r in comparison.rows):  # no marked time: drop the empty column
        headers, rows = headers[:-1], [row[:-1] for row in rows]
    return drop_empty_columns(Table("B vs A per case", headers, rows, list(comparison.notes)))


VERDICT_COLUMNS = ("slower", "faster", "same", "ambiguous", "untested")


def summary_table(comparison: Comparison) -> Table:
    level = round(100 * (1 - comparison.alpha))
    counts: dict[str, dict[str, int]] = {}
    for r in comparison.rows:
        c = counts.setdefault(r.family, dict.fromkeys(VERDICT_COLUMNS, 0))
        c[r.verdict] += 1
    rows = []
    for family, summary in comparison.family_summaries().items():
        rows.append([family, str(summary.rows), summary.text, summary.reads(),
                     *(str(counts[family][k]) for k in VERDICT_COLUMNS)])
    overall = comparison.overall_summary()
    total = {k: sum(c[k] for c in counts.values()) for k in VERDICT_COLUMNS}
    rows.append(["Overall", str(overall.rows), overall.text, overall.reads(),
                 *(str(total[k]) for k in VERDICT_COLUMNS)])
    headers = ["Family", "Rows", f"Geomean B/A ({level}% CI)", "Reads", "Slower", "Faster", "Same", "Ambiguous",
               "Untested"]
    return Table("Geometric mean of B/A per family", headers, rows, [])


SPLIT_HEADERS = (f"A < {SHORT_CASE_MS * 1000:g} µs (rows)", f"A ≥ {SHORT_CASE_MS * 1000:g} µs (rows)")


def split_cell(summary: Summary) -> str:
    """One duration class of a backend: `0.873 (0.85–0.9) (44)`, or `–` without rows."""
    return f"{summary.text} ({summary.rows})" if summary.rows else "–"


def backend_table(comparison: Comparison) -> Table:
    """Per backend, the geomean of all rows and, split at `SHORT_CASE_MS` of A's time, of the short
    (host-dispatch-bound) and the long (device-bound) cases, each with its interval."""
    rows = [[backend, whole.text, whole.reads(), split_cell(short), split_cell(long)]
            for backend, (whole, short, long) in comparison.backend_summaries().items()]
    return Table("Geometric mean of B/A per backend", ["Backend", "Geomean B/A", "Reads", *SPLIT_HEADERS], rows, [])


def header_lines(comparison: Comparison) -> list[str]:
    floor = f"{100 * comparison.noise_floor:g}%"
    return [f"A: {describe_run(comparison.run_a)}",
            f"B: {describe_run(comparison.run_b)}",
            f"B/A > 1: B slower. Slower/faster: the {round(100 * (1 - comparison.alpha))}% CI of the ratio "
            "(from the spread between the runs' worker processes) excludes 1 and |B/A − 1| ≥ the noise floor "
            f"({floor}, or what `opbench noise` measured on A's machine); same: the CI lies within ±max(floor, "
            f"{100 * EQUIVALENCE:g}%); ambiguous: too noisy to tell. Untested: a side without raw samples "
            "(a published table).", *_differences(comparison)]


def _differences(comparison: Comparison) -> list[str]:
    """The machine, software and opbench build differences of A and B: a ratio measures them too."""
    from opbench.machine import differences

    differ = differences(comparison.run_a.machine, comparison.run_b.machine)
    return [f"A and B differ in: {'; '.join(differ)}"] if differ else []


def to_markdown_report(comparison: Comparison) -> str:
    parts = [f"# Comparison: {comparison.run_b.label or comparison.run_b.run_id} (B) vs "
             f"{comparison.run_a.label or comparison.run_a.run_id} (A)\n",
             *(f"- {line}" for line in header_lines(comparison)), ""]
    for table in (summary_table(comparison), backend_table(comparison), rows_table(comparison)):
        parts.append(f"## {table.title}\n")
        parts.append(to_markdown(table, legend=False) if table.rows else "(nothing to compare)\n")
    return "\n".join(parts)


def to_rich_renderables(comparison: Comparison) -> list[Any]:
    from rich.markup import escape

    out: list[Any] = [escape(line) for line in header_lines(comparison)]
    for table in (rows_table(comparison), backend_table(comparison), summary_table(comparison)):
        out.append(to_rich(table))
        out.extend(f"[dim]- {escape(note)}[/]" for note in table.notes)
    return out
