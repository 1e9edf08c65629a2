"""GPU backends get their own default budget (issue 16, `defaults.GPU_RUN_BUDGET_S`): the plan gives each backend
its settings, `--budget` alone sets both, `--gpu-budget` only the GPU's, the run records both, and a resumed run
keeps its own (one from before GPU budgets measured its GPUs at its one budget)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

import opbench.defaults as defaults
from opbench.catalog import preset_cases, select_cases
from opbench.cli import main
from opbench.engine.resume import fill_options
from opbench.engine.runner import Plan, run_plan
from opbench.engine.timing import TimingSettings
from opbench.results import Run
from opbench.testing.fakes import register_fakes


@pytest.fixture(scope="module", autouse=True)
def fakes() -> None:
    register_fakes()


def _args(**given: object) -> argparse.Namespace:
    names = ("preset", "dtype", "backends", "ops", "budget", "gpu_budget", "min_samples", "seed", "processes",
             "mode", "all_units")
    return argparse.Namespace(**{n: given.get(n) for n in names})


def _run(settings: dict) -> Run:
    return Run(run_id="r1", created="2026-12-07T00:00:00+00:00", preset="quick", dtype="float32", machine={},
               settings=settings)


def test_the_plan_gives_gpu_backends_their_own_settings() -> None:
    cpu, gpu = TimingSettings(budget_s=0.5), TimingSettings(budget_s=0.2)
    plan = Plan((), ("fake_numpy", "fake_gpu"), timing=cpu, processes=2, gpu_timing=gpu)
    assert plan.timing_of("fake_numpy") is cpu and plan.timing_of("fake_gpu") is gpu
    assert plan.unit_timing("fake_numpy").budget_s == pytest.approx(0.25)
    assert plan.unit_timing("fake_gpu").budget_s == pytest.approx(0.1)
    assert Plan((), ("fake_gpu",), timing=cpu).timing_of("fake_gpu") is cpu  # no GPU settings: one for all


@pytest.mark.parametrize(("given", "budget", "gpu_budget"), [
    ({}, defaults.RUN_BUDGET_S, defaults.GPU_RUN_BUDGET_S),
    ({"budget": 1.0}, 1.0, 1.0),  # --budget alone sets both
    ({"budget": 1.0, "gpu_budget": 0.3}, 1.0, 0.3),
    ({"gpu_budget": 0.3}, defaults.RUN_BUDGET_S, 0.3),
])
def test_defaults_of_a_new_run(given: dict, budget: float, gpu_budget: float) -> None:
    args = _args(**given)
    fill_options(args, None)
    assert (args.budget, args.gpu_budget) == (budget, gpu_budget)


def test_a_resumed_run_keeps_its_budgets() -> None:
    args = _args()
    fill_options(args, _run({"budget_s": 0.7, "gpu_budget_s": 0.1}))
    assert (args.budget, args.gpu_budget) == (0.7, 0.1)
    old = _args()
    fill_options(old, _run({"budget_s": 0.5}))  # before GPU budgets: its GPUs were measured at its one budget
    assert (old.budget, old.gpu_budget) == (0.5, 0.5)
    overridden = _args(budget=2.0)
    fill_options(overridden, _run({"budget_s": 0.5, "gpu_budget_s": 0.2}))
    assert (overridden.budget, overridden.gpu_budget) == (2.0, 2.0)


def test_each_backend_is_timed_within_its_own_budget() -> None:
    """The GPU backend's case, timed in-process with a budget 20x smaller than the CPU's, stops at its budget."""
    case = select_cases(preset_cases("quick"), ["ReLU"])[0]
    slow = TimingSettings(budget_s=0.4, min_samples=3, block_s=0.002, rel_ci=1e-9, min_warmup_s=0.0)
    fast = TimingSettings(budget_s=0.02, min_samples=3, block_s=0.002, rel_ci=1e-9, min_warmup_s=0.0)
    results = {r.backend: r for r in run_plan(Plan((case,), ("fake_numpy", "fake_gpu"), timing=slow, gpu_timing=fast),
                                               isolate=False)}
    spans = {name: sum(r.samples_ms) * r.calls_per_sample / 1e3 for name, r in results.items()}
    assert spans["fake_gpu"] < 0.1 < spans["fake_numpy"]


def test_run_records_both_budgets(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(["run", "--backends", "fake_gpu", "--ops", "ReLU", "--preset", "quick", "--no-isolate",
                 "--min-samples", "1", "--gpu-budget", "0.01", "--store", str(tmp_path / "s.sqlite"),
                 "--out", str(out), "--format", "md"])
    assert code == 0
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert (settings["budget_s"], settings["gpu_budget_s"]) == (defaults.RUN_BUDGET_S, 0.01)


def test_a_bad_gpu_budget_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--backends", "fake_gpu", "--gpu-budget", "nan"])
    assert stopped.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
