"""The pytest plugin (`pip install 'opbench[pytest]'`; registered as the `pytest11` entry point `opbench`).

It adds the fixture `opbench_check`, a bound `opbench.testing.check.check_op`:

    def test_my_rmsnorm_is_not_slower(opbench_check):
        opbench_check("RMSNorm", "cpu", catalog="my_ops.py", max_slowdown_pct=5)

and three options, which the fixture's arguments override:
- `--opbench-baseline RUN`: the baseline run (stored run id, prefix, `latest`, or a run file); without one, the
  fixture checks verification only.
- `--opbench-store PATH`: the store that holds the baseline and receives the new runs (default
  `$OPBENCH_STORE` or the user data directory).
- `--opbench-max-slowdown PCT`: the default allowed slowdown (5 %).

Nothing here imports a framework: the op is measured in opbench's worker processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("opbench", "opbench performance checks (fixture opbench_check)")
    group.addoption("--opbench-baseline", metavar="RUN", default=None,
                    help="baseline run for opbench_check: stored run id, prefix, 'latest', or a run file")
    group.addoption("--opbench-store", metavar="PATH", default=None,
                    help="opbench store with the baseline, receiving new runs (default $OPBENCH_STORE)")
    group.addoption("--opbench-max-slowdown", metavar="PCT", type=float, default=5.0,
                    help="allowed significant slowdown against the baseline, in percent (default 5)")


@pytest.fixture
def opbench_check(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """`opbench_check(ops, backend, **options)` -> `CheckOutcome`; fails the test (AssertionError) when the op
    is not verified, has no comparable baseline result, or is significantly slower than the baseline by more
    than the allowed percentage. Options: those of `check_op` (baseline, max_slowdown_pct, catalog, store,
    baseline_backend, preset, dtype, budget, min_samples, processes, ...)."""
    from opbench.testing.check import check_op

    config = request.config
    defaults = {"baseline": config.getoption("opbench_baseline"), "store": config.getoption("opbench_store"),
                "max_slowdown_pct": config.getoption("opbench_max_slowdown")}

    def check(ops: Any, backend: str, **options: Any) -> Any:
        return check_op(ops, backend, **{**defaults, **options})

    return check
