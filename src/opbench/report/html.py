"""One self-contained HTML page for a run (and optionally its comparison with a second run).

The page needs no network: CSS and JavaScript are inline and the charts are embedded as base64 PNG. It holds
the machine metadata, the Detailed and Average tables (click a header to sort; filter by family, backend or
case text; cells carry the tables' verdict/noise marks, a colour per verdict and a tooltip with median, IQR,
sample count and relative error), the charts, and the comparison when one is given.

Safety: every string that comes from data (case names, labels, machine fields, error texts, notes) passes
through `html.escape` before it reaches the page, in text and in attributes alike; the script reads data only
from DOM attributes and never evaluates or injects it, so an imported file cannot plant markup or code.
Numbers for sorting travel in `data-sort` attributes (empty for "no time", which always sorts last).
Charts fit the page width; a click shows one at full size.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from opbench import __version__
from opbench.analysis.compare import Summary
from opbench.engine.contention import MARK_BUSY
from opbench.machine import differences
from opbench.report.averages import family_averages
from opbench.report.comparison import SPLIT_HEADERS, split_cell
from opbench.report.marks import MARK_WRONG, legend
from opbench.report.plots import ComparisonRowLike, format_ms, marks
from opbench.report.rows import CaseRow, backend_order, case_rows, families
from opbench.report.tables import average_table, by_mode, choose_pairs, detailed_table, format_speedup, speedup
from opbench.results import CaseResult, Run

if TYPE_CHECKING:
    from opbench.studies.roofline import Roofline


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
    """A chart ready to embed: its title and PNG bytes."""

    title: str
    png: bytes


def e(value: object) -> str:
    """Escape for HTML text and (double- or single-quoted) attribute values."""
    return html.escape(str(value), quote=True)


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
    lines.append(f"verdict {result.status}" + (f" · noisy (a change under {result.detectable_change:.0%} "
                                                "would not be detected)" if result.noisy else ""))
    if result.busy:
        lines.append(f"busy machine: other processes took {result.conditions['other_cpu_cores']:g} cores "
                     f"of {result.conditions.get('cpus', '?')} while it was timed")
    return "\n".join(lines)


def _time_cell(result: CaseResult | None, backend: str) -> str:
    if result is None:
        return f'<td class="num na" data-col="{e(backend)}" data-sort="" title="not run">n/a</td>'
    classes = ["num", f"v-{result.status}"]
    text = _time_text(result)
    if not result.timed:
        classes.append("na")
    elif result.noisy:
        classes.append("noisy")
    value = result.median_ms if result.timed else None
    return (f'<td class="{e(" ".join(classes))}" data-col="{e(backend)}" data-sort="{_num(value)}" '
            f'title="{e(_tooltip(result))}">{e(text)}</td>')


def _time_text(result: CaseResult | None) -> str:
    return format_ms(result.median_ms) + marks(result) if result is not None and result.timed else "n/a"


def _times(a: CaseResult | None, b: CaseResult | None) -> tuple[float, float]:
    return tuple(r.median_ms if r is not None and r.timed else math.nan for r in (a, b))  # type: ignore[return-value]


def _speedup_text(a: CaseResult | None, b: CaseResult | None) -> str:
    wrong = any(r is not None and r.status == "wrong" for r in (a, b))
    busy = any(r is not None and r.timed and r.busy for r in (a, b))
    return format_speedup(speedup(*_times(a, b))) + (MARK_WRONG if wrong else "") + (MARK_BUSY if busy else "")


def _speedup_cell(a: CaseResult | None, b: CaseResult | None, pair: tuple[str, str]) -> str:
    ta, tb = _times(a, b)
    value = speedup(ta, tb)
    text = _speedup_text(a, b)
    sign = "na" if math.isnan(value) else "pos" if value > 0 else "neg" if value < 0 else "zero"
    title = f"{pair[0]}: {format_ms(ta)} ms, {pair[1]}: {format_ms(tb)} ms; (t_B/t_A − 1)·100 %"
    return (f'<td class="num sp-{sign}" data-col="{e(" ".join(pair))}" data-sort="{_num(value)}" '
            f'title="{e(title)}">{e(text)}</td>')


def _header(name: str, col: str = "", numeric: bool = True) -> str:
    attrs = f' data-col="{e(col)}"' if col else ""
    return (f'<th scope="col" data-sort-type="{"num" if numeric else "text"}"{attrs} tabindex="0">'
            f'{e(name)}</th>')


def _detailed(rows: Sequence[CaseRow], backends: Sequence[str], pairs: Sequence[tuple[str, str]]
              ) -> tuple[str, list[str], list[str]]:
    """The Detailed table, and its rendered time and speedup texts (for the legend)."""
    head = [_header("Operation", numeric=False), _header("Family", numeric=False)]
    head += [_header(f"{b} (ms)", b) for b in backends]
    head += [_header(f"{a}/{b} speedup", f"{a} {b}") for a, b in pairs]
    body = []
    for row in rows:
        cells = [f'<th scope="row" data-sort="{e(row.label.lower())}">{e(row.label)}</th>',
                 f"<td>{e(row.family)}</td>"]
        cells += [_time_cell(row.results.get(b), b) for b in backends]
        cells += [_speedup_cell(row.results.get(a), row.results.get(b), (a, b)) for a, b in pairs]
        body.append(f'<tr data-family="{e(row.family)}" data-case="{e(row.label.lower())}">{"".join(cells)}</tr>')
    times = [_time_text(row.results.get(b)) for row in rows for b in backends]
    speedups = [_speedup_text(row.results.get(a), row.results.get(b)) for row in rows for a, b in pairs]
    return _table("detailed", "Detailed benchmark: median time per call (ms)", head, body), times, speedups


def _average(rows: Sequence[CaseRow], backends: Sequence[str], pairs: Sequence[tuple[str, str]],
             geometric: bool) -> tuple[str, list[str], list[str]]:
    """Per family and backend, the mean of the timed medians (arithmetic, or geometric on request), and
    like-with-like speedups (`report.averages`); also the rendered time and speedup texts (for the legend)."""
    head = [_header("Family", numeric=False)] + [_header(f"{b} (ms)", b) for b in backends]
    head += [_header(f"{a}/{b} speedup", f"{a} {b}") for a, b in pairs]
    body, times, speedups = [], [], []
    kind = "geometric" if geometric else "arithmetic"
    for avg in family_averages(rows, backends, pairs, geometric):
        fam = avg.family
        cells = [f'<th scope="row" data-sort="{e(fam.lower())}">{e(fam)}</th>']
        for b in backends:
            m = avg.means[b]
            title = f"{kind} mean of {m.timed} of {m.total} cases" + (
                "\nno time: " + ", ".join(f"{s} {n}" for s, n in m.untimed.items()) if m.untimed else "")
            text = format_ms(m.value) + m.marks if not math.isnan(m.value) else "n/a"
            times.append(text)
            cls = "num na" if math.isnan(m.value) else "num"
            cells.append(f'<td class="{cls}" data-col="{e(b)}" data-sort="{_num(m.value)}" title="{e(title)}">'
                         f"{e(text)}</td>")
        for pair in pairs:
            sp = avg.speedups[pair]
            value = sp.value if sp.used else math.nan
            sign = "na" if math.isnan(value) else "pos" if value > 0 else "neg" if value < 0 else "zero"
            title = (sp.describe(fam, pair) if sp.used < sp.total else
                     f"{kind} means over all {sp.total} cases, both timed and verified")
            speedups.append(sp.text())
            cells.append(f'<td class="num sp-{sign}" data-col="{e(" ".join(pair))}" data-sort="{_num(value)}" '
                         f'title="{e(title)}">{e(sp.text())}</td>')
        body.append(f'<tr data-family="{e(fam)}" data-case="{e(fam.lower())}">{"".join(cells)}</tr>')
    title = "Average benchmark per family (ms" + (", geometric mean)" if geometric else ", arithmetic mean)")
    return _table("average", title, head, body), times, speedups


def _with_legend(results: Sequence[CaseResult], table: str, times: list[str], speedups: list[str],
                 average: bool = False) -> str:
    """A table followed by the legend of the marks it shows (`report.marks.legend`)."""
    text = legend(results, times, speedups, average=average, missing="n/a")
    return table + (f'<p class="legend">{e(text)}</p>' if text else "")


def _table(table_id: str, caption: str, head: Sequence[str], body: Sequence[str]) -> str:
    return (f'<table id="{table_id}" class="results sortable"><caption>{e(caption)} '
            f'<span class="count" data-total="{len(body)}">{len(body)} rows</span></caption>'
            f'<thead><tr>{"".join(head)}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def _roofline(entries: Sequence[tuple[CaseResult, Roofline]], notes: Sequence[str]) -> str:
    """The roofline table (`report.roofline.roofline_entries`): rows lowest % of peak first; cases far under
    their limit and cases above a ceiling are highlighted, so both kinds stand out when the table is re-sorted."""
    from opbench.report.roofline import LEGEND as ROOFLINE_LEGEND
    from opbench.report.roofline import ROOFLINE_HEADERS

    head = [_header(h, numeric=h not in ("Operation", "Backend", "Bound")) for h in ROOFLINE_HEADERS]
    body = []
    for r, rf in entries:
        cells = [f'<th scope="row" data-sort="{e(r.case.lower())}">{e(r.case)}</th>', f"<td>{e(r.backend)}</td>"]
        cells += [f'<td class="num" data-sort="{_num(v)}">{e("n/a" if math.isnan(v) else f"{v:,.{d}f}")}</td>'
                  for v, d in ((r.median_ms, 3), (rf.gflops, 1), (rf.gbs, 1))]
        cells.append(f"<td>{e(rf.bound or '–')}</td>")
        cells.append(f'<td class="num pct" data-sort="{_num(rf.pct)}">{e(rf.text())}</td>')
        body.append(f'<tr class="rf-{e(rf.flag or "plain")}" data-family="{e(r.family)}" data-backend="{e(r.backend)}"'
                    f' data-case="{e(r.case.lower())}">{"".join(cells)}</tr>')
    items = "".join(f"<li>{e(n)}</li>" for n in notes)
    return ('<section id="roofline"><h2>Roofline: % of calibrated peak</h2>'
            f'<p class="legend">{e(ROOFLINE_LEGEND)}</p>'
            + _table("roofline-table", "Roofline (lowest % of peak first)", head, body)
            + (f'<ul class="notes">{items}</ul>' if items else "") + "</section>")


def _flatten(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {v}" if not isinstance(v, (Mapping, list)) else f"{k}: {_flatten(v)}"
                         for k, v in value.items()) or "—"
    if isinstance(value, list):
        return "; ".join(_flatten(v) for v in value) or "—"
    return str(value)


def _metadata(run: Run) -> str:
    facts = [("run", run.run_id), ("label", run.label), ("created", run.created), ("preset", run.preset),
             ("dtype", run.dtype), ("source", run.source), ("imported", "yes" if run.imported else "")]
    rows = [(k, v) for k, v in facts if v]
    rows += [(k, _flatten(v)) for k, v in run.machine.items()]
    rows += [(f"setting {k}", _flatten(v)) for k, v in run.settings.items()]
    meta = "".join(f"<tr><th scope=\"row\">{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    backends = "".join(
        f"<tr><th scope=\"row\">{e(name)}</th><td>{'yes' if info.get('available') else 'no'}</td>"
        f"<td>{e(info.get('reason', ''))}</td><td>{e(_flatten(info.get('versions', {})))}</td></tr>"
        for name, info in run.backends.items() if isinstance(info, Mapping))
    out = f'<table class="meta" id="machine"><caption>Run and machine</caption>{meta}</table>'
    if backends:
        out += ('<table class="meta" id="backends"><caption>Backends</caption><thead><tr><th>Backend</th>'
                f"<th>Available</th><th>Why</th><th>Versions</th></tr></thead>{backends}</table>")
    return out


def _controls(fams: Sequence[str], backends: Sequence[str]) -> str:
    options = "".join(f'<option value="{e(f)}">{e(f)}</option>' for f in fams)
    boxes = "".join(f'<label><input type="checkbox" class="backend-toggle" value="{e(b)}" checked> {e(b)}</label>'
                    for b in backends)
    return ('<div id="controls"><label>Family <select id="family-filter"><option value="">all families</option>'
            f'{options}</select></label> <label>Case contains <input id="text-filter" type="search" '
            f'placeholder="e.g. dim=64"></label> <span class="backends">Backends {boxes}</span></div>')


def _figures(figures: Sequence[Figure]) -> str:
    if not figures:
        return ""
    items = "".join(f'<figure><img alt="{e(f.title)}" src="data:image/png;base64,'
                    f'{base64.b64encode(f.png).decode("ascii")}"><figcaption>{e(f.title)}</figcaption></figure>'
                    for f in figures)
    return f'<section id="plots"><h2>Charts</h2>{items}</section>'


def _comparison(comparison: ComparisonLike) -> str:
    a, b = run_label(comparison.run_a), run_label(comparison.run_b)
    level = round(100 * (1 - comparison.alpha))
    summary = "".join(f'<tr data-family="{e(f)}"><th scope="row">{e(f)}</th><td class="num" '
                      f'data-sort="{_num(g.geomean)}">{e(g.text)}</td><td class="cmp-{g.verdict}">{e(g.reads())}</td>'
                      "</tr>" for f, g in comparison.family_summaries().items())
    overall = comparison.overall_summary()
    summary += (f'<tr class="overall"><th scope="row">Overall</th><td class="num">{e(overall.text)}</td>'
                f'<td class="cmp-{overall.verdict}">{e(overall.reads())}</td></tr>')
    head = [_header("Case", numeric=False), _header("Family", numeric=False), _header("Backend", numeric=False),
            _header(f"{a} (ms)"), _header(f"{b} (ms)"), _header(f"{b}/{a}"), _header(f"{level}% CI", numeric=False),
            _header("p"), _header("Verdict", numeric=False)]
    body = []
    for r in comparison.rows:
        cls = r.verdict
        verdict = {"slower": f"{b} slower", "faster": f"{b} faster", "ambiguous": "ambiguous (too noisy)"}.get(cls, cls)
        ci = "—" if r.ci_low is None or r.ci_high is None else f"{r.ci_low:.3f}–{r.ci_high:.3f}"
        p = "—" if r.p_value is None else "<0.001" if r.p_value < 0.001 else f"{r.p_value:.3f}"
        note = getattr(r, "note", "")
        cells = [f'<th scope="row" data-sort="{e(r.case.lower())}">{e(r.case)}</th>', f"<td>{e(r.family)}</td>",
                 f"<td>{e(r.backend)}</td>", f'<td class="num" data-sort="{_num(r.time_a_ms)}">'
                 f"{e(format_ms(r.time_a_ms))}</td>", f'<td class="num" data-sort="{_num(r.time_b_ms)}">'
                 f"{e(format_ms(r.time_b_ms))}</td>", f'<td class="num" data-sort="{_num(r.ratio)}">'
                 f"{_ratio_text(r.ratio)}</td>", f"<td>{e(ci)}</td>",
                 f'<td class="num" data-sort="{_num(r.p_value)}">{e(p)}</td>',
                 f'<td class="cmp-{cls}" title="{e(note)}">{e(verdict)}{" *" if note else ""}</td>']
        backend = r.backend.split(" vs ")[0]
        body.append(f'<tr data-family="{e(r.family)}" data-backend="{e(backend)}" data-case="{e(r.case.lower())}">'
                    f'{"".join(cells)}</tr>')
    notes = "".join(f"<li>{e(n)}</li>" for n in comparison.notes)
    differ = differences(comparison.run_a.machine, comparison.run_b.machine)
    by_backend = "".join(
        f'<tr data-backend="{e(bk.split(" vs ")[0])}"><th scope="row">{e(bk)}</th><td class="num">{e(g.text)}'
        f'</td><td class="cmp-{g.verdict}">{e(g.reads())}</td>'
        + "".join(f'<td class="num">{e(split_cell(half))}</td>' for half in halves) + "</tr>"
        for bk, (g, *halves) in comparison.backend_summaries().items())
    split_heads = "".join(f"<th>{e(h)}</th>" for h in SPLIT_HEADERS)
    return (f'<section id="comparison"><h2>Comparison: {e(b)} (B) vs {e(a)} (A)</h2>'
            f"<p>B/A &gt; 1: B is slower. Slower or faster: the {level} % CI of the ratio (from the spread between "
            "the runs' worker processes) excludes 1 and the change exceeds the noise floor; same: the CI lies "
            "within the equivalence margin; ambiguous: too noisy to tell. Geometric means carry their CI. "
            "* a marked time (hover for why).</p>"
            + (f'<p class="differ">A and B differ in: {e("; ".join(differ))}</p>' if differ else "")
            +
            '<table class="results" id="comparison-summary"><caption>Geometric mean of B/A per family</caption>'
            f"<thead><tr><th>Family</th><th>Geomean B/A ({level} % CI)</th><th>Reads</th></tr></thead>"
            f"<tbody>{summary}</tbody>"
            "</table>"
            '<table class="results" id="comparison-backends"><caption>Geometric mean of B/A per backend, and '
            "split by A's time (host-dispatch-bound on a GPU below the split)</caption><thead><tr><th>Backend</th>"
            f"<th>Geomean B/A</th><th>Reads</th>{split_heads}</tr></thead><tbody>{by_backend}</tbody></table>"
            f"{_table('comparison-rows', 'B vs A per case and backend', head, body)}"
            + (f"<ul class=\"notes\">{notes}</ul>" if notes else "") + "</section>")


def _ratio_text(value: float) -> str:
    from opbench.report.comparison import ratio_text

    return ratio_text(value)


def _mode_tables(groups: dict[str, list[CaseResult]], backends: Sequence[str], chosen: Sequence[tuple[str, str]],
                 geometric: bool) -> str:
    """The Detailed and Average tables, once per timing mode (`opbench.engine.modes`), each under its mode's
    name; with several modes a switch shows one mode's tables at a time (a mode is never mixed into another's
    table). Table ids get the mode as a suffix after the first mode's."""
    from opbench.engine.modes import MODES

    blocks = []
    for i, (mode, results) in enumerate(groups.items()):
        mode_rows = case_rows(results)
        body = (_with_legend(results, *_detailed(mode_rows, backends, chosen))
                + _with_legend(results, *_average(mode_rows, backends, chosen, geometric), average=True))
        if i:
            for table_id in ("detailed", "average"):
                body = body.replace(f'id="{table_id}"', f'id="{table_id}-{mode}"')
        head = f'<p class="mode"><b>{e(mode)} mode</b>: {e(MODES.get(mode, ""))}</p>'
        blocks.append(f'<div class="mode-block" data-mode="{e(mode)}"{" hidden" if i else ""}>{head}{body}</div>')
    if len(groups) < 2:
        return "".join(blocks)
    options = "".join(f'<option value="{e(m)}">{e(m)}</option>' for m in groups)
    switch = (f'<div id="mode-switch-box"><label>Timing mode <select id="mode-switch">{options}</select></label> '
              "(the same cases timed each way; `opbench show RUN --modes` puts them side by side)</div>")
    script = ('<script>document.getElementById("mode-switch").addEventListener("change", function (ev) {'
              'document.querySelectorAll(".mode-block").forEach(function (b) {'
              'b.hidden = b.dataset.mode !== ev.target.value; }); });</script>')
    return switch + "".join(blocks) + script


def render_report(run: Run, comparison: ComparisonLike | None = None, figures: Sequence[Figure] = (), *,
                  pairs: Sequence[tuple[str, str]] | None = None, geometric: bool = False,
                  roofline: tuple[Sequence[tuple[CaseResult, Roofline]], Sequence[str]] | None = None) -> str:
    """The whole page as one string; `roofline` (entries and notes of `report.roofline.roofline_entries`)
    adds the optional roofline section."""
    groups = by_mode(run.results) or {"throughput": list(run.results)}
    first = next(iter(groups.values()))
    rows, backends = case_rows(first), backend_order(run.results)
    chosen = choose_pairs(backends, pairs)
    notes = "".join(f"<li>{e(n)}</li>" for n in dict.fromkeys(
        [n for results in groups.values() for n in (*detailed_table(results, pairs).notes,
                                                    *average_table(results, pairs, geometric).notes)]))
    title = f"opbench report: {run_label(run)}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<meta name=\"generator\" content=\"opbench {e(__version__)}\"><title>{e(title)}</title>",
        f"<style>{CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
        f'<section id="metadata"><h2>Machine and run</h2>{_metadata(run)}</section>',
        '<section id="tables"><h2>Tables</h2>',
        '<p class="legend">Hover a time for median, IQR, samples and relative error, an average for the cases '
        "it covers. Click a column header to sort.</p>",
        _controls(families(rows), backends), _mode_tables(groups, backends, chosen, geometric),
        f'<ul class="notes">{notes}</ul>' if notes else "", "</section>",
        _roofline(*roofline) if roofline is not None else "",
        _comparison(comparison) if comparison is not None else "",
        _figures(figures),
        f"<footer>opbench {e(__version__)} · {len(run.results)} results · self-contained page, no network"
        "</footer>",
        f"<script>{SCRIPT}</script></body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def report_figures(run: Run, comparison: ComparisonLike | None = None, *, log: bool = False,
                   pairs: Sequence[tuple[str, str]] | None = None,
                   on_done: Callable[[str], None] | None = None) -> list[Figure]:
    """Draw the run's charts (and the comparison chart) as PNG bytes for embedding."""
    from opbench.report import plots

    out = []
    jobs = plots.plan_run_figures(run, log=log, pairs=pairs)
    if comparison is not None and comparison.rows:
        a, b = run_label(comparison.run_a), run_label(comparison.run_b)
        jobs.append((f"{b} vs {a}", "comparison", lambda: plots.comparison_chart(comparison.rows, a, b)))
    for title, _stem, draw in jobs:
        fig = draw()
        if fig is not None:
            out.append(Figure(title, plots.figure_bytes(fig, "png", dpi=90)))
        if on_done:
            on_done(title)
    return out


def figure_count(run: Run, comparison: ComparisonLike | None = None) -> int:
    return len(families(case_rows(run.results))) + 2 + (1 if comparison is not None and comparison.rows else 0)


CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.8em 0}caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #ddd;padding:2px 6px}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.results thead th{background:#f3f3f3;cursor:pointer;user-select:none;position:sticky;top:0}
table.results thead th[aria-sort=ascending]::after{content:" ▲"}
table.results thead th[aria-sort=descending]::after{content:" ▼"}
table.results tbody th{text-align:left;font-weight:normal;white-space:nowrap}
table.meta th{text-align:left;background:#fafafa;font-weight:600}
.v-wrong{background:#fbdada;color:#900}.v-reduced-precision{background:#fff2c6}.na{color:#888}
.noisy{text-decoration:underline dotted}.sp-pos{color:#1a7f37}.sp-neg{color:#a0197a}
.cmp-slower{color:#b00}.cmp-faster{color:#1a7f37}.cmp-same{color:#666}.cmp-ambiguous{color:#a66f00}.cmp-untested{color:#999}
.off{display:none}.count{font-weight:normal;color:#666;margin-left:.6em}
#controls{background:#f7f7f7;padding:.5em;border:1px solid #e5e5e5;position:sticky;top:0;z-index:2}
#controls label{margin-right:.8em}.legend{color:#555}
figure{margin:1em 0;overflow-x:auto}figure img{max-width:100%;border:1px solid #eee;cursor:zoom-in}
figure img.zoom{max-width:none;cursor:zoom-out}figcaption{color:#555}
tr.rf-far-below td.pct{background:#e3ecfb;font-weight:600}tr.rf-above-peak td.pct{background:#fbdada;color:#900}
footer{margin-top:2em;color:#888;font-size:.9em}
"""

SCRIPT = r"""
(function () {
  "use strict";
  function key(cell, numeric) {
    var v = cell ? cell.getAttribute("data-sort") : null;
    if (numeric) { return v === null || v === "" ? null : parseFloat(v); }
    return (v === null ? cell.textContent : v).toLowerCase();
  }
  function sortBy(th) {
    var table = th.closest("table"), idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute("aria-sort") !== "ascending", numeric = th.getAttribute("data-sort-type") === "num";
    table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[idx], numeric), y = key(b.cells[idx], numeric);
      if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }  // no time: always last
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function applyFilters() {
    var family = document.getElementById("family-filter").value;
    var text = document.getElementById("text-filter").value.trim().toLowerCase();
    var hidden = {};
    document.querySelectorAll(".backend-toggle").forEach(function (box) { hidden[box.value] = !box.checked; });
    document.querySelectorAll("table.results").forEach(function (table) {
      var shown = 0;
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        var fam = tr.getAttribute("data-family"), be = tr.getAttribute("data-backend");
        var off = (family && fam !== null && fam !== family) || (be !== null && hidden[be] === true) ||
                  (text && (tr.getAttribute("data-case") || "").indexOf(text) < 0);
        tr.classList.toggle("off", !!off);
        if (!off) { shown += 1; }
      });
      var count = table.querySelector(".count");
      if (count) { count.textContent = shown + " of " + count.getAttribute("data-total") + " rows"; }
    });
    document.querySelectorAll("[data-col]").forEach(function (cell) {
      var off = cell.getAttribute("data-col").split(" ").some(function (b) { return hidden[b] === true; });
      cell.classList.toggle("off", off);
    });
  }
  document.querySelectorAll("table.sortable thead th").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { sortBy(th); } });
  });
  var family = document.getElementById("family-filter"), text = document.getElementById("text-filter");
  if (family) { family.addEventListener("change", applyFilters); }
  if (text) { text.addEventListener("input", applyFilters); }
  document.querySelectorAll(".backend-toggle").forEach(function (b) { b.addEventListener("change", applyFilters); });
  document.querySelectorAll("figure img").forEach(function (img) {  // click: full size, click again: fit
    img.addEventListener("click", function () { img.classList.toggle("zoom"); });
  });
})();
"""
