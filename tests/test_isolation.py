"""Worker isolation: a planted segfault, hang, OS kill or MemoryError is recorded and the run goes on."""

from __future__ import annotations

import os
import sys

import pytest

from opbench.catalog import Case, preset_cases, select_cases
from opbench.engine.runner import Plan, run_plan
from opbench.engine.timing import TimingSettings
from opbench.testing.fakes import register_fakes

FAST = TimingSettings(budget_s=0.02, min_samples=3, block_s=0.002)
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="signals")


@pytest.fixture(scope="module", autouse=True)
def fakes() -> None:
    register_fakes()


def cases() -> tuple:
    """ReLU, then Sum (where the fakes misbehave), then ReLU again: the run must reach the last one."""
    relu = select_cases(preset_cases("quick"), ["ReLU"])
    total = select_cases(preset_cases("quick"), ["Sum"])
    return (relu[0], total[0], Case("ReLU", ((8, 8),)))


def run(backend: str, timeout: float = 60.0, isolate: bool = True) -> list:
    seen = []
    results = run_plan(Plan(cases(), (backend,), timing=FAST), seen.append, isolate=isolate,
                       case_timeout=timeout)
    assert results == seen
    assert [r.case for r in results] == [c.name for c in cases()]
    return results


def test_healthy_worker_measures_and_verifies() -> None:
    results = run("fake_numpy")
    assert [r.status for r in results] == ["ok", "ok", "ok"]
    assert all(r.n >= 3 and r.rel_error is not None for r in results)


@posix_only
def test_segfault_is_recorded_as_crashed_and_the_run_goes_on() -> None:
    first, crashed, after = run("fake_crash")
    assert first.status == "ok" and after.status == "ok"
    assert crashed.status == "crashed" and "SIGSEGV" in crashed.error and "Sum" in crashed.error
    assert not crashed.timed


def test_hang_is_recorded_as_timeout_and_the_run_goes_on() -> None:
    first, hung, after = run("fake_hang", timeout=1.5)
    assert first.status == "ok" and after.status == "ok"
    assert hung.status == "timeout" and "no answer after 1.5 s" in hung.error


@posix_only
def test_os_kill_is_recorded_as_oom() -> None:
    first, killed, after = run("fake_killed")
    assert (first.status, killed.status, after.status) == ("ok", "oom", "ok")
    assert "SIGKILL" in killed.error


def test_memory_error_is_oom_in_the_worker_and_in_process() -> None:
    for isolate in (True, False):
        first, oom, after = run("fake_memoryerror", isolate=isolate)
        assert (first.status, oom.status, after.status) == ("ok", "oom", "ok")
        assert "planted allocation failure" in oom.error


def test_prior_results_measure_only_what_is_missing() -> None:
    first = run_plan(Plan(cases(), ("fake_numpy",), timing=FAST), isolate=False)
    prior = {("fake_numpy", r.case, r.mode): r for r in first if r.case != cases()[1].name}  # keyed with the mode
    results = run_plan(Plan(cases(), ("fake_numpy",), timing=FAST), prior=prior)
    assert [r.case for r in results] == [cases()[1].name]


def test_setup_failure_is_an_error_on_every_case() -> None:
    results = run("fake_broken_setup")
    assert {r.status for r in results} == {"error"}
    assert all("backend setup failed: RuntimeError: planted: no device" in r.error for r in results)


def test_worker_is_a_separate_process_with_its_environment_set() -> None:
    import os

    from opbench.engine.worker import BackendWorker

    with BackendWorker("fake_numpy", case_timeout=60) as worker:
        result = worker.measure(cases()[0], "float32", 0, FAST)
        assert result.status == "ok"
        assert worker.info["settings"]["pid"] != os.getpid()
        assert worker.info["settings"]["XLA_PYTHON_CLIENT_PREALLOCATE"] in ("false", os.environ.get(
            "XLA_PYTHON_CLIENT_PREALLOCATE"))


def test_backend_settings_come_from_the_measuring_worker() -> None:
    infos: dict = {}
    run_plan(Plan(cases()[:1], ("fake_numpy",), timing=FAST), isolate=True, case_timeout=60.0,
             on_backend=infos.__setitem__)
    settings = infos["fake_numpy"]["settings"]
    assert settings["pid"] != os.getpid()  # reported by the worker, not guessed by the parent
    assert settings["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


def test_the_default_time_out_adapts_to_a_case_slower_than_the_floor(monkeypatch) -> None:
    """A fixed time-out lost a 28 s/call case under load; the adaptive one extends once the first call is known."""
    from opbench.engine.worker import BackendWorker

    monkeypatch.setenv("OPBENCH_FAKE_CALL_S", "0.4")
    timing = TimingSettings(budget_s=0.01, min_samples=3, block_s=0.002)
    case = cases()[0]  # ReLU: 1 first call + warm-up + 3 samples of 0.4 s each, over the 1 s floor
    with BackendWorker("fake_slow_call", case_timeout=1.0) as fixed:
        assert fixed.measure(case, "float32", 0, timing).status == "timeout"
    with BackendWorker("fake_slow_call", case_timeout=1.0, adaptive=True) as adaptive:
        result = adaptive.measure(case, "float32", 0, timing)
        assert result.status == "ok", result.error
        assert result.first_call_ms >= 400
        # what it showed now predicts the next, larger case's first call from its FLOP/byte counts
        assert adaptive.cost.s_per_byte > 0
        bigger = case.scaled(lambda d: d * 4)
        assert adaptive.cost.first_call_s(bigger, "float32") >= 4 * adaptive.cost.first_call_s(case, "float32")


def test_case_cost_ignores_first_calls_that_are_mostly_overhead() -> None:
    from opbench.engine.worker import CaseCost
    from opbench.results import CaseResult

    cost = CaseCost()
    cost.observe(CaseResult(case="a", family="ReLU", backend="x", dtype="float32", status="ok", samples_ms=(1.0,),
                            first_call_ms=10.0, flops=10, bytes=10))  # 10 ms: overhead, ignored
    assert cost.first_call_s(cases()[0], "float32") == 0.0
    cost.observe(CaseResult(case="b", family="ReLU", backend="x", dtype="float32", status="ok", samples_ms=(1.0,),
                            first_call_ms=2000.0, flops=2 * 10**9, bytes=10**9))
    assert cost.s_per_flop == pytest.approx(1e-9) and cost.s_per_byte == pytest.approx(2e-9)


def test_an_overhead_dominated_first_call_cannot_make_the_time_out_overflow(monkeypatch) -> None:
    """H200: a 0.1 s first call (a compilation) on a case of a few bytes predicted days for a 537 MB case, and
    the wait on the worker's pipe raised OverflowError, ending the run. The adaptive time-out is capped and the
    wait is made in slices, so the case is measured and the run goes on."""
    from opbench.engine import worker as worker_module
    from opbench.engine.worker import MAX_ADAPTIVE_TIMEOUT_S, BackendWorker
    from opbench.results import CaseResult

    timing = TimingSettings(budget_s=0.01, min_samples=3, block_s=0.002)
    with BackendWorker("fake_numpy", case_timeout=5.0, adaptive=True) as w:
        w.cost.observe(CaseResult(case="tiny", family="ReLU", backend="fake_numpy", dtype="float32", status="ok",
                                  samples_ms=(1.0,), first_call_ms=100.0, flops=1, bytes=1))
        assert w.cost.first_call_s(cases()[0], "float32") * 3 > MAX_ADAPTIVE_TIMEOUT_S  # the silly prediction
        waited: list[float] = []
        real_wait = worker_module.multiprocessing.connection.wait

        def recording_wait(objects, timeout=None):
            waited.append(timeout)
            return real_wait(objects, timeout)

        monkeypatch.setattr(worker_module.multiprocessing.connection, "wait", recording_wait)
        result = w.measure(cases()[0], "float32", 0, timing)
    assert result.status == "ok", result.error
    assert waited and max(waited) <= worker_module.WAIT_SLICE_S
