"""PyTorch adapters: `cpu`, `mps`, `cuda` and `cuda_compile` (torch.compile).

Torch is eager: every op is launched when called, so `force` has nothing to do and `sync` waits on the device
queue (CUDA/MPS). Convolutions run in torch's native channels-first layout; inputs are permuted before timing
and outputs permuted back after it. Gradients are disabled for the whole process.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import operator
import re
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np

from opbench.backends._base import (
    Availability,
    Backend,
    Builder,
    CacheFlush,
    PrecisionMode,
    Prepared,
    missing_module_reason,
)
from opbench.backends._base import axis_builder as _with_axis
from opbench.backends._base import simple_builder as _simple
from opbench.catalog import Case
from opbench.catalog.families import LAYER_NORM_EPS, LEAKY_SLOPE


def _torch() -> Any:
    import torch

    return torch


def _F() -> Any:
    import torch.nn.functional as F

    return F


@contextlib.contextmanager
def _float32_matmul_precision(mode: str) -> Iterator[None]:
    torch = _torch()
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(mode)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def dynamo_fell_back(counters: dict[str, dict[str, int]]) -> bool:
    """True when dynamo gave up on a frame (recompile limit hit, or a frame it could not compile): the op then
    ran eagerly, and its time is not a compiled time."""
    frames = counters.get("frames", {})
    limit_hit = any("recompile limit" in k.lower() for k in counters.get("unimplemented", {}))
    return limit_hit or frames.get("total", 0) > frames.get("ok", 0)


def _copy_probe(be: Backend, probe: Any, args: tuple[Any, ...]) -> Prepared:
    (x,) = args
    dst = x.new_empty(x.shape)  # preallocated: a fresh output per call would time page faults on a CPU
    return Prepared(dst.copy_, (x,), how="Tensor.copy_ into a preallocated tensor", fresh_outputs=False)


def _conv(case: Case, x: Any, w: Any, dims: int) -> Prepared:
    # catalog: x N x S... x C, w O x K... x I  ->  torch: x N x C x S..., w O x I x K...
    F = _F()
    xc = x.movedim(-1, 1).contiguous()
    wc = w.movedim(-1, 1).contiguous()
    op = F.conv1d if dims == 1 else F.conv2d
    return Prepared(op, (xc, wc), canonical=lambda out: out.movedim(1, -1))


def _builders() -> dict[str, Builder]:
    def linear(be: Backend, case: Case, args: tuple[Any, ...]) -> Prepared:
        x, w, b = args  # w is `in x out`; torch's F.linear wants `out x in`
        return Prepared(_F().linear, (x, w.t().contiguous(), b))

    def layer_norm(be: Backend, case: Case, args: tuple[Any, ...]) -> Prepared:
        shape, ln = (case.shapes[0][-1],), _F().layer_norm
        return Prepared(lambda x, w, b: ln(x, shape, w, b, LAYER_NORM_EPS), args)

    def sdpa(be: Backend, case: Case, args: tuple[Any, ...]) -> Prepared:
        scale, attend = 1.0 / float(np.sqrt(case.shapes[0][-1])), _F().scaled_dot_product_attention
        return Prepared(lambda q, k, v, m: attend(q, k, v, attn_mask=m, scale=scale), args)

    def concat(axis: int) -> Callable[..., Any]:
        cat = _torch().cat
        return lambda a, b: cat([a, b], dim=axis)

    def sort_values(axis: int) -> Callable[..., Any]:
        sort = _torch().sort
        return lambda x: sort(x, dim=axis).values

    def scatter_reduce(reduce: str) -> Callable[..., Any]:
        zeros_like = _torch().zeros_like
        if reduce == "sum":
            return lambda y, idx, upd: zeros_like(y).index_add_(0, idx, upd)
        return lambda y, idx, upd: zeros_like(y).index_reduce_(0, idx, upd, "amax", include_self=True)

    return {
        "Argmax": _with_axis(lambda axis: functools.partial(_torch().argmax, dim=axis)),
        "BCE": _simple(lambda: _F().binary_cross_entropy),
        "Concat": _with_axis(concat),
        "Conv1d": lambda be, case, args: _conv(case, *args, dims=1),
        "Conv2d": lambda be, case, args: _conv(case, *args, dims=2),
        "Gather": _simple(lambda: operator.getitem),  # x[idx]
        "LayerNorm": layer_norm,
        "LeakyReLU": _simple(lambda: functools.partial(_F().leaky_relu, negative_slope=LEAKY_SLOPE)),
        "Linear": linear,
        "MatMul": _simple(lambda: _torch().matmul),
        "PReLU": _simple(lambda: _F().prelu),
        "ReLU": _simple(lambda: _torch().relu),
        "ScaledDotProductAttention": sdpa,
        "Scatter": _simple(lambda: lambda y, idx, upd: y.index_copy(0, idx, upd)),
        "ScatterSum": _simple(lambda: scatter_reduce("sum")),
        "ScatterMax": _simple(lambda: scatter_reduce("amax")),
        "SeLU": _simple(lambda: _F().selu),
        "Sigmoid": _simple(lambda: _torch().sigmoid),
        "Softmax": _with_axis(lambda axis: functools.partial(_torch().softmax, dim=axis)),
        "Softplus": _simple(lambda: _F().softplus),
        "Sort": _with_axis(sort_values),
        "Sum": _with_axis(lambda axis: functools.partial(_torch().sum, dim=axis)),
        "SumAll": _simple(lambda: _torch().sum),
    }


def torch_fingerprint(x: Any) -> str | None:
    """`backends._fingerprint`'s sums of a tensor, computed on its device in int64 (torch wraps int64
    arithmetic), chunk by chunk; one copy of three int64 numbers comes back. None for a type whose elements
    are not 1, 2, 4 or 8 bytes."""
    from opbench.backends import _fingerprint as fp

    torch = _torch()
    x = x.detach()
    shape, dtype = tuple(x.shape), str(x.dtype).rsplit(".", 1)[-1]
    flat = x.contiguous().reshape(-1)
    width = fp.word_width(flat.element_size(), flat.dtype == torch.bool)
    if width is None:
        return None
    words = flat.view({1: torch.int8, 2: torch.int16, 4: torch.int32}[width])
    acc = torch.zeros(3, dtype=torch.int64, device=flat.device)
    for start in range(0, words.numel(), fp.CHUNK_WORDS):
        w = words[start:start + fp.CHUNK_WORDS].to(torch.int64)
        i = torch.arange(start, start + w.numel(), dtype=torch.int64, device=flat.device)
        h2 = torch.bitwise_xor(i, i >> fp.SHIFT).mul_(fp.K2).bitwise_and_(fp.MASK).mul_(w)
        h1 = i.mul_(fp.K1).bitwise_and_(fp.MASK).mul_(w)
        acc += torch.stack([w.sum(), h1.sum(), h2.sum()])
    return fp.text("torch", shape, dtype, acc.tolist())


def _cache_flush(device: str) -> CacheFlush:
    """The `cold` mode's flush on a torch GPU (`modes.GPUZeroFlush`): twice the L2 where CUDA reports it."""
    from opbench.engine.modes import GPUZeroFlush, gpu_flush_bytes

    torch = _torch()
    l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) if device == "cuda" else 0
    nbytes = gpu_flush_bytes(l2)
    return GPUZeroFlush(torch.empty(nbytes, dtype=torch.uint8, device=device).zero_, nbytes)


# torch's names for the BLAS it was built with (`torch.__config__.show()`), and what to call them.
_BLAS_NAMES = {"mkl": "Intel MKL", "open": "OpenBLAS", "openblas": "OpenBLAS", "accelerate": "Apple Accelerate",
               "blis": "BLIS", "armpl": "Arm Performance Libraries", "eigen": "Eigen"}


def _build_setting(torch: Any, key: str) -> str:
    """One of torch's build settings (`KEY=value` in `torch.__config__.show()`), or ""."""
    with contextlib.suppress(Exception):  # informative only: a build without the line reports nothing
        if found := re.search(rf"\b{key}=([^,\s]+)", torch.__config__.show()):
            return found.group(1)
    return ""


class TorchBackend(Backend):
    framework = "torch"
    packages = ("torch",)
    device = "cpu"
    builders = _builders()
    probes: ClassVar[dict[str, Builder]] = {"copy": _copy_probe,
              "read": lambda be, probe, args: Prepared(_torch().sum, args, how="torch.sum(x)")}
    unsupported: ClassVar[dict[str, str]] = {}  # every catalog family has a builder

    def availability(self) -> Availability:
        if importlib.util.find_spec("torch") is None:
            return Availability(False, missing_module_reason("torch", "torch"))
        return self._device_availability(_torch())

    def _device_availability(self, torch: Any) -> Availability:
        return Availability(True, f"torch {torch.__version__} on the CPU")

    def setup(self) -> None:
        _torch().set_grad_enabled(False)

    def preload(self) -> None:
        _torch()  # torch creates its device contexts on first use, not at import

    def versions(self) -> dict[str, str]:
        """torch's version and, on the CPU, the BLAS it was built with (its build settings' `BLAS_INFO`)."""
        torch = _torch()
        blas = _BLAS_NAMES.get(blas_info := _build_setting(torch, "BLAS_INFO"), blas_info)
        return {"torch": torch.__version__, **({"blas": blas} if blas and self.device_kind == "cpu" else {})}

    def settings(self) -> dict[str, Any]:
        torch = _torch()
        return {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
                "float32_matmul_precision": torch.get_float32_matmul_precision()}

    def from_numpy(self, a: np.ndarray, dtype: str | None = None) -> Any:
        torch = _torch()
        x = torch.from_numpy(np.asarray(a, order="C"))  # ascontiguousarray would make a 0-d array 1-d
        return x.to(self.device) if dtype is None else x.to(self.device, getattr(torch, dtype))

    def precision_modes(self) -> dict[str, PrecisionMode]:
        """`torch.set_float32_matmul_precision`: highest = IEEE float32; high lets CUDA use TF32 (and oneDNN
        bf16x3 on CPUs that have it); medium allows bfloat16."""
        return {mode: PrecisionMode(f'set_float32_matmul_precision("{mode}")', strict=mode == "highest",
                                    enter=lambda mode=mode: _float32_matmul_precision(mode))
                for mode in ("highest", "high", "medium")}

    def to_numpy(self, x: Any) -> np.ndarray:
        x = x.detach()
        if x.dtype == _torch().bfloat16:
            x = x.float()
        return x.cpu().numpy()

    def take_rows(self, x: Any, rows: np.ndarray) -> Any:
        return x[_torch().as_tensor(rows, device=x.device)]

    def output_fingerprint(self, x: Any) -> str | None:
        """None on the CPU (the host digest needs no copy there); `torch_fingerprint` on a device."""
        return None if self.device == "cpu" else torch_fingerprint(x)

    def same_buffer(self, a: Any, b: Any) -> bool:
        return a is b or (a.numel() > 0 and a.data_ptr() == b.data_ptr())

    def is_oom(self, exc: BaseException) -> bool:
        return isinstance(exc, getattr(_torch(), "OutOfMemoryError", ())) or super().is_oom(exc)

    def reset_compile_counters(self) -> None:
        if self.compiled:
            from torch._dynamo.utils import counters

            counters.clear()

    def compile_counters(self) -> dict[str, Any]:
        """torch.compile keys its cache by code object and, after `recompile_limit` shapes of one op, silently
        runs it eagerly: dynamo's counters say whether that happened (graphs compiled, frames compiled)."""
        if not self.compiled:
            return {}
        from torch._dynamo.utils import counters

        frames = dict(counters.get("frames", {}))
        return {"compiler": "torch.compile", "graphs": int(counters.get("stats", {}).get("unique_graphs", 0)),
                "frames_total": int(frames.get("total", 0)), "frames_ok": int(frames.get("ok", 0)),
                "fell_back_to_eager": dynamo_fell_back({k: dict(v) for k, v in counters.items()})}


class TorchCPU(TorchBackend):
    name = "cpu"


class TorchMPS(TorchBackend):
    name = "mps"
    device = "mps"
    device_kind = "gpu"

    def _device_availability(self, torch: Any) -> Availability:
        if not torch.backends.mps.is_built():
            return Availability(False, f"torch {torch.__version__} is built without MPS (Apple GPUs, macOS only)")
        if not torch.backends.mps.is_available():
            return Availability(False, "MPS is built in but no Apple GPU is available (macOS 12.3+ needed)")
        return Availability(True, f"torch {torch.__version__} on the Apple GPU (Metal)")

    def sync(self) -> None:
        _torch().mps.synchronize()

    def device_timer(self, op: Callable[..., Any], args: tuple[Any, ...], per_call_s: float) -> Any:
        from opbench.engine.modes import ModeNotApplicable

        raise ModeNotApplicable("MPS (torch exposes no GPU-side timer for Metal)")

    def flush_cache(self) -> Any:
        return _cache_flush("mps")

    def release(self) -> None:
        _torch().mps.empty_cache()

    def free_memory(self) -> int | None:
        mps = _torch().mps
        return int(mps.recommended_max_memory() - mps.driver_allocated_memory())


class TorchCUDA(TorchBackend):
    name = "cuda"
    device = "cuda"
    device_kind = "gpu"

    def _device_availability(self, torch: Any) -> Availability:
        if torch.version.cuda is None:
            return Availability(False, f"torch {torch.__version__} is a CPU-only build (no CUDA)")
        if not torch.cuda.is_available():
            return Availability(False, f"torch {torch.__version__} has CUDA {torch.version.cuda} but no GPU is visible")
        return Availability(True, f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")

    def settings(self) -> dict[str, Any]:
        torch = _torch()
        return {**super().settings(), "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32, "cudnn_benchmark": torch.backends.cudnn.benchmark}

    def versions(self) -> dict[str, str]:
        torch = _torch()
        return {**super().versions(), "cuda": str(torch.version.cuda), "cudnn": str(torch.backends.cudnn.version())}

    def sync(self) -> None:
        _torch().cuda.synchronize()

    def release(self) -> None:
        _torch().cuda.empty_cache()

    def free_memory(self) -> int | None:
        return int(_torch().cuda.mem_get_info()[0])

    def matmul_mode(self, arithmetic: str) -> str | None:
        """float32 matmuls are IEEE under "highest" and run on TF32 tensor cores under "high"."""
        return {"float32": "highest", "TF32": "high"}.get(arithmetic)

    def device_timer(self, op: Callable[..., Any], args: tuple[Any, ...], per_call_s: float) -> Any:
        """CUDA-graph replay timed with CUDA events; for an op that cannot be captured (it synchronizes, or
        allocates in a way capture forbids), CUPTI kernel time through torch.profiler, the reason in the method."""
        from opbench.backends._device_timers import CUDAGraphTimer, ProfilerTimer

        try:
            return CUDAGraphTimer(op, args, per_call_s)
        except Exception as exc:  # capture refused: the profiler needs nothing from the op
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
            with contextlib.suppress(Exception):
                _torch().cuda.synchronize()
            timer = ProfilerTimer(op, args, self.force, self.sync)
            timer.method = f"{timer.method}; CUDA-graph capture failed ({reason})"
            return timer

    def flush_cache(self) -> Any:
        return _cache_flush("cuda")

    def reset_peak_memory(self) -> None:
        _torch().cuda.reset_peak_memory_stats()

    def peak_memory(self) -> tuple[int, str] | None:
        return int(_torch().cuda.max_memory_allocated()), "torch.cuda.max_memory_allocated"


class TorchCUDACompile(TorchCUDA):
    """torch.compile on CUDA. Dynamo is reset before each case: its cache is keyed by code object, and the
    builders share code objects across cases, so without a reset it would hit its recompile limit and fall back
    to eager silently."""

    name = "cuda_compile"
    compiled = True

    def _device_availability(self, torch: Any) -> Availability:
        base = super()._device_availability(torch)
        if not base.available:
            return base
        if importlib.util.find_spec("triton") is None:
            return Availability(False, "torch.compile on CUDA needs triton, which is not installed")
        return Availability(True, base.reason + " with torch.compile (inductor)")

    def preload(self) -> None:
        """torch, then dynamo and inductor: their import (~6 s per process on the H100, paid inside the first
        case's `transfer` phase, where `compile` first touches them: results/h100-defaults, cuda_compile's
        first case 18.9 s over 3 units against 0.4 s on eager cuda) moves to the held worker's import, which
        overlaps the previous pass (`BackendWorker.prestart`). It touches no device."""
        super().preload()
        import torch._dynamo
        import torch._inductor.compile_fx  # noqa: F401

    def compile(self, op: Callable[..., Any]) -> Callable[..., Any]:
        torch = _torch()
        torch._dynamo.reset()

        def case_op(*args: Any) -> Any:  # a Python frame for dynamo to trace (op may be a C builtin)
            return op(*args)

        return torch.compile(case_op, dynamic=False)
