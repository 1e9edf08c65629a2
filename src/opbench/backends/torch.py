"""PyTorch adapters: `cpu`, `mps`, `cuda` and `cuda_compile` (torch.compile).

Torch is eager: every op is launched when called, so `force` has nothing to do and `sync` waits on the device
queue (CUDA/MPS). Convolutions run in torch's native channels-first layout; inputs are permuted before timing
and outputs permuted back after it. Gradients are disabled for the whole process.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from opbench.backends._base import (
    Availability,
    Backend,
    Builder,
    PrecisionMode,
    Prepared,
    missing_module_reason,
)
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


def _conv(case: Case, x: Any, w: Any, dims: int) -> Prepared:
    # catalog: x N x S... x C, w O x K... x I  ->  torch: x N x C x S..., w O x I x K...
    F = _F()
    xc = x.movedim(-1, 1).contiguous()
    wc = w.movedim(-1, 1).contiguous()
    op = F.conv1d if dims == 1 else F.conv2d
    return Prepared(op, (xc, wc), canonical=lambda out: out.movedim(1, -1))


def _index_add(y: Any, idx: Any, upd: Any) -> Any:
    return _torch().zeros_like(y).index_add_(0, idx, upd)


def _index_amax(y: Any, idx: Any, upd: Any) -> Any:
    return _torch().zeros_like(y).index_reduce_(0, idx, upd, "amax", include_self=True)


def _simple(fn: Callable[..., Any]) -> Builder:
    return lambda be, case, args: Prepared(fn, args)


def _with_axis(fn: Callable[[Any, int], Any]) -> Builder:
    return lambda be, case, args: Prepared(lambda x, axis=case.axis: fn(x, axis), args)


def _builders() -> dict[str, Builder]:
    def torch_op(name: str) -> Callable[..., Any]:
        return lambda *a, **k: getattr(_torch(), name)(*a, **k)

    def func(name: str) -> Callable[..., Any]:
        return lambda *a, **k: getattr(_F(), name)(*a, **k)

    def linear(be: Backend, case: Case, args: tuple[Any, ...]) -> Prepared:
        x, w, b = args  # w is `in x out`; torch's F.linear wants `out x in`
        return Prepared(func("linear"), (x, w.t().contiguous(), b))

    def layer_norm(be: Backend, case: Case, args: tuple[Any, ...]) -> Prepared:
        x, w, b = args
        shape = (case.shapes[0][-1],)
        return Prepared(lambda x, w, b: _F().layer_norm(x, shape, w, b, LAYER_NORM_EPS), (x, w, b))

    def sdpa(be: Backend, case: Case, args: tuple[Any, ...]) -> Prepared:
        q, k, v, mask = args
        scale = 1.0 / float(np.sqrt(case.shapes[0][-1]))
        return Prepared(lambda q, k, v, m: _F().scaled_dot_product_attention(q, k, v, attn_mask=m, scale=scale),
                        (q, k, v, mask))

    return {
        "Argmax": _with_axis(lambda x, axis: _torch().argmax(x, dim=axis)),
        "BCE": _simple(func("binary_cross_entropy")),
        "Concat": lambda be, case, args: Prepared(lambda a, b, axis=case.axis: _torch().cat([a, b], dim=axis), args),
        "Conv1d": lambda be, case, args: _conv(case, *args, dims=1),
        "Conv2d": lambda be, case, args: _conv(case, *args, dims=2),
        "Gather": _simple(lambda x, idx: x[idx]),
        "LayerNorm": layer_norm,
        "LeakyReLU": _simple(lambda x: _F().leaky_relu(x, LEAKY_SLOPE)),
        "Linear": linear,
        "MatMul": _simple(torch_op("matmul")),
        "PReLU": _simple(func("prelu")),
        "ReLU": _simple(torch_op("relu")),
        "ScaledDotProductAttention": sdpa,
        "Scatter": _simple(lambda y, idx, upd: y.index_copy(0, idx, upd)),
        "ScatterSum": _simple(_index_add),
        "ScatterMax": _simple(_index_amax),
        "SeLU": _simple(func("selu")),
        "Sigmoid": _simple(torch_op("sigmoid")),
        "Softmax": _with_axis(lambda x, axis: _torch().softmax(x, dim=axis)),
        "Softplus": _simple(func("softplus")),
        "Sort": _with_axis(lambda x, axis: _torch().sort(x, dim=axis).values),
        "Sum": _with_axis(lambda x, axis: _torch().sum(x, dim=axis)),
        "SumAll": _simple(torch_op("sum")),
    }


class TorchBackend(Backend):
    framework = "torch"
    device = "cpu"
    builders = _builders()

    def availability(self) -> Availability:
        if importlib.util.find_spec("torch") is None:
            return Availability(False, missing_module_reason("torch", "torch"))
        return self._device_availability(_torch())

    def _device_availability(self, torch: Any) -> Availability:
        return Availability(True, f"torch {torch.__version__} on the CPU")

    def setup(self) -> None:
        _torch().set_grad_enabled(False)

    def versions(self) -> dict[str, str]:
        return {"torch": _torch().__version__}

    def settings(self) -> dict[str, Any]:
        torch = _torch()
        return {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
                "float32_matmul_precision": torch.get_float32_matmul_precision()}

    def from_numpy(self, a: np.ndarray, dtype: str | None = None) -> Any:
        torch = _torch()
        x = torch.from_numpy(np.ascontiguousarray(a))
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

    def is_oom(self, exc: BaseException) -> bool:
        return isinstance(exc, getattr(_torch(), "OutOfMemoryError", ())) or super().is_oom(exc)


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

    def release(self) -> None:
        _torch().mps.empty_cache()


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

    def compile(self, op: Callable[..., Any]) -> Callable[..., Any]:
        torch = _torch()
        torch._dynamo.reset()
        return torch.compile(op, dynamic=False)
