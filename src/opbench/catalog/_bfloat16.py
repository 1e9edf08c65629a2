"""bfloat16 without a NumPy dtype: values are rounded to bfloat16 and carried in float32 arrays.

NumPy has no bfloat16, so opbench generates float32 inputs and rounds each one to the nearest bfloat16 value
(round-to-nearest, ties to even: the rounding torch, MLX and JAX apply when they convert float32 to bfloat16).
The result is still a float32 array, but every element is exactly representable in bfloat16, so the backend's
own conversion on `from_numpy(..., dtype="bfloat16")` is exact and the float64 reference sees exactly the values
the backend sees. Trade-off: the carrier takes twice the memory of real bfloat16 data, which is irrelevant for
inputs that are copied to the device once.
"""

from __future__ import annotations

import numpy as np

BFLOAT16 = "bfloat16"


def round_to_bfloat16(a: np.ndarray) -> np.ndarray:
    """float32 -> the nearest bfloat16 value (ties to even), returned as float32. NaN stays NaN, inf stays inf,
    and values beyond bfloat16's largest finite number round to inf, as a hardware conversion does.

    Algorithm: add 0x7FFF plus the lowest kept bit (bit 16) to the 32-bit pattern, then clear the low 16 bits.
    """
    x = np.ascontiguousarray(a, dtype=np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    out = rounded.astype(np.uint32).view(np.float32).reshape(x.shape)
    return np.where(np.isnan(x), np.float32(np.nan), out)


def carrier_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype that holds inputs of `dtype` (float32 for bfloat16)."""
    return np.dtype(np.float32) if dtype == BFLOAT16 else np.dtype(dtype)


def itemsize_dtype(dtype: str) -> np.dtype:
    """A NumPy dtype with the same item size as `dtype`, for byte counts (float16 stands in for bfloat16)."""
    return np.dtype(np.float16) if dtype == BFLOAT16 else np.dtype(dtype)
