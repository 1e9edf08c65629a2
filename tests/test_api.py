"""The Python API (`opbench.load/run/compare`): DataFrames, notebook reprs, the CLI's engine and errors, no
framework or pandas on import, and the README's example run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import opbench
from opbench.catalog.user import unload_catalogs
from opbench.results import CaseResult, Run

ROOT = Path(__file__).resolve().parents[1]
NUMPY_CATALOG = '''
import numpy as np
from opbench import CustomFamily

SQUARE = CustomFamily(name="Square", cases=["8x16", "4x4"], reference=lambda case, x: x * x,
                      flops=lambda case: float(np.prod(case.shapes[0])),
                      implementations={"numpy": lambda case: (lambda x: x * x)})
'''


@pytest.fixture(autouse=True)
def _forget_catalogs():
    yield
    unload_catalogs()


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env}, cwd=ROOT)


def sample_run() -> Run:
    ok = CaseResult(case="ReLU / dim=4", family="ReLU", backend="cpu", dtype="float32", status="ok",
                    samples_ms=(1.0, 2.0, 3.0, 4.0, 5.0), flops=3_000_000, bytes=6_000_000, rel_error=0.0,
                    tolerance=1e-5)
    missing = CaseResult(case="ReLU / dim=4", family="ReLU", backend="jax_cpu", dtype="float32",
                         status="unsupported", error="jax is not installed")
    return Run(run_id="r1", created="2026-01-01T00:00:00+00:00", preset="seed", dtype="float32",
               machine={"hostname": "h", "cpu_model": "CPU X", "logical_cores": 8, "gpus": [{"name": "G1"}],
                        "packages": {"numpy": "2"}},
               backends={"cpu": {"versions": {"torch": "2.13.0"}}}, results=(ok, missing))


def test_import_opbench_imports_no_framework_and_no_pandas() -> None:
    code = ("import sys, opbench; f = (opbench.load, opbench.run, opbench.compare, opbench.CustomFamily); "
            "import opbench.api, opbench.testing.check, opbench.testing.pytest_plugin, opbench.catalog.user; "
            "print([m for m in ('torch', 'mlx', 'jax', 'pandas') if m in sys.modules])")
    proc = python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_cli_does_not_need_pandas_and_to_dataframe_names_the_extra(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    sample_run().to_json(path)
    block = "import sys; sys.modules['pandas'] = None; "
    proc = python(block + f"from opbench.cli import main; sys.exit(main(['show', {str(path)!r}, '--format', 'md']))")
    assert proc.returncode == 0, proc.stderr
    proc = python(block + f"import opbench; opbench.load({str(path)!r}).to_dataframe()")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == \
        "ImportError: opbench's DataFrames need pandas: pip install 'opbench[pandas]'"


def test_load_gives_a_tidy_dataframe(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    path = tmp_path / "run.json"
    sample_run().to_json(path)
    loaded = opbench.load(path)
    assert opbench.load(tmp_path).run == loaded.run  # the run directory works too
    frame = loaded.to_dataframe()
    assert list(frame.columns[:len(opbench.api.RESULT_COLUMNS)]) == list(opbench.api.RESULT_COLUMNS)
    ok, missing = frame.to_dict("records")
    assert (ok["median_ms"], ok["n"], ok["verdict"], ok["mode"]) == (3.0, 5, "ok", "throughput")
    assert ok["iqr_ms"] == 2.0 and ok["gflops"] == pytest.approx(1.0) and ok["gbs"] == pytest.approx(2.0)
    assert ok["versions"] == "torch=2.13.0"
    assert (ok["machine_cpu_model"], ok["machine_logical_cores"], ok["machine_gpus"]) == ("CPU X", 8, "G1")
    assert missing["verdict"] == "unsupported" and missing["error"] == "jax is not installed"
    assert missing["median_ms"] is None or missing["median_ms"] != missing["median_ms"]  # None / NaN
    html = loaded._repr_html_()
    assert "<table>" in html and "ReLU / dim=4" in html and "r1" in html
    with pytest.raises(opbench.UsageError, match="unknown run"):
        opbench.load("no-such-run", store=tmp_path / "none.sqlite")


def test_compare_is_the_function_and_the_comparison_module_lives_in_analysis() -> None:
    import opbench.analysis.compare as comparison_module

    assert callable(opbench.compare) and opbench.compare.__module__ == "opbench.api"
    assert callable(comparison_module.compare_runs) and opbench.analysis.compare is comparison_module


def test_run_uses_the_cli_engine_and_compare_gives_a_dataframe(tmp_path: Path) -> None:
    """In worker processes (the fake NumPy backend, spawned: it loads the catalog itself), stored like the CLI's."""
    pd = pytest.importorskip("pandas")
    from rich.console import Console

    from opbench.results.store import open_store
    from opbench.testing.fakes import register_fakes

    register_fakes()
    catalog = tmp_path / "ops.py"
    catalog.write_text(textwrap.dedent(NUMPY_CATALOG))
    store = tmp_path / "s.sqlite"
    first = opbench.run(backends="fake_numpy", catalog=catalog, budget=0.02, min_samples=5, store=store)
    assert {r.status for r in first.results} == {"ok"} and len(first.results) == 2
    assert first.run.settings["catalogs"][0]["path"] == str(catalog.resolve())
    assert open_store(store).load_run("latest").run_id == first.run_id
    out = tmp_path / "out"
    second = opbench.run(["Square"], ["fake_numpy"], catalog=[catalog], budget=0.02, min_samples=5, store=store,
                         out=out)
    assert json.loads((out / "run.json").read_text())["run_id"] == second.run_id
    comparison = opbench.compare(first.run_id, second, store=store)
    frame = comparison.to_dataframe()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2
    assert {"case", "backend", "time_a_ms", "time_b_ms", "ratio", "p_value", "significant", "change"} <= \
        set(frame.columns)
    assert "<table>" in comparison._repr_html_()
    console = Console(record=True, width=200)
    console.print(first)
    console.print(comparison)
    text = console.export_text()
    assert "Square / dim=8x16" in text and "B vs A per case" in text
    with pytest.raises(opbench.UsageError, match="--budget: '-1' is out of range"):
        opbench.run("Square", "fake_numpy", catalog=catalog, budget=-1, store=store)
    with pytest.raises(opbench.UsageError, match="unknown backend 'nope'"):
        opbench.run("Square", "nope", store=store)


def test_the_readme_python_example_runs(tmp_path: Path) -> None:
    """The README's `Python API` block, as written, in a fresh interpreter (torch and JAX on the CPU)."""
    pytest.importorskip("pandas")
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    proc = python(code, OPBENCH_STORE=str(tmp_path / "s.sqlite"))
    if proc.returncode != 0 and "is not installed" in proc.stderr:
        pytest.skip(proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stderr
    assert "RMSNorm / dim=16x32x23 dim=23" in proc.stdout and "ratio" in proc.stdout
