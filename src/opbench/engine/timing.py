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
   the median has a half-width under `rel_ci` of the median, or when the case budget is spent, or at
   `max_samples`. Consecutive samples of one process are not independent (clocks, caches and the scheduler
   drift slowly: a median lag-1 autocorrelation of 0.52 on an H100), and an interval that assumes they are
   covers the median only about 67% of the time at an AR(1) correlation of 0.7. So the interval
   (`median_ci`) is taken from order statistics at the *effective* sample size n(1 - r)/(1 + r), r the
   lag-1 autocorrelation of the samples (`effective_size`, the AR(1) variance inflation): coverage is back to
   about 0.95 (0.91 at 20 samples, 0.96-0.98 from 60, `tests/test_timing.py` simulates it). Trade-off: for
   correlated samples the rule stops later, or at the budget.
   **Slow calls.** When the first call and the one after it each take longer than the whole budget (a
   28-second matmul on a 2-core CPU), there is no warm-up series: the first call was the warm-up, the second
   call is the first sample, and the case takes `slow_samples` samples of one call each (stop reason `slow`).
   `SLOW_MIN_SAMPLES` (3, the fewest that give a median and a spread) is the count per case: split across
   units like the budget, so 3 units take one sample each (after their own first call) and the case's median
   and spread come from 3 independent processes. Its statistics are weaker, which `n` shows, but the suite
   stays bounded: 2 calls per unit, where a warm-up call and 3 samples per unit took 5. `min_samples` does not
   apply to such a call (`slow_samples` replaces it). In the `device` and `cold` modes a sample is not one
   plain call, so the second call is the one warm-up call (it shows the call is slow: no warm-up series and no
   sustained warm-up follow, the warm-up budget being spent) and `slow_samples` samples follow: 3 calls per
   unit. A call also slower than the case's *whole* budget gets one unit only (`opbench.engine.passes`): its
   first process is its only one, and its statistics are that unit's `slow_samples` timed calls (1 at the
   default 3 units) after the untimed first call. The first call's output is dropped before the second call
   (not kept for the stale-output check): otherwise that call always writes freshly allocated memory, and on a
   CPU a multi-GB output's first touch is part of its time (torch MatMul 1e6x64·64x1024: 6.5-6.8 s as the
   second call with the first output alive, 1.6-1.9 s once it is freed, `benchmarks/first_touch.py`). Nothing
   is lost where the budget is at least `UNPIN_MIN_S`: a second call slower than it computed something (a
   memoized result returns in microseconds), and one faster than it goes on to the warm-up, whose calls are
   checked against it.
6. **Units.** One call of `measure` is one *unit*: the samples of one worker process. Even an honest
   interval describes only that process; another process settles elsewhere (an MLX Gather at 48 µs in one
   worker and 16 µs in the next). So `opbench run` measures each case in `DEFAULT_UNITS` processes and
   `opbench compare` tests the unit medians against each other. The case budget and the minimum sample
   count are split across the units (`TimingSettings.per_unit`; at least `MIN_UNIT_SAMPLES` per unit), not
   multiplied: the suite takes about as long as with one unit.

Raw per-call samples are kept; median, IQR and n are derived from them. Inputs are never converted inside
the timed region: the caller passes a closure over materialized device arrays.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

import opbench.defaults as defaults
from opbench.analysis.significance import effective_size, median_ci
from opbench.backends._base import Backend, NotForcedError
from opbench.engine.modes import DEFAULT_MODE, MODES

# How each mode's number was taken, when the backend adds nothing (device mode: the timer's own method).
MODE_METHODS = {
    "throughput": "wall clock, blocks of back-to-back calls, one sync per block",
    "latency": "wall clock, one call and a sync per sample",
    "device": "",
    "cold": "wall clock, one call and a sync per sample",
}

NOISY_IQR_RATIO = 0.10
SLOW_MIN_SAMPLES = 3
# A call at least this long computed something: a memoized result returns in microseconds ("Slow calls").
UNPIN_MIN_S = 0.01
MIN_UNIT_SAMPLES = 3  # per unit, when `min_samples` is split across units (`TimingSettings.per_unit`)
# Independent units (worker processes) per case by default: with 3 on each side a comparison has 4 degrees
# of freedom of its own before pooling (see `opbench.analysis.compare`), for 3 worker starts per backend.
DEFAULT_UNITS = defaults.UNITS


@dataclass(frozen=True)
class TimingSettings:
    budget_s: float = defaults.RUN_BUDGET_S
    min_samples: int = defaults.RUN_MIN_SAMPLES
    max_samples: int = 2000
    block_s: float = 0.010
    rel_ci: float = 0.01
    min_warmup: int = 1
    max_warmup: int = 100
    min_warmup_s: float = 0.05
    slow_samples: int = SLOW_MIN_SAMPLES  # samples of a call slower than the budget (per unit: `per_unit`)
    min_region_s: float = 0.0  # the samples span at least this long (an energy counter needs >= 0.1 s)
    # on a GPU, lengthen the region to the energy counter's 0.1 s (`engine.telemetry`); a case's first unit
    # does, its later units do not and give back what it cost (`TimingSettings.later_unit`)
    energy_region: bool = True
    # a later unit's share of the case budget that the first unit's lengthened energy region spent already
    # (`TimingSettings.later_unit`): given up only where that region was lengthened (`execute`: a GPU with NVML)
    energy_offset_s: float = 0.0

    def per_unit(self, units: int) -> TimingSettings:
        """The settings of one of `units` units of a case: the timed budget, the sustained warm-up, the
        minimum sample count (at least `MIN_UNIT_SAMPLES` per unit, the fewest with a median and a spread of
        its own) and the samples of a slow call (at least one) split evenly, so a case costs about the same
        however many units measure it: `min_samples` 5 is 3 per unit for 3 units (9 per case, where each unit
        taking 5 made 15)."""
        if units <= 1:
            return self
        return replace(self, budget_s=self.budget_s / units, min_warmup_s=self.min_warmup_s / units,
                       min_samples=min(self.min_samples, max(MIN_UNIT_SAMPLES, math.ceil(self.min_samples / units))),
                       slow_samples=max(1, math.ceil(self.slow_samples / units)))

    def later_unit(self, units: int = 1, energy_region_s: float = 0.0) -> TimingSettings:
        """The settings of a case's second or later unit, `self` being one unit's share (`per_unit`) of a case
        measured in `units` units: no region lengthened for the energy counter, and the time by which the first
        unit's region was lengthened to `energy_region_s` (the counter's 0.1 s) taken from the later units'
        shares (`energy_offset_s`), at most half of each, so the case's samples still total its budget.

        Lengthening every unit to the counter's 0.1 s made a case's samples 3 x 0.1 s where the GPU budget was
        0.2 s (results/h100-defaults: 28 s of samples for 91 cases at a nominal 18 s); one unit's energy per
        call is the case's figure (`telemetry.merge` averages the units that have one). At the default GPU
        budget (0.2 s over 3 units) the first unit samples 0.1 s and the two later ones 0.05 s each. Trade-off: the
        first unit draws more samples than the others (its median is more precise, not different); the tests
        between runs use one median per unit, so unequal unit sizes change only each median's precision.
        The offset is applied by the worker only where the first unit's region really was lengthened (a GPU
        with NVML): without NVML (an Apple GPU) every unit keeps its even share."""
        offset = 0.0
        if units > 1 and self.energy_region and energy_region_s > self.budget_s:
            offset = min((energy_region_s - self.budget_s) / (units - 1), self.budget_s / 2)
        return replace(self, energy_region=False, energy_offset_s=offset)

    def without_energy_offset(self, lengthened: bool) -> TimingSettings:
        """These settings as the worker applies them: the budget less `energy_offset_s` when the first unit's
        region was `lengthened` (this process sees an NVML GPU), else unchanged."""
        if not lengthened or self.energy_offset_s <= 0:
            return self
        return replace(self, budget_s=self.budget_s - self.energy_offset_s, energy_offset_s=0.0)


@dataclass(frozen=True)
class Timing:
    """Raw samples (seconds per call) and how they were taken. Statistics are computed from the samples."""

    samples_s: tuple[float, ...]
    calls_per_sample: int
    first_call_s: float
    warmup_calls: int
    stop_reason: str
    extra: dict[str, Any] = field(default_factory=dict)
    warmup_s: float = 0.0  # wall time of the warm-up (after the first call, before the first sample)
    sampling_s: float = 0.0  # wall time of the timed blocks, with their synchronizations and checks

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


def measure(op: Callable[..., Any], args: tuple[Any, ...], backend: Backend,
            settings: TimingSettings | None = None, fresh_outputs: bool = True, mode: str = DEFAULT_MODE,
            region: Callable[[str, int], None] | None = None) -> tuple[Timing, Any]:
    """Time `op(*args)` on `backend` with the algorithm in the module docstring, in timing `mode`
    (`opbench.engine.modes`); return the timing and the output of the last timed call (the one that gets verified).
    `fresh_outputs=False` drops the stale-output check, for ops that write into a preallocated buffer on
    purpose (the calibration's copy). `region("start", 0)` and `region("end", calls)` bracket the samples
    (telemetry reads the energy counter there); sampling goes on until the samples span
    `settings.min_region_s`, so that such a counter can be read over the region.

    Modes change only what one sample is (first call, warm-up and stop rule are shared):
    `throughput` a block of `n` calls and one sync; `latency` one call and a sync; `cold` a cache flush
    (`backend.flush_cache`, untimed, then synchronized) and one timed call; `device` the per-call device time
    of `backend.device_timer` over a block of `n` calls. `Timing.extra["method"]` says how; a mode the
    backend cannot do raises `ModeNotApplicable`.

    The inner loop is kept as lean as a hand-written one: eager backends (no `force`) run `op(*args)` alone,
    lazy ones add exactly one `force` call (benchmarks/overhead.py measures the difference).
    """
    settings = settings or TimingSettings()
    if mode not in MODES:
        raise ValueError(f"unknown timing mode {mode!r}")
    flush = backend.flush_cache() if mode == "cold" else None  # ModeNotApplicable before any call
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
    if backend.on_first_call is not None:
        backend.on_first_call(first)
    warm: list[float] = []
    warm_start = clock()
    # perhaps a slow call: the next one tells (it is a sample if it is slow too). A slow call's samples are one
    # synchronized call each, which is what throughput and latency both mean then; device and cold time theirs.
    if first > settings.budget_s and mode in ("throughput", "latency"):
        if settings.budget_s >= UNPIN_MIN_S:  # then a second call slower than the budget did work
            previous[0] = out = None  # its memory may serve the next call ("Slow calls" above)
        t, out = timed_block(1)
        if t > settings.budget_s:
            return _slow(timed_block, t, out, first, settings, warm_start, clock, region)
        warm.append(t)
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

    per_call = float(np.median(warm[-3:]))  # the latest estimate of one call's time
    n = block_size(per_call)
    warmup_calls = len(warm)
    while clock() - warm_start < min(settings.min_warmup_s, settings.budget_s / 2):
        t, out = timed_block(n)
        warmup_calls += n
        per_call = t / n
        n = block_size(per_call)

    slow = float(np.median(warm[-3:])) > settings.budget_s
    min_samples = min(settings.min_samples, settings.slow_samples) if slow else settings.min_samples
    method = MODE_METHODS[mode]
    timer = None
    if mode in ("latency", "cold"):
        n = 1
    if mode == "device":
        timer = backend.device_timer(op, args, per_call)
        method = timer.method
    if flush is not None:
        method = f"{method}, {flush.describe()}"

    calls = 0  # calls made while sampling

    def sample() -> tuple[float, Any]:
        nonlocal calls
        if timer is not None:
            value, output = timer.sample(n)
            calls += timer.calls_per_sample or n
            return value, output
        if flush is not None:
            flush()
            sync()
        elapsed, output = timed_block(n)
        calls += n
        return elapsed / n, output

    samples: list[float] = []
    reason = "max_samples"
    try:
        if region is not None:
            region("start", 0)
        start = clock()
        while len(samples) < settings.max_samples:
            value, out = sample()
            samples.append(value)
            if len(samples) >= min_samples and clock() - start >= settings.min_region_s:
                if slow:  # few samples by design (module docstring, "Slow calls"): no interval to wait for
                    reason = "slow"
                    break
                lo, hi = median_ci(samples, n_eff=effective_size(samples))
                if (hi - lo) / 2 <= settings.rel_ci * float(np.median(samples)):
                    reason = "stable"
                    break
                if clock() - start >= settings.budget_s:
                    reason = "budget"
                    break
        region_s = clock() - start
        if region is not None:
            region("end", calls)
    finally:
        if timer is not None:
            timer.close()
        flush = None  # its buffer is freed before the next case (it would count in that case's peak memory)
    extra = {"method": method, "region_s": region_s, "region_calls": calls}
    per_sample = n  # the calls one sample's time is divided by
    if timer is not None:
        per_sample = getattr(timer, "calls", 0) or timer.calls_per_sample or n
    return Timing(tuple(samples), per_sample, first, warmup_calls, reason, extra, warmup_s=start - warm_start,
                  sampling_s=region_s), out


def _slow(timed_block: Callable[[int], tuple[float, Any]], sample: float, out: Any, first: float,
          settings: TimingSettings, start: float, clock: Callable[[], float],
          region: Callable[[str, int], None] | None = None) -> tuple[Timing, Any]:
    """A call slower than the whole budget, twice (the first call and `sample`): no warm-up series (the first
    call was the warm-up), `settings.slow_samples` samples of one call each, `sample` the first of them (the
    telemetry region brackets the later ones)."""
    samples = [sample]
    if region is not None:
        region("start", 0)
    while len(samples) < max(1, settings.slow_samples):
        t, out = timed_block(1)
        samples.append(t)
    if region is not None:
        region("end", len(samples) - 1)
    return Timing(tuple(samples), 1, first, 0, "slow", {"method": MODE_METHODS["latency"]},
                  sampling_s=clock() - start), out
