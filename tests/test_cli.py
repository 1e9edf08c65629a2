"""The CLI: bad input is one line and exit 2; importing opbench imports no framework; a real quick run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def opbench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opbench", *args], capture_output=True, text=True, timeout=timeout)


def test_import_opbench_imports_no_framework() -> None:
    code = ("import sys, opbench, opbench.catalog, opbench.engine.runner, opbench.cli, opbench.report.tables; "
            "print([m for m in ('torch', 'mlx', 'jax') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("args, needle", [
    (["run", "--backends", "nope"], "valid choices"),
    (["run", "--ops", "NoSuchOp"], "valid choices"),
    (["run", "--preset", "huge"], "valid choices"),
    (["run", "--dtype", "float8"], "valid choices"),
    (["run", "--pairs", "cuda-cpu"], "A/B"),
    (["list", "--ops", "Softmaxx"], "valid choices"),
    (["nosuchcommand"], "invalid choice"),
    (["run", "--budget", "abc"], "not a number"),
    (["run", "--processes", "0"], "--processes: '0' is out of range"),
    (["run", "--processes", "2", "--no-isolate"], "drop --no-isolate"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    proc = opbench(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert needle in proc.stderr


def test_list_and_backends() -> None:
    listing = opbench("list", "--format", "md")
    assert listing.returncode == 0 and "Argmax / dim=64x1024x128 axi=0" in listing.stdout
    backends = opbench("backends", "--format", "md")
    assert backends.returncode == 0
    for name in ("mlx_gpu", "mlx_gpu_compile", "mlx_cpu", "mps", "cpu", "cuda", "cuda_compile"):
        assert f"| {name}" in backends.stdout


def test_quick_run_writes_json_and_tables(tmp_path) -> None:
    proc = opbench("run", "--preset", "quick", "--backends", "cpu", "--ops", "ReLU,Sum", "--budget", "0.02",
                   "--min-samples", "3", "--out", str(tmp_path), "--format", "md")
    if "unknown backend" in proc.stderr or "no backend" in proc.stderr:
        pytest.skip("torch is not installed")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["schema_version"] == 1 and data["machine"]["logical_cores"]
    results = data["results"]
    assert {r["family"] for r in results} == {"ReLU", "Sum"}
    for r in results:
        if r["status"] == "unsupported":
            continue
        assert r["status"] == "ok", r
        assert len(r["samples_ms"]) >= 3 and r["median_ms"] > 0 and r["rel_error"] <= r["tolerance"]
    assert "Detailed benchmark" in proc.stdout and "| ReLU" in proc.stdout
    assert (tmp_path / "detailed.md").exists() and (tmp_path / "average.md").exists()


def test_help_of_every_command_works() -> None:
    from opbench.cli import COMMAND_MODULES, main

    with pytest.raises(SystemExit) as top:
        main(["--help"])
    assert top.value.code == 0
    names = {"catalog": "list", "importing": "import"}
    for module in COMMAND_MODULES:
        with pytest.raises(SystemExit) as sub:
            main([names.get(module, module), "--help"])
        assert sub.value.code == 0, module


def test_run_help_has_a_description_examples_and_the_backend_names(capsys) -> None:
    from opbench.backends import backend_names
    from opbench.cli import main

    with __import__("pytest").raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "float64 reference" in text and "examples:" in text and "opbench run --resume RUN_ID" in text
    assert all(name in text for name in backend_names())
