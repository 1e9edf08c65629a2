"""The cupy adapter without CuPy: it imports, reports why it cannot run, and shares NumPy's implementations.

The implementations themselves are checked through NumPy (`test_numpy_backend.py`, `test_backends.py`); on a
machine with CuPy and a GPU `test_backends.py` runs every family on `cupy` too.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from opbench.backends import get_backend
from opbench.backends._xp import BUILDERS
from opbench.backends.arithmetic import narrower_arithmetic


def test_the_adapter_imports_without_cupy_and_says_why_it_cannot_run() -> None:
    code = ("import sys, importlib.util\n"
            "real = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda name, *a: None if name.split('.')[0] == 'cupy' else real(name, *a)\n"
            "sys.modules['cupy'] = None  # importing cupy now fails\n"
            "from opbench.backends import availability_table\n"
            "a = availability_table()['cupy']\n"
            "print(a.available, a.reason)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False cupy is not installed (pip install 'opbench[cupy]')"


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed here")
def test_without_cupy_it_is_unavailable_with_the_install_hint() -> None:
    availability = get_backend("cupy").availability()
    assert not availability.available
    assert "opbench[cupy]" in availability.reason


def test_importing_the_adapter_imports_no_framework() -> None:
    code = ("import sys\nimport opbench.backends.cupy, opbench.backends.numpy\n"
            "print(sorted(m for m in ('cupy', 'cupyx', 'scipy', 'torch', 'jax', 'mlx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_cupy_and_numpy_share_one_set_of_family_implementations() -> None:
    assert get_backend("cupy").builders is BUILDERS is get_backend("numpy").builders


def test_bfloat16_is_declared_unsupported_without_touching_cupy() -> None:
    reason = get_backend("cupy").why_unsupported("ReLU", "bfloat16")
    assert reason is not None and "CuPy has no bfloat16 dtype" in reason


def test_tf32_is_reduced_precision_only_when_the_adapter_says_so() -> None:
    on = {"CUPY_TF32": "1", "float32_products_arithmetic": "TF32 (CUPY_TF32=1)"}
    assert narrower_arithmetic("cupy", on, "MatMul", "float32") == "TF32 (CUPY_TF32=1)"
    assert narrower_arithmetic("cupy", on, "Conv2d", "float32") == "TF32 (CUPY_TF32=1)"
    assert narrower_arithmetic("cupy", on, "MatMul", "float64") is None
    assert narrower_arithmetic("cupy", on, "Softmax", "float32") is None
    assert narrower_arithmetic("cupy", {"CUPY_TF32": "0"}, "MatMul", "float32") is None


def test_cupy_out_of_memory_is_recognised_by_its_message() -> None:
    backend = get_backend("cupy")
    assert backend.is_oom(RuntimeError("CUBLAS_STATUS_ALLOC_FAILED"))
    assert backend.is_oom(MemoryError("Out of memory allocating 1,024 bytes"))
    assert not backend.is_oom(ValueError("shapes do not match"))


def test_the_cold_mode_flushes_twice_the_l2_with_a_device_write(monkeypatch) -> None:
    """CuPy's `cold` flush (no GPU here: a stand-in `cupy` module records what the adapter asks of it): a buffer
    of twice the L2, at least `modes.GPU_FLUSH_BYTES`, allocated once and zeroed by every flush."""
    import types

    from opbench.backends.cupy import CuPyGPU
    from opbench.engine.modes import GPU_FLUSH_BYTES

    fills: list[int] = []

    class Buffer:
        def __init__(self, n: int) -> None:
            self.n = n

        def fill(self, value: int) -> None:
            fills.append(value)

    allocated: list[int] = []

    def empty(n: int, dtype: object) -> Buffer:
        allocated.append(n)
        return Buffer(n)

    for l2, expected in ((50 << 20, GPU_FLUSH_BYTES), (200 << 20, 400 << 20)):
        runtime = types.SimpleNamespace(getDeviceProperties=lambda device, l2=l2: {"l2CacheSize": l2})
        fake = types.SimpleNamespace(uint8="uint8", empty=empty,
                                     cuda=types.SimpleNamespace(runtime=runtime,
                                                                Device=lambda: types.SimpleNamespace(id=0)))
        monkeypatch.setitem(sys.modules, "cupy", fake)
        flush = CuPyGPU().flush_cache()
        assert flush.nbytes == expected and allocated[-1] == expected
        flush()
        flush()
        assert fills[-2:] == [0, 0] and allocated.count(expected) == 1  # allocated once, written per flush
        assert f"{expected >> 20} MiB" in flush.describe()


def test_peak_memory_is_what_the_pool_holds_after_its_unused_blocks_are_freed(monkeypatch) -> None:
    """CuPy has no peak counter: the adapter frees the pool's unused blocks before the case and reports what the
    pool holds after it (a stand-in pool: held bytes grow with allocations and only `free_all_blocks` shrinks
    them to the bytes in use)."""
    import types

    from opbench.backends.cupy import CuPyGPU

    class Pool:
        used, held = 3 << 20, 10 << 20  # 3 MiB in use (the inputs), 7 MiB cached from an earlier case

        def free_all_blocks(self) -> None:
            self.held = self.used

        def total_bytes(self) -> int:
            return self.held

    pool = Pool()
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(get_default_memory_pool=lambda: pool))
    backend = CuPyGPU()
    backend.reset_peak_memory()
    assert backend.peak_memory()[0] == 3 << 20  # the earlier case's cached blocks do not count
    pool.held += 5 << 20  # the case allocates 5 MiB more at its peak, then frees it (the pool keeps it)
    peak, counter = backend.peak_memory()
    assert peak == 8 << 20 and "total_bytes" in counter


def test_inputs_go_to_the_device_by_one_copy_from_host_memory(monkeypatch) -> None:
    """`from_numpy` allocates the device array and copies into it with `ndarray.set` (no `cupy.asarray`, which
    stages through pinned host memory); a stand-in `cupy` records the copy, in the requested dtype, C order."""
    import types

    import numpy as np

    from opbench.backends.cupy import CuPyGPU

    copies: list[np.ndarray] = []

    class DeviceArray:
        def __init__(self, shape: tuple[int, ...], dtype: object) -> None:
            self.shape, self.dtype = shape, np.dtype(dtype)

        def set(self, host: np.ndarray) -> None:
            assert host.shape == self.shape and host.dtype == self.dtype and host.flags.c_contiguous
            copies.append(host.copy())

    def asarray(*args: object, **kwargs: object) -> None:
        raise AssertionError("cupy.asarray stages through pinned memory")

    fake = types.SimpleNamespace(empty=DeviceArray, asarray=asarray)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    backend = CuPyGPU()
    monkeypatch.setattr(backend, "sync", lambda: None)
    a = np.arange(12, dtype=np.float64).reshape(3, 4).T  # Fortran order, float64
    x = backend.from_numpy(a, "float32")
    assert x.shape == (4, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(copies[-1], a.astype(np.float32))
