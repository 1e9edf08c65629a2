"""The store on both back ends (SQLite and PostgreSQL): round trips, ids, migration, and every way a store
file can be bad (the PostgreSQL-only cases are in test_store_postgres.py)."""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from opbench.errors import UsageError
from opbench.results import CaseResult, Run
from opbench.results.resolve import load_run
from opbench.results.store import MIGRATIONS, SCHEMA_VERSION, Store, default_store_path, open_store


def result(case: str = "ReLU / dim=4x4", backend: str = "cpu", status: str = "ok", **kw) -> CaseResult:
    base = dict(case=case, family=case.split(" /")[0], backend=backend, dtype="float32", status=status)
    if status == "ok":
        base.update(samples_ms=(1.0, 1.5, 2.0), calls_per_sample=10, first_call_ms=5.0, warmup_calls=3,
                    stop_reason="ci", rel_error=1e-7, tolerance=1e-5, flops=16, bytes=128)
    base.update(kw)
    return CaseResult(**base)


def make_run(run_id: str = "20260101-000000-abcd", created: str = "2026-01-01T00:00:00+00:00",
             results: tuple[CaseResult, ...] = (), **kw) -> Run:
    return Run(run_id=run_id, created=created, preset="quick", dtype="float32",
               machine={"cpu_model": "Test CPU", "logical_cores": 2, "packages": {"opbench": "0.1.0"}},
               settings={"budget_s": 0.1}, backends={"cpu": {"available": True, "reason": ""}},
               results=results, **kw)


@pytest.fixture
def store(store_location: str) -> Store:
    with Store(store_location) as s:
        yield s


def test_save_and_load_round_trip_exactly(store: Store) -> None:
    results = (result(), result("Sum / dim=4", backend="mlx_cpu", status="error", error="boom", detail="tb"),
               result("Softmax / dim=4", rel_error=math.nan, published_ms=None),
               result("Conv / x", status="oom", error="out of memory"),
               result("ReLU / dim=8", process_medians_ms=(1.0, 2.0, 1.5)),
               result("ReLU / dim=16", samples_ms=(1.0, 1.1, 2.0, 2.1, 2.2), process_medians_ms=(1.05, 2.1),
                      unit_sizes=(2, 3)))
    run = make_run(results=results, label="lbl", source="here")
    store.save_run(run)
    back = store.load_run(run.run_id)
    assert back.to_dict().keys() == run.to_dict().keys()
    assert back.results[2].rel_error is not None and math.isnan(back.results[2].rel_error)
    same = [r for i, r in enumerate(back.results) if i != 2]
    assert same == [r for i, r in enumerate(results) if i != 2]
    assert (back.run_id, back.machine, back.settings, back.backends, back.label, back.source) == (
        run.run_id, run.machine, run.settings, run.backends, "lbl", "here")


def test_add_result_appends_and_replaces_same_key(store: Store) -> None:
    store.create_run(make_run())
    store.add_result("20260101-000000-abcd", result(samples_ms=(1.0,)))
    store.add_result("20260101-000000-abcd", result("Sum / dim=4"))
    store.add_result("20260101-000000-abcd", result(samples_ms=(3.0, 3.0)))  # re-measured: replaces
    back = store.load_run("20260101-000000-abcd")
    assert [(r.case, r.samples_ms) for r in back.results] == [("Sum / dim=4", (1.0, 1.5, 2.0)),
                                                              ("ReLU / dim=4x4", (3.0, 3.0))]
    assert store.result_counts() == {"20260101-000000-abcd": 2}


def test_imported_run_keeps_published_ms(store: Store) -> None:
    r = CaseResult(case="Sum / dim=4", family="Sum", backend="mps", dtype="float32", status="ok",
                   published_ms=1.25)
    store.save_run(make_run(results=(r,), imported=True, source="seed.md"))
    back = store.load_run("latest")
    assert back.imported and back.results == (r,) and back.results[0].median_ms == 1.25


def test_ids_prefix_latest_unknown_and_ambiguous(store: Store) -> None:
    store.create_run(make_run("20260101-000000-aaaa", "2026-01-01T00:00:00+00:00"))
    store.create_run(make_run("20260102-000000-bbbb", "2026-01-02T00:00:00+00:00"))
    store.create_run(make_run("20260102-000000-bbcc", "2026-01-01T12:00:00+00:00"))
    assert store.load_run("latest").run_id == "20260102-000000-bbbb"
    assert store.load_run("20260101").run_id == "20260101-000000-aaaa"
    assert [r.run_id for r in store.list_runs()] == ["20260102-000000-bbbb", "20260102-000000-bbcc",
                                                     "20260101-000000-aaaa"]
    assert all(r.results == () for r in store.list_runs())
    with pytest.raises(UsageError, match="ambiguous"):
        store.load_run("20260102")
    with pytest.raises(UsageError, match=r"unknown run id 'nope'; known: 20260102-000000-bbbb"):
        store.load_run("nope")
    with pytest.raises(UsageError, match="already in the store"):
        store.create_run(make_run("20260101-000000-aaaa"))
    with pytest.raises(UsageError, match="unknown run id"):
        store.add_result("no-such-run", result())
    store.delete_run("20260101")
    assert "20260101-000000-aaaa" not in store.run_ids()
    assert store.result_counts() == {}


def test_save_run_is_one_transaction(store: Store) -> None:
    store.create_run(make_run("20260101-000000-aaaa"))
    bad = make_run("20260101-000000-aaaa", results=(result(),))
    with pytest.raises(UsageError):
        store.save_run(bad)
    # a failure in the middle of a batch leaves nothing behind
    broken = make_run("20260105-000000-cccc", results=(result(), result(samples_ms=("x",))))  # type: ignore[arg-type]
    with pytest.raises((UsageError, ValueError, TypeError)):
        store.save_run(broken)
    assert store.run_ids() == ["20260101-000000-aaaa"]
    assert store.result_counts() == {}


def test_migrates_a_version_1_store(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO runs VALUES ('old-run', '2025-01-01T00:00:00+00:00', 'seed', 'float32', '{}', '{}', "
               "'{}', 0, '')")
    db.execute("INSERT INTO results (run_id, case_name, family, backend, dtype, status, samples_ms) VALUES "
               "('old-run', 'Sum / dim=4', 'Sum', 'cpu', 'float32', 'ok', '[2.0, 4.0]')")
    db.close()
    with Store(path) as s:
        run = s.load_run("old-run")
        assert run.results[0].samples_ms == (2.0, 4.0) and run.results[0].published_ms is None
        assert run.label == ""
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("SELECT median_ms FROM results").fetchone() == (None,)  # column added by 1 -> 2
    assert db.execute("SELECT process_medians_ms FROM results").fetchone() == ("[]",)  # added by 2 -> 3
    assert db.execute("SELECT unit_sizes FROM results").fetchone() == ("[]",)  # added by 3 -> 4
    db.close()


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(UsageError, match="not a valid SQLite database"):
        Store(path)
    assert path.read_bytes() == b"this is not sqlite at all" * 100


def test_foreign_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(UsageError, match=r"not an opbench store.*customers"):
        Store(path)
    db = sqlite3.connect(path)
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["customers"]


def test_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(UsageError, match="newer than this opbench"):
        Store(path)


def test_read_only_store_reads_but_refuses_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ro.sqlite"
    with Store(path) as s:
        s.save_run(make_run(results=(result(),)))
    path.chmod(0o444)
    if os.name != "posix" or os.geteuid() == 0:  # root ignores file modes: let SQLite open the file read-only

        real_connect = sqlite3.connect
        monkeypatch.setattr(sqlite3, "connect", lambda p, **kw: real_connect(
            f"file:{p}?mode=ro", uri=True, **kw))
    try:
        with Store(path) as s:
            assert s.load_run("latest").results == (result(),)
            with pytest.raises(UsageError, match="read-only"):
                s.add_result("20260101-000000-abcd", result("Sum / dim=4"))
            assert len(s.load_run("latest").results) == 1
    finally:
        path.chmod(0o644)


def test_locked_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite"
    with Store(path) as s:
        s.create_run(make_run())
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sqlite3, sys, time
        db = sqlite3.connect({str(path)!r}, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        print("locked", flush=True)
        time.sleep(30)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(UsageError, match="locked by another process"), Store(path) as s:
            s.add_result("20260101-000000-abcd", result())
    finally:
        holder.kill()
        holder.wait()
    with Store(path) as s:
        assert s.load_run("latest").results == ()


def test_default_path_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPBENCH_STORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert default_store_path() == tmp_path / "xdg" / "opbench" / "opbench.sqlite"
    monkeypatch.setenv("OPBENCH_STORE", str(tmp_path / "env.sqlite"))
    assert default_store_path() == tmp_path / "env.sqlite"
    with open_store() as s:
        assert s.path == tmp_path / "env.sqlite"
    with pytest.raises(UsageError, match="no opbench store"):
        open_store(tmp_path / "missing.sqlite", create=False)
    with pytest.raises(UsageError, match="is a directory"):
        open_store(tmp_path)


def test_resolve_load_run_from_file_or_store(tmp_path: Path) -> None:
    run = make_run(results=(result(),))
    run.to_json(tmp_path / "run.json")
    assert load_run(str(tmp_path)).results == run.results
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.save_run(run)
    assert load_run("latest", store=path).results == run.results
    assert load_run("2026", store=str(path)).run_id == run.run_id
    with pytest.raises(UsageError, match="unknown run id 'zzz'"):
        load_run("zzz", store=path)
    with pytest.raises(UsageError, match="not a run file or run directory, and no opbench store"):
        load_run("zzz", store=tmp_path / "none.sqlite")


def test_many_processes_create_and_write_one_store_at_once(store_location: str) -> None:
    """Several processes open a store that does not exist yet at the same moment, then each writes its run."""
    writers = 4
    code = textwrap.dedent(f"""
        import sys, time
        from opbench.results import CaseResult, Run
        from opbench.results.store import Store
        i, start = int(sys.argv[1]), float(sys.argv[2])
        time.sleep(max(0.0, start - time.time()))  # all open the new store at the same moment
        with Store({store_location!r}) as s:
            s.create_run(Run(run_id=f"run-{{i}}", created="2026-01-01", preset="quick", dtype="float32"))
            for k in range(5):
                s.add_result(f"run-{{i}}", CaseResult(case=f"Sum / dim={{k + 1}}", family="Sum", backend="cpu",
                                                      dtype="float32", status="ok", samples_ms=(1.0,)))
        """)
    start = str(time.time() + 2.0)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i), start], stderr=subprocess.PIPE, text=True)
             for i in range(writers)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    with Store(store_location) as s:
        assert sorted(s.run_ids()) == [f"run-{i}" for i in range(writers)]
        assert s.result_counts() == {f"run-{i}": 5 for i in range(writers)}


def test_latest_prefers_a_run_measured_on_this_host_over_newer_ones(tmp_path) -> None:
    import platform

    from opbench.results import Run
    from opbench.results.store import Store

    with Store(tmp_path / "s.sqlite") as s:
        s.save_run(Run("mine", "2026-01-01T00:00:00", "quick", "float32", machine={"hostname": platform.node()}))
        s.save_run(Run("theirs", "2026-01-02T00:00:00", "quick", "float32", machine={"hostname": "elsewhere"}))
        s.save_run(Run("table", "2026-01-03T00:00:00", "published", "float32", imported=True))
        assert s.resolve("latest") == "mine"
