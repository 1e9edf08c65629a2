"""Which narrower arithmetic a backend runs a family in, from the settings its measuring process reports.

A result may only be `reduced-precision` when the process that measured it says that a narrower arithmetic was
in force for that family and dtype (`verify`). This module is that statement, as a pure function of the
backend's name and its `settings()` (the dict recorded with every run), so that stored runs can be
re-classified later from what they recorded. The answer is a mode string whose first word names the
arithmetic (`verify.MODE_ROUNDOFF`) and whose parenthesis names the switch, e.g. `TF32 (cudnn.allow_tf32)`.

What each framework does with float32 (and only float32: other dtypes have no such switch):
- torch CUDA: matmuls (MatMul, Linear, attention) use TF32 when `torch.backends.cuda.matmul.allow_tf32` is set
  (also set by `set_float32_matmul_precision("high"/"medium")`); convolutions when `torch.backends.cudnn.allow_tf32`
  is set, which is torch's default. torch.compile's kernels follow the same switches.
- torch CPU: `set_float32_matmul_precision("high")` lets oneDNN use bf16x3 on CPUs that have bf16 units,
  `"medium"` plain bfloat16.
- MLX on CUDA: `MLX_ENABLE_TF32` (default 1, read once per process) runs float32 matmuls and convolutions in
  TF32. Metal and the CPU have no TF32.
- JAX: `jax.nn.dot_product_attention` computes its softmax in float32 whatever the input type, so float64
  attention is float32 arithmetic (on every device).
- Any adapter: `settings()["float32_products_arithmetic"]` names the arithmetic of its float32 products and
  convolutions (CuPy with `CUPY_TF32=1`: TF32).
- JAX on an NVIDIA GPU: `jax_default_matmul_precision` default/None/"high"/"tensorfloat32" lets XLA use TF32
  for dots and convolutions; "bfloat16" uses bfloat16; "highest"/"float32" keeps IEEE float32. The CPU has none.
"""

from __future__ import annotations

import re
from typing import Any

MATMUL_FAMILIES = frozenset({"MatMul", "Linear", "ScaledDotProductAttention"})
CONV_FAMILIES = frozenset({"Conv1d", "Conv2d"})
PRODUCT_FAMILIES = MATMUL_FAMILIES | CONV_FAMILIES

_JAX_STRICT = {"highest", "float32", "fp32"}
# An adapter whose float32 matrix products and convolutions run in a narrower arithmetic can say so in its own
# settings under this key (e.g. "TF32 (CUPY_TF32=1)"), so that adding a backend needs no branch here.
DECLARED_KEY = "float32_products_arithmetic"


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on", "tf32")


def narrower_arithmetic(backend: str, settings: dict[str, Any] | None, family: str, dtype: str) -> str | None:
    """The mode a `backend` with `settings` runs `family` in for `dtype`, or None for the dtype's own arithmetic.
    A planted-slowdown backend `<base>_x<k>` (`opbench.testing.planted`) runs its base's arithmetic."""
    backend = re.sub(r"_x\d+$", "", backend)
    if backend.startswith("jax") and family == "ScaledDotProductAttention" and dtype == "float64":
        return "float32 (jax.nn.dot_product_attention computes its softmax in float32)"
    if dtype != "float32" or family not in PRODUCT_FAMILIES or not settings:
        return None
    if settings.get(DECLARED_KEY):  # the adapter names it itself (cupy with CUPY_TF32=1)
        return str(settings[DECLARED_KEY])
    if backend in ("cuda", "cuda_compile"):
        return _torch_cuda(settings, family)
    if backend in ("cpu", "mps"):
        return _torch_cpu(settings, family)
    if backend.startswith("mlx_gpu"):
        if str(settings.get("mlx_gpu_platform", "cuda")) == "cuda" and str(settings.get("MLX_ENABLE_TF32", "1")) != "0":
            return f"TF32 (MLX_ENABLE_TF32={settings.get('MLX_ENABLE_TF32', '1')}, MLX's default on CUDA)"
        return None
    if backend == "jax_gpu":
        precision = str(settings.get("jax_default_matmul_precision") or "default").lower()
        major = str(settings.get("compute_capability", "")).split(".")[0]
        if precision in _JAX_STRICT or (major.isdigit() and int(major) < 8):  # no TF32 before Ampere
            return None
        word = "bfloat16" if precision == "bfloat16" else "TF32"
        return f"{word} (jax_default_matmul_precision={precision})"
    return None


def _torch_cuda(settings: dict[str, Any], family: str) -> str | None:
    if family in CONV_FAMILIES:
        return "TF32 (torch.backends.cudnn.allow_tf32)" if _truthy(settings.get("cudnn_allow_tf32")) else None
    precision = str(settings.get("float32_matmul_precision", "highest"))
    if precision == "medium":
        return 'bfloat16 (set_float32_matmul_precision("medium"))'
    if _truthy(settings.get("cuda_matmul_allow_tf32")) or precision == "high":
        return "TF32 (torch.backends.cuda.matmul.allow_tf32)"
    return None


def _torch_cpu(settings: dict[str, Any], family: str) -> str | None:
    precision = str(settings.get("float32_matmul_precision", "highest"))
    if precision == "high":
        return 'bfloat16x3 (set_float32_matmul_precision("high"))'
    if precision == "medium":
        return 'bfloat16 (set_float32_matmul_precision("medium"))'
    return None
