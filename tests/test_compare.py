"""compare: ratios, significance on raw samples (and none without), noise floor, mapping, geomeans, CLI gate."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from opbench.analysis.compare import (
    Comparison,
    ComparisonRow,
    bootstrap_medians,
    compare_runs,
    geomean,
    parse_backend_map,
)
from opbench.cli import main
from opbench.errors import UsageError
from opbench.results import CaseResult, Run
from opbench.results.importers import parse_published_markdown

CASES = [("ReLU / dim=16x16", "ReLU"), ("Sum / dim=8x8 axi=0", "Sum"), ("Sum / dim=8x8 axi=1", "Sum")]


def _samples(median: float, n: int, spread: float, seed: int) -> tuple[float, ...]:
    rng = np.random.default_rng(seed)
    return tuple(float(x) for x in median * (1 + spread * rng.standard_normal(n)))


def _run(run_id: str, scale: dict[str, float] | None = None, backends: tuple[str, ...] = ("cpu",), n: int = 40,
         spread: float = 0.01, seed: int = 0, base: float = 1.0) -> Run:
    results = []
    for i, (case, family) in enumerate(CASES):
        for j, backend in enumerate(backends):
            median = base * (i + 1) * (scale or {}).get(case, 1.0)
            results.append(CaseResult(case=case, family=family, backend=backend, dtype="float32", status="ok",
                                      samples_ms=_samples(median, n, spread, seed * 100 + i * 10 + j)))
    return Run(run_id=run_id, created="2026-01-01T00:00:00+00:00", preset="quick", dtype="float32",
               machine={"cpu_model": "test"}, results=tuple(results))


def _row(comparison: Comparison, case: str, backend: str = "cpu") -> ComparisonRow:
    return next(r for r in comparison.rows if r.case == case and r.backend == backend)


def test_same_distribution_is_not_significant() -> None:
    comparison = compare_runs(_run("a", seed=1), _run("b", seed=2))
    assert len(comparison.rows) == 3
    for row in comparison.rows:
        assert row.significant is False and row.change == "same"
        assert row.p_value is not None and row.ci_low is not None and row.ci_high is not None
        assert row.ci_low <= 1.0 <= row.ci_high or abs(row.ratio - 1) < 0.02


def test_real_slowdown_is_significant_with_ci_excluding_one() -> None:
    comparison = compare_runs(_run("a", seed=1), _run("b", {"ReLU / dim=16x16": 1.2}, seed=2))
    row = _row(comparison, "ReLU / dim=16x16")
    assert row.significant is True and row.p_value < 1e-6
    assert 1.15 < row.ci_low < row.ratio < row.ci_high < 1.25
    assert row.change == f"{row.ratio:.2f}x slower"
    faster = compare_runs(_run("a", seed=1), _run("b", {"Sum / dim=8x8 axi=0": 0.5}, seed=2))
    assert _row(faster, "Sum / dim=8x8 axi=0").change.endswith("x faster")
    assert _row(faster, "Sum / dim=8x8 axi=0").ratio == pytest.approx(0.5, rel=0.01)


def test_noise_floor_keeps_tiny_but_detectable_shifts_insignificant() -> None:
    # 1 % shift with 0.1 % noise and 200 samples: p is tiny, yet below the 2 % floor it is "not significant"
    a = _run("a", n=200, spread=0.001, seed=1)
    b = _run("b", {"ReLU / dim=16x16": 1.01}, n=200, spread=0.001, seed=2)
    row = _row(compare_runs(a, b), "ReLU / dim=16x16")
    assert row.p_value < 1e-6 and row.ci_low > 1.0 and row.significant is False
    assert _row(compare_runs(a, b, noise_floor=0.005), "ReLU / dim=16x16").significant is True


@pytest.mark.parametrize("n", [1, 2, 4, 7, 30, 101])
def test_fast_bootstrap_medians_match_plain_resampling(n: int) -> None:
    x = np.random.default_rng(n).lognormal(size=n)
    fast = bootstrap_medians(x, np.random.default_rng(1), 50_000)
    plain = np.median(x[np.random.default_rng(2).integers(0, n, size=(50_000, n))], axis=1)
    assert abs(fast.mean() - plain.mean()) < 0.02 * x.std() + 1e-12
    for q in (5, 25, 50, 75, 95):  # quantiles agree up to one step between neighbouring support points
        lo, hi = np.percentile(plain, [max(q - 2, 0), min(q + 2, 100)])
        assert lo - 1e-12 <= np.percentile(fast, q) <= hi + 1e-12, q


def test_bootstrap_interval_is_deterministic() -> None:
    a, b = _run("a", seed=1), _run("b", {"ReLU / dim=16x16": 1.1}, seed=2)
    first, second = compare_runs(a, b).rows, compare_runs(a, b).rows
    assert [(r.ci_low, r.ci_high) for r in first] == [(r.ci_low, r.ci_high) for r in second]


def test_without_samples_there_is_no_test() -> None:
    published = parse_published_markdown(
        "**M3 Max** mlx 0.2.0\n\n| Operation | cpu |\n|--|--|\n| ReLU / dim=16x16 | 2.00 |\n"
        "| Sum / dim=8x8 axi=0 | nan |\n| Sum / dim=8x8 axi=1 | 0.00 |\n", "m3.md")[0]
    with pytest.raises(UsageError, match=r"share no timing mode .A: throughput; B: latency.*--across-modes"):
        compare_runs(_run("a"), published)  # a published table is latency mode (a sync per call)
    comparison = compare_runs(_run("a"), published, across_modes=True)
    (row,) = comparison.rows
    assert row.case == "ReLU / dim=16x16" and row.ratio == pytest.approx(2.0, rel=0.05)
    assert row.significant is None and row.p_value is None and row.ci_low is None and row.ci_high is None
    assert row.change.endswith("(untested)")
    notes = " ".join(comparison.notes)
    assert "nan in published table" in notes and "0.00 ms" in notes and "across timing modes" in notes
    assert comparison.regressions(5) == []  # an untested row never counts as a significant regression


def test_geomeans_by_family_backend_and_overall() -> None:
    comparison = compare_runs(_run("a", seed=1), _run("b", {"ReLU / dim=16x16": 2.0, "Sum / dim=8x8 axi=0": 0.5,
                                                            "Sum / dim=8x8 axi=1": 2.0}, seed=2))
    ratios = {r.case: r.ratio for r in comparison.rows}
    fam = comparison.family_geomeans()
    assert fam["ReLU"] == pytest.approx(ratios["ReLU / dim=16x16"])
    assert fam["Sum"] == pytest.approx(math.sqrt(ratios["Sum / dim=8x8 axi=0"] * ratios["Sum / dim=8x8 axi=1"]))
    assert comparison.overall_geomean() == pytest.approx(geomean(list(ratios.values())))
    assert comparison.overall_geomean() == pytest.approx(2 ** (1 / 3), rel=0.02)
    assert comparison.backend_geomeans() == {"cpu": pytest.approx(comparison.overall_geomean())}
    assert math.isnan(geomean([]))


def test_backend_mapping_across_machines() -> None:
    a = _run("a", backends=("cpu", "cuda"))
    b = _run("b", backends=("cpu", "mlx_gpu"), base=3.0)
    default = compare_runs(a, b)
    assert {r.backend for r in default.rows} == {"cpu"}
    mapped = compare_runs(a, b, {"cuda": "mlx_gpu"})
    assert {r.backend for r in mapped.rows} == {"cpu", "cuda vs mlx_gpu"}
    assert _row(mapped, "ReLU / dim=16x16", "cuda vs mlx_gpu").ratio == pytest.approx(3.0, rel=0.02)
    with pytest.raises(UsageError, match="valid choices: cpu, cuda"):
        compare_runs(a, b, {"mps": "cpu"})
    with pytest.raises(UsageError, match="valid choices"):
        compare_runs(a, b, {"cuda": "tpu"})
    with pytest.raises(UsageError, match="share no backend"):
        compare_runs(_run("a", backends=("cuda",)), _run("b", backends=("mlx_gpu",)))
    assert parse_backend_map(["cuda=mlx_gpu,cpu=mlx_cpu", "mps=cpu"]) == {"cuda": "mlx_gpu", "cpu": "mlx_cpu",
                                                                       "mps": "cpu"}
    with pytest.raises(UsageError, match="A_BACKEND=B_BACKEND"):
        parse_backend_map(["cuda"])


def test_different_dtypes_are_noted() -> None:
    from dataclasses import replace

    comparison = compare_runs(_run("a"), replace(_run("b"), dtype="bfloat16"))
    assert comparison.notes[0] == "the runs measured different dtypes: A float32, B bfloat16"


def test_cases_in_one_run_only_are_noted() -> None:
    a = _run("a")
    extra = CaseResult(case="Softmax / dim=4x4 axi=-1", family="Softmax", backend="cpu", dtype="float32",
                       status="ok", samples_ms=(1.0, 1.0))
    b = Run(run_id="b", created="", preset="quick", dtype="float32", results=(a.results[0], extra))
    comparison = compare_runs(a, b)
    assert len(comparison.rows) == 1
    notes = " ".join(comparison.notes)
    assert "only in A — 2 cases" in notes and "only in B — 1 case: Softmax" in notes


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_cli_compare_markdown_and_fail_above_gate(tmp_path: Path) -> None:
    a_path, b_path, same_path = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "same.json"
    _run("a", seed=1).to_json(a_path)
    _run("b", {"ReLU / dim=16x16": 1.3}, seed=2).to_json(b_path)
    _run("same", seed=3).to_json(same_path)
    code, out, err = _cli("compare", str(a_path), str(b_path), "--format", "md", "--out", str(tmp_path / "c.md"))
    assert code == 0 and "| ReLU / dim=16x16" in out and "slower" in out
    assert (tmp_path / "c.md").read_text() == out
    code, _, err = _cli("compare", str(a_path), str(b_path), "--format", "md", "--fail-above", "10")
    assert code == 1 and "FAIL" in err and "ReLU / dim=16x16 [cpu] 1.30x" in err
    code, _, err = _cli("compare", str(a_path), str(b_path), "--format", "md", "--fail-above", "50")
    assert code == 0 and "OK" in err
    code, _, err = _cli("compare", str(a_path), str(same_path), "--format", "md", "--fail-above", "5")
    assert code == 0, err
    other = tmp_path / "other.json"
    Run(run_id="other", created="", preset="quick", dtype="float32", results=(CaseResult(
        case="Sort / dim=4 axi=0", family="Sort", backend="cpu", dtype="float32", status="ok",
        samples_ms=(1.0, 1.1)),)).to_json(other)
    code, out, err = _cli("compare", str(a_path), str(other), "--format", "md", "--fail-above", "5")
    assert code == 1 and "no case could be compared" in err and "(nothing to compare)" in out
    code, out, _ = _cli("compare", str(a_path), str(b_path))  # rich rendering
    assert code == 0 and "ReLU" in out


def test_cli_fail_above_trips_on_the_overall_geomean_of_a_published_table(tmp_path: Path) -> None:
    a_path, md = tmp_path / "a.json", tmp_path / "pub.md"
    _run("a").to_json(a_path)
    md.write_text("**RTX4090 (x)**\n\n| Operation | cpu |\n|--|--|\n| ReLU / dim=16x16 | 1.5 |\n")
    code, _, err = _cli("compare", str(a_path), str(md), "--format", "md", "--fail-above", "20", "--across-modes")
    assert code == 1 and "overall geometric mean" in err and "significant regression" not in err


def test_cli_import_stores_runs_once(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    sample = Path(__file__).parent / "data" / "published_sample.md"
    code, out, err = _cli("import", str(sample), "--store", str(store))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 7 and all(line.startswith("imported  pub-") for line in lines)
    code, again, _ = _cli("import", str(sample), "--store", str(store))
    assert code == 0 and all(line.startswith("already stored  pub-") for line in again.strip().splitlines())
    from opbench.results.store import open_store

    with open_store(store) as s:
        runs = s.list_runs()
        assert len(runs) == 7 and all(r.imported for r in runs)
        run_id = lines[1].split()[1]
        stored = s.load_run(run_id)
    assert stored.machine["device"] == "M1 Pro" and any(r.status == "unsupported" for r in stored.results)
    # a JSON run file imports as itself; compare then finds both by id
    a_path = tmp_path / "a.json"
    _run("20260101-000000-aaaa").to_json(a_path)
    code, out, _ = _cli("import", str(a_path), "--store", str(store))
    assert code == 0 and "imported  20260101-000000-aaaa" in out
    pub = tmp_path / "pub.md"
    pub.write_text("**M3 Max (cores: 4E+12P+40GPU)** mlx 0.2.0\n\n| Operation | cpu |\n|--|--|\n"
                   "| ReLU / dim=16x16 | 0.50 |\n")
    code, out, _ = _cli("import", str(pub), "--store", str(store))
    pub_id = out.split()[1]
    code, out, err = _cli("compare", "20260101-000000-aaaa", pub_id, "--store", str(store), "--format", "md")
    assert code == 2 and "share no timing mode" in err and len(err.strip().splitlines()) == 1
    code, out, err = _cli("compare", "20260101-000000-aaaa", pub_id, "--store", str(store), "--format", "md",
                          "--across-modes")
    assert code == 0, err
    assert "| ReLU / dim=16x16" in out and "2.00x faster (untested)" in out


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    a_path = tmp_path / "a.json"
    _run("a").to_json(a_path)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text(json.dumps({"format": "opbench-run", "schema_version": 0}))
    for args in (["compare", str(a_path), "nope-run", "--store", str(tmp_path / "s.sqlite")],
                 ["compare", str(a_path), str(bad_json)],
                 ["compare", str(a_path), str(a_path), "--map", "cuda"],
                 ["compare", str(a_path), str(a_path), "--map", "cuda=cpu"],
                 ["compare", str(a_path), str(a_path), "--alpha", "2"],
                 ["compare", str(a_path), str(a_path), "--fail-above", "-1"],
                 ["compare", str(a_path), f"{a_path}#section"],
                 ["import", str(tmp_path / "missing.md"), "--store", str(tmp_path / "s.sqlite")],
                 ["import", str(bad_json), "--store", str(tmp_path / "s.sqlite")]):
        code, _, err = _cli(*args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)


def test_header_names_machine_and_build_differences() -> None:
    from dataclasses import replace

    from opbench.report.comparison import header_lines

    a = replace(_run("a"), machine={"cpu_model": "test", "opbench": {"version": "0.1.0", "source_digest": "aaa"}})
    same = replace(_run("b"), machine=dict(a.machine))
    assert not any("differ" in line for line in header_lines(compare_runs(a, same)))
    other = replace(_run("b"), machine={"cpu_model": "test", "opbench": {"version": "0.1.0", "source_digest": "bbb"}})
    assert header_lines(compare_runs(a, other))[-1] == "A and B differ in: opbench build: 0.1.0 (aaa) != 0.1.0 (bbb)"


def test_backend_geomeans_split_short_and_long_cases() -> None:
    """Cases under SHORT_CASE_MS of A's time (host-dispatch-bound on a GPU) are summarised apart from the rest:
    here the short ReLU doubles while the two long Sums stay put."""
    from opbench.report.comparison import backend_table
    from opbench.results.model import SHORT_CASE_MS

    a = _run("a", base=0.01)  # ReLU 0.01 ms, Sums 0.02 and 0.03 ms
    b = _run("b", base=0.01, scale={"ReLU / dim=16x16": 2.0})
    a_long = _run("a", base=1.0)
    assert SHORT_CASE_MS == 0.05
    split = compare_runs(a, b).backend_geomeans_by_duration(threshold_ms=0.015)
    assert list(split) == ["cpu"]
    (short, n_short), (long, n_long) = split["cpu"]
    assert n_short == 1 and short == pytest.approx(2.0, rel=0.02)
    assert n_long == 2 and long == pytest.approx(1.0, rel=0.02)
    table = backend_table(compare_runs(a_long, _run("b", base=1.0)))
    assert table.headers[-2:] == ["A < 50 µs (rows)", "A ≥ 50 µs (rows)"]
    assert table.rows[0][3] == "–" and table.rows[0][4].endswith("(3)")


def test_a_change_smaller_than_the_spread_between_processes_is_not_significant() -> None:
    """Tight samples in each run (a per-sample test would say 20 % slower), but A's three worker processes
    already disagreed by 30 %: the interval comes from that spread, so 20 % is too noisy to tell."""
    from dataclasses import replace

    a, b = _run("a"), _run("b", {"ReLU / dim=16x16": 1.2})
    row = _row(compare_runs(a, b), "ReLU / dim=16x16")
    assert row.significant and row.ratio == pytest.approx(1.2, rel=0.02)
    spread_a = replace(a, results=tuple(replace(r, process_medians_ms=(1.0, 1.3, 1.1)) for r in a.results))
    row = _row(compare_runs(spread_a, b), "ReLU / dim=16x16")
    assert row.significant is False and row.verdict == "ambiguous" and row.p_value > 0.05 and row.ci_low < 1.0
    assert row.units == (3, 1) and "one process a side" not in row.note
    doubled = _run("b", {"ReLU / dim=16x16": 2.0})  # beyond the spread: significant again
    assert _row(compare_runs(spread_a, doubled), "ReLU / dim=16x16").significant


def test_ratios_never_in_e_notation_and_empty_columns_dropped() -> None:
    from opbench.report.comparison import drop_empty_columns, ratio_text
    from opbench.report.tables import Table

    assert [ratio_text(x) for x in (0.8731, 8.933e-05, 11195.4, 1.0, None)] == \
        ["0.8731", "0.00008933", "11,195", "1", "—"]
    table = drop_empty_columns(Table("t", ["Case", "CI", "p"], [["a", "—", "0.1"], ["b", "—", "—"]]))
    assert table.headers == ["Case", "p"] and table.rows == [["a", "0.1"], ["b", "—"]]


def test_a_published_side_lacking_machine_keys_is_said_once_not_as_value_vs_none() -> None:
    from opbench import machine

    here = machine.collect()
    published = {"published": True, "device": "M3 Max"}
    lines = machine.differences(here, published)
    assert not any("None" in line for line in lines)
    assert any(line.startswith("B does not record cpu_model, logical_cores") for line in lines)
