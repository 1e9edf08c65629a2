"""MLX adapters: `mlx_gpu`, `mlx_gpu_compile` (mx.compile) and `mlx_cpu`.

MLX is lazy: calling an op only records a graph. The code behind the seed article returned such graphs
without evaluating them (Scatter*, for instance), so nothing was computed and the times were near zero. Here
`force` dispatches every timed output with `mx.async_eval` (the engine checks that it holds data) and `sync`
waits for the stream with `mx.synchronize`. MLX's GPU is Metal on macOS and CUDA on Linux (`mlx[cuda13]`).
Index inputs are converted to int32, MLX's native index type.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import operator
import os
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from opbench.backends._base import (
    Availability,
    Backend,
    Builder,
    PrecisionMode,
    Prepared,
    missing_module_reason,
)
from opbench.backends._base import axis_builder as _with_axis
from opbench.backends._base import simple_builder as _simple
from opbench.backends._native import vendored_blas
from opbench.catalog import Case
from opbench.catalog.families import LAYER_NORM_EPS, LEAKY_SLOPE


def _mx() -> Any:
    if "mlx.core" not in sys.modules:
        _load_torch_cudnn_first()
    import mlx.core as mx

    return mx


def _load_torch_cudnn_first() -> None:
    """On Linux, import PyTorch (when installed) before MLX's first import.

    MLX's CUDA build and PyTorch's CUDA build both load `libcudnn.so.9`, and a process keeps whichever it loads
    first. PyTorch refuses a cuDNN older than the one it was built against ("cuDNN version incompatibility" at
    its first convolution, seen on the H100 with torch 2.11 + mlx-cuda-13 0.32.4: 9.19 wanted, 9.14 found),
    while MLX runs on a newer one. Importing torch first makes both share torch's cuDNN. Trade-off: an MLX-only
    process on Linux pays torch's import time once; on macOS (Metal, no cuDNN) nothing is imported.
    """
    if sys.platform.startswith("linux") and "torch" not in sys.modules and importlib.util.find_spec("torch"):
        with contextlib.suppress(Exception):
            import torch  # noqa: F401


def _nn() -> Any:
    import mlx.nn as nn

    return nn


def _builders() -> dict[str, Builder]:
    def sdpa(be: Backend, case: Case, args: tuple[Any, ...]) -> Prepared:
        scale, attend = 1.0 / math.sqrt(case.shapes[0][-1]), _mx().fast.scaled_dot_product_attention
        return Prepared(lambda q, k, v, m: attend(q, k, v, scale=scale, mask=m), args)

    def concat(axis: int) -> Callable[..., Any]:
        concatenate = _mx().concatenate
        return lambda a, b: concatenate([a, b], axis=axis)

    def scatter_set() -> Callable[..., Any]:
        copy = _mx().array

        def scatter(y: Any, idx: Any, upd: Any) -> Any:
            out = copy(y)  # a new array: the caller's y is not modified
            out[idx] = upd
            return out

        return scatter

    def scatter_reduce(reduce: str) -> Callable[..., Any]:
        zeros_like = _mx().zeros_like
        if reduce == "sum":
            return lambda y, idx, upd: zeros_like(y).at[idx].add(upd)
        return lambda y, idx, upd: zeros_like(y).at[idx].maximum(upd)

    def layer_norm() -> Callable[..., Any]:
        ln = _mx().fast.layer_norm
        return lambda x, w, b: ln(x, w, b, LAYER_NORM_EPS)

    def linear() -> Callable[..., Any]:
        addmm = _mx().addmm
        return lambda x, w, b: addmm(b, x, w)

    return {
        "Argmax": _with_axis(lambda axis: functools.partial(_mx().argmax, axis=axis)),
        "BCE": _simple(lambda: functools.partial(_nn().losses.binary_cross_entropy, with_logits=False,
                                                 reduction="mean")),
        "Concat": _with_axis(concat),
        "Conv1d": _simple(lambda: _mx().conv1d),  # MLX is channels-last with weights `out x k x in`: native
        "Conv2d": _simple(lambda: _mx().conv2d),
        "Gather": _simple(lambda: operator.getitem),  # x[idx]
        "LayerNorm": _simple(layer_norm),
        "LeakyReLU": _simple(lambda: functools.partial(_nn().leaky_relu, negative_slope=LEAKY_SLOPE)),
        "Linear": _simple(linear),
        "MatMul": _simple(lambda: _mx().matmul),
        "PReLU": _simple(lambda: _nn().prelu),
        "ReLU": _simple(lambda: _nn().relu),
        "ScaledDotProductAttention": sdpa,
        "Scatter": _simple(scatter_set),
        "ScatterSum": _simple(lambda: scatter_reduce("sum")),
        "ScatterMax": _simple(lambda: scatter_reduce("max")),
        "SeLU": _simple(lambda: _nn().selu),
        "Sigmoid": _simple(lambda: _mx().sigmoid),
        "Softmax": _with_axis(lambda axis: functools.partial(_mx().softmax, axis=axis)),
        "Softplus": _simple(lambda: _nn().softplus),
        "Sort": _with_axis(lambda axis: functools.partial(_mx().sort, axis=axis)),
        "Sum": _with_axis(lambda axis: functools.partial(_mx().sum, axis=axis)),
        "SumAll": _simple(lambda: _mx().sum),
    }


def _copy_probe(be: Backend, probe: Any, args: tuple[Any, ...]) -> Prepared:
    # `mx.array(x)` may go through the host; `x + 0` streams the same bytes as a copy, in a cached buffer
    return Prepared(lambda a: a + 0, args, how="x + 0 (mlx has no explicit copy)")


# The distributions whose files may bundle MLX's CPU libraries (`mlx[cpu]` installs mlx-cpu on Linux).
_DISTRIBUTIONS = ("mlx-cpu", "mlx")


class MLXBackend(Backend):
    framework = "mlx"
    packages = ("mlx", "mlx-cuda-13", "mlx-metal")
    lazy = True
    shares_input_memory = False  # `mx.array` copies into MLX's allocator
    builders = _builders()
    probes: ClassVar[dict[str, Builder]] = {
        "copy": _copy_probe, "read": lambda be, probe, args: Prepared(_mx().sum, args, how="mx.sum(x)")}
    unsupported: ClassVar[dict[str, str]] = {}  # every catalog family has a builder
    gpu = False

    def availability(self) -> Availability:
        if importlib.util.find_spec("mlx") is None:
            return Availability(False, missing_module_reason("mlx", "mlx"))
        mx = _mx()
        if not self.gpu:
            blas = vendored_blas(*_DISTRIBUTIONS)
            return Availability(True, f"mlx {mx.__version__} on the CPU" + (f" ({blas})" if blas else ""))
        if not mx.is_available(mx.gpu):
            return Availability(False, f"mlx {mx.__version__} has no GPU backend here (Metal on macOS; on Linux "
                                       "install mlx[cuda13] on a machine with an NVIDIA GPU)")
        return Availability(True, f"mlx {mx.__version__} on the GPU ({_gpu_name(mx)})")

    def preload(self) -> None:
        _mx()  # MLX creates its device context on first use, not at import

    def setup(self) -> None:
        mx = _mx()
        mx.set_default_device(mx.gpu if self.gpu else mx.cpu)
        self._async_eval = mx.async_eval  # bound once: force() sits in the timed loop

    def versions(self) -> dict[str, str]:
        """MLX's version and, on the CPU, the BLAS its wheel bundles (`_native.vendored_blas`): on Linux the
        reference BLAS, which makes its CPU matrix products tens of times slower than torch's."""
        blas = "" if self.gpu else vendored_blas(*_DISTRIBUTIONS)
        return {"mlx": _mx().__version__, **({"blas": blas} if blas else {})}

    def settings(self) -> dict[str, Any]:
        """Device, and the TF32 switch MLX reads from the environment (default on: float32 matmuls on CUDA
        GPUs that support it run as TF32)."""
        return {"mlx_device": "gpu" if self.gpu else "cpu", "MLX_ENABLE_TF32": os.environ.get("MLX_ENABLE_TF32", "1"),
                **({"mlx_gpu_platform": "metal" if sys.platform == "darwin" else "cuda"} if self.gpu else {})}

    def precision_modes(self) -> dict[str, PrecisionMode]:
        """MLX has no in-process switch: MLX_ENABLE_TF32 (default 1) is read once per process and lets
        supported GPUs run float32 matmuls in TF32. `0` keeps them IEEE float32; on a CUDA GPU `1` asks for
        TF32 explicitly (whatever the environment says)."""
        modes = {"MLX_ENABLE_TF32=0": PrecisionMode("environment MLX_ENABLE_TF32=0 (fresh process)", strict=True,
                                                    env={"MLX_ENABLE_TF32": "0"})}
        if self._cuda_gpu():
            modes["MLX_ENABLE_TF32=1"] = PrecisionMode("environment MLX_ENABLE_TF32=1 (fresh process)",
                                                       env={"MLX_ENABLE_TF32": "1"})
        return modes

    def _cuda_gpu(self) -> bool:
        """MLX's GPU is CUDA on Linux (TF32 tensor cores), Metal on macOS (no TF32)."""
        return self.gpu and sys.platform != "darwin"

    def matmul_mode(self, arithmetic: str) -> str | None:
        if not self._cuda_gpu():  # the CPU and Metal have no TF32: float32 is float32 with nothing set
            return "" if arithmetic == "float32" else None
        return {"float32": "MLX_ENABLE_TF32=0", "TF32": "MLX_ENABLE_TF32=1"}.get(arithmetic)

    def free_memory(self) -> int | None:
        if not self.gpu:
            return super().free_memory()
        mx = _mx()
        total = int(mx.device_info().get("memory_size", 0))
        return total - int(mx.get_active_memory()) if total else None

    def compile_counters(self) -> dict[str, Any]:
        if not self.compiled:
            return {}
        return {"compiler": "mx.compile", "fell_back_to_eager": False,
                "note": "retraces once per new input shape; no recompile limit, no eager fallback"}

    def from_numpy(self, a: np.ndarray, dtype: str | None = None) -> Any:
        """Without `dtype`, int64 becomes int32 (MLX's index type). With it, the array gets exactly that type:
        note that `mx.array` of a float64 NumPy array gives float32 unless float64 is asked for."""
        mx = _mx()
        if dtype is None and a.dtype == np.int64:
            a = a.astype(np.int32)
        x = mx.array(a) if dtype is None else mx.array(a, dtype=getattr(mx, dtype))
        mx.eval(x)
        return x

    def to_numpy(self, x: Any) -> np.ndarray:
        mx = _mx()
        if x.dtype == mx.bfloat16:
            x = x.astype(mx.float32)
        if self.gpu:
            return np.array(x)
        # On the CPU the evaluated array's own buffer, read-only: `np.array` copied it at about 0.5 GB/s on the
        # 2-core VM (33 s of mlx_cpu's `output` phase in a seed-preset run), where the view costs nothing.
        view = np.asarray(x)
        view.flags.writeable = False
        return view

    def take_rows(self, x: Any, rows: np.ndarray) -> Any:
        return x[_mx().array(rows.astype(np.int32))]

    def output_fingerprint(self, x: Any) -> str | None:
        """None on the CPU (the host digest needs no copy there); `mlx_fingerprint` on the GPU."""
        return mlx_fingerprint(x) if self.gpu else None

    def force(self, out: Any) -> None:
        self._async_eval(out)

    def ready(self, out: Any) -> bool:
        """The engine checks the last output of each block after `sync`: it must hold data. MLX detaches an
        array from its graph when it is evaluated, so its exported graph has no edges; an array that was only
        built (or handed to a `force` that does not evaluate) still has its primitive and inputs."""
        import io

        graph = io.StringIO()
        _mx().export_to_dot(graph, out)
        return "->" not in graph.getvalue()

    def sync(self) -> None:
        _mx().synchronize()

    def compile(self, op: Callable[..., Any]) -> Callable[..., Any]:
        def case_op(*args: Any) -> Any:  # a fresh function per case: its own compile cache entry
            return op(*args)

        return _mx().compile(case_op)

    def release(self) -> None:
        mx = _mx()
        clear = getattr(mx, "clear_cache", None) or getattr(mx.metal, "clear_cache", None)
        if clear is not None:
            clear()

    def device_timer(self, op: Callable[..., Any], args: tuple[Any, ...], per_call_s: float) -> Any:
        """CUPTI kernel time (torch.profiler) on MLX's CUDA backend; none on Metal or the CPU."""
        from opbench.engine.modes import ModeNotApplicable

        if self.gpu and sys.platform == "darwin":
            raise ModeNotApplicable("Metal (MLX exposes no GPU-side kernel timer there)")
        return super().device_timer(op, args, per_call_s)

    def flush_cache(self) -> Any:
        if not self.gpu:
            return super().flush_cache()
        return MLXCacheFlush()

    def reset_peak_memory(self) -> None:
        reset = _memory_function(_mx(), "reset_peak_memory")
        if self.gpu and reset is not None:
            reset()

    def peak_memory(self) -> tuple[int, str] | None:
        peak = _memory_function(_mx(), "get_peak_memory")
        if not self.gpu or peak is None:
            return None
        return int(peak()), "mx.get_peak_memory"


def mlx_fingerprint(x: Any) -> str | None:
    """`backends._fingerprint`'s sums of an MLX array, on its default device in int64 (MLX wraps int64
    arithmetic), chunk by chunk (MLX does not fuse eager ops: the chunks bound the temporaries); reading the
    three sums evaluates the graph, `x` included."""
    from opbench.backends import _fingerprint as fp

    mx = _mx()
    shape, dtype = tuple(x.shape), str(x.dtype).rsplit(".", 1)[-1]
    width = fp.word_width(x.dtype.size, x.dtype == mx.bool_)
    if width is None:
        return None
    flat = x.reshape(-1)
    words = flat.astype(mx.int8) if x.dtype == mx.bool_ else mx.view(flat, {1: mx.int8, 2: mx.int16,
                                                                           4: mx.int32}[width])
    n = int(words.size)
    acc = mx.zeros((3,), dtype=mx.int64)
    for start in range(0, n, fp.CHUNK_WORDS):
        stop = min(n, start + fp.CHUNK_WORDS)
        w = words[start:stop].astype(mx.int64)
        i = mx.arange(start, stop, dtype=mx.int64)
        h1 = mx.bitwise_and(i * fp.K1, fp.MASK)
        h2 = mx.bitwise_and(mx.bitwise_xor(i, mx.right_shift(i, fp.SHIFT)) * fp.K2, fp.MASK)
        acc = acc + mx.stack([w.sum(), (w * h1).sum(), (w * h2).sum()])
        mx.eval(acc)
    return fp.text("mlx", shape, dtype, acc.tolist())


class MLXCacheFlush:
    """The `cold` mode's flush on MLX's GPU: a fresh `modes.GPU_FLUSH_BYTES` array filled with a new value and
    evaluated (a write larger than the L2), then dropped."""

    def __init__(self) -> None:
        from opbench.engine.modes import GPU_FLUSH_BYTES

        self.nbytes = GPU_FLUSH_BYTES
        self._value = 0

    def __call__(self) -> None:
        mx = _mx()
        self._value = (self._value + 1) % 251
        buffer = mx.full((self.nbytes,), self._value, dtype=mx.uint8)
        mx.eval(buffer)
        del buffer

    def describe(self) -> str:
        return f"L2 flushed (writing {self.nbytes >> 20} MiB) before each call"


def _memory_function(mx: Any, name: str) -> Any:
    """`mx.<name>` (MLX >= 0.24), else the older `mx.metal.<name>`, else None."""
    return getattr(mx, name, None) or getattr(getattr(mx, "metal", None), name, None)


def _gpu_name(mx: Any) -> str:
    try:
        info = mx.device_info()
        return str(info.get("device_name") or info.get("architecture") or "gpu")
    except Exception:
        return "gpu"


class MLXCPU(MLXBackend):
    name = "mlx_cpu"


class MLXGPU(MLXBackend):
    name = "mlx_gpu"
    device_kind = "gpu"
    gpu = True


class MLXGPUCompile(MLXGPU):
    name = "mlx_gpu_compile"
    compiled = True
