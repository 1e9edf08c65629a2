"""Host work ahead of the device: the parent makes the next cases' inputs and references while a GPU measures.

While a worker times case i on a GPU, the parent process is idle, waiting on the worker's pipe. `Prefetcher`
uses that time: a thread in the parent walks the pass's cases in order and makes sure each one's inputs
(`input_cache.prefetch`) and float64 expectation (`reference_cache.prefetch`) are in their disk caches, at
most `AHEAD` cases ahead of the case being measured, so the worker finds both there (a read of mapped
files) instead of computing them while the device waits. The caches' entry locks make the two processes
agree: a worker that reaches a case the parent is still making waits for it rather than making it too.

Only for backends whose device is not the host CPU: on a CPU backend the parent's NumPy work would compete
with the timed calls for the same cores (and memory bandwidth) and contaminate the measurement, so there the
worker makes each case's inputs and reference itself, after the previous case's timing has ended. The
parent's work is in another process than the timed loop, so it never holds the measuring interpreter's GIL.
A case is skipped when making it would leave less than `MIN_FREE_BYTES` of free memory (input generation and
the float64 reference need a few times the case's input size), and the worker then makes it itself.

Trade-off: the host's cores and memory bandwidth are shared with the GPU's driver thread during the timed
loops of the cases before; on a GPU host (16+ cores) that costs the device nothing measurable
(`benchmarks/fidelity.py` checks opbench's medians against CUDA events).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence

from opbench.catalog import Case

AHEAD = 3
MIN_FREE_BYTES = 4 << 30
MEMORY_FACTOR = 6  # inputs, their float64 copies and the reference, at most


def _memory_allows(case: Case, dtype: str) -> bool:
    try:
        import psutil

        available = psutil.virtual_memory().available
    except Exception:
        return False
    from opbench.engine.input_cache import input_bytes

    return available - MEMORY_FACTOR * input_bytes(case, dtype) >= MIN_FREE_BYTES


class Prefetcher:
    """A daemon thread making `cases`' inputs and references ahead of `advance`, until `stop`."""

    def __init__(self, cases: Sequence[Case], dtype: str, seed: int, ahead: int = AHEAD) -> None:
        self.cases, self.dtype, self.seed, self.ahead = list(cases), dtype, seed, ahead
        self.position = 0
        self.done = 0  # cases prefetched (or skipped) so far
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="opbench-prefetch")

    def start(self) -> Prefetcher:
        self._thread.start()
        return self

    def advance(self, case: Case) -> None:
        """The worker has begun `case`: the window moves on to the cases after it."""
        with self._cond:
            for i in range(self.position, len(self.cases)):
                if self.cases[i].name == case.name:
                    self.position = i
                    break
            self._cond.notify_all()

    def stop(self, wait: bool = True) -> None:
        """End the thread: after the case it is making (`wait`), or at once, leaving a daemon thread to finish
        or die with the process (an interrupt: its entry is written to a temporary directory first, so a cut-off
        one is never seen)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(None if wait else 1.0)

    def _run(self) -> None:
        from opbench.engine import input_cache, reference_cache

        for i, case in enumerate(self.cases):
            with self._cond:
                self._cond.wait_for(lambda i=i: self._stopped or i <= self.position + self.ahead)
                if self._stopped:
                    return
                if i < self.position:  # the worker is past it already
                    continue
            if _memory_allows(case, self.dtype):
                with contextlib.suppress(Exception):  # only an optimization: the worker makes what is missing
                    input_cache.prefetch(case, self.dtype, self.seed)
                    reference_cache.prefetch(case, self.dtype, self.seed)
            self.done = i + 1

    def __enter__(self) -> Prefetcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(wait=exc[0] is None)
