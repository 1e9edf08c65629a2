"""One self-contained HTML page for a run (and optionally its comparison with a second run).

The page reads top-down the way a reader asks: the machine in one line, then a summary (who was fastest per
family and size class, what failed verification and why, how noisy and how busy the run was, and the
comparison's overall verdict), then the Detailed and Average tables (click a header to sort; filter by family,
backend or case text; cells carry the tables' marks, a colour per verdict, speedups shaded by their size, and a
tooltip with median, IQR, samples and relative error), the roofline and comparison sections when asked for,
the charts in a responsive grid, and last, collapsed, every machine, setting and backend detail.

This module builds plain view objects (`HtmlTable`, `Cell`, ...); the page itself is the jinja2 template
`report/templates/report.html.j2` with autoescaping on, so every string that comes from data (case names,
labels, machine fields, error texts, notes) is escaped in text and attributes alike. The only markup inserted
unescaped is the charts' SVG, which matplotlib writes with its own text escaping. The script reads data only
from DOM attributes and never evaluates or injects it, so an imported file cannot plant markup or code.
Numbers for sorting travel in `data-sort` attributes (empty for "no time", which always sorts last).

Charts are inline SVG with text kept as text, so they scale crisply, their labels can be searched, and a
browser test can measure them; one chart per family (the 91-panel grid of `opbench plot` shows the same bars
too small to read at page width, and the speedup heatmap's content is the Detailed table's shaded speedup
columns), and for a comparison one chart of the per-family geometric means.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from opbench._version import __version__
from opbench.analysis.compare import Summary
from opbench.engine.contention import MARK_BUSY
from opbench.engine.passes import ONE_UNIT, one_unit
from opbench.machine import describe, differences
from opbench.report.averages import family_averages
from opbench.report.comparison import SPLIT_HEADERS, split_cell
from opbench.report.marks import MARK_WRONG, legend
from opbench.report.plots import ComparisonRowLike, backend_colour, format_ms, marks
from opbench.report.rows import CaseRow, backend_order, case_rows, families
from opbench.report.summary import SIZE_HELP, summarize
from opbench.report.tables import average_table, by_mode, choose_pairs, detailed_table, format_speedup, speedup
from opbench.results import CaseResult, Run
from opbench.results.status import Status

if TYPE_CHECKING:
    from opbench.studies.roofline import Roofline

SPEEDUP_SHADE_DECADES = 2.0  # a speedup cell's shade saturates at 100x faster or slower


class ComparisonLike(Protocol):
    """What the report reads from `opbench.analysis.compare.Comparison`."""

    rows: Sequence[ComparisonRowLike]
    notes: Sequence[str]
    alpha: float
    run_a: Run
    run_b: Run

    def family_summaries(self) -> Mapping[str, Summary]: ...

    def backend_summaries(self) -> Mapping[str, tuple[Summary, Summary, Summary]]: ...

    def overall_summary(self) -> Summary: ...


@dataclass(frozen=True)
class Figure:
    """A chart ready to embed: its title, inline SVG markup (from `plots.figure_svg`) and the family it shows."""

    title: str
    svg: str
    family: str = ""


@dataclass(frozen=True)
class Cell:
    """One table cell; `header` makes it the row's `<th scope="row">`."""

    text: str
    cls: str = ""
    col: str = ""
    sort: str | None = None
    title: str = ""
    style: str = ""
    header: bool = False


@dataclass(frozen=True)
class Header:
    name: str
    col: str = ""
    numeric: bool = True


@dataclass(frozen=True)
class Row:
    cells: list[Cell]
    family: str | None = None
    backend: str | None = None
    case: str | None = None
    cls: str = ""


@dataclass(frozen=True)
class HtmlTable:
    id: str
    caption: str
    headers: list[Header]
    rows: list[Row]
    sortable: bool = True
    scroll: bool = False  # a tall table scrolls inside its own box, header kept in view
    legend: str = ""  # the marks its cells show (`report.marks.legend`)


@dataclass
class Section:
    """A comparison or roofline section: tables, lists and prose the template lays out."""

    tables: list[HtmlTable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def run_label(run: Run) -> str:
    return run.label or run.run_id


def _num(value: float | None) -> str:
    """A `data-sort` value: repr of a finite float, empty for missing."""
    return "" if value is None or math.isnan(value) or math.isinf(value) else repr(float(value))


def _tooltip(result: CaseResult) -> str:
    if not result.timed:
        return "\n".join(x for x in (f"status: {result.status}", result.error or result.detail) if x)
    lines = [f"median {result.median_ms:.4g} ms"]
    if result.n:
        lines += [f"IQR {result.iqr_ms:.3g} ms" if result.n >= 2 else "IQR n/a (one sample)",
                  f"n = {result.n} samples" + (f" × {result.calls_per_sample} calls" if result.calls_per_sample
                                               else "")]
    else:
        lines.append("published number: no samples")
    if result.rel_error is not None:
        tol = f" (tolerance {result.tolerance:.2g})" if result.tolerance is not None else ""
        lines.append(f"relative error {result.rel_error:.2g}{tol}")
    if len(result.process_medians_ms) >= 2:
        lines.append("process medians " + ", ".join(f"{m:.4g}" for m in result.process_medians_ms) + " ms")
    if one_unit(result):
        lines.append(f"{ONE_UNIT}: one worker process measured it")
    lines.append(f"verdict {result.status}" + (f" · noisy (a change under {result.detectable_change:.0%} "
                                                "would not be detected)" if result.noisy else ""))
    if result.busy:
        lines.append(f"busy machine: other processes took {result.conditions['other_cpu_cores']:g} cores "
                     f"of {result.conditions.get('cpus', '?')} while it was timed")
    return "\n".join(lines)


def _time_cell(result: CaseResult | None, backend: str) -> Cell:
    if result is None:
        return Cell("n/a", "num na", backend, "", "not run")
    classes = ["num", f"v-{result.status}"]
    if not result.timed:
        classes.append("na")
        text = "n/a"
    else:
        text = format_ms(result.median_ms) + marks(result)
        if result.noisy:
            classes.append("noisy")
    return Cell(text, " ".join(classes), backend, _num(result.median_ms if result.timed else None), _tooltip(result))


def _shade(value: float) -> str:
    """A background for a speedup (%): green when A is faster, magenta when slower, stronger with the ratio."""
    if math.isnan(value) or value <= -100:
        return ""
    decades = math.log10(value / 100 + 1)
    strength = min(abs(decades) / SPEEDUP_SHADE_DECADES, 1.0)
    if strength < 0.02:
        return ""
    rgb = "26,127,55" if decades > 0 else "160,25,122"
    return f"background:rgba({rgb},{0.06 + 0.4 * strength:.2f})"


def _speedup_cell(a: CaseResult | None, b: CaseResult | None, pair: tuple[str, str]) -> Cell:
    ta = a.median_ms if a is not None and a.timed else math.nan
    tb = b.median_ms if b is not None and b.timed else math.nan
    value = speedup(ta, tb)
    wrong = any(r is not None and r.status == Status.WRONG for r in (a, b))
    busy = any(r is not None and r.timed and r.busy for r in (a, b))
    text = format_speedup(value) + (MARK_WRONG if wrong else "") + (MARK_BUSY if busy else "")
    sign = "na" if math.isnan(value) else "pos" if value > 0 else "neg" if value < 0 else "zero"
    title = f"{pair[0]}: {format_ms(ta)} ms, {pair[1]}: {format_ms(tb)} ms; (t_B/t_A − 1)·100 %"
    return Cell(text, f"num sp-{sign}", " ".join(pair), _num(value), title, _shade(value))


def _time_headers(backends: Sequence[str], pairs: Sequence[tuple[str, str]]) -> list[Header]:
    return [Header(f"{b} (ms)", b) for b in backends] + [Header(f"{a}/{b} speedup", f"{a} {b}") for a, b in pairs]


def _detailed(rows: Sequence[CaseRow], backends: Sequence[str], pairs: Sequence[tuple[str, str]],
              results: Sequence[CaseResult]) -> HtmlTable:
    body = []
    for row in rows:
        cells = [Cell(row.label, sort=row.label.lower(), header=True)]
        cells += [_time_cell(row.results.get(b), b) for b in backends]
        cells += [_speedup_cell(row.results.get(a), row.results.get(b), (a, b)) for a, b in pairs]
        body.append(Row(cells, family=row.family, case=row.label.lower()))
    headers = [Header("Operation", numeric=False), *_time_headers(backends, pairs)]  # the name starts with its family
    times = [c.text for r in body for c in r.cells[1:1 + len(backends)]]
    speedups = [c.text for r in body for c in r.cells[1 + len(backends):]]
    return HtmlTable("detailed", "Detailed benchmark: median time per call (ms)", headers, body,
                     scroll=len(body) > 25, legend=legend(results, times, speedups, missing="n/a"))


def _average(rows: Sequence[CaseRow], backends: Sequence[str], pairs: Sequence[tuple[str, str]],
             geometric: bool, results: Sequence[CaseResult]) -> HtmlTable:
    """Per family and backend, the mean of the timed medians (arithmetic, or geometric on request), and
    like-with-like speedups (`report.averages`)."""
    kind = "geometric" if geometric else "arithmetic"
    body, times, speedups = [], [], []
    for avg in family_averages(rows, backends, pairs, geometric):
        fam = avg.family
        cells = [Cell(fam, sort=fam.lower(), header=True)]
        for b in backends:
            m = avg.means[b]
            title = f"{kind} mean of {m.timed} of {m.total} cases" + (
                "\nno time: " + ", ".join(f"{s} {n}" for s, n in m.untimed.items()) if m.untimed else "")
            missing = math.isnan(m.value)
            text = "n/a" if missing else format_ms(m.value) + m.marks
            times.append(text)
            cells.append(Cell(text, "num na" if missing else "num", b, _num(m.value), title))
        for pair in pairs:
            sp = avg.speedups[pair]
            value = sp.value if sp.used else math.nan
            sign = "na" if math.isnan(value) else "pos" if value > 0 else "neg" if value < 0 else "zero"
            title = (sp.describe(fam, pair) if sp.used < sp.total else
                     f"{kind} means over all {sp.total} cases, both timed and verified")
            speedups.append(sp.text())
            cells.append(Cell(sp.text(), f"num sp-{sign}", " ".join(pair), _num(value), title, _shade(value)))
        body.append(Row(cells, family=fam, case=fam.lower()))
    caption = f"Average benchmark per family (ms, {kind} mean)"
    return HtmlTable("average", caption, [Header("Family", numeric=False), *_time_headers(backends, pairs)], body,
                     legend=legend(results, times, speedups, average=True, missing="n/a"))


def _roofline(entries: Sequence[tuple[CaseResult, Roofline]], notes: Sequence[str]) -> Section:
    """The roofline table (`report.roofline.roofline_entries`): rows lowest % of peak first; cases far under
    their limit and cases above a ceiling are highlighted, so both kinds stand out when the table is re-sorted."""
    from opbench.report.roofline import LEGEND as ROOFLINE_LEGEND
    from opbench.report.roofline import ROOFLINE_HEADERS

    headers = [Header(h, numeric=h not in ("Operation", "Backend", "Bound")) for h in ROOFLINE_HEADERS]
    body = []
    for r, rf in entries:
        cells = [Cell(r.case, sort=r.case.lower(), header=True), Cell(r.backend)]
        cells += [Cell("n/a" if math.isnan(v) else f"{v:,.{d}f}", "num", sort=_num(v))
                  for v, d in ((r.median_ms, 3), (rf.gflops, 1), (rf.gbs, 1))]
        cells += [Cell(rf.bound or "–"), Cell(rf.text(), "num pct", sort=_num(rf.pct))]
        body.append(Row(cells, family=r.family, backend=r.backend, case=r.case.lower(), cls=f"rf-{rf.flag or 'plain'}"))
    table = HtmlTable("roofline-table", "Roofline (lowest % of peak first)", headers, body, scroll=len(body) > 25)
    return Section([table], list(notes), {"legend": ROOFLINE_LEGEND})


def _metadata(run: Run) -> list[HtmlTable]:
    facts = [("run", run.run_id), ("label", run.label), ("created", run.created), ("preset", run.preset),
             ("dtype", run.dtype), ("source", run.source), ("imported", "yes" if run.imported else "")]
    pairs = [(k, v) for k, v in facts if v]
    pairs += [(k, _flatten(v)) for k, v in run.machine.items()]
    pairs += [(f"setting {k}", _flatten(v)) for k, v in run.settings.items()]
    tables = [HtmlTable("machine", "Run and machine", [], [Row([Cell(k, header=True), Cell(v)]) for k, v in pairs],
                        sortable=False)]
    backends = [Row([Cell(name, header=True), Cell("yes" if info.get("available") else "no"),
                     Cell(str(info.get("reason", ""))), Cell(_flatten(info.get("versions", {})))])
                for name, info in run.backends.items() if isinstance(info, Mapping)]
    if backends:
        tables.append(HtmlTable("backends", "Backends", [Header("Backend"), Header("Available"), Header("Why"),
                                                          Header("Versions")], backends, sortable=False))
    return tables


def _flatten(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {v}" if not isinstance(v, (Mapping, list)) else f"{k}: {_flatten(v)}"
                         for k, v in value.items()) or "—"
    if isinstance(value, list):
        return "; ".join(_flatten(v) for v in value) or "—"
    return str(value)


def _comparison(comparison: ComparisonLike) -> Section:
    a, b = run_label(comparison.run_a), run_label(comparison.run_b)
    level = round(100 * (1 - comparison.alpha))
    summary = [Row([Cell(f, header=True), Cell(g.text, "num", sort=_num(g.geomean)),
                    Cell(g.reads(), f"cmp-{g.verdict}")], family=f) for f, g in comparison.family_summaries().items()]
    overall = comparison.overall_summary()
    summary.append(Row([Cell("Overall", header=True), Cell(overall.text, "num"),
                        Cell(overall.reads(), f"cmp-{overall.verdict}")], cls="overall"))
    by_backend = [Row([Cell(bk, header=True), Cell(g.text, "num"), Cell(g.reads(), f"cmp-{g.verdict}"),
                       *(Cell(split_cell(half), "num") for half in halves)], backend=bk.split(" vs ")[0])
                  for bk, (g, *halves) in comparison.backend_summaries().items()]
    body = []
    for r in comparison.rows:
        verdict = {"slower": f"{b} slower", "faster": f"{b} faster",
                   "ambiguous": "ambiguous (too noisy)"}.get(r.verdict, r.verdict)
        ci = "—" if r.ci_low is None or r.ci_high is None else f"{r.ci_low:.3f}–{r.ci_high:.3f}"
        p = "—" if r.p_value is None else "<0.001" if r.p_value < 0.001 else f"{r.p_value:.3f}"
        note = getattr(r, "note", "")
        cells = [Cell(r.case, sort=r.case.lower(), header=True), Cell(r.family), Cell(r.backend),
                 Cell(format_ms(r.time_a_ms), "num", sort=_num(r.time_a_ms)),
                 Cell(format_ms(r.time_b_ms), "num", sort=_num(r.time_b_ms)),
                 Cell(_ratio_text(r.ratio), "num", sort=_num(r.ratio)), Cell(ci), Cell(p, "num", sort=_num(r.p_value)),
                 Cell(verdict + (" *" if note else ""), f"cmp-{r.verdict}", title=note)]
        body.append(Row(cells, family=r.family, backend=r.backend.split(" vs ")[0], case=r.case.lower()))
    rows_table = HtmlTable("comparison-rows", "B vs A per case and backend",
                           [Header("Case", numeric=False), Header("Family", numeric=False),
                            Header("Backend", numeric=False), Header(f"{a} (ms)"), Header(f"{b} (ms)"),
                            Header(f"{b}/{a}"), Header(f"{level}% CI", numeric=False), Header("p"),
                            Header("Verdict", numeric=False)], body, scroll=len(body) > 25)
    tables = [
        HtmlTable("comparison-summary", "Geometric mean of B/A per family",
                  [Header("Family"), Header(f"Geomean B/A ({level} % CI)"), Header("Reads")], summary, sortable=False),
        HtmlTable("comparison-backends", "Geometric mean of B/A per backend, and split by A's time "
                  "(host-dispatch-bound on a GPU below the split)",
                  [Header("Backend"), Header("Geomean B/A"), Header("Reads"), *(Header(h) for h in SPLIT_HEADERS)],
                  by_backend, sortable=False),
        rows_table,
    ]
    differ = differences(comparison.run_a.machine, comparison.run_b.machine)
    return Section(tables, list(comparison.notes), {"a": a, "b": b, "level": level, "differ": "; ".join(differ),
                                                     "overall": overall})


def _ratio_text(value: float) -> str:
    from opbench.report.comparison import ratio_text

    return ratio_text(value)


@cache
def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("opbench.report", "templates"),
                             autoescape=jinja2.select_autoescape(default=True), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["pct"] = lambda x: "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f} %"
    return env


def _asset(name: str):
    """A static file of the templates folder (CSS, script) as markup to inline."""
    import markupsafe

    env = _environment()
    return markupsafe.Markup(env.loader.get_source(env, name)[0])


def render_report(run: Run, comparison: ComparisonLike | None = None, figures: Sequence[Figure] = (), *,
                  pairs: Sequence[tuple[str, str]] | None = None, geometric: bool = False,
                  roofline: tuple[Sequence[tuple[CaseResult, Roofline]], Sequence[str]] | None = None) -> str:
    """The whole page as one string; `roofline` (entries and notes of `report.roofline.roofline_entries`)
    adds the optional roofline section."""
    import markupsafe

    from opbench.engine.modes import MODES

    groups = by_mode(run.results) or {"throughput": list(run.results)}
    first = next(iter(groups.values()))
    rows, backends = case_rows(first), backend_order(run.results)
    chosen = choose_pairs(backends, pairs)
    modes = []
    for i, (mode, results) in enumerate(groups.items()):
        mode_rows = case_rows(results)
        detailed = _detailed(mode_rows, backends, chosen, results)
        average = _average(mode_rows, backends, chosen, geometric, results)
        if i:  # ids stay unique: the first mode's tables keep theirs
            detailed = replace(detailed, id=f"detailed-{mode}")
            average = replace(average, id=f"average-{mode}")
        modes.append({"mode": mode, "about": MODES.get(mode, ""), "detailed": detailed, "average": average})
    notes = list(dict.fromkeys(n for results in groups.values() for n in (
        *detailed_table(results, pairs).notes, *average_table(results, pairs, geometric).notes)))
    page = _environment().get_template("report.html.j2").render(
        title=f"opbench report: {run_label(run)}", version=__version__, run=run, machine=describe(run.machine),
        backends=backends, families=families(rows), summary=summarize(first), size_help=SIZE_HELP,
        modes=modes, notes=notes, first_mode=next(iter(groups)),
        roofline=_roofline(*roofline) if roofline is not None else None,
        comparison=_comparison(comparison) if comparison is not None else None,
        figures=[(f, markupsafe.Markup(f.svg)) for f in figures], details=_metadata(run),
        colours={b: backend_colour(b) for b in backends}, css=_asset("report.css"), script=_asset("report.js"),
        results=len(run.results))
    return page


def report_figures(run: Run, comparison: ComparisonLike | None = None, *, log: bool | None = None,
                   pairs: Sequence[tuple[str, str]] | None = None,
                   on_done: Callable[[str], None] | None = None) -> list[Figure]:
    """Draw the report's charts as inline SVG: the comparison's per-family chart first (when there is one),
    then one chart per family. `pairs` is accepted for symmetry with `opbench plot` (no chart here uses it)."""
    from opbench.report import plots

    jobs: list[tuple[str, str, Callable[[], Any]]] = []
    if comparison is not None and comparison.rows:
        a, b = run_label(comparison.run_a), run_label(comparison.run_b)
        groups = {**comparison.family_summaries(), "Overall": comparison.overall_summary()}
        jobs.append((f"{b} vs {a} per family", "", lambda: plots.comparison_summary_chart(groups, a, b)))
    first = next(iter(by_mode(run.results).values()), list(run.results))  # one mode per bar chart
    for fam in families(case_rows(first)):
        jobs.append((f"Family {fam}", fam, lambda fam=fam: plots.family_chart(first, fam, log=log,
                                                                             verdict_key=False)))
    out = []
    for i, (title, fam, draw) in enumerate(jobs):
        out.append(Figure(title, plots.figure_svg(draw(), f"chart{i}"), fam))
        if on_done:
            on_done(title)
    return out


def figure_count(run: Run, comparison: ComparisonLike | None = None) -> int:
    first = next(iter(by_mode(run.results).values()), list(run.results))
    return len(families(case_rows(first))) + (1 if comparison is not None and comparison.rows else 0)
