"""The backend registry: names in the seed's column order, adapters imported only when asked for."""

from __future__ import annotations

import importlib

from opbench.backends._base import Availability, Backend, NotForcedError, Prepared
from opbench.errors import unknown
from opbench.registry import _REGISTRY, known_frameworks

__all__ = ["BACKEND_NAMES", "Availability", "Backend", "NotForcedError", "Prepared", "availability_table",
           "framework_of", "get_backend", "known_frameworks", "parse_backends"]

BACKEND_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def register(name: str, target: str) -> None:
    """Add a backend (used by tests to plant fakes, and by optional adapters)."""
    global BACKEND_NAMES
    _REGISTRY[name] = target
    BACKEND_NAMES = tuple(_REGISTRY)


def backend_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_backend(name: str) -> Backend:
    return adapter_class(name)()


def framework_of(name: str) -> str:
    """The framework of backend `name` (its adapter's `framework`: imports the adapter module, not the
    framework); "" for a name no adapter is registered under, or whose adapter cannot be imported."""
    if name not in _REGISTRY:
        return ""
    module, cls = _REGISTRY[name].split(":")
    try:
        return str(getattr(importlib.import_module(module), cls).framework)
    except Exception:  # a broken adapter cannot name its framework
        return ""


def parse_backends(text: str | None) -> list[str] | None:
    """`cpu,mlx_cpu` -> ['cpu', 'mlx_cpu'] in the seed's column order; None means 'every available one'."""
    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if n not in _REGISTRY:
            raise unknown("backend", n, list(_REGISTRY))
    order = list(_REGISTRY)
    return sorted(dict.fromkeys(names), key=order.index)


def adapter_class(name: str) -> type[Backend]:
    """The adapter class registered as `name` (imports its module, never its framework)."""
    if name not in _REGISTRY:
        raise unknown("backend", name, list(_REGISTRY))
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def adapter_packages() -> tuple[str, ...]:
    """Every registered adapter's framework distributions (`Backend.packages`), in registry order, once each;
    an adapter whose module does not import is skipped (its availability says why)."""
    names: list[str] = []
    for name in _REGISTRY:
        try:
            names.extend(adapter_class(name).packages)
        except Exception:
            continue
    return tuple(dict.fromkeys(names))


def availability_table() -> dict[str, Availability]:
    """Every registered backend with whether it can run here and why (imports frameworks to find out)."""
    table: dict[str, Availability] = {}
    for name in _REGISTRY:
        try:
            table[name] = get_backend(name).availability()
        except Exception as exc:  # a broken install is a reason, not a crash
            table[name] = Availability(False, f"{type(exc).__name__}: {exc}".splitlines()[0])
    return table
