"""The timing engine: forced outputs only, blocked samples, adaptive stop, raw samples kept."""

from __future__ import annotations

import time

import pytest

from opbench.analysis.significance import median_ci
from opbench.backends import Backend, NotForcedError
from opbench.catalog import preset_cases
from opbench.engine.runner import measure_case
from opbench.engine.timing import TimingSettings, measure


class Lazy:
    """A graph node that computes only when evaluated, like an MLX array."""

    def __init__(self) -> None:
        self.evaluated = False


class LazyBackend(Backend):
    """A lazy framework whose adapter forgets to force: the seed's MLX Scatter* bug."""

    name = "lazy_fake"
    framework = "fake"
    lazy = True

    def ready(self, out: Lazy) -> bool:
        return out.evaluated


class ForcingLazyBackend(LazyBackend):
    name = "lazy_forcing_fake"

    def force(self, out: Lazy) -> None:
        time.sleep(0.0002)  # the work happens here
        out.evaluated = True


class EagerBackend(Backend):
    name = "eager_fake"
    framework = "fake"


FAST = TimingSettings(budget_s=0.05, min_samples=3, block_s=0.002)


def test_a_backend_that_never_forces_cannot_report_a_time() -> None:
    with pytest.raises(NotForcedError):
        measure(Lazy, (), LazyBackend(), FAST)


def test_never_forced_case_is_recorded_without_a_time() -> None:
    case = preset_cases("quick")[0]
    be = LazyBackend()
    be.builders = {case.family: lambda b, c, args: __import__("opbench.backends", fromlist=["Prepared"]).Prepared(
        lambda *a: Lazy(), ())}
    be.from_numpy = lambda a: a  # type: ignore[method-assign]
    result = measure_case(be, case, timing=FAST)
    assert result.status == "not-forced"
    assert not result.timed and result.samples_ms == ()


def test_forced_work_is_timed() -> None:
    timing, out = measure(Lazy, (), ForcingLazyBackend(), FAST)
    assert out.evaluated
    assert timing.n >= FAST.min_samples
    assert 0.0002 <= timing.median_s < 0.01
    assert timing.first_call_s > 0 and timing.calls_per_sample >= 1


def test_blocks_amortize_and_stop_on_budget_or_stability() -> None:
    settings = TimingSettings(budget_s=0.2, min_samples=5, block_s=0.005)
    timing, _ = measure(lambda: sum(range(200)), (), EagerBackend(), settings)
    assert timing.calls_per_sample > 1  # a ~µs call is blocked
    assert timing.stop_reason in ("stable", "budget")
    assert len(timing.samples_s) == timing.n >= 5


def test_median_ci_is_the_range_for_few_samples() -> None:
    assert median_ci([3.0, 1.0, 2.0]) == (1.0, 3.0)
    lo, hi = median_ci(list(range(1000)))
    assert 400 < lo < 500 < hi < 600


def test_warmup_keeps_the_device_busy_for_min_warmup_s() -> None:
    """A call that settles at once still gets `min_warmup_s` of back-to-back warm-up blocks (clock ramp-up)."""
    settings = TimingSettings(budget_s=0.5, min_samples=3, block_s=0.002, min_warmup_s=0.03)
    stamps: list[float] = []

    def op() -> None:
        stamps.append(time.perf_counter())
        time.sleep(0.0005)

    timing, _ = measure(op, (), EagerBackend(), settings)
    assert len(stamps) == 1 + timing.warmup_calls + timing.n * timing.calls_per_sample
    first_sample_call = 1 + timing.warmup_calls
    assert stamps[first_sample_call] - stamps[1] >= 0.03  # the warm-up lasted min_warmup_s
    # the block size comes from a back-to-back block: ~block_s / 0.5 ms calls, not from one synced call
    assert 2 <= timing.calls_per_sample <= 4


def test_a_call_slower_than_the_budget_stops_after_three_samples() -> None:
    """No warm-up series: the first call, then 3 one-call samples (the second call is the first sample)."""
    settings = TimingSettings(budget_s=0.01, min_samples=5, block_s=0.001, rel_ci=1e-9, min_warmup_s=0.0)
    calls = []
    timing, _ = measure(lambda: calls.append(time.sleep(0.02)), (), EagerBackend(), settings)
    assert timing.n == 3 and timing.calls_per_sample == 1 and timing.warmup_calls == 0
    assert timing.stop_reason == "slow" and len(calls) == 4
    assert timing.warmup_s == 0.0 and timing.sampling_s >= 3 * 0.02


def test_slow_samples_are_split_across_units() -> None:
    """3 units of a slow case take one sample each after their own first call: 3 samples per case, as one
    unit alone takes."""
    unit = TimingSettings(budget_s=0.03, min_samples=5, block_s=0.001, rel_ci=1e-9).per_unit(3)
    assert unit.slow_samples == 1 and TimingSettings().per_unit(2).slow_samples == 2
    # the minimum sample count is split too, with at least 3 per unit; one unit keeps it whole
    assert unit.min_samples == 3 and TimingSettings(min_samples=20).per_unit(3).min_samples == 7
    assert TimingSettings(min_samples=2).per_unit(3).min_samples == 2 and TimingSettings().per_unit(1).min_samples == 5
    calls = []
    timing, _ = measure(lambda: calls.append(time.sleep(0.02)), (), EagerBackend(), unit)
    assert timing.n == 1 and len(calls) == 2 and timing.stop_reason == "slow"


def test_a_slow_first_call_alone_does_not_make_a_case_slow() -> None:
    """A first call that compiles (slower than the budget) followed by fast calls: the normal warm-up and
    blocked samples."""
    settings = TimingSettings(budget_s=0.02, min_samples=5, block_s=0.002, rel_ci=1e-9, min_warmup_s=0.0)
    calls = []

    def op() -> None:
        time.sleep(0.05 if not calls else 0.0002)
        calls.append(1)

    timing, _ = measure(op, (), EagerBackend(), settings)
    assert timing.first_call_s >= 0.05 and timing.stop_reason != "slow"
    assert timing.warmup_calls >= 1 and timing.n >= 5


class Output:
    """A fresh output object per call (weak-referenceable, so a test can tell whether it is still alive)."""


def test_a_slow_case_times_its_second_call_with_the_first_output_freed() -> None:
    """The first output is dropped before the second call, so the allocator can hand its memory back
    (benchmarks/first_touch.py: a fresh multi-GB output's first touch is part of a CPU call's time)."""
    import weakref

    settings = TimingSettings(budget_s=0.01, min_samples=5, block_s=0.001, rel_ci=1e-9, min_warmup_s=0.0,
                              slow_samples=1)
    outputs: list[weakref.ref] = []
    alive_at_call: list[int] = []

    def op() -> Output:
        alive_at_call.append(sum(r() is not None for r in outputs))
        time.sleep(0.015)
        out = Output()
        outputs.append(weakref.ref(out))
        return out

    timing, out = measure(op, (), EagerBackend(), settings)
    assert timing.stop_reason == "slow" and timing.n == 1 and alive_at_call == [0, 0]
    assert outputs[-1]() is out  # the timed call's output is the one returned for verification


def test_a_memoized_result_after_a_slow_first_call_is_still_caught() -> None:
    """A slow first call, then the same object returned at once: the second call is fast, the warm-up's next
    call returns the same buffer, and the stale-output check says so."""
    settings = TimingSettings(budget_s=0.01, min_samples=5, block_s=0.001, rel_ci=1e-9, min_warmup_s=0.0)
    cache: list[Output] = []

    def op() -> Output:
        if not cache:
            time.sleep(0.02)
            cache.append(Output())
        return cache[0]

    with pytest.raises(NotForcedError, match="stale result"):
        measure(op, (), EagerBackend(), settings)


def test_later_units_give_back_what_the_first_units_energy_region_took() -> None:
    """A case budget of 0.15 s over 3 units: the first unit's 0.05 s share is lengthened to the energy
    counter's 0.1 s, so each later unit gives up 0.025 s and the case's samples total 0.15 s; the offset is
    capped at half a share (a tiny budget cannot make a later unit's share vanish) and is nothing when the
    share already covers the region or there is one unit."""
    share = TimingSettings(budget_s=0.15).per_unit(3)
    later = share.later_unit(3, 0.1)
    assert later.energy_offset_s == pytest.approx(0.025) and not later.energy_region
    assert 0.1 + 2 * later.without_energy_offset(True).budget_s == pytest.approx(0.15)  # the first unit: 0.1 s
    assert TimingSettings(budget_s=0.03).per_unit(3).later_unit(3, 0.1).energy_offset_s == pytest.approx(0.005)
    assert TimingSettings(budget_s=0.6).per_unit(3).later_unit(3, 0.1).energy_offset_s == 0.0
    assert share.later_unit(1, 0.1).energy_offset_s == 0.0
    assert share.without_energy_offset(True) is share
