"""Phase times on every result (`opbench.engine.phases`): measured, combined over passes, stored, and read back."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from opbench.catalog import Case
from opbench.engine.passes import combine
from opbench.engine.phases import MEASURING, PHASES, PhaseClock, add, measuring_ms
from opbench.engine.runner import measure_case
from opbench.engine.timing import TimingSettings
from opbench.results import CaseResult, Run
from opbench.results.store import MIGRATIONS, SCHEMA_VERSION, Store
from opbench.testing.fakes import NumpyFake

FAST = TimingSettings(budget_s=0.02, min_samples=3, block_s=0.001, min_warmup_s=0.0)
ROOT = Path(__file__).resolve().parents[1]


def test_measure_case_records_every_phase_of_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPBENCH_REFERENCE_CACHE", str(tmp_path))  # no verdict from an earlier test's output
    backend = NumpyFake()
    backend.setup()
    result = measure_case(backend, Case("ReLU", ((64, 64),)), timing=FAST)
    assert result.status == "ok"
    worker_phases = [p for p in PHASES if p != "worker_start"]
    assert list(result.phases_ms) == worker_phases  # in PHASES order
    assert all(v >= 0 for v in result.phases_ms.values())
    # the timed phases are the timing engine's own figures
    assert result.phases_ms["first_call"] == pytest.approx(result.first_call_ms, abs=1e-3)
    assert result.phases_ms["samples"] >= sum(result.samples_ms) * result.calls_per_sample * 0.99
    assert measuring_ms(result.phases_ms) == pytest.approx(sum(result.phases_ms[p] for p in MEASURING))


def test_a_failed_case_keeps_the_phases_it_reached() -> None:
    from opbench.testing.fakes import MemoryErrorFake

    backend = MemoryErrorFake()
    backend.setup()
    result = measure_case(backend, Case("Sum", ((8, 8),), axis=0), timing=FAST)
    assert not result.timed and "inputs" in result.phases_ms


def test_clock_and_add() -> None:
    clock = PhaseClock()
    clock.add("verify", 0.002)
    clock.add("inputs", 0.001)
    clock.add("verify", 0.001)
    assert clock.rounded() == {"inputs": 1.0, "verify": 3.0}  # PHASES order
    assert add({"inputs": 1.0, "wall": 2.0}, {"inputs": 0.5, "verify": 1.0}) == {"inputs": 1.5, "wall": 2.0,
                                                                                  "verify": 1.0}


def _result(**kw) -> CaseResult:
    base = dict(case="ReLU / dim=4", family="ReLU", backend="cpu", dtype="float32", status="ok",
                samples_ms=(1.0, 1.1), phases_ms={"inputs": 2.0, "samples": 5.0, "wall": 10.0})
    base.update(kw)
    return CaseResult(**base)


def test_passes_add_their_phases() -> None:
    two = combine(combine(None, _result()), _result(phases_ms={"inputs": 1.0, "worker_start": 300.0, "wall": 4.0}))
    assert two.phases_ms == {"inputs": 3.0, "samples": 5.0, "wall": 14.0, "worker_start": 300.0}
    failed = combine(two, _result(status="timeout", samples_ms=(), phases_ms={"wall": 60.0}))
    assert failed.phases_ms["wall"] == 74.0


def test_phases_round_trip_through_run_json_and_the_store(tmp_path: Path) -> None:
    run = Run(run_id="20260101-000000-abcd", created="2026-01-01T00:00:00+00:00", preset="seed", dtype="float32",
              results=(_result(),))
    again = Run.from_dict(json.loads(json.dumps(run.to_dict())))
    assert again.results[0].phases_ms == run.results[0].phases_ms
    old = run.to_dict()
    del old["results"][0]["phases_ms"]  # a run.json written before phases were recorded
    assert Run.from_dict(old).results[0].phases_ms == {}
    with Store(tmp_path / "s.sqlite") as store:
        store.save_run(run)
        assert store.load_run(run.run_id).results[0].phases_ms == run.results[0].phases_ms


def test_a_version_5_store_migrates_and_reads_empty_phases(tmp_path: Path) -> None:
    path = tmp_path / "v5.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:5]:
        for statement in migration.split(";"):
            if statement.strip():
                db.execute(statement)
    db.execute("PRAGMA user_version = 5")
    db.execute("INSERT INTO runs (id, created, preset, dtype, machine, settings, backends) VALUES "
               "('old-run', '2025-01-01T00:00:00+00:00', 'seed', 'float32', '{}', '{}', '{}')")
    db.execute("INSERT INTO results (run_id, case_name, family, backend, dtype, status, samples_ms) VALUES "
               "('old-run', 'Sum / dim=4', 'Sum', 'cpu', 'float32', 'ok', '[2.0]')")
    db.close()
    with Store(path) as store:
        assert store.load_run("old-run").results[0].phases_ms == {}
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_breakdown_prints_the_share_spent_measuring(tmp_path: Path) -> None:
    run = Run(run_id="20260101-000000-abcd", created="2026-01-01T00:00:00+00:00", preset="seed", dtype="float32",
              backends={"cpu": {"wall_s": 0.02, "passes": 1}},
              results=(_result(phases_ms={"first_call": 1.0, "samples": 9.0, "verify": 5.0, "wall": 18.0}),
                       _result(backend="mlx_cpu")))
    path = tmp_path / "run.json"
    run.to_json(path)
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "breakdown.py"), str(path), "--json",
                          str(tmp_path / "b.json")], capture_output=True, text=True, check=True).stdout
    rows = {r["backend"]: r for r in json.loads((tmp_path / "b.json").read_text())["backends"]}
    assert rows["cpu"]["measuring_share"] == pytest.approx(0.5)  # (1 + 9) ms of 20 ms
    assert rows["cpu"]["parent_s"] == pytest.approx(0.002) and rows["cpu"]["pipe_s"] == pytest.approx(0.003)
    assert "50 %" in out
    assert rows["mlx_cpu"]["measuring_share"] == pytest.approx(0.5)  # no wall_s: its round trips (5 of 10 ms)


def test_run_json_assembled_from_cached_pieces_equals_the_run(tmp_path: Path) -> None:
    from opbench.results.files import RunDirectory

    run = Run(run_id="20260101-000000-abcd", created="2026-01-01T00:00:00+00:00", preset="seed", dtype="float32")
    store = RunDirectory(tmp_path, run, min_interval_s=0.0)
    store.write()
    assert json.loads((tmp_path / "run.json").read_text())["results"] == []
    store.add(_result())
    store.add(_result(case="ReLU / dim=8"))
    store.add(_result(samples_ms=(3.0,), phases_ms={"wall": 1.0}))  # a later pass replaces the first result
    assert json.loads((tmp_path / "run.json").read_text()) == json.loads(json.dumps(store.run.to_dict()))
    assert [r["case"] for r in json.loads((tmp_path / "run.json").read_text())["results"]] == \
        ["ReLU / dim=8", "ReLU / dim=4"]


def test_run_json_is_rewritten_at_most_once_an_interval_and_flush_writes_the_rest(tmp_path: Path) -> None:
    """Rewriting the growing run.json after every result cost 8.9 ms per result while the worker waited; it is
    written for the first result, then not again within `min_interval_s`, and `flush` writes what is left."""
    from opbench.results.files import RunDirectory

    run = Run(run_id="20260101-000000-abcd", created="2026-01-01T00:00:00+00:00", preset="seed", dtype="float32")
    store = RunDirectory(tmp_path, run, min_interval_s=3600.0)
    store.add(_result())
    store.add(_result(case="ReLU / dim=8"))
    on_disk = json.loads((tmp_path / "run.json").read_text())["results"]
    assert [r["case"] for r in on_disk] == ["ReLU / dim=4"] and store.unwritten == 1
    store.flush()
    assert len(json.loads((tmp_path / "run.json").read_text())["results"]) == 2 and store.unwritten == 0
    mtime = (tmp_path / "run.json").stat().st_mtime_ns
    store.flush()  # nothing new: no write
    assert (tmp_path / "run.json").stat().st_mtime_ns == mtime
