"""Every adapter runs every family on small shapes, verified against the float64 reference."""

from __future__ import annotations

import pytest

from opbench.catalog import FAMILIES, preset_cases
from opbench.engine.runner import measure_case
from opbench.engine.timing import TimingSettings

FAST = TimingSettings(budget_s=0.01, min_samples=2, block_s=0.001, max_warmup=3)
# one small case per family (the first quick case of each)
CASES = list({c.family: c for c in reversed(preset_cases("quick"))}.values())


def test_one_case_per_family() -> None:
    assert {c.family for c in CASES} == set(FAMILIES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.family)
def test_backend_computes_every_family_correctly(backend, case) -> None:
    result = measure_case(backend, case, timing=FAST)
    assert result.status == "ok", (result.status, result.error, result.rel_error, result.tolerance)
    assert result.n >= 2 and result.median_ms > 0
