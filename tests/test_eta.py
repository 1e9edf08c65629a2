"""The progress ETA's cost model: fitted per backend from finished cases' work and wall time."""

from __future__ import annotations

import pytest

from opbench.engine.eta import CostModel


def test_prior_until_cases_finish_then_the_fit_of_what_this_machine_showed() -> None:
    model = CostModel(prior_fixed_s=1.0, prior_work_per_s=1e9)
    assert model.seconds("cpu", 2e9) == pytest.approx(3.0)
    for work in (1e6, 1e8, 1e9, 4e9):  # this machine: 0.2 s per case plus 1 s per 1e8 work
        model.finished("cpu", work, 0.2 + work / 1e8)
    assert model.seconds("cpu", 2e9) == pytest.approx(20.2, rel=1e-3)
    assert model.remaining([("cpu", 1e6), ("cpu", 1e9)]) == pytest.approx(0.21 + 10.2, rel=1e-3)


def test_a_backend_with_few_cases_borrows_the_fit_over_all_backends() -> None:
    model = CostModel(prior_fixed_s=5.0)
    for work in (1e6, 1e7, 1e8):
        model.finished("cuda", work, 0.1)
    model.finished("cpu", 1e6, 0.3)
    assert 0.1 <= model.seconds("cpu", 1e6) <= 0.3  # the fit over all four cases, not the 5 s prior
    assert model.seconds("cuda", 1e8) == pytest.approx(0.1, abs=1e-6)  # fixed cost only: no hour-long jumps


def test_start_costs_count_the_worker_starts_still_to_come() -> None:
    from opbench.engine.eta import StartCosts

    starts = StartCosts({"cpu": 3, "mlx_cpu": 3}, prior_s=2.0)
    assert starts.remaining() == 12.0  # six starts at the prior
    starts.started("cpu", 5.0)
    assert starts.left == {"cpu": 2, "mlx_cpu": 3}
    assert starts.remaining() == 2 * 5.0 + 3 * 5.0  # mlx_cpu has none of its own yet: the mean over all
    starts.started("mlx_cpu", 1.0)
    assert starts.remaining() == 2 * 5.0 + 2 * 1.0


def test_pass_phases_are_what_one_pass_added() -> None:
    from opbench.engine.eta import pass_phases

    before = {"inputs": 10.0, "wall": 100.0}
    after = {"inputs": 12.0, "wall": 150.0, "worker_start": 30.0}
    assert pass_phases(before, after) == {"inputs": 2.0, "wall": 50.0, "worker_start": 30.0}
    assert pass_phases({}, after) == after
