"""`opbench runs`, `show` and `export` on a stored run; bad stores and ids are one line and exit 2."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from opbench.cli import main
from opbench.results import CaseResult, Run
from opbench.results.store import Store


def make_run() -> Run:
    def res(case: str, backend: str, samples: tuple[float, ...], status: str = "ok", **kw) -> CaseResult:
        return CaseResult(case=case, family=case.split(" /")[0], backend=backend, dtype="float32", status=status,
                          samples_ms=samples, rel_error=1e-7 if samples else None, tolerance=1e-5, **kw)

    results = (res("ReLU / dim=16x16", "mlx_cpu", (1.0, 1.0, 1.0)),
               res("ReLU / dim=16x16", "cpu", (2.0, 2.0, 2.0), process_medians_ms=(2.0, 2.5)),
               res("Sum / dim=16 axi=0", "mlx_cpu", (3.0, 3.0, 3.0)),
               res("Sum / dim=16 axi=0", "cpu", (), status="crashed", error="worker died with SIGSEGV"))
    return Run(run_id="20260102-030405-beef", created="2026-01-02T03:04:05+00:00", preset="quick",
               dtype="float32", machine={"cpu_model": "Test CPU", "logical_cores": 2, "ram_gb": 8.0,
                                         "os": "Linux 6", "python": "3.11.7"},
               settings={"backends": ["mlx_cpu", "cpu"]}, backends={"cpu": {"available": True}}, results=results)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.save_run(make_run())
        s.save_run(Run(run_id="m3max-seed", created="2024-01-01", preset="seed", dtype="float32", imported=True,
                       source="seed.txt", label="M3 Max (seed)",
                       results=(CaseResult(case="ReLU / dim=16x16", family="ReLU", backend="mps", dtype="float32",
                                           status="ok", published_ms=0.5),)))
    return path


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_lists_every_run(store: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = cli(capsys, "runs", "--store", str(store), "--format", "md")
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("| 20260102") or line.startswith("| m3max")]
    assert len(lines) == 2
    mine = next(line for line in lines if "beef" in line)
    cells = [c.strip() for c in mine.strip("|").split("|")]
    assert cells[:2] == ["20260102-030405-beef", "2026-01-02T03:04:05+00:00"]
    assert "Test CPU" in cells[2] and cells[3:8] == ["quick", "float32", "mlx_cpu,cpu", "4", ""]
    imported = [c.strip() for c in next(line for line in lines if "m3max" in line).strip("|").split("|")]
    assert imported[2:] == ["M3 Max (seed)", "seed", "float32", "mps", "1", "yes", "M3 Max (seed)"]
    assert cli(capsys, "runs", "--store", str(store.parent / "none.sqlite"))[1].startswith("no runs stored yet")


def test_show_renders_the_seed_tables(store: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = cli(capsys, "show", "2026", "--store", str(store), "--format", "md")
    assert code == 0
    assert out.startswith("# run 20260102-030405-beef")
    assert "| ReLU / dim=16x16" in out and "1.00" in out and "2.00" in out
    assert "mlx_cpu/cpu speedup" in out and "+100%" in out  # cpu 2 ms vs mlx_cpu 1 ms
    assert "SIGSEGV" in out  # the crash is explained under the table
    code, out, _ = cli(capsys, "show", "latest", "--store", str(store), "--pairs", "cpu/mlx_cpu", "--geomean")
    assert code == 0 and "cpu/mlx_cpu" in out


def test_export_json_round_trips(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out_file = tmp_path / "exported.json"
    assert cli(capsys, "export", "20260102", "--store", str(store), "--format", "json", "--out", str(out_file))[0] == 0
    back = Run.from_dict(json.loads(out_file.read_text()))
    assert back == make_run()
    code, out, _ = cli(capsys, "export", "m3max", "--store", str(store))  # default json, to stdout
    assert code == 0
    imported = Run.from_dict(json.loads(out))
    assert imported.imported and imported.results[0].published_ms == 0.5
    with Store(tmp_path / "other.sqlite") as other:  # what `opbench import` does with it
        other.save_run(back)
        assert other.load_run(back.run_id) == back


def test_export_csv_and_md(store: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = cli(capsys, "export", "2026", "--store", str(store), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 4
    relu_cpu = next(r for r in rows if r["case"] == "ReLU / dim=16x16" and r["backend"] == "cpu")
    assert float(relu_cpu["median_ms"]) == 2.0 and relu_cpu["samples_ms"] == "2.0 2.0 2.0" and relu_cpu["n"] == "3"
    assert relu_cpu["process_medians_ms"] == "2.0 2.5" and relu_cpu["noisy"] == "1"  # processes 25 % apart
    crashed = next(r for r in rows if r["status"] == "crashed")
    assert crashed["median_ms"] == "" and "SIGSEGV" in crashed["error"]
    code, out, _ = cli(capsys, "export", "2026", "--store", str(store), "--format", "md")
    assert code == 0 and "Detailed benchmark" in out and "Average benchmark" in out


def opbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opbench", *args], capture_output=True, text=True, timeout=120)


def test_bad_store_and_ids_are_one_line_exit_2(store: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"\x00garbage" * 512)
    foreign = tmp_path / "foreign.sqlite"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE moz_places (id INTEGER)")
    db.commit()
    db.close()
    cases = [
        (["show", "nope", "--store", str(store)], "unknown run id 'nope'; known: "),
        (["export", "latest", "--store", str(corrupt)], "not a valid SQLite database"),
        (["runs", "--store", str(foreign)], "not an opbench store"),
        (["show", "latest", "--store", str(tmp_path / "missing.sqlite")], "no opbench store"),
        (["export", "2026", "--store", str(store), "--format", "xml"], "invalid choice"),
        (["export", "2026", "--store", str(store), "--out", str(tmp_path)], "is a directory"),
    ]
    for args, needle in cases:
        proc = opbench(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert needle in proc.stderr, (args, proc.stderr)
    assert corrupt.read_bytes() == b"\x00garbage" * 512
