"""Tables in the seed's layout; the seed's own Detailed numbers reproduce its Average table."""

from __future__ import annotations

import math
import re

from opbench.data import SEED_TABLES
from opbench.report.tables import average_table, detailed_table, format_speedup, speedup, to_markdown
from opbench.results import CaseResult

SEED = SEED_TABLES
BACKENDS = ["mlx_gpu", "mlx_gpu_compile", "mlx_cpu", "mps", "cpu"]


def parse_seed() -> tuple[list[CaseResult], dict[str, list[str]]]:
    lines = SEED.read_text().splitlines()
    split = lines.index("Average benchmark:")
    results, averages = [], {}
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not re.match(r"^[A-Za-z0-9]+( / |$)", cells[0]) or len(cells) != 9 or cells[0] == "Operation":
            continue
        if i < split:
            for b, v in zip(BACKENDS, cells[1:6]):
                results.append(CaseResult(case=cells[0], family=cells[0].split(" / ")[0], backend=b, dtype="float32",
                                          status="ok" if v != "nan" else "unsupported",
                                          published_ms=None if v == "nan" else float(v)))
        else:
            averages[cells[0]] = cells[1:]
    return results, averages


def test_seed_detailed_values_reproduce_its_average_table() -> None:
    results, published = parse_seed()
    table = average_table(results)
    assert table.headers[1:6] == BACKENDS
    assert table.headers[6:] == ["mlx_gpu_compile/mlx_gpu speedup", "mlx_gpu/mps speedup", "mlx_gpu/mlx_cpu speedup"]
    assert [r[0] for r in table.rows] == list(published)
    for row in table.rows:
        want = published[row[0]]
        for got, exp in zip(row[1:6], want[:5]):
            if exp == "nan":
                assert got == "nan"
            else:  # the seed averaged unrounded times: within rounding of the 2-decimal inputs
                assert abs(float(got) - float(exp)) <= 0.011, (row[0], got, exp)
        means = dict(zip(BACKENDS, row[1:6]))
        pairs = [("mlx_gpu_compile", "mlx_gpu"), ("mlx_gpu", "mps"), ("mlx_gpu", "mlx_cpu")]
        for (a, b), got, exp in zip(pairs, row[6:], want[5:]):
            if exp == "nan%":
                assert got == "nan%"
                continue
            # the seed's speedup must lie within what its 2-decimal means allow (each off by up to 0.005 + 0.005)
            ta, tb = float(means[a]), float(means[b])
            lo, hi = speedup(ta + 0.01, max(tb - 0.01, 1e-9)), speedup(max(ta - 0.01, 1e-9), tb + 0.01)
            assert lo - 1 <= int(exp.rstrip("%")) <= hi + 1, (row[0], a, b, got, exp)


def test_speedup_formula_and_format() -> None:
    assert format_speedup(speedup(1.54, 1.68)) == "+9%"  # the seed's first row: compile vs mlx_gpu
    assert format_speedup(speedup(1.68, 0.74)) == "-55%"  # truncated toward zero like the seed's int()
    assert format_speedup(speedup(4.64, 4.60)) == "0%"
    assert format_speedup(math.nan) == "nan%"


def test_marks_and_notes() -> None:
    rs = [CaseResult("A / dim=1", "A", "cpu", "float32", "ok", samples_ms=(1.0, 1.0)),
          CaseResult("A / dim=1", "A", "mlx_cpu", "float32", "wrong", samples_ms=(2.0, 2.0), rel_error=0.9,
                     tolerance=1e-5),
          CaseResult("A / dim=2", "A", "cpu", "float32", "reduced-precision", samples_ms=(1.0, 1.2, 3.0),
                     rel_error=3e-4, tolerance=1e-5),
          CaseResult("A / dim=2", "A", "mlx_cpu", "float32", "error", error="boom")]
    md = to_markdown(detailed_table(rs))
    assert "2.00✗" in md and "nan" in md and "boom" in md and "1.20†~" in md
    avg = average_table(rs)
    assert avg.headers[1:3] == ["mlx_cpu", "cpu"]  # the seed's column order
    assert avg.rows[0][1] == "2.00✗*"  # the wrong value is marked and the partial average flagged
    assert avg.rows[0][2] == "1.10†"


def _r(case: str, backend: str, ms: float | None, status: str = "ok", detail: str = "") -> CaseResult:
    if ms is None:
        return CaseResult(case, case.split(" / ")[0], backend, "float32", status, error="RuntimeError: graph")
    return CaseResult(case, case.split(" / ")[0], backend, "float32", status, samples_ms=(ms, ms, ms),
                      rel_error=1e-7 if status == "ok" else 0.5, tolerance=1e-6, detail=detail)


def _sort_rows() -> list[CaseResult]:
    """The H100 Sort row's shape: mlx_gpu timed 1 of 3 cases (errors on the others), mlx_cpu all three."""
    return [_r("Sort / dim=1", "mlx_gpu", None, "error"), _r("Sort / dim=1", "mlx_cpu", 1000.0),
            _r("Sort / dim=2", "mlx_gpu", None, "error"), _r("Sort / dim=2", "mlx_cpu", 600.0),
            _r("Sort / dim=3", "mlx_gpu", 0.5), _r("Sort / dim=3", "mlx_cpu", 80.0)]


def test_an_average_speedup_is_over_the_cases_both_measured() -> None:
    table = average_table(_sort_rows(), [("mlx_gpu", "mlx_cpu")])
    assert table.rows[0][1] == "0.50*"  # mlx_gpu's mean: 1 of 3 cases
    assert table.rows[0][2] == "560.00"  # mlx_cpu's mean over its three cases
    assert table.rows[0][3] == "+15900%*"  # 80 / 0.5 − 1, not 560 / 0.5 − 1 = +111900 %
    assert any(n == "Sort: mlx_gpu/mlx_cpu speedup over 1 of 3 cases, the ones both timed and verified "
               "(left out: mlx_gpu error 2)" for n in table.notes), table.notes
    assert any("mlx_gpu's mean is over 1 of 3 cases (no time: error 2)" in n for n in table.notes)
    assert "* after a speedup: computed over only the cases both backends timed and verified" in table.caption
    assert "* after a time: the mean over only the cases this backend timed" in table.caption


def test_a_wrong_result_is_left_out_of_an_average_speedup() -> None:
    rs = [_r("SumAll / dim=1", "cpu", 4.0), _r("SumAll / dim=1", "mlx_cpu", 100.0, "wrong"),
          _r("SumAll / dim=2", "cpu", 2.0), _r("SumAll / dim=2", "mlx_cpu", 3.0),
          _r("Sum / dim=1", "cpu", 1.0), _r("Sum / dim=1", "mlx_cpu", 9.0, "wrong")]
    table = average_table(rs, [("mlx_cpu", "cpu")])
    sumall, sum_ = table.rows
    assert sumall[1] == "51.50✗" and sumall[3] == "-33%*"  # the mean shows the wrong time, the speedup 2/3 − 1
    assert sum_[3] == "–"  # no case both verified
    assert "–: no case that both backends timed and verified" in table.caption
    assert "Sum: mlx_cpu/cpu speedup: no case that both timed and verified (left out: mlx_cpu wrong 1)" in table.notes
    assert all(row[3] for row in table.rows)
    # a full, clean family: no mark, no note
    clean = average_table([_r("ReLU / dim=1", "cpu", 2.0), _r("ReLU / dim=1", "mlx_cpu", 1.0)], [("mlx_cpu", "cpu")])
    assert clean.rows[0][3] == "+100%" and not clean.notes


def test_each_table_has_a_legend_of_the_marks_it_shows() -> None:
    tf32 = "TF32 (torch.backends.cudnn.allow_tf32)"
    rs = [_r("Conv2d / dim=1", "cuda", 0.2, "reduced-precision", tf32), _r("Conv2d / dim=1", "cpu", 20.0),
          _r("ReLU / dim=1", "cuda", 0.1), _r("ReLU / dim=1", "cpu", 1.0)]
    for table in (detailed_table(rs), average_table(rs)):
        assert "† reduced precision" in table.caption and f"{tf32} on cuda" in table.caption
        for absent in ("✗", "~", "‡", "*", "nan"):
            assert absent not in table.caption, (absent, table.caption)
        assert table.caption in to_markdown(table)
    plain = detailed_table([_r("ReLU / dim=1", "cpu", 1.0)])
    assert plain.caption == "" and to_markdown(plain).rstrip().endswith("|")  # nothing to explain
    noisy = CaseResult("ReLU / dim=1", "ReLU", "cpu", "float32", "ok", samples_ms=(1.0, 2.0, 3.0, 4.0), rel_error=0)
    wrong = _r("ReLU / dim=1", "mlx_cpu", 3.0, "wrong")
    missing = _r("ReLU / dim=2", "cpu", None, "error")
    caption = detailed_table([noisy, wrong, missing], [("mlx_cpu", "cpu")]).caption
    assert "✗ wrong" in caption and "a speedup from such a time is marked too" in caption
    assert "~ noisy" in caption and "nan: no time" in caption and "nan%" in caption and "†" not in caption
    # an old run's † without a recorded mode says so rather than inventing one
    old = detailed_table([_r("MatMul / dim=1", "cuda", 1.0, "reduced-precision", "checked 3 sampled rows")])
    assert "mode not recorded" in old.caption and "checked 3" not in old.caption


def test_rich_tables_print_their_own_legend() -> None:
    from rich.console import Console

    from opbench.commands import print_tables

    out = Console(record=True, width=200)
    rs = [*_sort_rows(), _r("Conv2d / dim=1", "mlx_gpu", 0.2, "reduced-precision", "TF32 (MLX_ENABLE_TF32=1)"),
          _r("Conv2d / dim=1", "mlx_cpu", 20.0)]
    print_tables(out, detailed_table(rs), average_table(rs))
    text = out.export_text()
    average = text[text.index("Average benchmark"):]
    assert "TF32 (MLX_ENABLE_TF32=1) on mlx_gpu" in text[:text.index("Average benchmark")]
    assert "+15900%*" in average and "* after a speedup" in average and "TF32 (MLX_ENABLE_TF32=1)" in average
    assert "over 1 of 3 cases" in average  # the notes
