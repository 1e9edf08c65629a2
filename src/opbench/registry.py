"""The backend registry: backend name -> the adapter class that implements it, as `"module:Class"`.

A leaf module outside `opbench.backends` (it imports nothing of opbench), so that the layers below the adapters
-- the catalog, which checks that a user catalog's implementations name a known framework -- can read it
without importing the adapters' interface (`opbench.backends`, which imports the catalog). Adapters are
imported only when asked for; `opbench.backends` adds lookup, parsing and availability on top.
"""

from __future__ import annotations

import importlib

# name -> "module:Class". The order is the seed's column order, then the backends opbench adds.
_REGISTRY: dict[str, str] = {
    "mlx_gpu": "opbench.backends.mlx:MLXGPU",
    "mlx_gpu_compile": "opbench.backends.mlx:MLXGPUCompile",
    "mlx_cpu": "opbench.backends.mlx:MLXCPU",
    "mps": "opbench.backends.torch:TorchMPS",
    "cpu": "opbench.backends.torch:TorchCPU",
    "cuda": "opbench.backends.torch:TorchCUDA",
    "cuda_compile": "opbench.backends.torch:TorchCUDACompile",
    "jax_gpu": "opbench.backends.jax:JAXGPU",
    "jax_cpu": "opbench.backends.jax:JAXCPU",
    "numpy": "opbench.backends.numpy:NumPyCPU",
    "cupy": "opbench.backends.cupy:CuPyGPU",
}


def known_frameworks() -> list[str]:
    """The `framework` of every registered backend (torch, mlx, jax, and any added adapter)."""
    names = []
    for target in _REGISTRY.values():
        module, cls = target.split(":")
        try:
            names.append(getattr(importlib.import_module(module), cls).framework)
        except Exception:  # a broken adapter cannot name its framework; the others still can
            continue
    return sorted(set(names))

# The registered frameworks' distributions, whose versions are recorded with the machine (`machine.packages`);
# `tests/test_backend_completeness.py` checks that every adapter's `Backend.packages` is here.
FRAMEWORK_PACKAGES: tuple[str, ...] = (
    "mlx", "mlx-cuda-13", "mlx-metal", "torch", "jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin",
    "cupy", "cupy-cuda12x", "cupy-cuda13x")
