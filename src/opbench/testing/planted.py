"""Backends with a planted slowdown: the same framework doing a known fraction more real work.

`PlantedSlowdown` wraps a backend's timed call so that every k-th call runs the op twice (both outputs
forced), so a case does 1/k more work: `every=10` is a 10 % slowdown of the work itself, not a sleep, so
it scales with the op (and is as noisy as the op). Register one with `register_planted(["cpu"], 10)`: the
backend `cpu_plus10` appears, importable by name in worker processes (this module builds the class on
attribute access: `opbench.testing.planted:Plus10__cpu`). Used by `benchmarks/significance.py power` to check
that `opbench compare` calls such a change "slower". Compiled backends (`*_compile`) are refused: a compiler
would trace the call counter.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from opbench.backends import Backend, Prepared, get_backend, register
from opbench.catalog import Case


def slowed(op: Callable[..., Any], every: int, force: Callable[[Any], None]) -> Callable[..., Any]:
    """`op` with every `every`-th call made twice (the first output forced, the second returned)."""
    count = itertools.count(1)

    def call(*args: Any) -> Any:
        out = op(*args)
        if next(count) % every == 0:
            force(out)
            out = op(*args)
        return out

    return call


def planted_class(base: str, percent: int) -> type[Backend]:
    """A subclass of backend `base` whose timed call does `percent` % more work (100 / percent must be whole)."""
    every = round(100 / percent)
    if every * percent != 100 or base.endswith("_compile"):
        raise ValueError(f"cannot plant {percent}% on {base}: the percentage must divide 100 and the backend "
                         "must not compile the call")
    parent = type(get_backend(base))

    def prepare(self: Backend, case: Case, inputs: tuple[Any, ...], dtype: str | None = None) -> Prepared:
        prepared = parent.prepare(self, case, inputs, dtype)
        prepared.op = slowed(prepared.op, every, self.force)
        return prepared

    return type(f"Plus{percent}__{base}", (parent,), {"name": f"{base}_plus{percent}", "prepare": prepare,
                                                       "__module__": __name__})


def __getattr__(attr: str) -> type[Backend]:
    head, sep, base = attr.partition("__")
    if not sep or not head.startswith("Plus") or not head[4:].isdigit():
        raise AttributeError(attr)
    return planted_class(base, int(head[4:]))


def register_planted(bases: Sequence[str], percent: int = 10) -> dict[str, str]:
    """Register `<base>_plus<percent>` for each base backend; returns {base: planted name}."""
    names = {}
    for base in bases:
        planted_class(base, percent)  # refuse bad input here, not in a worker
        names[base] = f"{base}_plus{percent}"
        register(names[base], f"{__name__}:Plus{percent}__{base}")
    return names
