"""The timing engine: one algorithm for every backend.

Algorithm (`measure`):

1. **First call.** The op is called once, its output forced and the device synchronized. That time, which
   includes tracing, compilation and autotuning, is kept separately as `first_call_s`; it never enters the
   statistics.
2. **Warm-up.** Calls continue, one at a time and each synchronized, until the latest call is within 10% of
   the fastest one seen so far (compilation and caches have settled), or until the warm-up budget (half the
   case budget) runs out. At least `min_warmup` calls are made. Then, until `min_warmup_s` of warm-up have
   passed, discarded blocks of back-to-back calls keep the device busy: GPU and CPU clocks ramp up only under
   sustained load, and one synchronized call leaves the device mostly idle. The last of these blocks also gives
   the per-call estimate for blocking (free of the sync latency that a single synchronized call includes).
   Trade-off: up to `min_warmup_s` (50 ms) more per case, in exchange for samples taken at steady clocks.
3. **Blocking.** A sample is a block of `n` back-to-back calls followed by one synchronization; the sample's
   value is the block's time divided by `n`. `n` is chosen from the warm-up so that a block lasts about
   `block_s` (10 ms by default). Trade-off: larger blocks amortize the timer and the device sync (tens of
   microseconds on a GPU) to well under 1%, smaller blocks give more samples per second of budget and so a
   better estimate of the spread. A block never exceeds budget / min_samples.
4. **Forcing.** Every call's output goes through `backend.force` (MLX: `mx.async_eval`); the block ends with
   `backend.sync`. After each block the engine asks `backend.ready(out)` whether the block's last output was
   materialized (MLX: the array holds data and no graph; JAX: the buffer is ready) and raises `NotForcedError`
   if not, so a lazy graph that is never executed cannot produce a time. It also checks that this output is
   not a stale one: the previous block's last output is still alive when a block starts, so a call that really
   produces its output returns a fresh buffer (`backend.same_buffer`); a memoized result does not.
5. **Adaptive stop.** After each sample, once `min_samples` are in, stop when the 95% confidence interval of
   the median (from order statistics, distribution-free) has a half-width under `rel_ci` of the median, or when
   the case budget is spent, or at `max_samples`. A call slower than the whole budget (a 50-second matmul on a
   2-core CPU) needs only `SLOW_MIN_SAMPLES` (3, the fewest that give a median and a spread): its statistics
   are weaker, which `n` shows, but the suite stays bounded.

Raw per-call samples are kept; median, IQR and n are derived from them. Inputs are never converted inside
the timed region: the caller passes a closure over materialized device arrays.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from opbench.backends._base import Backend, NotForcedError

NOISY_IQR_RATIO = 0.10
SLOW_MIN_SAMPLES = 3


@dataclass(frozen=True)
class TimingSettings:
    budget_s: float = 0.5
    min_samples: int = 5
    max_samples: int = 2000
    block_s: float = 0.010
    rel_ci: float = 0.01
    min_warmup: int = 1
    max_warmup: int = 100
    min_warmup_s: float = 0.05


@dataclass(frozen=True)
class Timing:
    """Raw samples (seconds per call) and how they were taken. Statistics are computed from the samples."""

    samples_s: tuple[float, ...]
    calls_per_sample: int
    first_call_s: float
    warmup_calls: int
    stop_reason: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.samples_s)

    @property
    def median_s(self) -> float:
        return float(np.median(self.samples_s))

    @property
    def iqr_s(self) -> float:
        q1, q3 = np.percentile(self.samples_s, [25, 75])
        return float(q3 - q1)

    @property
    def noisy(self) -> bool:
        return self.iqr_s > NOISY_IQR_RATIO * self.median_s

    @property
    def min_s(self) -> float:
        return float(np.min(self.samples_s))


def median_ci(samples: list[float] | np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """Distribution-free 95% CI of the median: order statistics at n/2 -/+ z*sqrt(n)/2 (normal approximation
    to the binomial). For small n it widens to the sample range."""
    xs = np.sort(np.asarray(samples, dtype=float))
    n = len(xs)
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    return float(xs[lo]), float(xs[hi])


def measure(op: Callable[..., Any], args: tuple[Any, ...], backend: Backend,
            settings: TimingSettings | None = None, fresh_outputs: bool = True) -> tuple[Timing, Any]:
    """Time `op(*args)` on `backend` with the algorithm in the module docstring; return the timing and the
    output of the last timed call (the one that gets verified). `fresh_outputs=False` drops the stale-output
    check, for ops that write into a preallocated buffer on purpose (the calibration's copy).

    The inner loop is kept as lean as a hand-written one: eager backends (no `force`) run `op(*args)` alone,
    lazy ones add exactly one `force` call (benchmarks/overhead.py measures the difference).
    """
    settings = settings or TimingSettings()
    clock = time.perf_counter
    force, sync = backend.force, backend.sync
    eager = type(backend).force is Backend.force

    previous: list[Any] = [None]  # the last output of the previous block, alive while the next block runs

    def timed_block(n: int) -> tuple[float, Any]:
        if eager:
            t0 = clock()
            for _ in range(n):
                out = op(*args)
        else:
            t0 = clock()
            for _ in range(n):
                out = op(*args)
                force(out)
        sync()
        elapsed = clock() - t0
        if not backend.ready(out):
            raise NotForcedError(f"{backend.name}: the output of a timed call was never materialized")
        if fresh_outputs and previous[0] is not None and backend.same_buffer(out, previous[0]):
            raise NotForcedError(f"{backend.name}: a timed call returned the output buffer of an earlier call "
                                 "(stale result: nothing was computed)")
        previous[0] = out
        return elapsed, out

    first, out = timed_block(1)
    warm: list[float] = []
    warm_start = clock()
    while len(warm) < settings.max_warmup:
        t, out = timed_block(1)
        warm.append(t)
        settled = t <= 1.10 * min(warm) and len(warm) >= settings.min_warmup
        if settled or clock() - warm_start > settings.budget_s / 2:
            break

    def block_size(per_call: float) -> int:
        per_call = max(per_call, 1e-9)
        cap = max(1, int(settings.budget_s / settings.min_samples / per_call))
        return max(1, min(cap, math.ceil(settings.block_s / per_call)))

    n = block_size(float(np.median(warm[-3:])))
    warmup_calls = len(warm)
    while clock() - warm_start < min(settings.min_warmup_s, settings.budget_s / 2):
        t, out = timed_block(n)
        warmup_calls += n
        n = block_size(t / n)

    slow = float(np.median(warm[-3:])) > settings.budget_s
    min_samples = min(settings.min_samples, SLOW_MIN_SAMPLES) if slow else settings.min_samples
    samples: list[float] = []
    start = clock()
    reason = "max_samples"
    while len(samples) < settings.max_samples:
        t, out = timed_block(n)
        samples.append(t / n)
        if len(samples) >= min_samples:
            lo, hi = median_ci(samples)
            if (hi - lo) / 2 <= settings.rel_ci * float(np.median(samples)):
                reason = "stable"
                break
            if clock() - start >= settings.budget_s:
                reason = "budget"
                break
    return Timing(tuple(samples), n, first, warmup_calls, reason), out
