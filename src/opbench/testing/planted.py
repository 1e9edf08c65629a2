"""Backends with a planted slowdown: the same framework doing a known fraction more real work.

A planted change must move the statistic that `compare` tests, the median of a case's samples, by the
planted amount in every sample. Repeating every k-th call does not: the engine times blocks of back-to-back
calls (`opbench.engine.timing`), and an op of 10 ms or more is timed one call per sample, so doubling one call in
ten makes one sample in ten twice as slow and leaves the median nearly where it was (and blocks of 2-9 calls
get the extra unevenly). So the slowdown is planted as a pair: run A's backend `<base>_x<k>` makes the op `k`
times per timed call, run B's `<base>_x<k+1>` makes it `k + 1` times, every output forced; B does exactly
1/k more real work than A in every call of every sample, whatever the block size (`k = 10`: 10 % more). It
scales with the op and is as noisy as the op, unlike a sleep. Trade-off: a call of A costs `k` ops, so a
slow op needs `k` times longer for its minimum samples (A/A tests use the plain backends, not these).

Register a pair with `register_planted(["cpu"], 10)` -> {"cpu_x10": "cpu_x11"}: both backends become
importable by name in worker processes (this module builds the class on attribute access:
`opbench.testing.planted:Rep11__cpu`). Used by `benchmarks/significance.py power` to check that `opbench
compare` calls such a change "slower". On a compiling backend (JAX, `*_compile`) the compiled callable is
what gets repeated, so the compiler cannot fuse or drop the repeats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opbench.backends import Backend, Prepared, get_backend, register
from opbench.catalog import Case


def repeated(op: Callable[..., Any], times: int, force: Callable[[Any], None]) -> Callable[..., Any]:
    """`op` made `times` times per call: every output but the last forced, the last returned (the engine
    forces it)."""

    def call(*args: Any) -> Any:
        for _ in range(times - 1):
            force(op(*args))
        return op(*args)

    return call


def repeated_class(base: str, times: int) -> type[Backend]:
    """A subclass of backend `base` whose timed call makes the op `times` times. For a backend that compiles
    the op (`Backend.compiled`: JAX's jit, torch.compile, mx.compile) the compiled callable is repeated, not
    the Python op inside it: a compiler would see `times` identical computations and keep one."""
    if times < 1:
        raise ValueError(f"cannot repeat {base} {times} times: the count must be at least 1")
    parent = type(get_backend(base))

    def prepare(self: Backend, case: Case, inputs: tuple[Any, ...], dtype: str | None = None) -> Prepared:
        prepared = parent.prepare(self, case, inputs, dtype)
        if not self.compiled:
            prepared.op = repeated(prepared.op, times, self.force)
        return prepared

    def compile(self: Backend, op: Callable[..., Any]) -> Callable[..., Any]:
        return repeated(parent.compile(self, op), times, self.force)

    return type(f"Rep{times}__{base}", (parent,), {"name": f"{base}_x{times}", "prepare": prepare,
                                                    "compile": compile, "__module__": __name__})


def __getattr__(attr: str) -> type[Backend]:
    head, sep, base = attr.partition("__")
    if not sep or not head.startswith("Rep") or not head[3:].isdigit():
        raise AttributeError(attr)
    return repeated_class(base, int(head[3:]))


def calls_per_op(percent: int) -> int:
    """k of the pair for a `percent` % slowdown (100 / percent, which must be whole)."""
    k = round(100 / percent) if percent > 0 else 0
    if k < 1 or k * percent != 100:
        raise ValueError(f"cannot plant {percent}%: the percentage must divide 100")
    return k


def register_planted(bases: Sequence[str], percent: int = 10) -> dict[str, str]:
    """Register the pair `<base>_x<k>` (run A) and `<base>_x<k+1>` (run B, `percent` % more work) for each
    base backend; returns {A backend: B backend}."""
    k = calls_per_op(percent)
    pairs = {}
    for base in bases:
        for times in (k, k + 1):
            repeated_class(base, times)  # refuse bad input here, not in a worker
            register(f"{base}_x{times}", f"{__name__}:Rep{times}__{base}")
        pairs[f"{base}_x{k}"] = f"{base}_x{k + 1}"
    return pairs
