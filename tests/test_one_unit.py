"""A case whose call is slower than its whole budget gets one unit (issue 16): the runner stops after its first
pass, the result says why, a resume does not measure it again, the progress bar does not wait for its passes,
`compare` leaves it untested, and `--all-units` measures every pass. The slow calls are virtual
(`testing.fakes.VirtualSlowFake`: the worker's clock jumps 10 s per call, nothing sleeps)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from opbench.analysis.compare import compare_pair
from opbench.catalog import preset_cases, select_cases
from opbench.cli import main
from opbench.engine.passes import ONE_UNIT, combine, mark_one_unit, one_unit, passes_done, slower_than_budget
from opbench.engine.runner import Plan, run_plan
from opbench.engine.timing import TimingSettings
from opbench.report.tables import detailed_table
from opbench.results import CaseResult
from opbench.results.store import Store
from opbench.testing.fakes import register_fakes

FAST = TimingSettings(budget_s=0.02, min_samples=3, block_s=0.002)
BACKEND = "fake_virtual_slow"


@pytest.fixture(scope="module", autouse=True)
def fakes() -> None:
    register_fakes()


def cases() -> tuple:
    relu = select_cases(preset_cases("quick"), ["ReLU"])[0]
    total = select_cases(preset_cases("quick"), ["Sum"])[0]
    return relu, total


def result(samples: tuple[float, ...], stop: str = "slow") -> CaseResult:
    return CaseResult(case="MatMul / dim=1", family="MatMul", backend="mlx_cpu", dtype="float32", status="ok",
                      samples_ms=samples, stop_reason=stop, first_call_ms=60_000.0)


def test_the_rule_reads_the_timed_call_against_the_whole_budget_and_the_plan_follows_the_mark() -> None:
    plan = Plan(cases(), ("mlx_cpu",), timing=TimingSettings(budget_s=0.5), processes=3)
    one = combine(None, result((600.0,)))
    assert slower_than_budget(one, 0.5) and not slower_than_budget(combine(None, result((400.0,))), 0.5)
    # a first call that compiles says nothing: fast samples after a 60 s first call keep every unit
    assert not slower_than_budget(combine(None, result((1.0, 1.1, 0.9), "stable")), 0.5)
    assert not slower_than_budget(combine(one, result((600.0,))), 0.5)  # only the first pass decides
    done = plan.finish_early(one)
    assert one_unit(done) and done.stop_reason == f"slow | {ONE_UNIT}" and mark_one_unit(done) == done
    assert plan.units(done) == 1 and plan.passes_short(done) == 0 and plan.passes_short(one) == 2
    assert plan.units(None) == 3 and plan.passes_short(None) == 3
    prior = {("mlx_cpu", cases()[0].name, "throughput"): done}
    assert plan.left(prior, "mlx_cpu", cases()[0]) == 0 and plan.modes_left(prior, "mlx_cpu", cases()[0]) == ()
    # off: every unit, and a later pass takes the mark away (the result no longer has one unit)
    every = replace(plan, all_units=True)
    assert every.finish_early(one) == one and every.units(done) == 3 and every.passes_short(done) == 2
    more = combine(done, result((610.0,)))
    assert not one_unit(more) and more.stop_reason == "slow" and passes_done(more) == 2
    assert replace(plan, processes=1).finish_early(one) == one  # one unit planned: nothing skipped, no mark


def test_compare_leaves_a_one_unit_row_untested() -> None:
    a = mark_one_unit(combine(None, result((600.0,))))
    b = mark_one_unit(combine(None, result((900.0,))))  # 50 % slower, one call each: no evidence of a spread
    row = compare_pair(a.case, a.family, a.backend, a, b, prior=(0.0001, 4))
    assert row.verdict == "untested" and row.significant is None and row.units == (1, 1)
    assert a.detectable_change != a.detectable_change and not a.noisy  # nan: cannot be judged, no ~


def test_a_slow_case_gets_one_pass_while_fast_cases_get_all_and_a_resume_measures_nothing_more() -> None:
    relu, total = cases()
    seen: list[CaseResult] = []
    results = run_plan(Plan((relu, total), (BACKEND,), timing=FAST, processes=3), seen.append)
    assert [(r.family, passes_done(r)) for r in seen] == [("ReLU", 1), ("Sum", 1), ("ReLU", 2), ("ReLU", 3)]
    by_family = {r.family: r for r in results}
    slow, fast = by_family["Sum"], by_family["ReLU"]
    assert one_unit(slow) and slow.stop_reason == f"slow | {ONE_UNIT}" and slow.status == "ok"
    assert slow.n == 1 and slow.median_ms >= 10_000 and slow.first_call_ms >= 10_000 and slow.warmup_calls == 0
    assert slow.unit_sizes == (1,) and slow.unit_statuses == ("ok",)
    assert passes_done(fast) == 3 and not one_unit(fast)
    notes = detailed_table(results).notes
    assert any(n.startswith(f"{BACKEND}: {ONE_UNIT}, so one worker process measured it (n = 1") and total.name in n
               for n in notes)
    # resumed: the slow case is complete; a run cut off after pass 1 measures only the fast case again
    prior = {(r.backend, r.case, r.mode): r for r in results}
    again: list[CaseResult] = []
    assert run_plan(Plan((relu, total), (BACKEND,), timing=FAST, processes=3), again.append, prior=prior) == []
    assert again == []
    cut = {(r.backend, r.case, r.mode): r for r in seen[:2]}
    plan = Plan((relu, total), (BACKEND,), timing=FAST, processes=3)
    assert plan.passes_left(cut) == 2
    resumed = run_plan(plan, again.append, prior=cut)
    assert [r.family for r in again] == ["ReLU", "ReLU"] and [r.family for r in resumed] == ["ReLU"]


def test_with_all_units_the_slow_case_gets_every_pass() -> None:
    _, total = cases()
    (result_,) = run_plan(Plan((total,), (BACKEND,), timing=FAST, processes=2, all_units=True))
    # 2 units: the 3 slow samples of a case split as 2 per unit (`TimingSettings.per_unit`)
    assert passes_done(result_) == 2 and result_.unit_sizes == (2, 2) and not one_unit(result_)
    assert result_.stop_reason == "slow"


def test_the_cli_records_the_choice_shows_the_note_and_resumes_without_measuring(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    bars: list[dict] = []

    def progress(total: int, description: str, console_=None, estimate=None):  # records what the bar is told
        bar = {"total": total, "done": 0, "estimates": []}
        bars.append(bar)

        def advance(title: str, done: bool = True, dropped: int = 0) -> None:
            bar["total"] -= dropped
            bar["done"] += done
            bar["estimates"].append(estimate())

        return contextlib.nullcontext(), advance

    monkeypatch.setattr("opbench.commands.run.progress", progress)
    store = tmp_path / "s.sqlite"
    common = ["--store", str(store), "--format", "md"]
    assert main(["run", "--backends", BACKEND, "--ops", "Sum", "--preset", "quick", "--budget", "0.02",
                 "--processes", "2", "--out", str(tmp_path / "a"), *common]) == 0
    out = capsys.readouterr()
    assert f"{BACKEND}: {ONE_UNIT}" in out.out
    n_sum = len({c.name for c in select_cases(preset_cases("quick"), ["Sum"])})
    # the bar began with 2 passes per case and ended with 1: complete, no wait for passes that do not come
    assert bars[0]["total"] == bars[0]["done"] == n_sum and ", " + str(2 * n_sum) + " to measure" in out.err
    assert bars[0]["estimates"][-1] == 0.0  # no pass and no worker start still expected
    with Store(store) as s:
        run = s.load_run("latest")
    assert run.settings["all_units"] is False and run.results and all(one_unit(r) and r.n == 2 for r in run.results)
    assert json.loads((tmp_path / "a" / "run.json").read_text())["results"][0]["stop_reason"].endswith(ONE_UNIT)
    assert main(["show", run.run_id, *common]) == 0 and f"{BACKEND}: {ONE_UNIT}" in capsys.readouterr().out
    assert main(["run", "--resume", "latest", "--out", str(tmp_path / "b"), *common]) == 0
    assert ", 0 to measure (2 processes per backend)" in capsys.readouterr().err
    # --all-units on resume: the missing passes are measured, and the mark goes
    assert main(["run", "--resume", "latest", "--all-units", "--out", str(tmp_path / "c"), *common]) == 0
    with Store(store) as s:
        again = s.load_run(run.run_id)
    assert all(passes_done(r) == 2 and not one_unit(r) and r.unit_sizes == (2, 2) for r in again.results)


@pytest.mark.parametrize("mode", ["cold", "throughput", "latency"])
def test_a_unit_of_a_slow_call_makes_no_warmup_series_in_any_mode(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call slower than the unit budget: throughput and latency take the first call and one sample; cold (a
    sample there is a flush and a call) one warm-up call that shows it is slow, then one sample; stop `slow`."""
    import time

    from opbench.backends import Backend
    from opbench.engine import modes
    from opbench.engine.timing import measure

    class Eager(Backend):
        name = "eager_fake"
        framework = "fake"

    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(modes, "CPUCacheFlush", lambda: type("Flush", (), {"__call__": lambda self: None,
                                                                           "describe": lambda self: "flush"})())
    calls = []

    def op() -> None:
        calls.append(1)
        clock[0] += 60.0  # a minute per call, on the virtual clock

    unit = TimingSettings(budget_s=0.5, min_samples=5).per_unit(3)
    timing, _ = measure(op, (), Eager(), unit, mode=mode)
    assert timing.stop_reason == "slow" and timing.n == 1 and timing.calls_per_sample == 1
    assert len(calls) == (3 if mode == "cold" else 2) and timing.warmup_calls == (1 if mode == "cold" else 0)
