"""The `cupy` adapter: CuPy on an NVIDIA GPU, NumPy's API on CUDA.

The family implementations are NumPy's (`backends._xp`), bound here to `cupy`, `cupyx.scipy.special.expit` and
`cupy.add.at`/`cupy.maximum.at` (`cupyx.scatter_add`/`scatter_max` on CuPy before 13). CuPy is imported only
when this backend is used: availability, setup and every conversion import it lazily.

- Synchronization: CuPy launches kernels asynchronously on the current stream, so `sync` waits for the whole
  device (`cudaDeviceSynchronize`, bound once at setup); calls of one block run in order on that stream.
- Transfer: inputs go to the device with `ndarray.set`, one copy from host memory; `cupy.asarray` would stage
  each array through pinned host memory, allocated afresh per case since `release` frees the pinned pool
  (results/h100-defaults: 24.9 s of transfer for the seed preset's 3 units on cupy against 5.5 s on torch,
  which copies from host memory directly; this change is not yet measured on a GPU).
- Memory: CuPy keeps freed device blocks in its memory pool; `release` returns them (and the pinned host pool)
  to the driver between cases, so one case's cache cannot crowd the next. An allocation failure is CuPy's
  `OutOfMemoryError` (recorded as `oom`), as is cuBLAS's `CUBLAS_STATUS_ALLOC_FAILED`.
- Precision: float32 matrix products (MatMul, Linear, attention and the im2col convolutions) use full float32
  unless `CUPY_TF32=1`, which lets cuBLAS use TF32 tensor cores. CuPy reads the variable at its first matrix
  product per dtype, so it is a precision mode set in a fresh process, recorded in the settings; when it is on,
  the settings also name the narrower arithmetic (`float32_products_arithmetic`), which the verifier uses to
  call those results `reduced-precision` instead of `wrong`.
- bfloat16 is declared unsupported: CuPy has no such dtype.
- The `cold` mode zeroes a device buffer of twice the L2 (at least `modes.GPU_FLUSH_BYTES`) before each call,
  as the torch adapter does; the engine synchronizes after it, outside the timed region.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sys
from typing import Any, ClassVar

import numpy as np

from opbench.backends._base import Availability, CacheFlush, PrecisionMode, missing_module_reason
from opbench.backends._xp import BFLOAT16_REASON, ArrayNamespace, NumPyLikeBackend

# Window copies of one convolution block (`backends._xp`): big blocks keep the GPU busy, and this is small
# next to any GPU's memory.
_IM2COL_BYTES = 512 << 20
_CUBLAS_ALLOC_FAILED = "cublas_status_alloc_failed"


def _cupy() -> Any:
    import cupy

    return cupy


def _tf32_on() -> bool:
    return os.environ.get("CUPY_TF32", "0").strip() not in ("", "0")


def _scatter(cupy: Any, ufunc: str, fallback: str) -> Any:
    """`cupy.<ufunc>.at` (CuPy 13+), else the older `cupyx.scatter_*` (the same unbuffered semantics)."""
    at = getattr(getattr(cupy, ufunc), "at", None)
    if at is not None:
        try:
            probe = cupy.zeros(2, dtype=cupy.float32)
            at(probe, cupy.asarray([0, 0]), cupy.ones(2, dtype=cupy.float32))
            return at
        except (NotImplementedError, AttributeError, TypeError):
            pass
    import cupyx

    return getattr(cupyx, fallback)


class CuPyGPU(NumPyLikeBackend):
    name = "cupy"
    framework = "cupy"
    packages = ("cupy", "cupy-cuda12x", "cupy-cuda13x")
    device_kind = "gpu"
    unsupported_dtypes: ClassVar[dict[str, str]] = {"bfloat16": BFLOAT16_REASON.format(library="CuPy")}

    def __init__(self) -> None:
        self._namespace: ArrayNamespace | None = None
        self._synchronize: Any = None

    # --- discovery -------------------------------------------------------------------------------------
    def availability(self) -> Availability:
        if importlib.util.find_spec("cupy") is None:
            return Availability(False, missing_module_reason("cupy", "cupy"))
        try:
            cupy = _cupy()
        except Exception as exc:  # a wheel for another CUDA, missing libraries: the reason, not a crash
            return Availability(False, f"cupy is installed but does not import: {_first_line(exc)}")
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError: no driver, no device
            return Availability(False, f"cupy {cupy.__version__}: no CUDA device ({_first_line(exc)})")
        if count < 1:
            return Availability(False, f"cupy {cupy.__version__}: no CUDA device")
        return Availability(True, f"cupy {cupy.__version__} on {_device_name(cupy)} (CUDA runtime "
                                  f"{_cuda_version(cupy.cuda.runtime.runtimeGetVersion())})")

    def setup(self) -> None:
        cupy = _cupy()
        cupy.cuda.Device(0).use()
        self._synchronize = cupy.cuda.runtime.deviceSynchronize  # bound once: sync() ends every timed block

    def versions(self) -> dict[str, str]:
        cupy = _cupy()
        runtime = cupy.cuda.runtime
        versions = {"cupy": cupy.__version__, "cuda_runtime": _cuda_version(runtime.runtimeGetVersion()),
                    "cuda_driver": _cuda_version(runtime.driverGetVersion())}
        with contextlib.suppress(Exception):  # informative only
            versions["cublas"] = str(cupy.cuda.cublas.getVersion(cupy.cuda.device.get_cublas_handle()))
        return versions

    def settings(self) -> dict[str, Any]:
        cupy = _cupy()
        device = cupy.cuda.Device()
        settings: dict[str, Any] = {
            "cupy_device": f"{device.id} ({_device_name(cupy)})",
            "compute_capability": str(device.compute_capability),
            "CUPY_TF32": os.environ.get("CUPY_TF32", "0"),
            "CUPY_ACCELERATORS": os.environ.get("CUPY_ACCELERATORS", ""),
        }
        if _tf32_on() and int(device.compute_capability) >= 80:  # "90" on an H100/H200; TF32 needs Ampere (80)
            settings["float32_products_arithmetic"] = f"TF32 (CUPY_TF32={settings['CUPY_TF32']})"
        return settings

    def precision_modes(self) -> dict[str, PrecisionMode]:
        """CUPY_TF32, read by CuPy at its first float32 matrix product: 0 (the default) keeps IEEE float32, 1 lets
        cuBLAS use TF32 tensor cores. Environment variables, so each needs a fresh process."""
        return {"CUPY_TF32=0": PrecisionMode("environment CUPY_TF32=0 (fresh process)", strict=True,
                                             env={"CUPY_TF32": "0"}),
                "CUPY_TF32=1": PrecisionMode("environment CUPY_TF32=1 (fresh process)", env={"CUPY_TF32": "1"})}

    def matmul_mode(self, arithmetic: str) -> str | None:
        """float32 products are IEEE with CUPY_TF32=0 and may use TF32 tensor cores with CUPY_TF32=1."""
        return {"float32": "CUPY_TF32=0", "TF32": "CUPY_TF32=1"}.get(arithmetic)

    def free_memory(self) -> int | None:
        """The device's free bytes plus what CuPy's pool holds unused (it hands that out first)."""
        cupy = _cupy()
        return int(cupy.cuda.runtime.memGetInfo()[0]) + int(cupy.get_default_memory_pool().free_bytes())

    def namespace(self) -> ArrayNamespace:
        if self._namespace is None:
            cupy = _cupy()
            from cupyx.scipy.special import expit

            self._namespace = ArrayNamespace(cupy, _scatter(cupy, "add", "scatter_add"),
                                             _scatter(cupy, "maximum", "scatter_max"), expit, _IM2COL_BYTES)
        return self._namespace

    # --- data --------------------------------------------------------------------------------------------
    def from_numpy(self, a: np.ndarray, dtype: str | None = None) -> Any:
        self._check_dtype(dtype)
        host = np.ascontiguousarray(a, dtype=dtype)
        x = _cupy().empty(host.shape, dtype=host.dtype)
        x.set(host)  # straight from host memory (module docstring, Transfer)
        self.sync()
        return x

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(_cupy().asnumpy(x))

    def take_rows(self, x: Any, rows: np.ndarray) -> Any:
        return x[_cupy().asarray(rows)]

    def same_buffer(self, a: Any, b: Any) -> bool:
        return a is b or (a.size > 0 and a.data.ptr == b.data.ptr)

    def output_fingerprint(self, x: Any) -> str | None:
        """`backends._fingerprint` on the GPU (CuPy's int64 wraps); only the three sums come back."""
        from opbench.backends._fingerprint import xp_fingerprint

        cupy = _cupy()
        return xp_fingerprint(cupy, x, "cupy", cupy.asnumpy)

    # --- timing modes ------------------------------------------------------------------------------------
    def flush_cache(self) -> CacheFlush:
        """`modes.GPUZeroFlush` on a CuPy buffer of twice the L2 (at least `modes.GPU_FLUSH_BYTES`)."""
        from opbench.engine.modes import GPUZeroFlush, gpu_flush_bytes

        cupy = _cupy()
        l2 = 0
        with contextlib.suppress(Exception):  # informative: without it the floor alone is larger than any L2
            l2 = int(cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id).get("l2CacheSize", 0))
        nbytes = gpu_flush_bytes(l2)
        return GPUZeroFlush(functools.partial(cupy.empty(nbytes, dtype=cupy.uint8).fill, 0), nbytes)

    # --- execution ---------------------------------------------------------------------------------------
    def sync(self) -> None:
        if self._synchronize is None:
            self._synchronize = _cupy().cuda.runtime.deviceSynchronize
        self._synchronize()

    def release(self) -> None:
        cupy = _cupy()
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()

    def reset_peak_memory(self) -> None:
        """CuPy keeps no peak: its pool returns nothing to the driver on its own, so once the blocks it holds
        unused are freed here, what it holds after the case (`peak_memory`) is its high-water mark."""
        _cupy().get_default_memory_pool().free_all_blocks()

    def peak_memory(self) -> tuple[int, str] | None:
        """The bytes the pool holds since `reset_peak_memory`: at least the peak in use (a block is held at its
        rounded size, and a freed one is kept for reuse), as torch's `max_memory_reserved` is."""
        held = int(_cupy().get_default_memory_pool().total_bytes())
        return held, "cupy MemoryPool.total_bytes (held: at least the peak)"

    def is_oom(self, exc: BaseException) -> bool:
        memory = sys.modules.get("cupy.cuda.memory")  # imported with cupy: no import here
        if memory is not None and isinstance(exc, memory.OutOfMemoryError):
            return True
        return _CUBLAS_ALLOC_FAILED in str(exc).lower() or super().is_oom(exc)


def _first_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return text[0] if text else type(exc).__name__


def _device_name(cupy: Any) -> str:
    try:
        name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # informative only
        return "an NVIDIA GPU"


def _cuda_version(number: int) -> str:
    """CUDA's packed version (12040) as text (12.4)."""
    return f"{number // 1000}.{number % 1000 // 10}"
