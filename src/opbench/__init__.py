"""opbench: verified, honestly timed benchmarks of array/ML operations across frameworks and devices.

Importing opbench imports no framework (torch, mlx, jax) and not pandas: adapters are loaded only when a backend
is used, and the public names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from opbench.catalog.user import CustomFamily

# public name -> the module that defines it (imported on first access: PEP 562)
_LAZY = {
    "CustomFamily": "opbench.catalog.user",
}

__all__ = ["CustomFamily", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'opbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
