"""opbench: verified, honestly timed benchmarks of array/ML operations across frameworks and devices.

Importing opbench imports no framework (torch, mlx, jax) and not pandas: adapters are loaded only when a backend
is used, and the public names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from opbench._version import __version__

if TYPE_CHECKING:
    from opbench.api import ComparisonResults, RunResults, compare, load, run
    from opbench.catalog.user import CustomFamily, load_catalog
    from opbench.errors import UsageError

# public name -> the module that defines it (imported on first access: PEP 562)
_LAZY = {
    "load": "opbench.api",
    "run": "opbench.api",
    "compare": "opbench.api",
    "RunResults": "opbench.api",
    "ComparisonResults": "opbench.api",
    "CustomFamily": "opbench.catalog.user",
    "load_catalog": "opbench.catalog.user",
    "UsageError": "opbench.errors",
}

__all__ = ["ComparisonResults", "CustomFamily", "RunResults", "UsageError", "__version__", "compare", "load",
           "load_catalog", "run"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'opbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
