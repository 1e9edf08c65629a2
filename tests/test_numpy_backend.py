"""The shared NumPy/CuPy family implementations (`backends._xp`), run here through NumPy.

`test_backends.py` checks every family in float32 on every backend; these tests add the other dtypes, the
convolution's blocking (the code path CuPy runs with bigger blocks) and the bfloat16 declaration.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from opbench.backends import get_backend
from opbench.catalog import Case, preset_cases
from opbench.engine.runner import measure_case
from opbench.engine.timing import TimingSettings

FAST = TimingSettings(budget_s=0.01, min_samples=2, block_s=0.001, max_warmup=3)
CASES = list({c.family: c for c in reversed(preset_cases("quick"))}.values())


@pytest.fixture(scope="module")
def numpy_backend():
    be = get_backend("numpy")
    be.setup()
    return be


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.family)
def test_every_family_is_right_in_float64(numpy_backend, case) -> None:
    result = measure_case(numpy_backend, case, dtype="float64", timing=FAST)
    assert result.status == "ok", (result.status, result.error, result.detail)


@pytest.mark.parametrize("case", [c for c in CASES if c.spec.integer_ok and c.family not in ("Sum", "SumAll")],
                         ids=lambda c: c.family)
def test_integer_families_are_exact_in_int32(numpy_backend, case) -> None:
    result = measure_case(numpy_backend, case, dtype="int32", timing=FAST)
    assert result.status == "ok", (result.status, result.error, result.detail)


def test_bfloat16_is_declared_unsupported_with_the_reason(numpy_backend) -> None:
    result = measure_case(numpy_backend, CASES[0], dtype="bfloat16", timing=FAST)
    assert result.status == "unsupported"
    assert "NumPy has no bfloat16 dtype" in result.error
    with pytest.raises(TypeError, match="bfloat16"):
        numpy_backend.from_numpy(np.zeros(3, np.float32), "bfloat16")


def test_inputs_are_copied_on_the_way_in(numpy_backend) -> None:
    a = np.arange(4.0, dtype=np.float32)
    native = numpy_backend.from_numpy(a)
    native[0] = 99.0
    assert a[0] == 0.0


@pytest.mark.parametrize(("shapes", "budget"), [
    (((3, 9, 7, 2), (4, 3, 2, 2)), 1),  # one output row per block: the row-blocking path
    (((5, 9, 7, 2), (4, 3, 2, 2)), 2000),  # 3 of the 7 output rows per block, the last block short
    (((5, 9, 7, 2), (4, 3, 2, 2)), 10000),  # 2 samples (4032 bytes of windows each) per block, the last short
    (((5, 12, 3), (6, 4, 3)), 1 << 20),  # Conv1d, the whole batch in one block
])
def test_convolution_blocks_give_the_reference_result(numpy_backend, monkeypatch, shapes, budget) -> None:
    case = Case("Conv2d" if len(shapes[0]) == 4 else "Conv1d", shapes)
    small = dataclasses.replace(numpy_backend.namespace(), im2col_bytes=budget)
    monkeypatch.setattr(numpy_backend, "namespace", lambda: small)
    inputs = case.make_inputs("float64", 0)
    prepared = numpy_backend.prepare(case, inputs)
    out = prepared.canonical(prepared.op(*prepared.args))
    assert out.shape == case.spec.output_shape(case)
    np.testing.assert_allclose(out, case.spec.reference(case, inputs, None), rtol=1e-12, atol=1e-12)
