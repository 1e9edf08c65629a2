"""`opbench run` writes to the store as it goes; kill -9 loses at most the case in flight; resume and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opbench.catalog import preset_cases, select_cases
from opbench.cli import main
from opbench.results.store import Store
from opbench.testing.fakes import register_fakes

FAST = ["--preset", "quick", "--budget", "0.01", "--min-samples", "3", "--format", "md"]
CLI_WITH_FAKES = ("from opbench.testing.fakes import register_fakes; register_fakes(); "
                  "from opbench.cli import main; raise SystemExit(main())")
N_SUM = len({c.name for c in select_cases(preset_cases("quick"), ["Sum"])})


@pytest.fixture(scope="module", autouse=True)
def fakes() -> None:
    register_fakes()


def stored_pairs(path: Path) -> list[tuple[str, str, str]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT backend, case_name, status FROM results ORDER BY seq").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        db.close()


def test_run_stores_every_result_and_the_run_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = tmp_path / "s.sqlite"
    assert main(["run", "--backends", "fake_numpy,fake_crash", "--ops", "ReLU,Sum", "--store", str(store),
                 "--out", str(tmp_path / "out"), *FAST]) == 0
    with Store(store) as s:
        run = s.load_run("latest")
    assert run.preset == "quick" and run.settings["ops"] == "ReLU,Sum" and run.machine["cpu_model"]
    statuses = {(r.backend, r.family, r.status) for r in run.results}
    assert ("fake_crash", "Sum", "crashed") in statuses and ("fake_numpy", "Sum", "ok") in statuses
    assert ("fake_crash", "ReLU", "ok") in statuses  # the run went on after the crashes
    n_cases = len({c.name for c in select_cases(preset_cases("quick"), ["ReLU", "Sum"])})
    assert len(run.results) == 2 * n_cases  # one result per (backend, case); quick may repeat a case name
    on_disk = json.loads((tmp_path / "out" / "run.json").read_text())
    assert on_disk["run_id"] == run.run_id and len(on_disk["results"]) == len(run.results)
    assert "| Sum / dim=" in capsys.readouterr().out


def test_resume_measures_only_what_is_missing(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    assert main(["run", "--backends", "fake_numpy", "--ops", "Sum", "--store", str(store),
                 "--out", str(tmp_path / "a"), *FAST]) == 0
    with Store(store) as s:
        run = s.load_run("latest")
        first = {r.case: r.samples_ms for r in run.results}
        # forget two results, as if the run had been interrupted
        s._db.execute("DELETE FROM results WHERE seq IN (SELECT seq FROM results ORDER BY seq DESC LIMIT 2)")
    # resumed with the run's own options (no --preset/--ops/--backends given) and one more backend
    assert main(["run", "--resume", run.run_id[:10], "--store", str(store), "--out", str(tmp_path / "b"),
                 "--format", "md"]) == 0
    assert main(["run", "--resume", "latest", "--backends", "fake_numpy,fake_memoryerror", "--store",
                 str(store), "--out", str(tmp_path / "c"), "--format", "md"]) == 0
    with Store(store) as s:
        resumed = s.load_run(run.run_id)
        assert s.run_ids() == [run.run_id]  # no new run
    by_case = {(r.backend, r.case): r for r in resumed.results}
    assert len(by_case) == len(resumed.results) == 2 * N_SUM
    kept = [c for c in first if by_case[("fake_numpy", c)].samples_ms == first[c]]
    assert len(kept) == N_SUM - 2  # the two forgotten ones were measured again, the others were not
    assert {r.status for r in resumed.results if r.backend == "fake_memoryerror"} == {"oom"}
    assert len(json.loads((tmp_path / "c" / "run.json").read_text())["results"]) == 2 * N_SUM


def test_resume_refuses_another_machine_and_imported_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = tmp_path / "s.sqlite"
    assert main(["run", "--backends", "fake_numpy", "--ops", "ReLU", "--store", str(store),
                 "--out", str(tmp_path / "a"), *FAST]) == 0
    with Store(store) as s:
        s._db.execute("""UPDATE runs SET machine = json_set(machine, '$.cpu_model', 'Apple M3 Max')""")
    capsys.readouterr()
    assert main(["run", "--resume", "latest", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "another machine" in err and "cpu_model" in err and "Apple M3 Max" in err
    with Store(store) as s:
        s._db.execute("UPDATE runs SET imported = 1")
    assert main(["run", "--resume", "latest", "--store", str(store)]) == 2
    assert "read-only" in capsys.readouterr().err
    assert main(["run", "--resume", "nope", "--store", str(store)]) == 2
    assert "unknown run id 'nope'; known:" in capsys.readouterr().err


def _start_slow_run(tmp_path: Path, store: Path, delay: float) -> subprocess.Popen:
    env = {**os.environ, "OPBENCH_FAKE_DELAY_S": str(delay)}
    return subprocess.Popen([sys.executable, "-c", CLI_WITH_FAKES, "run", "--backends", "fake_slow", "--ops", "Sum",
                             "--store", str(store), "--out", str(tmp_path / "out"), *FAST],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _wait_for_results(store: Path, proc: subprocess.Popen, n: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while len(stored_pairs(store)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no results stored in time"
        time.sleep(0.05)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_kill_9_loses_at_most_the_case_in_flight_and_resume_finishes(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    proc = _start_slow_run(tmp_path, store, delay=0.5)
    _wait_for_results(store, proc, 2)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: parent and worker
    proc.communicate()
    kept = stored_pairs(store)
    assert 2 <= len(kept) < N_SUM and all(status == "ok" for _, _, status in kept)
    with Store(store) as s:  # the store is intact and the run is there
        run_id = s.load_run("latest").run_id
    env = {**os.environ, "OPBENCH_FAKE_DELAY_S": "0"}
    done = subprocess.run([sys.executable, "-c", CLI_WITH_FAKES, "run", "--resume", run_id, "--store", str(store),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    final = stored_pairs(store)
    assert final[: len(kept)] == kept and len(final) == N_SUM
    assert len({case for _, case, _ in final}) == N_SUM


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    proc = _start_slow_run(tmp_path, store, delay=0.5)
    _wait_for_results(store, proc, 1)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C does: parent and worker
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Traceback" not in out
    with Store(store) as s:
        run_id = s.load_run("latest").run_id
    assert f"resume with: opbench run --resume {run_id} --store {store}" in err
    kept = stored_pairs(store)
    assert 1 <= len(kept) < N_SUM
    assert len(json.loads((tmp_path / "out" / "run.json").read_text())["results"]) == len(kept), err


def test_store_failing_mid_run_is_one_line_with_the_resume_command(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from opbench.errors import UsageError

    calls = []
    real_add = Store.add_result

    def flaky_add(self: Store, run_id: str, result) -> None:
        calls.append(result.case)
        if len(calls) == 2:
            raise UsageError(f"store {self.path} is locked by another process (waited 2 s)")
        real_add(self, run_id, result)

    monkeypatch.setattr(Store, "add_result", flaky_add)
    store = tmp_path / "s.sqlite"
    code = main(["run", "--backends", "fake_numpy", "--ops", "Sum", "--store", str(store), "--out",
                 str(tmp_path / "out"), *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "locked by another process" in err[-1] and "1 results kept in the store" in err[-1]
    assert "resume with: opbench run --resume" in err[-1]
    assert len(stored_pairs(store)) == 1
