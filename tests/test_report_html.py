"""The HTML report as text: self-contained, every data string escaped, tables with the right rows and values."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from report_data import CASES, synthetic_run

from opbench.analysis.compare import compare_runs
from opbench.report.html import Figure, render_report, report_figures

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def page(**kw) -> str:
    a = synthetic_run("run-a", hostile=HOSTILE, label="base" + HOSTILE)
    b = synthetic_run("run-b", hostile=HOSTILE, scale=(1.0, 0.5, 1.5, 1.0, 1.0, 2.0), label="new")
    return render_report(a, compare_runs(a, b), [Figure("chart" + HOSTILE, "<svg></svg>", "Softmax" + HOSTILE)], **kw)


def test_data_strings_are_escaped_and_inert() -> None:
    text = page()
    assert "<script>window.__pwned" not in text and "<img src=x" not in text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    assert 'onerror=&#34;window.__pwned=2&#34;' in text  # markupsafe writes " as &#34;
    assert text.count("<script") == 1  # ours, at the end


def test_page_is_self_contained() -> None:
    text = page()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert '<figure data-family="Softmax&lt;script&gt;' in text and "<svg></svg>" in text


def test_detailed_and_average_tables() -> None:
    run = synthetic_run(backends=("mlx_cpu", "cpu"))
    text = render_report(run)
    detailed = text[text.index('<table id="detailed"'):text.index('<table id="average"')]
    assert len(re.findall(r"<tr data-family=", detailed)) == len(CASES)
    assert re.search(r'<th scope="col" data-sort-type="num" tabindex="0" data-col="cpu">cpu \(ms\)</th>', detailed)
    assert "mlx_cpu/cpu speedup" in detailed
    # wrong and reduced-precision cells carry their class and mark; the failed case reads n/a with its error
    assert re.search(r'class="num v-wrong"[^>]*>[^<]*✗<', detailed)
    assert re.search(r'class="num v-reduced-precision"[^>]*>[^<]*†<', detailed)
    assert re.search(r'class="num v-error na"[^>]*title="status: error\nRuntimeError: boom">n/a<', detailed)
    # the tooltip has median, IQR, n and the relative error
    first = next(r for r in run.results if r.case == CASES[0][1] and r.backend == "cpu")
    title = re.search(r'data-col="cpu" data-sort="([^"]*)" title="([^"]*)"', detailed)
    assert float(title.group(1)) == pytest.approx(first.median_ms)
    assert f"median {first.median_ms:.4g} ms" in title.group(2) and "IQR" in title.group(2)
    assert "n = 12 samples × 10 calls" in title.group(2) and "relative error 1e-07" in title.group(2)
    # average: Softmax on mlx_cpu is the arithmetic mean of its three medians
    average = text[text.index('<table id="average"'):]
    row = re.search(r'<tr data-family="Softmax".*?</tr>', average).group(0)
    expected = np.mean([r.median_ms for r in run.results if r.family == "Softmax" and r.backend == "mlx_cpu"])
    assert float(re.search(r'data-col="mlx_cpu" data-sort="([^"]*)"', row).group(1)) == pytest.approx(expected)
    assert "Test CPU" in text and "budget_s" in text  # metadata


def test_comparison_section() -> None:
    text = page()
    section = text[text.index('<section id="comparison"'):]
    rows = re.findall(r'<tr data-family="[^"]*" data-backend="([^"]*)"', section)
    assert len(rows) == 11  # 6 cases x 2 backends, minus the failed one
    assert "cmp-slower" in section and "cmp-faster" in section and "cmp-same" in section
    assert "Overall" in section
    backends = section[section.index('id="comparison-backends"'):section.index('id="comparison-rows"')]
    a = synthetic_run("run-a")
    b = synthetic_run("run-b", scale=(1.0, 0.5, 1.5, 1.0, 1.0, 2.0))
    for backend, (whole, _, _) in compare_runs(a, b).backend_summaries().items():  # geomean with its CI
        assert re.search(rf'<th scope="row">{backend}</th><td class="num">{re.escape(whole.text)}</td>', backends)
    assert "A &lt; 50 µs (rows)" in backends and re.search(r"\(\d+\)</td>", backends)


def test_report_figures_are_inline_svg_one_per_family() -> None:
    a, b = synthetic_run("run-a"), synthetic_run("run-b", scale=1.2)
    figures = report_figures(a, compare_runs(a, b))
    assert [f.title for f in figures] == ["run-b vs run-a per family", "Family Argmax", "Family Softmax",
                                          "Family MatMul"]
    assert [f.family for f in figures] == ["", "Argmax", "Softmax", "MatMul"]
    assert all(f.svg.startswith("<svg") and "<?xml" not in f.svg and "<metadata>" not in f.svg for f in figures)
    ids = [set(re.findall(r'id="([^"]+)"', f.svg)) for f in figures]
    assert all(not (x & y) for i, x in enumerate(ids) for y in ids[i + 1:])  # one page, no id shared by charts
    assert "Argmax / dim" not in figures[1].svg and "dim=64x1024x128 axi=0" in figures[1].svg  # text is text


def sections(text: str) -> list[str]:
    return re.findall(r'<(?:section|details) id="([a-z-]+)"', text)


def test_summary_comes_first_and_details_last_collapsed() -> None:
    a = synthetic_run("run-a", backends=("mlx_cpu", "cpu"))
    text = render_report(a, compare_runs(a, synthetic_run("run-b", scale=1.3)),
                         [Figure("Family Argmax", "<svg></svg>", "Argmax")])
    order = [s for s in sections(text) if s in ("summary", "tables", "comparison", "plots", "details")]
    assert order == ["summary", "tables", "comparison", "plots", "details"]
    assert re.search(r'<details id="details"><summary>', text) and '<details id="details" open' not in text
    assert text.index('id="machine-line"') < text.index('id="summary"')
    assert "Test CPU (2 threads" in text[:text.index('id="summary"')]  # the machine in one line, up top


def test_summary_names_winners_failures_and_noise() -> None:
    text = render_report(synthetic_run(backends=("mlx_cpu", "cpu")))
    summary = text[text.index('<section id="summary"'):text.index('<section id="tables"')]
    # cpu is twice as fast everywhere, but its wrong Softmax output wins nothing (mlx_cpu takes that case), nor
    # does its failed MatMul: mlx_cpu's reduced-precision one counts
    assert "mlx_cpu 2, cpu 4 of 6." in summary
    winners = summary[summary.index('id="winners"'):]
    row = re.search(r'<tr data-family="Softmax">(.*?)</tr>', winners, re.S).group(1)
    assert re.search(r"cpu 2 of 3, (1\.9\d|2\.0\d)× ahead of mlx_cpu", row), row
    wrong = summary[summary.index('id="wrong"'):summary.index("</details>", summary.index('id="wrong"'))]
    assert "Softmax / dim=64x1000000 axi=-1" in wrong and "relative error 0.5 &gt; tolerance 1e-05" in wrong
    untimed = summary[summary.index('id="untimed"'):]
    assert "MatMul / dim=1024x64x1024 dim=1024x1024x32" in untimed and "RuntimeError: boom" in untimed
    assert re.search(r"Noise</b>: \d+ of 11 timed results noisy", summary)
    assert "load was not recorded" in summary


def opbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opbench", *args], capture_output=True, text=True, timeout=300)


def test_cli_report_and_plot(tmp_path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    synthetic_run("run-a").to_json(a)
    synthetic_run("run-b", scale=1.3).to_json(b)
    out = tmp_path / "r" / "report.html"
    proc = opbench("report", str(a), str(b), "--out", str(out), "--no-plots")
    assert proc.returncode == 0, proc.stderr
    assert '<section id="comparison"' in out.read_text()
    proc = opbench("plot", str(a), "--out", str(tmp_path / "plots"), "--format", "svg", "--log", "--vs", str(b))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "cases.svg", "compare-run-b.svg", "family-argmax.svg", "family-matmul.svg", "family-softmax.svg",
        "speedups.svg"]


def test_cli_report_of_a_published_table(tmp_path) -> None:
    sample = Path(__file__).parent / "data" / "published_sample.md"
    out = tmp_path / "published.html"
    proc = opbench("report", f"{sample}#Tesla V100 PCIe", "--out", str(out), "--no-plots")
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "published number: no samples" in text and 'id="detailed"' in text


@pytest.mark.parametrize("args, needle", [
    (["plot", "no/such/run.json"], "unknown run"),
    (["report", "no/such/run.json"], "unknown run"),
    (["plot", "x", "--format", "gif"], "invalid choice"),
    (["report", "x", "--pairs", "cpu-mlx"], "A/B"),
])
def test_bad_input_is_one_line(tmp_path, args: list[str], needle: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "opbench", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OPBENCH_STORE": str(tmp_path / "store.db")})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr, proc.stderr


def test_corrupt_run_file_is_one_line(tmp_path) -> None:
    bad = tmp_path / "run.json"
    bad.write_text("{not json")
    proc = opbench("report", str(bad))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def _roofline_run(tmp_path: Path) -> tuple[Path, Path]:
    """The synthetic run with byte counts chosen so that, against a 100 GB/s CPU ceiling, its first cases sit at
    5 % (far below), 50 % and 300 % (above, with a working set too large for a cache) of their limit."""
    from dataclasses import replace

    from opbench.studies.calibrate import Calibration, Ceiling, DeviceCalibration

    pct_by_case = {CASES[0][1]: 5.0, CASES[1][1]: 50.0, CASES[2][1]: 300.0}
    run = synthetic_run(backends=("cpu",))
    run = replace(run, results=[replace(r, bytes=int(pct_by_case.get(r.case, 20.0) / 100 * r.median_ms * 1e8))
                                if r.timed else r for r in run.results])
    run_path, cal_path = tmp_path / "run.json", tmp_path / "cal.json"
    run.to_json(run_path)
    ceiling = Ceiling(100.0, 100.0, 1.0, 1, 1.0, 5, "")
    cal = Calibration("f", {}, {"cpu": DeviceCalibration("cpu", "torch", "cpu", ceiling, {"float32": ceiling})})
    cal_path.write_text(json.dumps(cal.to_dict()))
    return run_path, cal_path


def test_roofline_section_marks_far_below_and_above_peak(tmp_path) -> None:
    run_path, cal_path = _roofline_run(tmp_path)
    out = tmp_path / "report.html"
    proc = opbench("report", str(run_path), "--calibration", str(cal_path), "--out", str(out), "--no-plots")
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    section = text[text.index('<section id="roofline"'):]
    section = section[:section.index("</section>")]
    rows = re.findall(r'<tr class="rf-([a-z-]+)" data-family="[^"]*" data-backend="cpu"[^>]*>(.*?)</tr>', section)
    assert len(rows) == len(CASES) - 1  # the failed case has no time, so no roofline row
    pcts = [float(re.search(r'class="num pct" data-sort="([^"]+)"', cells).group(1)) for _, cells in rows]
    assert pcts == sorted(pcts) and pcts[0] == pytest.approx(5.0) and pcts[-1] == pytest.approx(300.0)
    assert rows[0][0] == "far-below" and "5% M↓" in rows[0][1]
    assert rows[-1][0] == "above-peak" and "300% M!" in rows[-1][1]
    assert "SUSPECT TIMING: Softmax / dim=64x1000000 axi=-1 on cpu at 300%" in section
    assert "cpu/float32: peaks 100 GFLOP/s" in section


def test_report_without_roofline_has_no_section_and_a_bad_calibration_is_one_line(tmp_path) -> None:
    run_path, cal_path = _roofline_run(tmp_path)
    out = tmp_path / "plain.html"
    assert opbench("report", str(run_path), "--out", str(out), "--no-plots").returncode == 0
    assert 'id="roofline"' not in out.read_text()
    cal_path.write_text("{not json")
    proc = opbench("report", str(run_path), "--calibration", str(cal_path), "--out", str(out), "--no-plots")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "cal.json" in proc.stderr, proc.stderr


def test_average_speedups_like_with_like_and_legends_per_table() -> None:
    from opbench.results import CaseResult, Run

    def r(case: str, backend: str, ms: float | None, status: str = "ok", detail: str = "") -> CaseResult:
        if ms is None:
            return CaseResult(case, case.split(" / ")[0], backend, "float32", status, error="boom")
        return CaseResult(case, case.split(" / ")[0], backend, "float32", status, samples_ms=(ms,) * 3,
                          rel_error=1e-7, tolerance=1e-6, detail=detail)

    results = (r("Sort / dim=1", "mlx_gpu", None, "error"), r("Sort / dim=1", "mlx_cpu", 1000.0),
               r("Sort / dim=2", "mlx_gpu", 0.5), r("Sort / dim=2", "mlx_cpu", 80.0),
               r("MatMul / dim=1", "mlx_gpu", 1.0, "reduced-precision", "TF32 (MLX_ENABLE_TF32=1)"),
               r("MatMul / dim=1", "mlx_cpu", 10.0))
    text = render_report(Run(run_id="r", created="2026-12-03", preset="seed", dtype="float32", results=results))
    average = text[text.index('<table id="average"'):]
    row = re.search(r'<tr data-family="Sort".*?</tr>', average, re.S).group(0)
    cell = re.search(r'data-col="mlx_gpu mlx_cpu" data-sort="([^"]*)" title="([^"]*)">([^<]*)<', row)
    assert float(cell.group(1)) == pytest.approx((80.0 / 0.5 - 1) * 100)  # the common case, not 540 / 0.5
    assert cell.group(3) == "+15900%*" and "over 1 of 2 cases" in cell.group(2)
    legends = re.findall(r'</table>\s*(?:</div>\s*)?<p class="legend">([^<]*)</p>', text)
    assert len(legends) == 2  # one under the Detailed table, one under the Average table
    assert all("TF32 (MLX_ENABLE_TF32=1) on mlx_gpu" in legend for legend in legends)
    assert "* after a speedup" in legends[1] and "*" not in legends[0] and "n/a: no time" in legends[0]
    assert "<li>Sort: mlx_gpu/mlx_cpu speedup over 1 of 2 cases" in text  # the Average table's notes too


def test_committed_reports_stay_small() -> None:
    """The committed results/*/report.html travel to and from the device machines: each under 1.5 MB."""
    reports = sorted((Path(__file__).parent.parent / "results").glob("*/report.html"))
    sizes = {p.parent.name: p.stat().st_size for p in reports}
    assert all(size < 1_500_000 for size in sizes.values()), sizes
