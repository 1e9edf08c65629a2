"""Several worker processes per backend: how passes combine, how a run measures them, and what a resume adds."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from opbench.catalog import Case, preset_cases, select_cases
from opbench.engine.passes import combine, passes_done, process_spread_note
from opbench.engine.runner import Plan, run_plan
from opbench.engine.timing import TimingSettings
from opbench.results import CaseResult
from opbench.testing.fakes import register_fakes

FAST = TimingSettings(budget_s=0.02, min_samples=3, block_s=0.002)


def timed(samples: tuple[float, ...], status: str = "ok", rel_error: float = 1e-7, detail: str = "") -> CaseResult:
    return CaseResult(case="Scatter / dim=8", family="Scatter", backend="cuda_compile", dtype="float32",
                      status=status, samples_ms=samples, rel_error=rel_error, tolerance=1e-5, detail=detail,
                      stop_reason="stable", warmup_calls=10, first_call_ms=50.0)


def test_timed_passes_pool_samples_and_keep_each_process_median() -> None:
    one = combine(None, timed((1.0, 1.01, 0.99)))
    assert one.process_medians_ms == (1.0,) and passes_done(one) == 1 and not one.noisy
    two = combine(one, timed((3.0, 3.1, 2.9)))
    assert two.samples_ms == (1.0, 1.01, 0.99, 3.0, 3.1, 2.9) and two.process_medians_ms == (1.0, 3.0)
    assert two.unit_sizes == (3, 3) and two.units_ms == ((1.0, 1.01, 0.99), (3.0, 3.1, 2.9))
    assert two.unit_medians_ms == (1.0, 3.0)
    older = combine(timed((1.0, 1.2)), timed((2.0,)))  # a prior result stored before units were recorded
    assert older.unit_sizes == (2, 1) and older.unit_medians_ms == (1.1, 2.0)
    assert passes_done(two) == 2 and two.warmup_calls == 20 and two.first_call_ms == 50.0
    assert two.process_spread == pytest.approx(2.0) and two.noisy  # bimodal across processes: marked ~
    close = combine(one, timed((1.02, 1.0, 1.04)))
    assert close.process_spread == pytest.approx(0.02) and not close.noisy
    assert close.median_ms == pytest.approx(float(np.median((1.0, 1.01, 0.99, 1.02, 1.0, 1.04))))


def test_a_verdict_that_changes_between_processes_is_the_worst_one_and_said() -> None:
    """A nondeterministic kernel: right in two processes, torn rows in the third."""
    ok = combine(combine(None, timed((1.0,))), timed((1.0,)))
    torn = timed((1.0,), status="wrong", rel_error=1.4, detail="64 rows are not one whole scattered update")
    both = combine(ok, torn)
    assert both.status == "wrong" and both.rel_error == 1.4
    assert both.detail == ("verdicts differ between processes: ok in 2, wrong in 1 of 3; "
                           "64 rows are not one whole scattered update")
    later = combine(both, timed((1.0,)))  # a later clean pass does not undo it, and is counted
    assert later.status == "wrong" and later.detail == (
        "verdicts differ between processes: ok in 3, wrong in 1 of 4; 64 rows are not one whole scattered update")
    wrong_first = combine(combine(None, torn), timed((1.0,)))
    assert combine(wrong_first, timed((1.0,))).detail.startswith("verdicts differ between processes: ok in 2, "
                                                                  "wrong in 1 of 3; 64 rows")


def test_an_untimed_pass_stands_and_ends_the_case() -> None:
    earlier = combine(None, timed((2.0, 2.0)))
    crashed = CaseResult(case="Scatter / dim=8", family="Scatter", backend="cuda_compile", dtype="float32",
                         status="crashed", error="worker died: SIGSEGV")
    result = combine(earlier, crashed)
    assert result.status == "crashed" and not result.timed and passes_done(result) == math.inf
    assert result.detail.startswith("pass 2: crashed; 1 earlier pass(es) timed it at 2 ms (ok)")
    assert passes_done(None) == 0


@pytest.fixture(scope="module", autouse=True)
def fakes() -> None:
    register_fakes()


def test_run_measures_every_case_in_each_worker_process_and_resumes_the_missing_passes() -> None:
    cases = (select_cases(preset_cases("quick"), ["ReLU"])[0], Case("ReLU", ((8, 8),)))
    seen: list[CaseResult] = []
    results = run_plan(Plan(cases, ("fake_numpy",), timing=FAST, processes=2), seen.append)
    assert [len(r.process_medians_ms) for r in seen] == [1, 1, 2, 2]  # pass 1 over both cases, then pass 2
    assert [r.case for r in results] == [c.name for c in cases]
    for r, first_pass in zip(results, seen[:2]):
        assert r.status == "ok" and passes_done(r) == 2 and r.process_medians_ms[0] == first_pass.median_ms
        assert r.samples_ms[:first_pass.n] == first_pass.samples_ms and r.n > first_pass.n
    # a run cut off after one pass: a resume to 3 processes measures two more passes of each case, no more
    prior = {("fake_numpy", r.case, r.mode): r for r in seen[:2]}  # keyed with the mode
    more: list[CaseResult] = []
    resumed = run_plan(Plan(cases, ("fake_numpy",), timing=FAST, processes=3), more.append, prior=prior)
    assert len(more) == 4 and [passes_done(r) for r in resumed] == [3, 3]
    assert all(r.samples_ms[:len(p.samples_ms)] == p.samples_ms for r, p in zip(resumed, seen[:2]))
    with pytest.raises(ValueError, match="isolated"):
        run_plan(Plan(cases, ("fake_numpy",), timing=FAST, processes=2), isolate=False)


def test_a_one_process_run_with_short_gpu_results_says_how_to_see_their_spread() -> None:
    def result(backend: str, ms: float, status: str = "ok") -> CaseResult:
        return CaseResult(case="ReLU / dim=8", family="ReLU", backend=backend, dtype="float32", status=status,
                          samples_ms=(ms,) * 3)

    results = [result("cuda", 0.02), result("cuda", 0.2), result("cpu", 0.01), result("mlx_gpu", 0.03, "wrong")]
    is_gpu = {"cuda": True, "mlx_gpu": True, "cpu": False}.__getitem__
    hint = process_spread_note(results, 1, is_gpu)
    assert hint is not None and hint.startswith("2 GPU result(s) took under 50 µs per call")
    assert "--processes 3" in hint and "H100" not in hint
    assert process_spread_note(results, 3, is_gpu) is None  # no process medians recorded: nothing measured
    assert process_spread_note([result("cuda", 0.2), result("cpu", 0.01)], 1, is_gpu) is None
    spread = [replace(result("cuda", 0.02), process_medians_ms=(0.02, 0.03, 0.02)),
              replace(result("cpu", 0.2), process_medians_ms=(0.2, 0.202, 0.2))]
    note = process_spread_note(spread, 3, is_gpu)
    # sd of log(0.02, 0.03, 0.02) = 23.4 %; a like run's interval with 4 degrees of freedom: 117 % detectable
    assert note is not None and "under 50 µs 23.4 % and 117.2 % (1 result(s))" in note
    assert "at or above 50 µs 0.6 % and 1.9 % (1 result(s))" in note
    assert "1 result(s) cannot detect 10 % (marked ~)" in note and "H100" not in note


def test_process_spread_note_with_the_machine_run_variance() -> None:
    def result(backend: str, ms: float, medians: tuple[float, ...]) -> CaseResult:
        return CaseResult(case="ReLU / dim=8", family="ReLU", backend=backend, dtype="float32", status="ok",
                          samples_ms=(ms,) * 3, process_medians_ms=medians)

    spread = [result("cpu", 0.2, (0.2, 0.202, 0.2))]
    plain = process_spread_note(spread, 3, lambda name: False)
    assert plain is not None and "run-to-run" not in plain
    note = process_spread_note(spread, 3, lambda name: False, {("cpu", False): 0.05 ** 2})
    # se = sqrt(2 * 0.0025 + ...) = 7.1 %: a comparison of two runs detects about 36 %, so it cannot detect 10 %
    assert note is not None and note.startswith(plain) and "two runs detects (median) at or above 50 µs" in note
    assert "1 result(s) cannot detect 10 %" in note
