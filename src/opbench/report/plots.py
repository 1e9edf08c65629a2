"""Charts of a run drawn with matplotlib from `CaseResult` data (never from rendered Markdown), without a display.

Figures are built as `matplotlib.figure.Figure` objects, not through pyplot, so no GUI backend or global figure
state is involved; saving renders with Agg (PNG) or the SVG writer. Every figure is one of:

- `case_grid`: the seed's diagram — one panel per case, one bar per backend (median ms, IQR whiskers),
  value labels on the bars;
- `family_chart`: one family's cases as horizontal grouped bars (long shape labels stay readable);
- `speedup_heatmap`: cases x speedup pairs; the colour is log10(t_B/t_A) so a 10x win and a 10x loss are
  equally strong, diverging around 0 % (equal times), clipped at 100x; cells show the seed's speedup in %;
- `comparison_chart`: run-vs-run time ratios (B/A) with confidence intervals, coloured by significance.

Bars whose verdict is not `ok` are hatched and carry the tables' mark (✗ wrong, † reduced precision); `~` marks
a noisy time. Cases without a time show `n/a` and their status. Colours are fixed per backend across charts.

Time axes are logarithmic where a chart's (or a panel's) times span more than `LOG_DECADES` decades, so a
0.01 ms bar next to a 100 ms one stays visible; `log=True` forces log axes, `log=False` linear ones.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from opbench.report.averages import format_speedup, speedup, time_marks
from opbench.report.marks import MARK_NOISY, MARK_REDUCED, MARK_WRONG
from opbench.report.rows import CaseRow, backend_order, case_rows, families
from opbench.report.tables import choose_pairs
from opbench.results import CaseResult, Run
from opbench.results.status import Status

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS = ("png", "svg")
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
HATCH = "////"
VERDICT_EDGE = {"wrong": "#d62728", "reduced-precision": "#b8860b"}
SPEEDUP_CLIP_DECADES = 2.0  # heatmap colours saturate at 100x faster/slower
LOG_DECADES = 1.5  # auto scale: log once the largest drawn time is over 10**1.5 ≈ 32x the smallest


class ComparisonRowLike(Protocol):
    """What `comparison_chart` reads from `opbench.analysis.compare.ComparisonRow`."""

    case: str
    family: str
    backend: str
    time_a_ms: float
    time_b_ms: float
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool | None
    verdict: str


@dataclass(frozen=True)
class PlotFile:
    """A written chart: what it shows and where it is."""

    title: str
    path: Path


def backend_colour(backend: str) -> str:
    from opbench.backends import backend_names

    names = list(backend_names())
    index = names.index(backend) if backend in names else len(names) + sum(map(ord, backend))
    return PALETTE[index % len(PALETTE)]


def format_ms(value: float) -> str:
    """Three significant figures (whole milliseconds from 100 up), an exponent only below 0.001."""
    if math.isnan(value):
        return "n/a"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 0.001:
        return f"{value:#.3g}".rstrip(".")  # "#" keeps trailing zeros: 1.00, 0.500; 99.96 -> "100." -> "100"
    return f"{value:.1e}"


def marks(result: CaseResult) -> str:
    """The table marks of one time (`report.averages.time_marks`): verdict, noisy, busy machine."""
    return time_marks(result)


def _quartiles(result: CaseResult) -> tuple[float, float]:
    if len(result.samples_ms) < 2:
        return math.nan, math.nan
    q1, q3 = np.percentile(result.samples_ms, [25, 75])
    return float(q1), float(q3)


def _new_figure(width: float, height: float) -> Figure:
    from opbench.report.mpl import matplotlib_for_files

    matplotlib_for_files()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _legend_handles(backends: Sequence[str], with_verdicts: bool = True) -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=backend_colour(b), label=b) for b in backends]
    if with_verdicts:
        handles.append(Patch(facecolor="white", edgecolor=VERDICT_EDGE["wrong"], hatch=HATCH,
                             label=f"verdict not ok ({MARK_WRONG} wrong, {MARK_REDUCED} reduced precision)"))
        handles.append(Line2D([], [], color="black", linewidth=1, label=f"whisker: IQR; {MARK_NOISY} noisy"))
    return handles


def _draw_bars(ax: Axes, positions: Sequence[float], row: CaseRow, backends: Sequence[str], *, horizontal: bool,
               size: float, fontsize: float = 6) -> tuple[float, float]:
    """Bars of one case (one per backend) with whiskers, labels and verdict hatching; returns the smallest and
    largest values drawn (for the axis limits). A backend without a time gets `n/a (status)` inside the plot
    area at the bar's place (beside the value axis, never over its tick labels)."""
    low, top = math.inf, 0.0
    for pos, backend in zip(positions, backends):
        result = row.results.get(backend)
        if result is None or not result.timed:
            status = "missing" if result is None else result.status
            if horizontal:
                ax.text(0.01, pos, f"n/a ({status})", transform=ax.get_yaxis_transform(), va="center",
                        ha="left", fontsize=fontsize, color="#555555")
            else:
                ax.text(pos, 0.02, f"n/a\n{status}", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                        fontsize=fontsize, color="#555555")
            continue
        value = result.median_ms
        top = max(top, value)
        edge = VERDICT_EDGE.get(result.status)
        style = {"color": backend_colour(backend), "edgecolor": edge or "none", "hatch": HATCH if edge else None,
                 "linewidth": 1.2 if edge else 0}
        q1, q3 = _quartiles(result)
        err = None if math.isnan(q1) else [[max(value - q1, 0)], [max(q3 - value, 0)]]
        if horizontal:
            ax.barh([pos], [value], height=size, xerr=err, error_kw={"elinewidth": 0.8, "capsize": 0}, **style)
        else:
            ax.bar([pos], [value], width=size, yerr=err, error_kw={"elinewidth": 0.8, "capsize": 0}, **style)
        top = max(top, q3 if not math.isnan(q3) else value)
        low = min(low, q1 if not math.isnan(q1) and q1 > 0 else value)
        # The label sits past the whisker, not on it.
        end = max(value, q3) if not math.isnan(q3) else value
        ax.annotate(format_ms(value) + marks(result), (end, pos) if horizontal else (pos, end),
                    xytext=(3, 0) if horizontal else (0, 2), textcoords="offset points",
                    ha="left" if horizontal else "center", va="center" if horizontal else "bottom",
                    fontsize=fontsize, color="#b00000" if result.status == Status.WRONG else "black")
    return low, top


def wants_log(low: float, top: float, log: bool | None = None) -> bool:
    """`log` when given; else whether the drawn times span more than `LOG_DECADES` decades."""
    if log is not None:
        return log
    return 0 < low < math.inf and top > 0 and math.log10(top / low) > LOG_DECADES


def _limits(ax: Axes, low: float, top: float, log: bool | None, horizontal: bool) -> bool:
    """Axis limits that leave room past the largest bar for its label; whether the axis is logarithmic. In log
    scale bars start a factor 3 below the smallest value (a log axis has no zero), ticks read as plain
    milliseconds and minor ticks carry no label."""
    if top <= 0:
        return False
    axis = ax.xaxis if horizontal else ax.yaxis
    log = wants_log(low, top, log)
    if log:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        (ax.set_xscale if horizontal else ax.set_yscale)("log")
        bounds = (max(low, 1e-9) / 3, top * 4)
        narrow = bounds[1] / bounds[0] < 100  # under two decades: label 1-2-5 steps, not only powers of 10
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if narrow else (1.0,)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    else:
        bounds = (0, top * 1.3)
    (ax.set_xlim if horizontal else ax.set_ylim)(*bounds)
    return log


def case_grid(results: Sequence[CaseResult], *, log: bool | None = None, columns: int = 6,
              title: str = "Median time per call") -> Figure:
    """The seed's diagram: one panel per case, one bar per backend, value labels, IQR whiskers."""
    rows, backends = case_rows(results), backend_order(results)
    if not rows:
        raise ValueError("no results to plot")
    columns = max(1, min(columns, len(rows)))
    nrows = math.ceil(len(rows) / columns)
    rotate = len(backends) > 3
    panel_h = 2.5 + (0.5 if rotate else 0)
    fig = _new_figure(3.1 * columns, panel_h * nrows + 0.9)
    axes = np.atleast_1d(fig.subplots(nrows, columns, squeeze=False)).ravel()
    positions = list(range(len(backends)))
    for ax, row in zip(axes, rows):
        low, top = _draw_bars(ax, positions, row, backends, horizontal=False, size=0.7)
        logged = _limits(ax, low, top, log, horizontal=False)
        wrapped = "\n".join(textwrap.wrap(row.params, 38)[:3])
        ax.set_title(f"{row.family}\n{wrapped}", fontsize=7.5)
        ax.set_xticks(positions, backends, fontsize=6.5, rotation=35 if rotate else 0,
                      ha="right" if rotate else "center")
        ax.set_xlabel("backend", fontsize=6.5)
        ax.set_ylabel("time (ms)" + (", log" if logged else ""), fontsize=6.5)
        ax.tick_params(axis="y", labelsize=6.5)
        ax.grid(axis="y", linewidth=0.3, alpha=0.5)
    for ax in axes[len(rows):]:
        ax.set_visible(False)
    # The title rides on the legend: constrained layout places a suptitle and an outside legend on top of each other.
    fig.legend(handles=_legend_handles(backends), loc="outside upper center", ncol=min(len(backends) + 2, 5),
               fontsize=8, frameon=False, title=f"{title} (ms, median; lower is faster)", title_fontsize=11)
    return fig


FAMILY_WIDTH_IN = 6.4  # a grid cell of the HTML report at about natural size (460 pt, 615 px)
FAMILY_FONT_PT = 9.0  # every label of a family chart; 12 px at natural size, >= 10 px down to 83 % of it
FAMILY_WRAP = 34  # characters per line of a case's shape label


def family_chart(results: Sequence[CaseResult], family: str, *, log: bool | None = None,
                 verdict_key: bool = True) -> Figure:
    """One family's cases as horizontal grouped bars: a group per case, a bar per backend.

    Sized for a grid cell (`FAMILY_WIDTH_IN` wide, `FAMILY_FONT_PT` labels): a case's group is tall enough for
    its bars and for its wrapped shape label, so tick labels never run into each other. `verdict_key=False`
    leaves the hatching/whisker key out of the legend (the HTML report explains it once for all charts)."""
    rows = [r for r in case_rows(results) if r.family == family]
    backends = backend_order(results)
    if not rows:
        raise ValueError(f"no results for family {family!r}")
    font = FAMILY_FONT_PT
    labels = ["\n".join(textwrap.wrap(r.params, FAMILY_WRAP)) or r.params for r in rows]
    lines = max(label.count("\n") + 1 for label in labels)
    n_b = len(backends)
    group_in = max(0.18 * n_b, 0.17 * lines + 0.06) + 0.12  # bars or label lines, plus a gap between groups
    ncol = 2 if verdict_key else min(n_b, 4)  # the verdict key's two entries are long
    legend_rows = math.ceil((n_b + (2 if verdict_key else 0)) / ncol)
    fig = _new_figure(FAMILY_WIDTH_IN, 1.0 + 0.2 * legend_rows + group_in * len(rows))
    ax = fig.subplots()
    group = 0.8
    size = group / n_b
    low, top = math.inf, 0.0
    for i, row in enumerate(rows):
        positions = [i - group / 2 + size * (k + 0.5) for k in range(n_b)]
        lo, hi = _draw_bars(ax, positions, row, backends, horizontal=True, size=size * 0.9, fontsize=font)
        low, top = min(low, lo), max(top, hi)
    logged = _limits(ax, low, top, log, horizontal=True)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first case on top
    ax.set_yticks(range(len(rows)), labels, fontsize=font)
    ax.tick_params(axis="x", labelsize=font)
    ax.set_xlabel("median ms per call" + (", log scale" if logged else "") + " (lower is faster)", fontsize=font)
    ax.set_ylabel("case (input shapes)", fontsize=font)
    ax.grid(axis="x", linewidth=0.3, alpha=0.5)
    fig.legend(handles=_legend_handles(backends, with_verdicts=verdict_key), loc="outside upper center",
               ncol=ncol, fontsize=font, frameon=False,
               title=f"{family}: median time per call", title_fontsize=font + 2)
    return fig


MODE_MARKERS = {"throughput": "o", "latency": "^", "device": "s", "cold": "v"}


def modes_chart(results: Sequence[CaseResult], family: str) -> Figure:
    """One family's cases, each timed in several modes (`opbench.engine.modes`): per case and backend a vertical
    line from the fastest to the slowest mode, a marker per mode (log time axis). Where the markers part,
    host dispatch and sync (latency, throughput) or caches (cold) cost more than the device's work (device);
    where they meet, the device is the bottleneck."""
    from matplotlib.lines import Line2D

    from opbench.engine.modes import MODES
    from opbench.report.tables import by_mode

    groups = {m: [r for r in rs if r.family == family] for m, rs in by_mode(results).items()}
    modes = [m for m in groups if groups[m]]
    if not modes:
        raise ValueError(f"no results for family {family!r}")
    index = {(r.case, r.backend, r.mode): r for rs in groups.values() for r in rs}
    cases = list(dict.fromkeys(r.case for rs in groups.values() for r in rs))
    backends = backend_order([r for rs in groups.values() for r in rs])
    n_b = len(backends)
    fig = _new_figure(max(6.0, 1.0 + 0.55 * len(cases) * n_b), 4.8)
    ax = fig.subplots()
    width = 0.8 / n_b
    for i, case in enumerate(cases):
        for k, backend in enumerate(backends):
            x = i - 0.4 + width * (k + 0.5)
            points = [(m, index[(case, backend, m)].median_ms) for m in modes
                      if (case, backend, m) in index and index[(case, backend, m)].timed]
            if not points:
                continue
            colour = backend_colour(backend)
            values = [v for _, v in points]
            ax.vlines(x, min(values), max(values), colors=colour, linewidth=1.0, alpha=0.6)
            for mode, value in points:
                ax.plot([x], [value], marker=MODE_MARKERS.get(mode, "x"), color=colour, markersize=5,
                        linestyle="none", markerfacecolor="white" if mode == "cold" else colour)
    timed = [r.median_ms for r in index.values() if r.timed and r.median_ms > 0]
    if timed:
        _limits(ax, min(timed) * 2, max(timed) / 3, True, horizontal=False)  # plain-ms ticks, some headroom
    ax.set_xticks(range(len(cases)), ["\n".join(textwrap.wrap(c.partition(" / ")[2] or c, 22)[:3]) for c in cases],
                  fontsize=6.5, rotation=30 if len(cases) > 4 else 0, ha="right" if len(cases) > 4 else "center")
    ax.set_ylabel("median time per call (ms, log)", fontsize=8)
    ax.grid(axis="y", which="both", linewidth=0.3, alpha=0.5)
    handles = [Line2D([], [], color=backend_colour(b), linewidth=3, label=b) for b in backends]
    handles += [Line2D([], [], color="#444444", marker=MODE_MARKERS.get(m, "x"), linestyle="none",
                       markerfacecolor="white" if m == "cold" else "#444444", label=f"{m}: {MODES.get(m, '')}")
                for m in modes]
    fig.legend(handles=handles, loc="outside upper center", ncol=3, fontsize=7, frameon=False,
               title=f"{family}: timing modes side by side (lower is faster)", title_fontsize=11)
    return fig


def speedup_heatmap(results: Sequence[CaseResult], pairs: Sequence[tuple[str, str]] | None = None) -> Figure | None:
    """Cases x speedup pairs (A/B: positive when A is faster); None when the run has no pair to show."""
    from matplotlib.colors import Normalize

    rows, backends = case_rows(results), backend_order(results)
    chosen = choose_pairs(backends, pairs)
    if not rows or not chosen:
        return None
    log_ratio = np.full((len(rows), len(chosen)), np.nan)
    texts: list[list[str]] = []
    for i, row in enumerate(rows):
        line = []
        for j, (a, b) in enumerate(chosen):
            ra, rb = row.results.get(a), row.results.get(b)
            ta = ra.median_ms if ra is not None and ra.timed else math.nan
            tb = rb.median_ms if rb is not None and rb.timed else math.nan
            value = speedup(ta, tb)
            if not math.isnan(value) and tb > 0:
                log_ratio[i, j] = math.log10(tb / ta)
            wrong = any(r is not None and r.status == Status.WRONG for r in (ra, rb))
            line.append(format_speedup(value) + (MARK_WRONG if wrong else ""))
        texts.append(line)
    fig = _new_figure(max(8.0, 6.7 + 1.5 * len(chosen)), max(3.6, 1.8 + 0.2 * len(rows)))
    ax = fig.subplots()
    norm = Normalize(-SPEEDUP_CLIP_DECADES, SPEEDUP_CLIP_DECADES, clip=True)
    cmap = _diverging_cmap()
    image = ax.imshow(np.ma.masked_invalid(log_ratio), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    for i, line in enumerate(texts):
        for j, text in enumerate(line):
            strong = not math.isnan(log_ratio[i, j]) and abs(log_ratio[i, j]) > 1.2
            ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color="white" if strong else "black")
    ax.set_xticks(range(len(chosen)), [f"{a}/{b}" for a, b in chosen], fontsize=7.5, rotation=20, ha="right")
    ax.set_yticks(range(len(rows)), [r.label for r in rows], fontsize=6.5)
    ax.set_xlabel("speedup pair A/B (cells: speedup of A over B, %)", fontsize=8)
    ax.set_ylabel("case", fontsize=8)
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    ticks = [-2, -1, -math.log10(3), 0, math.log10(3), 1, 2]
    bar = fig.colorbar(image, ax=ax, ticks=ticks, shrink=min(1.0, 12 / max(len(rows), 1)) if len(rows) > 12 else 1.0,
                       pad=0.02)
    bar.ax.set_yticklabels([format_speedup((10 ** t - 1) * 100) for t in ticks], fontsize=7)
    bar.set_label("speedup of A over B (%), log colour scale", fontsize=7)
    ax.set_title("Speedup of A over B (%)\ngreen: A faster · magenta: A slower · grey: not measured", fontsize=10,
                 pad=10)
    return fig


def _diverging_cmap():
    import matplotlib

    return matplotlib.colormaps["PiYG"].with_extremes(bad="#dddddd")


def comparison_chart(rows: Sequence[ComparisonRowLike], label_a: str, label_b: str) -> Figure:
    """Per case and backend, the time ratio B/A on a log axis with its CI; colour says its verdict."""
    if not rows:
        raise ValueError("no comparison rows to plot")
    fig = _new_figure(10, 1.6 + 0.22 * len(rows))
    ax = fig.subplots()
    finite = [r.ratio for r in rows if _finite(r.ratio)] + [c for r in rows for c in (r.ci_low, r.ci_high)
                                                             if _finite(c)]
    for i, r in enumerate(rows):
        if not _finite(r.ratio):
            ax.text(1.0, i, " n/a (not timed in both runs)", va="center", fontsize=7, color="#555555")
            continue
        colour, filled = _significance_style(r)
        err = None
        if _finite(r.ci_low) and _finite(r.ci_high):
            err = [[max(r.ratio - r.ci_low, 0)], [max(r.ci_high - r.ratio, 0)]]
        ax.errorbar([r.ratio], [i], xerr=err, fmt="o", color=colour, markerfacecolor=colour if filled else "white",
                    markersize=4.5, elinewidth=1, capsize=2)
        p = f", p={r.p_value:.2g}" if r.p_value is not None and not math.isnan(r.p_value) else ""
        ax.text(1.02, i, f"{r.ratio:.3g}×{p}", transform=ax.get_yaxis_transform(), va="center", fontsize=6.5,
                color=colour)
    _ratio_axis(ax, finite, 7)
    ax.set_yticks(range(len(rows)), [f"{r.case} · {r.backend}" for r in rows], fontsize=6.5)
    ax.invert_yaxis()
    ax.set_xlabel(f"time ratio {label_b} / {label_a} (×, log scale; < 1: {label_b} faster)", fontsize=8)
    ax.set_ylabel("case · backend", fontsize=8)
    fig.legend(handles=_significance_legend(label_b), loc="outside upper center", ncol=4, fontsize=7, frameon=False,
               title=f"{label_b} vs {label_a}: time ratio with its confidence interval", title_fontsize=10)
    return fig


class SummaryLike(Protocol):
    """What `comparison_summary_chart` reads from `opbench.analysis.compare.Summary`."""

    geomean: float
    ci_low: float | None
    ci_high: float | None
    rows: int
    verdict: str


def comparison_summary_chart(summaries: Mapping[str, SummaryLike], label_a: str, label_b: str) -> Figure:
    """One line per group (family, or 'Overall'): the geometric mean of B/A with its CI on a log axis, coloured
    by its verdict; a compact view of a whole comparison (the per-case ratios are in `comparison_chart`)."""
    if not summaries:
        raise ValueError("no comparison rows to plot")
    font = FAMILY_FONT_PT
    names = list(summaries)
    fig = _new_figure(FAMILY_WIDTH_IN, 1.3 + 0.24 * len(names))
    ax = fig.subplots()
    values = [v for g in summaries.values() for v in (g.geomean, g.ci_low, g.ci_high) if _finite(v)]
    for i, name in enumerate(names):
        g = summaries[name]
        if not _finite(g.geomean):
            ax.text(0.01, i, "n/a (no case timed in both runs)", transform=ax.get_yaxis_transform(), va="center",
                    fontsize=font, color="#555555")
            continue
        colour, filled = VERDICT_STYLE.get(g.verdict, VERDICT_STYLE["untested"])
        err = None
        if _finite(g.ci_low) and _finite(g.ci_high):
            err = [[max(g.geomean - g.ci_low, 0)], [max(g.ci_high - g.geomean, 0)]]  # type: ignore[operator]
        ax.errorbar([g.geomean], [i], xerr=err, fmt="o", color=colour, markerfacecolor=colour if filled else "white",
                    markersize=5, elinewidth=1.2, capsize=2)
    _ratio_axis(ax, values, font)
    ax.set_yticks(range(len(names)), [f"{n} ({summaries[n].rows})" for n in names], fontsize=font)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel(f"geomean time ratio {label_b} / {label_a} (< 1: {label_b} faster)", fontsize=font)
    fig.legend(handles=_significance_legend(label_b), loc="outside upper center", ncol=3, fontsize=font,
               frameon=False, title=f"{label_b} vs {label_a} per family (cases)", title_fontsize=font + 2)
    return fig


def _ratio_axis(ax: Axes, values: Sequence[float], font: float) -> None:
    """A log ratio axis around 1 with plain `×` tick labels and a line at 1."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = min([*values, 1.0]) / 1.5, max([*values, 1.0]) * 1.5
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if hi / lo > 3 else
                                          (1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 7.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelsize=font)
    ax.grid(axis="x", which="major", linewidth=0.3, alpha=0.5)


def _finite(x: float | None) -> bool:
    return x is not None and not math.isnan(x) and not math.isinf(x) and x > 0


VERDICT_STYLE = {"faster": ("#2ca02c", True), "slower": ("#d62728", True), "same": ("#666666", True),
                 "ambiguous": ("#e6a100", False), "untested": ("#999999", False)}


def _significance_style(row: ComparisonRowLike) -> tuple[str, bool]:
    return VERDICT_STYLE.get(row.verdict, VERDICT_STYLE["untested"])


def _significance_legend(label_b: str) -> list:
    from matplotlib.lines import Line2D

    def dot(colour: str, filled: bool, label: str) -> Line2D:
        return Line2D([], [], marker="o", linestyle="", color=colour, markerfacecolor=colour if filled else "white",
                      label=label)

    labels = {"faster": f"{label_b} faster", "slower": f"{label_b} slower", "same": "same",
              "ambiguous": "ambiguous (too noisy to tell)", "untested": "untested (no raw samples)"}
    return [dot(*VERDICT_STYLE[k], label) for k, label in labels.items()]


def save(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Write a figure; the format follows the file's suffix (png or svg)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def slug(text: str) -> str:
    """A file-name-safe form of `text`: ASCII letters and digits joined by `-`, at most 80 characters."""
    keep = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in text.lower())
    return "-".join(p for p in keep.split("-") if p)[:80].strip("-") or "plot"


def plan_run_figures(run: Run, *, log: bool | None = None, pairs: Sequence[tuple[str, str]] | None = None
                     ) -> list[tuple[str, str, Callable[[], Figure | None]]]:
    """The charts of one run as (title, file stem, draw) triples, drawn lazily so progress can be shown. A run
    of several timing modes gets the charts once per mode (titles and file names say which: `cases-latency`),
    never two modes in one bar chart, plus one `modes-FAMILY` chart per family with the modes side by side."""
    from opbench.report.tables import by_mode

    groups = by_mode(run.results) or {"throughput": []}
    several = len(groups) > 1
    plan: list[tuple[str, str, Callable[[], Figure | None]]] = []
    for mode, results in groups.items():
        title, stem = (f" ({mode} mode)", f"-{mode}") if several else ("", "")
        plan += [(f"All cases{title}", f"cases{stem}", lambda results=results, title=title: case_grid(
                     results, log=log, title=f"Median time per call{title}")),
                 (f"Speedups{title}", f"speedups{stem}", lambda results=results: speedup_heatmap(results, pairs))]
        for fam in families(case_rows(results)):
            plan.append((f"Family {fam}{title}", f"family-{slug(fam)}{stem}",
                         lambda fam=fam, results=results: family_chart(results, fam, log=log)))
    if several:
        for fam in families(case_rows(next(iter(groups.values())))):
            plan.append((f"Timing modes of {fam}", f"modes-{slug(fam)}",
                         lambda fam=fam: modes_chart(run.results, fam)))
    return plan


def write_run_figures(run: Run, out_dir: Path, fmt: str = "png", *, log: bool | None = None,
                      pairs: Sequence[tuple[str, str]] | None = None,
                      on_done: Callable[[str], None] | None = None) -> list[PlotFile]:
    """Draw and save every chart of a run; charts that do not apply (no speedup pair) are skipped."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}; one of {FORMATS}")
    written = []
    for title, stem, draw in plan_run_figures(run, log=log, pairs=pairs):
        fig = draw()
        if fig is not None:
            written.append(PlotFile(title, save(fig, out_dir / f"{stem}.{fmt}")))
        if on_done:
            on_done(title)
    return written


def figure_svg(fig: Figure, salt: str) -> str:
    """The figure as an `<svg>` element to inline in HTML: text kept as text (selectable, sized by the page's
    scale, searchable), element ids made unique by `salt` (several charts share one page), no XML prolog and no
    RDF metadata.

    Made about half as large as matplotlib writes it, since a report inlines dozens: matplotlib's group ids
    (`figure_1`, `patch_3`: the same in every chart, never referenced) go; each distinct `style="..."` becomes a
    class of one `<style>` (its names and its one rule for every element are scoped to this chart by `salt`, as
    an inline SVG's style sheet applies to the whole page); coordinates are rounded to 0.01 pt and the
    indentation between elements is dropped."""
    import hashlib
    import io

    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg")
    svg = re.sub(r"^.*?(<svg)", r"\1", buffer.getvalue(), count=1, flags=re.S)
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)
    svg = re.sub(r'<g id="[A-Za-z][A-Za-z0-9.]*_\d+"', "<g", svg)
    svg = re.sub(r'( (?:d|transform|x|y|width|height|points)=")([^"]*)"', _round_attribute, svg)
    scope = "c" + hashlib.sha1(salt.encode()).hexdigest()[:7]
    classes: dict[str, str] = {}

    def to_class(match: re.Match) -> str:
        style = re.sub(r"\s*([:;])\s*", r"\1", match.group(1).strip())
        return f'class="{classes.setdefault(style, f"{scope}-{len(classes)}")}"'

    svg = re.sub(r'style="([^"]*)"', to_class, svg)
    sheet = "".join(f".{name}{{{style}}}" for style, name in classes.items())
    svg = re.sub(r'<style type="text/css">\*\{([^}]*)\}</style>',
                 lambda m: f"<style>.{scope} *{{{m.group(1)}}}{sheet}</style>", svg, count=1)
    svg = svg.replace("<svg ", f'<svg class="{scope}" ', 1)
    svg = re.sub(r"\s*\n\s*", " ", svg)  # newlines inside path data and between elements
    return re.sub(r">\s+<", "><", svg).strip()


def _round_attribute(match: re.Match) -> str:
    numbers = re.sub(r"(-?\d+\.\d\d)\d+", r"\1", match.group(2))
    return f'{match.group(1)}{numbers}"'


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi)
    return buffer.getvalue()


