"""A user catalog for opbench: RMSNorm (as in Llama/T5) with PyTorch, MLX and JAX implementations.

    opbench run --catalog examples/rmsnorm.py                          # every available backend
    opbench run --catalog examples/rmsnorm.py --backends cpu,jax_cpu --preset quick
    opbench run --catalog examples/rmsnorm.py --ops RMSNorm,LayerNorm   # next to the built-in LayerNorm

y = x / sqrt(mean(x^2 over the last axis) + eps) * w, for x of shape `... x d` and a weight `w` of shape `d`.
The file imports no framework: each implementation is a factory that imports its framework when a backend
that measures it starts (in opbench's worker process), and returns the function that is timed.
"""

from __future__ import annotations

import math

import numpy as np

from opbench import CustomFamily

EPS = 1e-6


def reference(case, x, w):
    """float64 NumPy: the truth every backend is checked against."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * w


def flops(case):
    """Per element: square, add (mean), multiply by the inverse RMS, multiply by w; per row: divide, add, rsqrt."""
    x = case.shapes[0]
    rows = math.prod(x[:-1])
    return 4 * math.prod(x) + 3 * rows


def torch_rmsnorm(case):
    import torch

    def rmsnorm(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w

    return rmsnorm


def mlx_rmsnorm(case):
    import mlx.core as mx

    return lambda x, w: mx.fast.rms_norm(x, w, EPS)  # MLX's fused kernel


def jax_rmsnorm(case):
    import jax
    import jax.numpy as jnp

    def rmsnorm(x, w):
        return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + EPS) * w

    return rmsnorm


RMSNORM = CustomFamily(
    name="RMSNorm",
    doc="RMSNorm over the last axis with a learned scale, eps 1e-6",
    cases=["64x1024x512 512", "16x4096x4096 4096", "4x8192x8192 8192"],
    reference=reference,
    flops=flops,
    accumulation=lambda case: case.shapes[0][-1],  # the mean of squares sums d terms
    implementations={"torch": torch_rmsnorm, "mlx": mlx_rmsnorm, "jax": jax_rmsnorm},
)
