"""Users' own families (`--catalog FILE.py`): loading, one-line errors for bad files, measuring on every backend
with an implementation (in worker processes), `unsupported` elsewhere, recorded digests and resume."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from opbench.catalog import FAMILIES, all_cases, select_cases
from opbench.catalog.user import load_catalog, unload_catalogs
from opbench.errors import UsageError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rmsnorm.py"

# A catalog whose only implementation is the NumPy fake backend's (`opbench.testing.fakes`): fast, no framework.
NUMPY_CATALOG = '''
import numpy as np
from opbench import CustomFamily

def numpy_square(case):
    return lambda x: x * x

SQUARE = CustomFamily(name="Square", cases=["8x16", [(4, 4)]], reference=lambda case, x: x * x,
                      flops=lambda case: float(np.prod(case.shapes[0])), implementations={"numpy": numpy_square})
'''


def opbench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opbench", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def _forget_catalogs():
    yield
    unload_catalogs()


def write(tmp_path: Path, text: str, name: str = "ops.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_example_loads_registers_and_unloads() -> None:
    catalog = load_catalog(str(EXAMPLE))
    assert catalog.families == ("RMSNorm",) and len(catalog.sha256) == 64
    assert sorted(catalog.implementations["RMSNorm"]) == ["jax", "mlx", "torch"]
    case = select_cases(all_cases(), ["rmsnorm"])[0]
    assert case.name == "RMSNorm / dim=64x1024x512 dim=512"
    inputs = case.scaled(lambda d: min(d, 8)).make_inputs()
    ref = case.scaled(lambda d: min(d, 8)).reference(inputs)
    x, w = (a.astype(np.float64) for a in inputs)
    assert np.allclose(ref, x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * w)
    assert case.flops == 4 * 64 * 1024 * 512 + 3 * 64 * 1024
    assert case.bytes_moved() == 4 * (2 * 64 * 1024 * 512 + 512)
    assert load_catalog(str(EXAMPLE)) is catalog  # idempotent
    unload_catalogs()
    assert "RMSNorm" not in FAMILIES and not [c for c in all_cases() if c.family == "RMSNorm"]


BAD_CATALOGS = [
    ("def broken(:\n", "syntax error at line 1"),
    ("import no_such_module_xyz\n", "importing it raised ModuleNotFoundError"),
    ("x = 1\n", "defines no opbench.CustomFamily"),
    ("from opbench import CustomFamily\nF = CustomFamily(name='F', cases=['4x4'], flops=lambda c: 1,"
     " implementations={'torch': lambda c: None})\n", "needs a reference"),
    ("from opbench import CustomFamily\nF = CustomFamily(name='F', cases=['4xq'], reference=lambda c, x: x,"
     " flops=lambda c: 1, implementations={'torch': lambda c: None})\n", "bad case shapes"),
    ("from opbench import CustomFamily\nF = CustomFamily(name='F', cases=['4x4'], reference=lambda c, x: x,"
     " flops=lambda c: 1, implementations={'tensorflow': lambda c: None})\n", "unknown framework 'tensorflow'"),
    ("from opbench import CustomFamily\nF = CustomFamily(name='F', cases=['4x4'], reference=lambda c, x: x,"
     " flops=lambda c: 1, implementations={})\n", "has no implementations"),
    ("from opbench import CustomFamily\nF = CustomFamily(name='ReLU', cases=['4x4'], reference=lambda c, x: x,"
     " flops=lambda c: 1, implementations={'torch': lambda c: None})\n", "built-in family"),
    ("from opbench import CustomFamily\nF = CustomFamily(name='F', cases=['4x4 4'], reference=lambda c, x: x,"
     " flops=lambda c: 1, implementations={'torch': lambda c: None})\n", "reference/flops/output_shape raised"),
    ("from opbench import CustomFamily\nF = CustomFamily(name='F', cases=['4x4'], reference=lambda c, x: x.T[:2],"
     " flops=lambda c: 1, implementations={'torch': lambda c: None})\n", "the reference returned shape"),
    ("import numpy as np\nfrom opbench import CustomFamily\nF = CustomFamily(name='F', cases=['4x4'],"
     " inputs=lambda c, rng, dt: [np.zeros((3, 3))], reference=lambda c, x: x, flops=lambda c: 1,"
     " implementations={'torch': lambda c: None})\n", "input 0 has shape (3, 3)"),
    ("from opbench import CustomFamily\nF = CustomFamily(name='F', cases=5, reference=lambda c, x: x,"
     " flops=lambda c: 1, implementations={'torch': lambda c: None})\n", "cases must be a non-empty list"),
    ("from opbench import CustomFamily\nF = CustomFamily(name='F', cases=[{'shapes': '4x4', 'axis': 7}],"
     " reference=lambda c, x: x, flops=lambda c: 1, implementations={'torch': lambda c: None})\n",
     "case axis 7 is out of range"),
]


@pytest.mark.parametrize("text, needle", BAD_CATALOGS)
def test_bad_catalog_is_one_line_naming_the_file(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as info:
        load_catalog(str(path))
    message = str(info.value)
    assert needle in message and str(path) in message and "\n" not in message


def test_bad_catalog_on_the_cli_exits_2_before_anything_is_written(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    for path in (tmp_path / "missing.py", write(tmp_path, "def broken(:\n")):
        proc = opbench("run", "--catalog", str(path), "--store", str(store), "--out", str(tmp_path / "out"))
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert str(path) in proc.stderr
    assert not store.exists() and not (tmp_path / "out").exists()
    proc = opbench("list", "--catalog", "no_such_entry_point")
    assert proc.returncode == 2 and "opbench.catalogs" in proc.stderr


def test_list_shows_the_catalogs_cases(tmp_path: Path) -> None:
    proc = opbench("list", "--catalog", str(EXAMPLE), "--format", "md")
    assert proc.returncode == 0, proc.stderr
    assert "RMSNorm / dim=64x1024x512 dim=512" in proc.stdout and "Argmax" not in proc.stdout


def test_catalog_measures_in_workers_and_is_unsupported_without_implementation(tmp_path: Path) -> None:
    """In process with a fake NumPy backend (the worker loads the catalog itself: it is spawned)."""
    from opbench import cli
    from opbench.testing.fakes import register_fakes

    register_fakes()
    path = write(tmp_path, NUMPY_CATALOG)
    out = tmp_path / "out"
    code = cli.main(["run", "--catalog", str(path), "--backends", "fake_numpy,cpu", "--budget", "0.01",
                     "--min-samples", "3", "--store", str(tmp_path / "s.sqlite"), "--out", str(out), "--format", "md"])
    assert code == 0
    data = json.loads((out / "run.json").read_text())
    by = {(r["backend"], r["case"]): r for r in data["results"]}
    assert by[("fake_numpy", "Square / dim=8x16")]["status"] == "ok"
    assert by[("fake_numpy", "Square / dim=4x4")]["status"] == "ok"
    cpu = by[("cpu", "Square / dim=8x16")]
    assert cpu["status"] == "unsupported" and "implements numpy" in cpu["error"]
    [record] = data["settings"]["catalogs"]
    assert record["path"] == str(path.resolve()) and record["families"] == ["Square"] and len(record["sha256"]) == 64
    assert data["settings"]["ops"] == "Square"


def test_resume_reloads_the_catalog_and_refuses_a_changed_file(tmp_path: Path) -> None:
    from opbench import cli
    from opbench.results.store import open_store
    from opbench.testing.fakes import register_fakes

    register_fakes()
    path = write(tmp_path, NUMPY_CATALOG)
    store = str(tmp_path / "s.sqlite")
    common = ["--budget", "0.01", "--min-samples", "3", "--store", store, "--format", "md"]
    assert cli.main(["run", "--catalog", str(path), "--backends", "fake_numpy", *common,
                     "--out", str(tmp_path / "a")]) == 0
    run_id = open_store(store).load_run("latest").run_id
    unload_catalogs()
    assert cli.main(["run", "--resume", run_id, *common, "--out", str(tmp_path / "b")]) == 0  # reloaded
    unload_catalogs()
    path.write_text(NUMPY_CATALOG + "\n# edited\n")
    from opbench.commands.run import resumed_catalogs

    with pytest.raises(UsageError, match=f"run {run_id} used catalog .* the file changed"):
        resumed_catalogs(None, open_store(store).load_run(run_id))
    assert cli.main(["run", "--resume", run_id, *common]) == 2  # the CLI: that one line, exit 2


def test_worker_refuses_a_catalog_that_changed_after_the_parent_loaded_it(tmp_path: Path) -> None:
    from opbench.catalog import Case
    from opbench.engine.timing import TimingSettings
    from opbench.engine.worker import BackendWorker
    from opbench.testing.fakes import register_fakes

    register_fakes()
    path = write(tmp_path, NUMPY_CATALOG)
    load_catalog(str(path))
    path.write_text(NUMPY_CATALOG + "\n# edited\n")
    with BackendWorker("fake_numpy", 60) as worker:
        result = worker.measure(Case("Square", ((4, 4),)), "float32", 0, TimingSettings(budget_s=0.01))
    assert result.status == "error" and "file changed" in result.error


@pytest.mark.parametrize("backends", ["cpu,mlx_cpu,jax_cpu"])
def test_example_runs_and_verifies_on_torch_mlx_and_jax(tmp_path: Path, backends: str) -> None:
    """The shipped example, end to end through the CLI (quick shapes): verified on every CPU backend here."""
    proc = opbench("run", "--catalog", str(EXAMPLE), "--preset", "quick", "--backends", backends, "--budget",
                   "0.02", "--min-samples", "3", "--out", str(tmp_path), "--format", "md",
                   "--store", str(tmp_path / "s.sqlite"))
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "run.json").read_text())
    statuses = {(r["backend"], r["case"]): r["status"] for r in data["results"]}
    available = {b for b, info in data["backends"].items() if info["available"]}
    assert available, data["backends"]
    for (backend, case), status in statuses.items():
        assert case.startswith("RMSNorm / ")
        assert status == ("ok" if backend in available else "unsupported"), (backend, case, status)
    assert len(statuses) == 3 * len(backends.split(","))
    assert "RMSNorm" in (tmp_path / "detailed.md").read_text()
