"""Importers: published Markdown tables (every heading style, nan, short rows, Average tables) and JSON runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opbench.data import REFERENCE_TABLES, SEED_TABLES
from opbench.errors import UsageError
from opbench.results import CaseResult, Run
from opbench.results.importers import (
    IMPORTED_DETAIL,
    NAN_ERROR,
    import_file,
    parse_heading,
    parse_published_markdown,
    run_from_json_text,
)
from opbench.results.resolve import load_run_or_table

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "published_sample.md"
REFERENCE, SEED = REFERENCE_TABLES, SEED_TABLES


def _by_device(runs: list[Run]) -> dict[str, Run]:
    return {r.machine["device"]: r for r in runs}


def _result(run: Run, case: str, backend: str) -> CaseResult:
    return next(r for r in run.results if r.case == case and r.backend == backend)


def test_sample_sections_headings_and_versions() -> None:
    runs = import_file(SAMPLE)
    assert [r.machine["device"] for r in runs] == ["M1", "M1 Pro", "M1 Ultra", "M3", "M1 Max", "Tesla V100 PCIe",
                                                   "A100 80GB 80GB PCIe"]
    by = _by_device(runs)
    assert by["M1"].machine["cores"] == "4E+4P+8GPU" and "packages" not in by["M1"].machine
    assert by["M1 Pro"].machine["packages"] == {"mlx": "0.5.0"} and by["M1 Pro"].machine["memory"] == "16GB"
    assert by["M1 Ultra"].machine["packages"] == {"mlx": "0.29.3", "torch": "2.8.0"}
    assert by["M1 Ultra"].backends["cpu"]["versions"] == {"torch": "2.8.0"}
    assert by["M1 Ultra"].backends["mlx_gpu"]["versions"] == {"mlx": "0.29.3"}
    assert by["M1 Max"].machine["packages"] == {"mlx": "0.2.0"}
    assert by["M3"].machine["packages"] == {"mlx": "0.30.1"}
    assert by["Tesla V100 PCIe"].machine["cores"] == "14 cores, 28 threads"
    assert by["A100 80GB 80GB PCIe"].machine["host"].startswith("Intel(R) Xeon(R) Gold 6254")
    assert by["M1 Pro"].label == "M1 Pro (2E+8P+16GPU+16GB) - mlx: 0.5.0"
    from opbench.machine import describe

    assert describe(by["M1 Pro"].machine) == "published: M1 Pro, 2E+8P+16GPU, 16GB, mlx 0.5.0"
    for run in runs:
        assert run.imported and run.source == str(SAMPLE) and run.preset == "published"
        assert all(r.samples_ms == () and r.detail == IMPORTED_DETAIL for r in run.results)


def test_sample_cells_nan_short_rows_padding_and_average_tables() -> None:
    by = _by_device(import_file(SAMPLE))
    pro = by["M1 Pro"]
    argmax = _result(pro, "Argmax / dim=64x1024x128 axi=0", "mlx_cpu")
    assert argmax.status == "ok" and argmax.published_ms == 10.57 and argmax.timed
    nan = _result(pro, "ScatterSum / dim=64x16 dim=10", "mps")
    assert nan.status == "unsupported" and nan.error == NAN_ERROR and nan.published_ms is None and not nan.timed
    # a short row (only two cells): results for those columns only
    assert {r.backend for r in pro.results if r.family == "Sum"} == {"mlx_gpu", "mlx_gpu_compile"}
    # irregular padding inside the case name is normalised to the catalog's spelling
    assert _result(pro, "BCE / dim=1000000 dim=1000000", "cpu").published_ms == 1.28
    # speedup columns are not backends
    assert set(pro.backends) == {"mlx_gpu", "mlx_gpu_compile", "mlx_cpu", "mps", "cpu"}
    # the M3 section's Average table (bare family names) adds nothing: 2 cases x 5 backends
    m3 = by["M3"]
    assert len(m3.results) == 10 and all(" / " in r.case for r in m3.results)
    assert _result(m3, "Sort / dim=64x128x1024 axi=0", "mps").published_ms == 337.30
    # an unreadable cell is recorded as an error naming it, the rest of the row is kept
    bad = _result(by["M1 Max"], "Argmax / dim=64x1024x128 axi=0", "mlx_cpu")
    assert bad.status == "error" and "oops" in bad.error
    assert _result(by["M1 Max"], "Argmax / dim=64x1024x128 axi=0", "cpu").published_ms == 20.0


def test_ids_are_stable_and_depend_on_content() -> None:
    text = SAMPLE.read_text()
    first = [r.run_id for r in parse_published_markdown(text, "a.md")]
    again = [r.run_id for r in parse_published_markdown(text, "elsewhere/b.md")]
    assert first == again and len(set(first)) == len(first)
    changed = [r.run_id for r in parse_published_markdown(text.replace("2.72", "2.73"), "a.md")]
    assert set(changed).isdisjoint(first)


def test_opbench_markers_map_back_to_statuses() -> None:
    text = ("| Operation | cpu | mlx_cpu |\n|---|---|---|\n"
            "| ReLU / dim=16x16 | 0.50✗ | 0.25†~ |\n| Sum / dim=8 axi=0 | 1.5* | nan |\n")
    (run,) = parse_published_markdown(text, "mine.md")
    assert _result(run, "ReLU / dim=16x16", "cpu").status == "wrong"
    reduced = _result(run, "ReLU / dim=16x16", "mlx_cpu")
    assert reduced.status == "reduced-precision" and reduced.published_ms == 0.25
    assert _result(run, "Sum / dim=8 axi=0", "cpu").published_ms == 1.5
    assert run.label == "published table"  # no heading and no line of text above the table


@pytest.mark.parametrize("text", [
    "",
    "just some prose\nwith no table at all\n",
    "| Operation | cpu |\n|---|---|\n| Argmax | 1.0 |\n",  # only an Average table
    "| a | b |\n|---|---|\n| x | y |\n",
    "| Operation | cpu speedup |\n|---|---|\n| ReLU / dim=4 | +3% |\n",  # no backend column
    '{"format": "something-else"}',
])
def test_files_that_are_not_published_tables_are_rejected(text: str) -> None:
    with pytest.raises(UsageError):
        parse_published_markdown(text, "x.md") if not text.startswith("{") else run_from_json_text(text, "x")


@pytest.mark.parametrize("content, needle", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not a text file"),
    (b"\xff\xfe\xfa garbage", "not a text file"),
    (b"no table here\n", "no published benchmark table"),
])
def test_import_file_errors_are_one_line(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "in.md"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=needle) as info:
        import_file(path)
    assert "\n" not in str(info.value)


def test_import_file_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        import_file(tmp_path / "nope.md")
    with pytest.raises(UsageError, match="directory"):
        import_file(tmp_path)


def test_parse_heading_styles() -> None:
    machine, versions = parse_heading("M2 () - mlx 0.2.0")
    assert machine["device"] == "M2" and versions == {"mlx": "0.2.0"}
    machine, _ = parse_heading("M3 (RAM: 16GB)  - mlx 0.2.0")
    assert machine["device"] == "M3" and machine["memory"] == "16GB"
    machine, versions = parse_heading("M2 Pro (cores: 4E+6P+16GPU) mlx 0.12.2 torch 2.1.2")
    assert machine["cores"] == "4E+6P+16GPU" and versions == {"mlx": "0.12.2", "torch": "2.1.2"}
    machine, _ = parse_heading("RTX4090 ((Desktop) / 10th Gen Intel Core i9-10940X @ 3.30GHz 128GB)")
    assert machine["device"] == "RTX4090" and machine["host"].startswith("10th Gen Intel")
    machine, _ = parse_heading("MLX/Pytorch speed analysis on MacBook Pro M3 Max")
    assert machine["device"] == "M3 Max"


def test_label_option_replaces_or_prefixes(tmp_path: Path) -> None:
    runs = import_file(SAMPLE, label="mlx-benchmark")
    assert all(r.label.startswith("mlx-benchmark: ") for r in runs)
    single = tmp_path / "one.md"
    single.write_text("**M4 (6E+4P+10GPU+16GB)** mlx: 0.20.0\n\n| Operation | cpu |\n|--|--|\n| ReLU / dim=4 | 0.1 |\n")
    (run,) = import_file(single, label="my label")
    assert run.label == "my label" and run.machine["device"] == "M4"


def _measured_run() -> Run:
    result = CaseResult(case="ReLU / dim=16x16", family="ReLU", backend="cpu", dtype="float32", status="ok",
                        samples_ms=(0.1, 0.11, 0.12), calls_per_sample=10, rel_error=0.0, tolerance=1e-5)
    return Run(run_id="20260101-000000-abcd", created="2026-01-01T00:00:00+00:00", preset="quick",
               dtype="float32", machine={"cpu_model": "x"}, results=(result,))


def test_json_round_trip() -> None:
    run = _measured_run()
    back = run_from_json_text(json.dumps(run.to_dict()), "run.json")
    assert back == run


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.update(schema_version=99), "schema version 99"),
    (lambda d: d.update(format="pyperf"), "not an opbench run file"),
    (lambda d: d.update(results=["x"]), "malformed"),
    (lambda d: d.update(results=5), "malformed"),
    (lambda d: d["results"][0].update(status="great"), "unknown status"),
    (lambda d: d["results"][0].update(samples_ms=["a"]), "malformed"),
    (lambda d: d["results"][0].update(case=3), "not text"),
    (lambda d: d["results"][0].update(flops="many"), "not an integer"),
    (lambda d: d.update(machine=[1]), "not an object"),
    (lambda d: d.update(run_id=""), "invalid run id"),
    (lambda d: d.pop("run_id"), "malformed"),
])
def test_malformed_json_runs_are_one_line_errors(mutate, needle: str) -> None:
    data = _measured_run().to_dict()
    mutate(data)
    with pytest.raises(UsageError, match=needle) as info:
        run_from_json_text(json.dumps(data), "run.json")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("results", [["x"], [1], [[]], [None]])
def test_run_from_dict_refuses_results_that_are_not_objects(results: list) -> None:
    """The path `opbench show/export FILE` takes (`Run.from_json`): a one-line error, not an AttributeError."""
    data = _measured_run().to_dict()
    data["results"] = results
    with pytest.raises(UsageError, match="malformed opbench run file"):
        Run.from_dict(data)


def test_load_run_or_table_picks_sections(tmp_path: Path) -> None:
    assert load_run_or_table(f"{SAMPLE}#V100").machine["device"] == "Tesla V100 PCIe"
    assert load_run_or_table(f"{SAMPLE}#M1 Pro").machine["device"] == "M1 Pro"  # exact device beats substring
    with pytest.raises(UsageError, match="several sections"):
        load_run_or_table(f"{SAMPLE}#mlx")
    with pytest.raises(UsageError, match="no section"):
        load_run_or_table(f"{SAMPLE}#H100")
    with pytest.raises(UsageError, match="7 sections"):
        load_run_or_table(str(SAMPLE))
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_measured_run().to_dict()))
    assert load_run_or_table(str(path)) == _measured_run()
    store = tmp_path / "store.sqlite"
    with pytest.raises(UsageError):
        load_run_or_table("no-such-run-id", store=store)


def test_every_device_section_of_the_reference_file() -> None:
    runs = import_file(REFERENCE)
    devices = [r.machine["device"] for r in runs]
    assert devices == ["M1", "M1 Pro", "M1 Max", "M1 Ultra", "M2", "M2 Pro", "M2 Max", "M2 Ultra", "M3", "M3",
                       "M3 Pro", "M3 Max", "M4", "M4 Pro", "M4 Pro", "M4 Max", "M3 Ultra", "Tesla V100 PCIe",
                       "Tesla V100 NVLink", "RTX4090", "A100 80GB 80GB PCIe"]
    text = REFERENCE.read_text()
    assert sum(len({r.case for r in run.results}) for run in runs) == text.count(" / dim=")
    by_label = {r.label: r for r in runs}
    assert by_label["M1 Ultra (4E+16P+48GPU+64GB) mlx: 0.29.3 torch: 2.8.0"].machine["packages"] == {
        "mlx": "0.29.3", "torch": "2.8.0"}
    assert by_label["M2 Max (cores: 4E+8P+38GPU) mlx 0.5.0 torch 2.2.1"].machine["packages"] == {
        "mlx": "0.5.0", "torch": "2.2.1"}
    rtx = _by_device(runs)["RTX4090"]
    assert set(rtx.backends) == {"cpu", "cuda"}
    assert _result(rtx, "Argmax / dim=64x1024x128 axi=0", "cuda").published_ms == 0.04
    assert len({r.run_id for r in runs}) == len(runs)


def test_the_seed_article_detailed_table() -> None:
    (run,) = import_file(SEED)
    assert run.machine["device"] == "M3 Max" and run.imported
    assert len({r.case for r in run.results}) == 85  # the Detailed table; the Average table adds nothing
    first = _result(run, "Argmax / dim=64x1024x128 axi=0", "mlx_gpu")
    assert first.published_ms == 1.68 and first.status == "ok"
    assert _result(run, "MatMul / dim=1000000x64 dim=64x1024", "cpu").published_ms == 1740.92
    nan = [r for r in run.results if r.status == "unsupported"]
    assert len(nan) == 12 and {r.backend for r in nan} == {"mps"}
