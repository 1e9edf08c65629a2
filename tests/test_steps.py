"""Step detection: its false-alarm rate on stationary noise, robustness to one-run spikes, planted steps."""

from __future__ import annotations

import numpy as np
import pytest

from opbench.analysis.steps import detect_steps


def test_false_alarm_rate_on_stationary_histories_is_near_alpha() -> None:
    rng = np.random.default_rng(7)
    alarms = spiked_alarms = 0
    trials = 2000
    for _ in range(trials):
        n, sigma = int(rng.integers(6, 41)), rng.uniform(0.01, 0.10)
        values = np.exp(rng.normal(0, sigma, n))
        alarms += bool(detect_steps(values))
        values[int(rng.integers(1, n - 1))] *= 1.5
        spiked_alarms += bool(detect_steps(values))
    assert alarms / trials < 0.025 and spiked_alarms / trials < 0.025  # documented: 1.3 % and 0.85 %


def test_planted_steps_are_found_at_their_run() -> None:
    rng = np.random.default_rng(3)
    exact = 0
    trials = 300
    for _ in range(trials):
        n, sigma = int(rng.integers(10, 41)), rng.uniform(0.01, 0.05)
        k = int(rng.integers(3, n - 3))
        values = np.exp(rng.normal(0, sigma, n))
        values[k:] *= np.exp(max(4 * sigma, 0.06) * rng.choice([-1, 1]))
        exact += any(s.index == k for s in detect_steps(values))
    assert exact / trials > 0.8


def test_two_steps_direction_and_size() -> None:
    values = [10.0, 10.1, 9.9, 10.0, 10.05, 13.0, 13.1, 12.9, 13.0, 6.5, 6.6, 6.4, 6.5]
    steps = detect_steps(values)
    assert [(s.index, s.kind) for s in steps] == [(5, "regression"), (9, "improvement")]
    assert steps[0].ratio == pytest.approx(1.3, rel=0.02) and steps[1].ratio == pytest.approx(0.5, rel=0.02)


def test_small_changes_and_short_histories_are_not_steps() -> None:
    assert detect_steps([1.0, 1.0, 1.0, 1.03, 1.03, 1.03]) == []  # 3 %: under the 5 % floor
    noisy = np.exp(np.random.default_rng(0).normal(0, 0.02, 12))
    assert detect_steps([1.0, 2.0]) == []
    assert detect_steps([*noisy[:10], 2 * noisy[10], 2 * noisy[11]]) == []  # the new level needs 3 runs
    assert [s.index for s in detect_steps([*noisy[:9], *(2 * noisy[9:])])] == [9]
    with pytest.raises(ValueError):
        detect_steps([1.0, 0.0, 1.0])
