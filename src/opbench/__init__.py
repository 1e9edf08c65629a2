"""opbench: verified, honestly timed benchmarks of array/ML operations across frameworks and devices.

Importing opbench imports no framework (torch, mlx, jax): adapters are loaded only when a backend is used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
