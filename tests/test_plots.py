"""Charts: one panel per case with labelled bars, verdict hatching, units on every axis, no overlapping text."""

from __future__ import annotations

import math
from itertools import combinations

import pytest
from report_data import CASES, synthetic_run

from opbench.analysis.compare import ComparisonRow, compare_runs
from opbench.report import plots
from opbench.report.rows import case_rows

BACKENDS = ("mlx_cpu", "mps", "cpu", "cuda_compile")


def drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return fig


def texts(fig) -> list:
    """Every drawn, non-empty text of a drawn figure: titles, axis labels, tick labels inside the view limits
    (matplotlib keeps stale labels for ticks outside them, which it does not draw), value labels, legends."""
    from matplotlib.text import Text

    found = {}
    for ax in (a for a in fig.axes if a.get_visible()):
        for t in ax.findobj(Text):
            found[id(t)] = t
        for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not min(lo, hi) <= tick.get_loc() <= max(lo, hi):
                    found.pop(id(tick.label1), None)
                    found.pop(id(tick.label2), None)
    for legend in fig.legends:
        found.update({id(t): t for t in legend.findobj(Text)})
    return [t for t in found.values() if t.get_visible() and t.get_text().strip()]


def overlaps(fig) -> list[tuple[str, str]]:
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts(fig)]
    return [(a, b) for (a, ba), (b, bb) in combinations(boxes, 2)
            if ba.width > 0 and bb.width > 0 and ba.overlaps(bb) and ba.intersection(ba, bb).width > 1
            and ba.intersection(ba, bb).height > 1]


def test_overlap_check_finds_overlapping_labels() -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.text(0.5, 0.5, "first label")
    ax.text(0.52, 0.5, "second label")
    assert ("first label", "second label") in overlaps(drawn(fig))


def test_case_rows_keep_every_result_when_names_repeat() -> None:
    run = synthetic_run()
    doubled = run.results + tuple(r for r in run.results if r.case == CASES[0][1])
    rows = case_rows(doubled)
    assert [r.label for r in rows].count(CASES[0][1] + " #2") == 1
    assert sum(len(r.results) for r in rows) == len(doubled)


@pytest.mark.parametrize("log", [False, True])
def test_case_grid_has_a_labelled_panel_per_case(log: bool) -> None:
    run = synthetic_run(backends=BACKENDS)
    fig = drawn(plots.case_grid(run.results, log=log, columns=3))
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == len(CASES)
    for ax, (family, _, _) in zip(panels, CASES):
        assert ax.get_title().startswith(family)
        assert "ms" in ax.get_ylabel() and ax.get_xlabel() == "backend"
        assert [t.get_text() for t in ax.get_xticklabels()] == list(BACKENDS)
        assert ax.get_yscale() == ("log" if log else "linear")
    # value labels: the median with the tables' marks, one per timed bar
    first = {t.get_text() for t in panels[0].texts}
    expected = {plots.format_ms(r.median_ms) + plots.marks(r) for r in run.results if r.case == CASES[0][1]}
    assert expected <= first
    assert overlaps(fig) == []


def test_bars_that_are_not_ok_are_hatched_and_marked() -> None:
    run = synthetic_run(backends=BACKENDS)
    fig = drawn(plots.case_grid(run.results, columns=3))
    softmax = [ax for ax in fig.axes if ax.get_visible()][2]  # Softmax on cpu is wrong
    hatches = [p.get_hatch() for p in softmax.patches]
    assert hatches == [None, None, plots.HATCH, None]
    assert any(t.get_text().endswith(plots.MARK_WRONG) for t in softmax.texts)
    matmul = [ax for ax in fig.axes if ax.get_visible()][5]  # reduced precision on mlx_cpu, error on the last
    assert matmul.patches[0].get_hatch() == plots.HATCH
    assert len(matmul.patches) == len(BACKENDS) - 1
    assert any(t.get_text().startswith("n/a") and "error" in t.get_text() for t in matmul.texts)


def test_family_chart_has_units_and_no_overlap() -> None:
    run = synthetic_run(backends=BACKENDS)
    fig = drawn(plots.family_chart(run.results, "Softmax", log=True))
    (ax,) = fig.axes
    assert "ms" in ax.get_xlabel() and ax.get_ylabel() and ax.get_xscale() == "log"
    assert len(ax.get_yticklabels()) == 3
    assert overlaps(fig) == []


def test_time_axes_go_logarithmic_where_times_span_decades() -> None:
    narrow = synthetic_run(backends=("mlx_cpu", "cpu"))  # Softmax: 1 to 8 ms, under 1.5 decades
    assert drawn(plots.family_chart(narrow.results, "Softmax")).axes[0].get_xscale() == "linear"
    wide = synthetic_run(backends=("mlx_cpu", "cpu"), scale=(1.0, 1.0, 0.001, 1.0, 10.0, 1.0))  # 0.003 to 80 ms
    fig = drawn(plots.family_chart(wide.results, "Softmax"))
    assert fig.axes[0].get_xscale() == "log" and "log scale" in fig.axes[0].get_xlabel()
    assert overlaps(fig) == []
    assert drawn(plots.family_chart(wide.results, "Softmax", log=False)).axes[0].get_xscale() == "linear"
    assert drawn(plots.family_chart(narrow.results, "Softmax", log=True)).axes[0].get_xscale() == "log"
    assert plots.wants_log(0.01, 0.3) is False and plots.wants_log(0.01, 0.4) is True  # 10**1.5 = 31.6


def test_family_chart_labels_are_readable_in_a_grid_cell() -> None:
    run = synthetic_run(backends=BACKENDS)
    fig = drawn(plots.family_chart(run.results, "MatMul", verdict_key=False))
    assert fig.get_figwidth() == plots.FAMILY_WIDTH_IN
    assert min(t.get_fontsize() for t in texts(fig)) >= plots.FAMILY_FONT_PT
    labels = [t.get_text() for t in texts(fig)]
    assert "n/a (error)" in labels and not any("verdict" in t for t in labels)  # the page explains the key
    assert overlaps(fig) == []


def test_comparison_summary_chart_one_line_per_family() -> None:
    a, b = synthetic_run("run-a"), synthetic_run("run-b", scale=(1.0, 1.0, 2.0, 2.0, 2.0, 1.0))
    comparison = compare_runs(a, b)
    groups = {**comparison.family_summaries(), "Overall": comparison.overall_summary()}
    fig = drawn(plots.comparison_summary_chart(groups, "run-a", "run-b"))
    ax = fig.axes[0]
    assert [t.get_text().split(" (")[0] for t in ax.get_yticklabels()] == ["Argmax", "Softmax", "MatMul", "Overall"]
    softmax = [line for line in ax.lines if line.get_marker() == "o"][1]
    assert softmax.get_xdata()[0] == pytest.approx(2.0, rel=0.05) and ax.get_xscale() == "log"
    assert overlaps(fig) == []


def test_figure_svg_is_inline_ready_and_keeps_text_as_escaped_text() -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    fig.subplots().set_title("a <b> & $x")
    svg = plots.figure_svg(fig, "one")
    assert svg.startswith("<svg") and "<?xml" not in svg and "<metadata" not in svg and "style=" not in svg
    assert "a &lt;b&gt; &amp; $x</text>" in svg
    other = plots.figure_svg(fig, "two")
    scope = svg.split('class="', 1)[1].split('"')[0]
    assert scope != other.split('class="', 1)[1].split('"')[0] and f".{scope} *{{" in svg  # rules scoped


def test_speedup_heatmap_is_centred_at_zero_and_shows_the_seed_numbers() -> None:
    run = synthetic_run(backends=("mlx_cpu", "cpu"))
    fig = drawn(plots.speedup_heatmap(run.results))
    ax = fig.axes[0]
    image = ax.images[0]
    assert image.norm.vmin == -image.norm.vmax  # diverging around log ratio 0, i.e. 0 %
    assert [t.get_text() for t in ax.get_xticklabels()] == ["mlx_cpu/cpu"]
    cells = [t.get_text() for t in ax.texts]
    # cpu is 2x faster than mlx_cpu in the synthetic run: speedup of mlx_cpu over cpu is about -50 %
    assert cells[0] in {"-49%", "-50%", "-51%"}
    assert cells[2].endswith(plots.MARK_WRONG) and cells[-1] == "nan%"
    data = image.get_array()
    assert data[0, 0] == pytest.approx(math.log10(0.5), abs=0.02) and bool(data.mask[-1, 0])
    assert plots.speedup_heatmap(synthetic_run(backends=("cpu",)).results) is None
    assert overlaps(fig) == []


def test_comparison_chart_colours_by_significance() -> None:
    rows = [ComparisonRow("A / dim=1", "A", "cpu", 1.0, 0.5, 0.5, 0.45, 0.55, 0.001, True),
            ComparisonRow("B / dim=1", "B", "cpu", 1.0, 2.0, 2.0, 1.8, 2.2, 0.001, True),
            ComparisonRow("C / dim=1", "C", "cpu", 1.0, 1.01, 1.01, 0.9, 1.1, 0.5, False),
            ComparisonRow("D / dim=1", "D", "cpu", 1.0, 1.3, 1.3, None, None, None, None)]
    fig = drawn(plots.comparison_chart(rows, "old", "new"))
    ax = fig.axes[0]
    colours = [line.get_color() for line in ax.lines if line.get_marker() == "o"]
    assert colours == ["#2ca02c", "#d62728", "#666666", "#999999"]
    assert ax.get_xscale() == "log" and "new / old" in ax.get_xlabel()
    labels = [t.get_text() for t in ax.texts]
    assert labels[0].startswith("0.5×") and "p=" not in labels[3]
    assert overlaps(fig) == []


def test_comparison_chart_from_compare_runs() -> None:
    a = synthetic_run("run-a")
    b = synthetic_run("run-b", scale=(1.0, 0.5, 1.5, 1.0, 1.0, 2.0))
    comparison = compare_runs(a, b)
    fig = drawn(plots.comparison_chart(comparison.rows, "a", "b"))
    assert len(fig.axes[0].get_yticklabels()) == len(comparison.rows)


@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("svg", b"<?xml")])
def test_write_run_figures(tmp_path, fmt: str, magic: bytes) -> None:
    run = synthetic_run()
    written = plots.write_run_figures(run, tmp_path, fmt)
    names = sorted(p.path.name for p in written)
    assert names == sorted([f"cases.{fmt}", f"speedups.{fmt}", f"family-argmax.{fmt}", f"family-softmax.{fmt}",
                            f"family-matmul.{fmt}"])
    for item in written:
        assert item.path.read_bytes()[:5].startswith(magic)
