"""JAX-specific behaviour of the `jax_cpu` adapter: dtypes kept under x64, duplicate scatter indices, one jit
compilation per case, in-order execution (what `sync` relies on), precision settings, and GPU availability."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax")

from opbench.backends import get_backend
from opbench.backends.jax import JAXGPU
from opbench.catalog import FAMILIES, Case, preset_cases
from opbench.engine.runner import measure_case
from opbench.engine.timing import TimingSettings, measure
from opbench.engine.verify import OK, REDUCED, verify

FAST = TimingSettings(budget_s=0.02, min_samples=3, block_s=0.001, max_warmup=5)
ONE_PER_FAMILY = list({c.family: c for c in reversed(preset_cases("quick"))}.values())


@pytest.fixture(scope="module")
def jax_cpu():
    be = get_backend("jax_cpu")
    if not be.availability().available:
        pytest.skip(be.availability().reason)
    be.setup()
    return be


def test_float64_and_int64_inputs_keep_their_type(jax_cpu) -> None:
    x = jax_cpu.from_numpy(np.arange(6, dtype=np.float64) / 3)
    idx = jax_cpu.from_numpy(np.array([2**40, 1], dtype=np.int64))
    assert str(x.dtype) == "float64" and str(idx.dtype) == "int64"
    assert int(idx[0]) == 2**40  # would wrap if int64 were silently narrowed to int32
    assert np.array_equal(jax_cpu.to_numpy(x), np.arange(6, dtype=np.float64) / 3)


def test_float64_matmul_is_computed_in_float64(jax_cpu) -> None:
    case = Case("MatMul", ((16, 64), (64, 16)))
    result = measure_case(jax_cpu, case, dtype="float64", timing=FAST)
    assert result.status == OK, (result.status, result.rel_error, result.tolerance)
    assert result.rel_error < 1e-12  # float32 arithmetic would give ~1e-7


@pytest.mark.parametrize("case", ONE_PER_FAMILY, ids=lambda c: c.family)
def test_float32_stays_float32_with_x64_on(jax_cpu, case) -> None:
    import jax

    prepared = jax_cpu.prepare(case, case.make_inputs("float32", 0))
    out = jax.eval_shape(prepared.op, *prepared.args)  # traces the op (what jit compiles) without running it
    expected = FAMILIES[case.family].output_dtype(np.dtype("float32"))
    assert str(out.dtype) == str(expected)


def test_bfloat16_inputs_become_bfloat16(jax_cpu) -> None:
    x = jax_cpu.from_numpy(np.array([1.0, 0.5, -2.0], dtype=np.float32), "bfloat16")
    assert str(x.dtype) == "bfloat16"
    assert jax_cpu.to_numpy(x).dtype == np.float32


def test_scatter_duplicates_match_the_catalog(jax_cpu) -> None:
    y = np.arange(12, dtype=np.float32).reshape(4, 3) + 100
    idx = np.array([1, 1, 1, 3], dtype=np.int64)
    upd = np.array([[1, -5, 3], [4, 2, -6], [-7, 8, 0], [9, 9, 9]], dtype=np.float32)
    args = tuple(jax_cpu.from_numpy(a) for a in (y, idx, upd))
    outs = {}
    for family in ("Scatter", "ScatterSum", "ScatterMax"):
        case = Case(family, ((4, 3), (4,)))
        prepared = jax_cpu.builders[family](jax_cpu, case, args)
        outs[family] = jax_cpu.to_numpy(jax_cpu.compile(prepared.op)(*prepared.args))
        verdict = verify(case, (y, idx, upd), outs[family], "float32")
        assert verdict.status == OK, (family, verdict)
    assert np.array_equal(outs["ScatterSum"][1], [-2, 5, -3])  # the three duplicate rows add up
    assert np.array_equal(outs["ScatterMax"][1], [4, 8, 3])  # the maximum of zeros and the three rows
    assert np.array_equal(outs["ScatterMax"][0], [0, 0, 0])
    assert any(np.array_equal(outs["Scatter"][1], upd[j]) for j in (0, 1, 2))  # one of the competitors
    assert np.array_equal(outs["Scatter"][0], y[0])  # untouched rows keep y
    assert np.array_equal(jax_cpu.to_numpy(args[0]), y)  # out of place: y itself is unchanged


def test_each_case_is_traced_once_and_compilation_is_first_call_time(jax_cpu) -> None:
    traces = []
    case = next(c for c in ONE_PER_FAMILY if c.family == "MatMul")
    prepared = jax_cpu.prepare(case, case.make_inputs("float32", 0))

    def counted(*args):
        traces.append(1)
        return prepared.op(*args)

    timing, _ = measure(jax_cpu.compile(counted), prepared.args, jax_cpu, FAST)
    assert len(traces) == 1, "jit must trace once per case and reuse the executable for every timed call"
    assert timing.first_call_s > timing.median_s  # tracing and XLA compilation land in the first call
    # a second compile of the same op (the next case) compiles again instead of reusing the cached executable
    jax_cpu.compile(counted)(*prepared.args)
    assert len(traces) == 2


def test_sync_blocks_on_the_last_output_and_drops_it(jax_cpu) -> None:
    case = next(c for c in ONE_PER_FAMILY if c.family == "Sum")
    prepared = jax_cpu.prepare(case, case.make_inputs("float32", 0))
    op = jax_cpu.compile(prepared.op)
    out = op(*prepared.args)
    jax_cpu.force(out)
    jax_cpu.sync()
    assert out.is_ready()
    assert jax_cpu._last is None  # the reference is released, so the buffer can be reused
    jax_cpu.sync()  # nothing pending: a no-op


def _slow_and_fast(be):
    import jax

    slow = jax.jit(lambda x: x @ x @ x @ x)
    fast = jax.jit(lambda x: x + 1)
    a = be.from_numpy(np.random.default_rng(0).random((700, 700), dtype=np.float32))
    b = be.from_numpy(np.ones(4, dtype=np.float32))
    jax.block_until_ready((slow(a), fast(b)))  # compile both first
    return slow, fast, a, b


def test_sync_waits_for_every_call_of_a_block_even_out_of_order(jax_cpu) -> None:
    """On the CPU a cheap call dispatched after a slow one can finish first: `sync` must still wait for the slow
    one, not just for the last output."""
    slow, fast, a, b = _slow_and_fast(jax_cpu)
    slow_out = slow(a)
    jax_cpu.force(slow_out)
    fast_out = fast(b)
    jax_cpu.force(fast_out)
    jax_cpu.sync()
    assert slow_out.is_ready() and fast_out.is_ready()
    assert jax_cpu._pending == [] and jax_cpu._last is None  # nothing held after the block


def test_gpu_executes_in_dispatch_order() -> None:
    """`jax_gpu` blocks on the last output of a block only: valid because a GPU runs executions in order."""
    be = get_backend("jax_gpu")
    if not be.availability().available:
        pytest.skip(be.availability().reason)
    be.setup()
    slow, fast, a, b = _slow_and_fast(be)
    slow_out = slow(a)
    fast(b).block_until_ready()
    assert slow_out.is_ready(), "a later op finished before an earlier one on the GPU"


def test_float64_sdpa_shows_jax_softmax_in_float32_as_reduced_precision(jax_cpu) -> None:
    """jax.nn.dot_product_attention always computes its softmax in float32; the verdict must say so."""
    case = Case("ScaledDotProductAttention", ((2, 2, 8, 16), (2, 2, 8, 16), (2, 2, 8, 16)))
    result = measure_case(jax_cpu, case, dtype="float64", timing=FAST)
    assert result.status == REDUCED, (result.status, result.rel_error, result.tolerance)


def test_settings_record_the_matmul_precision_in_force(jax_cpu) -> None:
    assert jax_cpu.settings()["jax_enable_x64"] is True
    modes = jax_cpu.precision_modes()
    assert modes["highest"].strict and not modes["default"].strict
    with modes["highest"].enter():
        assert jax_cpu.settings()["jax_default_matmul_precision"] == "highest"


def test_a_fresh_process_gets_no_gpu_preallocation_and_records_x64_without_setup() -> None:
    """What `opbench run` records comes from an adapter that was never set up: it must still tell the truth."""
    code = ("import os; from opbench.backends import get_backend; s = get_backend('jax_cpu').settings(); "
            "print(os.environ['XLA_PYTHON_CLIENT_PREALLOCATE'], s['jax_enable_x64'])")
    env = {k: v for k, v in os.environ.items() if k != "XLA_PYTHON_CLIENT_PREALLOCATE"}
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert default.stdout.split() == ["false", "True"]
    code = "import os, opbench.backends.jax; print(os.environ['XLA_PYTHON_CLIENT_PREALLOCATE'])"
    chosen = subprocess.run([sys.executable, "-c", code], env={**env, "XLA_PYTHON_CLIENT_PREALLOCATE": "true"},
                            capture_output=True, text=True, check=True)
    assert chosen.stdout.strip() == "true"  # the user's choice wins


def test_jax_gpu_explains_why_it_is_unavailable() -> None:
    import jax

    try:
        jax.devices("gpu")
    except RuntimeError:
        avail = JAXGPU().availability()
        assert not avail.available
        assert "no CUDA/GPU backend" in avail.reason or "no GPU is usable" in avail.reason
    else:
        assert JAXGPU().availability().available
