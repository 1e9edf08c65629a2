"""The dtype study: bfloat16 inputs, the status rules (unsupported / silently-converted / n/a / ok), exact
integer results, and `opbench dtypes` end to end. CPU backends, small shapes, tiny timing budgets."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from opbench.backends import get_backend
from opbench.backends._base import Prepared
from opbench.catalog import Case, preset_cases
from opbench.catalog._bfloat16 import round_to_bfloat16
from opbench.engine.timing import TimingSettings
from opbench.studies.dtypes import (
    CONVERTED,
    NA,
    UNSUPPORTED,
    Cell,
    measure_cell,
    measure_precision,
    representative_cases,
)

TINY = TimingSettings(budget_s=0.005, min_samples=2, block_s=0.001, max_warmup=2)


def _backend(name: str):
    be = get_backend(name)
    avail = be.availability()
    if not avail.available:
        pytest.skip(avail.reason)
    be.setup()
    return be


def _case(family: str) -> Case:
    return representative_cases(c for c in preset_cases("quick") if c.family == family)[0]


# --------------------------------------------------------------------------------------------- bfloat16


def test_round_to_bfloat16_is_round_to_nearest_even() -> None:
    x = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -(1 + 2**-8), 3.4e38, np.inf, np.nan],
                 dtype=np.float32)
    got = round_to_bfloat16(x)
    # ties go to the even neighbour (1.0 and 1 + 2**-6), anything above a tie rounds up, overflow gives inf
    expected = np.array([1.0, 1.0, 1 + 2**-6, 1 + 2**-7, -1.0, np.inf, np.inf, np.nan], dtype=np.float32)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float32


def test_round_to_bfloat16_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    x = (np.random.default_rng(1).standard_normal(20000) * 1e3).astype(np.float32)
    np.testing.assert_array_equal(round_to_bfloat16(x), torch.from_numpy(x).to(torch.bfloat16).float().numpy())


def test_bfloat16_inputs_are_exact_bfloat16_values_and_indices_stay_int() -> None:
    x, idx, upd = _case("ScatterSum").make_inputs("bfloat16")
    assert x.dtype == upd.dtype == np.float32 and idx.dtype == np.int64
    for a in (x, upd):
        assert np.all(a.view(np.uint32) & 0xFFFF == 0)  # the low 16 bits of every value are zero
    assert _case("Gather").bytes_moved("bfloat16") == _case("Gather").bytes_moved("float16")


# ------------------------------------------------------------------------------------------- statuses


def test_softmax_on_integers_is_not_applicable_and_not_run() -> None:
    be = _backend("cpu")
    cell = measure_cell(be, _case("Softmax"), "int32", timing=TINY)
    assert cell.status == NA and cell.samples_ms == () and cell.rel_error is None


@pytest.mark.parametrize("family", ["MatMul", "Linear", "Conv1d", "Conv2d"])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_mlx_cpu_refuses_integer_matmul_and_conv_with_its_own_message(family: str, dtype: str) -> None:
    be = _backend("mlx_cpu")
    cell = measure_cell(be, _case(family), dtype, timing=TINY)
    assert cell.status == UNSUPPORTED, cell
    assert "ValueError" in cell.error and dtype in cell.error  # MLX's text, e.g. "[matmul] Only inexact types"
    assert cell.samples_ms == ()


@pytest.mark.parametrize("family", ["MatMul", "Linear", "Conv1d", "Conv2d", "Sum", "SumAll", "ScatterSum",
                                    "ScatterMax", "Gather", "Sort", "Concat", "ReLU"])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_torch_cpu_integer_results_are_exact(family: str, dtype: str) -> None:
    be = _backend("cpu")
    cell = measure_cell(be, _case(family), dtype, timing=TINY)
    assert cell.status in ("ok", CONVERTED), cell
    assert cell.rel_error == 0.0 and cell.expected_error == 0.0
    assert cell.out_dtype.startswith("int") and cell.samples_ms
    if cell.status == CONVERTED:  # torch sums int32 into int64: recorded, but marked as a widening
        assert family in ("Sum", "SumAll") and dtype == "int32" and cell.widened and cell.out_dtype == "int64"


@pytest.mark.parametrize("family", ["Sum", "ScatterSum", "Gather", "Sort"])
def test_mlx_cpu_integer_results_are_exact(family: str) -> None:
    be = _backend("mlx_cpu")
    for dtype in ("int32", "int64"):
        cell = measure_cell(be, _case(family), dtype, timing=TINY)
        assert cell.status == "ok" and cell.rel_error == 0.0 and cell.out_dtype == dtype, cell


def test_mlx_cpu_bfloat16_softmax_over_1000_elements_is_caught_as_wrong() -> None:
    """MLX's default softmax accumulates bfloat16 in bfloat16: rows of 1000 sum to ~1.4 (torch: float32)."""
    be = _backend("mlx_cpu")
    case = next(c for c in preset_cases("quick") if c.name == "Softmax / dim=16x1000 axi=-1")
    cell = measure_cell(be, case, "bfloat16", timing=TINY)
    assert cell.status == "wrong" and cell.rel_error > 0.1, cell


# ------------------------------------------------------------------------------- planted conversions


def _planted(kind: str):
    """A torch CPU backend whose MatMul/ReLU silently compute in another type."""
    torch = pytest.importorskip("torch")
    from opbench.backends.torch import TorchCPU

    class Planted(TorchCPU):
        name = f"planted_{kind}"

    def matmul(be: Any, case: Case, args: tuple[Any, ...]) -> Prepared:
        if kind == "narrow-output":  # float64 in, float32 out
            return Prepared(lambda a, b: torch.matmul(a.float(), b.float()), args)
        # float64 in, float64 out, but computed in float32: only the error shows it
        return Prepared(lambda a, b: torch.matmul(a.float(), b.float()).to(a.dtype), args)

    Planted.builders = {**TorchCPU.builders, "MatMul": matmul,
                        "ReLU": lambda be, case, args: Prepared(lambda x: torch.relu(x).float(), args)}
    be = Planted()
    be.setup()
    return be


def test_planted_narrowing_output_is_silently_converted() -> None:
    cell = measure_cell(_planted("narrow-output"), _case("MatMul"), "float64", timing=TINY)
    assert cell.status == CONVERTED and not cell.widened
    assert cell.out_dtype == "float32" and "float64 in, float32 out" in cell.detail


def test_planted_float32_arithmetic_inside_float64_is_caught_by_its_error() -> None:
    cell = measure_cell(_planted("hidden"), _case("MatMul"), "float64", timing=TINY)
    assert cell.status == CONVERTED and cell.out_dtype == "float64"
    assert cell.rel_error > cell.expected_error and "computed like float32" in cell.detail


def test_planted_int_to_float_is_silently_converted_and_honest_backend_is_not() -> None:
    cell = measure_cell(_planted("hidden"), _case("ReLU"), "int32", timing=TINY)
    assert cell.status == CONVERTED and cell.out_dtype == "float32" and "narrowed" in cell.detail
    honest = measure_cell(_backend("cpu"), _case("MatMul"), "float64", timing=TINY)
    assert honest.status == "ok" and honest.rel_error <= honest.expected_error


# ------------------------------------------------------------------------------------- precision study


def test_precision_study_has_default_and_every_torch_mode_for_float32() -> None:
    cells = measure_precision(_backend("cpu"), 32, ["float32", "int32"], timing=TINY)
    modes = [(c.dtype, c.mode) for c in cells]
    assert modes == [("float32", "as-is"), ("float32", "highest"), ("float32", "high"), ("float32", "medium"),
                     ("int32", "as-is")]
    assert [c.strict for c in cells] == [False, True, False, False, False]
    strict = cells[1]
    assert strict.status == "ok" and strict.rel_error <= strict.expected_error
    import torch

    assert torch.get_float32_matmul_precision() == "highest"  # the mode was restored


def test_mlx_strict_mode_runs_in_a_fresh_process() -> None:
    cells = measure_precision(_backend("mlx_cpu"), 32, ["float32"], timing=TINY)
    assert [c.mode for c in cells] == ["as-is", "MLX_ENABLE_TF32=0"]
    child = cells[1]
    assert child.status == "ok" and child.strict and child.samples_ms and child.rel_error is not None, child


def test_cell_json_round_trip_keeps_infinite_errors() -> None:
    cell = Cell(backend="b", family="MatMul", case="c", dtype="float32", status="wrong", rel_error=float("inf"),
                samples_ms=(1.0, 2.0))
    back = Cell.from_dict(json.loads(json.dumps(cell.to_dict())))
    assert back == cell


# ------------------------------------------------------------------------------------------------- CLI


def opbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opbench", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args", [["--dtypes", "float8"], ["--backends", "nope"], ["--ops", "Softmaxx"],
                                  ["--dtypes", ","], ["--matmul-size", "-1"]])
def test_bad_input_is_one_line_and_exit_2(args: list[str]) -> None:
    proc = opbench("dtypes", *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_cli_writes_matrix_json_pictures_and_store(tmp_path) -> None:
    pytest.importorskip("torch")
    store = tmp_path / "store.sqlite"
    proc = opbench("dtypes", "--backends", "cpu", "--ops", "MatMul,Softmax", "--dtypes", "float32,int32",
                   "--budget", "0.005", "--matmul-size", "32", "--matmul-budget", "0.005", "--out",
                   str(tmp_path / "out"), "--store", str(store), "--format", "md")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "out" / "dtypes.json").read_text())
    status = {(c["family"], c["dtype"]): c["status"] for c in data["cells"]}
    assert status == {("MatMul", "float32"): "ok", ("MatMul", "int32"): "ok", ("Softmax", "float32"): "ok",
                      ("Softmax", "int32"): "n/a"}
    assert len(data["precision"]) == 5
    assert "| MatMul" in proc.stdout and "cpu f32" in proc.stdout and "default vs strict" in proc.stdout
    for picture in ("heatmap.png", "matmul_speed_precision.png"):
        assert (tmp_path / "out" / picture).read_bytes()[:4] == b"\x89PNG"
    from opbench.results.store import open_store

    with open_store(store, create=False) as s:
        run = s.load_run(data["run_id"])
    assert len(run.results) == 4 + 5
    assert any(r.case.endswith("[precision=highest]") for r in run.results)


def test_resume_measures_only_the_missing_cells_and_keeps_the_rest(tmp_path) -> None:
    pytest.importorskip("torch")
    out, store = tmp_path / "out", tmp_path / "store.sqlite"
    proc = opbench("dtypes", "--backends", "cpu", "--ops", "ReLU,MatMul", "--dtypes", "float32,int32",
                   "--budget", "0.005", "--matmul-size", "32", "--matmul-budget", "0.005", "--out", str(out),
                   "--store", str(store), "--format", "md")
    assert proc.returncode == 0, proc.stderr
    full = json.loads((out / "dtypes.json").read_text())
    cut = {**full, "cells": full["cells"][:1], "precision": full["precision"][:2]}  # as if cut off
    (out / "dtypes.json").write_text(json.dumps(cut))
    (out / "dtypes.md").unlink()
    proc = opbench("dtypes", "--resume", str(out), "--store", str(store), "--format", "md")
    assert proc.returncode == 0, proc.stderr
    assert "(resumed): 2 cases x 2 dtypes x 1 backends" in " ".join(proc.stderr.split())
    resumed = json.loads((out / "dtypes.json").read_text())
    assert resumed["run_id"] == full["run_id"] and resumed["settings"] == full["settings"]
    assert resumed["cells"][0] == full["cells"][0] and resumed["precision"][:2] == full["precision"][:2]

    def keys(cells: list[dict]) -> list[tuple]:
        return sorted((c["backend"], c["case"], c["dtype"], c["mode"]) for c in cells)

    assert keys(resumed["cells"]) == keys(full["cells"]) and keys(resumed["precision"]) == keys(full["precision"])
    assert (out / "dtypes.md").is_file()
    from opbench.results.store import open_store

    with open_store(store, create=False) as s:  # the stored study was replaced, not duplicated
        assert len(s.load_run(full["run_id"]).results) == len(full["cells"]) + len(full["precision"])


@pytest.mark.parametrize("content", ["", "{not json", '{"format": "opbench-run"}'])
def test_resume_of_a_missing_or_corrupt_study_is_one_line_and_exit_2(tmp_path, content: str) -> None:
    target = tmp_path / "dtypes.json"
    if content:
        target.write_text(content)
    proc = opbench("dtypes", "--resume", str(target if content else tmp_path / "nowhere"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_run_in_bfloat16_really_computes_in_bfloat16() -> None:
    """`opbench run --dtype bfloat16` path: float32 carriers are converted, so the error is bfloat16's."""
    from opbench.engine.runner import measure_case

    result = measure_case(_backend("cpu"), _case("MatMul"), "bfloat16", timing=TINY)
    assert result.status == "ok" and 1e-4 < result.rel_error <= result.tolerance, result


def test_matrix_table_codes_and_notes() -> None:
    from opbench.report.dtypes import error_table, matrix_table, precision_table

    def cell(backend: str, dtype: str, status: str, **kw: Any) -> Cell:
        return Cell(backend=backend, family="MatMul", case="MatMul / dim=2x2 dim=2x2", dtype=dtype, status=status,
                    **kw)

    cells = [cell("a", "int32", UNSUPPORTED, error="ValueError: no ints"),
             cell("a", "float64", CONVERTED, detail="computed like float32", rel_error=1e-7, expected_error=1e-14),
             cell("b", "int32", CONVERTED, widened=True, detail="int32 in, int64 out", rel_error=0.0),
             cell("b", "float64", "ok", rel_error=0.0, expected_error=1e-14)]
    table = matrix_table(cells)
    assert table.headers == ["Family", "a i32", "a f64", "b i32", "b f64"]
    assert table.rows == [["MatMul", "U", "C", "C+", "ok"]]
    assert "U a (MatMul int32): ValueError: no ints" in table.notes
    assert "C a MatMul float64: computed like float32" in table.notes
    assert error_table(cells).rows == [["MatMul", "U", "1.0e-07", "0", "0"]]
    strict = Cell(backend="b", family="MatMul", case="m", dtype="float64", status="ok", mode="highest", strict=True,
                  rel_error=1e-16)
    as_is = Cell(backend="b", family="MatMul", case="m", dtype="float64", status="ok", mode="as-is", rel_error=0.0,
                 expected_error=1e-14)
    rows = precision_table([as_is, strict]).rows
    assert rows == [["b", "float64", "0", "1.0e-16", "highest", "", "1.0e-14"]]


_CRASHING_ADAPTER = '''
import ctypes
from opbench.backends._base import Prepared
from opbench.backends.torch import TorchCPU


class CrashOnSort(TorchCPU):
    """Segfaults on Sort in float32, as a broken kernel would; everything else is torch on the CPU."""

    name = "crash_sort"
    builders = {**TorchCPU.builders,
                "Sort": lambda be, case, args: Prepared(
                    lambda x, axis=case.axis: ctypes.string_at(0) if str(x.dtype) == "torch.float32"
                    else x.sort(dim=axis).values, args)}
'''


def test_a_crash_costs_one_cell_and_the_study_goes_on(tmp_path, monkeypatch) -> None:
    """The backend's process segfaults on one item: that item is `crashed`, a new process does the rest."""
    pytest.importorskip("torch")
    from opbench.backends import _REGISTRY
    from opbench.studies.dtypes import WorkItem, run_isolated

    (tmp_path / "crashing_adapter.py").write_text(_CRASHING_ADAPTER)
    monkeypatch.syspath_prepend(str(tmp_path))  # a spawned worker starts with this process's sys.path
    monkeypatch.setitem(_REGISTRY, "crash_sort", "crashing_adapter:CrashOnSort")
    items = [WorkItem(_case("ReLU"), "float32"), WorkItem(_case("Sort"), "float32"),
             WorkItem(_case("Sort"), "float64"), WorkItem(_case("Softmax"), "int32")]
    cells = run_isolated("crash_sort", items, timing=TINY)
    assert [c.status for c in cells] == ["ok", "crashed", "ok", NA]
    assert "SIGSEGV" in cells[1].error and cells[1].family == "Sort" and cells[1].dtype == "float32"


def test_a_backend_that_cannot_start_is_unsupported_for_every_item(monkeypatch) -> None:
    from opbench.backends import _REGISTRY
    from opbench.studies.dtypes import WorkItem, run_isolated

    monkeypatch.setitem(_REGISTRY, "no_such_adapter", "opbench.no_such_module:Nothing")
    cells = run_isolated("no_such_adapter", [WorkItem(_case("ReLU"), "float32"), WorkItem(_case("Sum"), "int32")],
                         timing=TINY)
    assert [c.status for c in cells] == [UNSUPPORTED, UNSUPPORTED]
    assert "ModuleNotFoundError" in cells[0].error


def test_representative_cases_one_per_family_or_every_distinct_case() -> None:
    quick = preset_cases("quick")
    one = representative_cases(quick)
    assert [c.family for c in one] == list(dict.fromkeys(c.family for c in quick))
    every = representative_cases(quick, every_case=True)
    assert len({c.name for c in every}) == len(every) and {c.name for c in every} == {c.name for c in quick}


def test_a_float16_result_beyond_its_range_is_not_applicable_not_wrong() -> None:
    """A sum of 200 000 values in [0, 1) is ~1e5 > 65504, float16's largest: the exact result has no float16."""
    cell = measure_cell(_backend("cpu"), Case("SumAll", ((200_000,),)), "float16", timing=TINY)
    assert cell.status == NA and "does not fit in float16" in cell.detail, cell
