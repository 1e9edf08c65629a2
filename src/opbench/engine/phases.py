"""Where a case's wall time goes: named phases, timed with one clock and recorded on every result.

A case measured in a worker passes through these phases, in order (`PHASES`): the worker's start-up
(`worker_start`: spawn, framework import, device setup; charged to the first case a fresh worker measures),
`inputs` (generation, or a read from the input cache), `transfer` (host to device and building the call),
`first_call`, `warmup`, `samples` (the timed blocks, with their synchronizations and checks), `output`
(device to host and the canonical layout), `reference` (the float64 expectation, or a read from the
reference cache), `verify` (the element-wise check) and `cleanup` (garbage collection, the framework's
cache release). The parent adds `wall`: the whole round trip of the case in the worker, as it saw it.

`measuring` (first calls plus timed samples) is the part of the wall time spent on what the results report;
`benchmarks/breakdown.py` prints the share per backend. Results combined over several passes add their
phases up (`add`), so a result's phases are what all its passes cost.

Trade-off: one `perf_counter` pair per phase (well under a microsecond each), never inside a timed block.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping

PHASES = ("worker_start", "inputs", "transfer", "first_call", "warmup", "samples", "output", "reference",
          "verify", "cleanup")
MEASURING = ("first_call", "samples")
WALL = "wall"


class PhaseClock:
    """Accumulates milliseconds per phase name: `with clock("inputs"): ...` or `clock.add("samples", s)`."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.ms[phase] = self.ms.get(phase, 0.0) + seconds * 1e3

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - start)

    def rounded(self) -> dict[str, float]:
        """The phases in `PHASES` order (unknown names after), to the microsecond."""
        order = {p: i for i, p in enumerate((*PHASES, WALL))}
        return {k: round(v, 3) for k, v in sorted(self.ms.items(), key=lambda kv: order.get(kv[0], len(order)))}


def add(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    """Two results' phases summed name by name (passes of one case)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = round(out.get(k, 0.0) + float(v), 3)
    return out


def measuring_ms(phases: Mapping[str, float]) -> float:
    """First calls plus timed samples."""
    return float(sum(phases.get(p, 0.0) for p in MEASURING))
