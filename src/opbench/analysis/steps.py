"""Step detection over a benchmark's history: where did its time change level, and by how much?

The method (in the spirit of asv's step detection, simpler and with a measured false-alarm rate): work on the
log of the per-run medians, so a step is a ratio and noise is relative. Estimate the run-to-run noise robustly
from successive differences (sigma = 1.4826 * MAD(diff) / sqrt(2), floored at `MIN_NOISE`): a step changes
one difference only. Replace isolated one-run outliers by the median of their neighbours (`despike`), so a
noisy neighbour or a thermal blip is not a level. Then binary segmentation: in a segment, try every split that
leaves at least `MIN_SIZE` runs on each side, compare the means of the two sides with a z statistic, and
accept the best split when it passes a Bonferroni threshold for the number of splits tried (Student's t
quantile at 1 - alpha / (2 m), sigma being estimated) and the change is at least `MIN_CHANGE`; recurse into
both sides.

False alarms: the first test of a history guards the whole history, so on a history without a step the chance
of reporting one is about `alpha` (1 %). Measured (tests/test_steps.py, seeded): over 2000 stationary
log-normal histories of 6-40 runs at 1-10 % noise, 1.3 % report a step (0.85 % when each also has one +50 %
spike); steps of 4 sigma (at least 6 %) are found at the exact run in about 87 % of 1000 histories.
A split whose neighbouring runs do not sit on their own sides of the midpoint between the two levels is not
reported (the new level is too short to place). Trade-off: a regression in the newest runs is listed only once
`MIN_SIZE` runs confirm it, and a change under
`MIN_CHANGE` (5 %) is never listed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

ALPHA = 0.01
MIN_SIZE = 3
MIN_CHANGE = 0.05
SPIKE = 4.0  # an isolated run this many sigma off its neighbours' median is an outlier, not a level
MIN_NOISE = 0.005  # 0.5 %: no two runs agree better than this, whatever the differences say


@dataclass(frozen=True)
class Step:
    """The level changes at `index` (the first run at the new level): `before` -> `after` (median times)."""

    index: int
    before: float
    after: float
    z: float

    @property
    def ratio(self) -> float:
        return self.after / self.before

    @property
    def kind(self) -> str:
        return "regression" if self.after > self.before else "improvement"


def noise(log_values: np.ndarray) -> float:
    """Robust run-to-run standard deviation of log values, from successive differences."""
    if len(log_values) < 3:
        return MIN_NOISE
    d = np.diff(log_values)
    mad = float(np.median(np.abs(d - np.median(d))))
    return max(1.4826 * mad / math.sqrt(2), MIN_NOISE)


def despike(y: np.ndarray, sigma: float) -> np.ndarray:
    """Replace isolated outliers (a run more than `SPIKE` sigma from the median of itself and its two neighbours)
    by that median. At a step the neighbours disagree with each other, so its runs are left alone; the first
    and last run are kept as they are."""
    out = y.copy()
    for i in range(1, len(y) - 1):
        m = float(np.median(y[i - 1:i + 2]))
        if abs(y[i] - m) > SPIKE * sigma:
            out[i] = m
    return out


def detect_steps(values: Sequence[float], alpha: float = ALPHA, min_size: int = MIN_SIZE,
                 min_change: float = MIN_CHANGE) -> list[Step]:
    """The steps in a history of positive times, in order. Non-positive or non-finite values are refused."""
    times = np.asarray(values, dtype=float)
    if not (np.all(np.isfinite(times)) and np.all(times > 0)):  # checked before the log, which would warn
        raise ValueError("step detection needs positive, finite times")
    y = np.log(times)
    sigma = noise(y)
    y = despike(y, sigma)
    found: list[Step] = []
    _segment(y, 0, len(y), sigma, alpha, min_size, min_change, found)
    cuts = [0, *sorted(s.index for s in found), len(y)]  # levels between neighbouring steps, not the segments'
    level = [math.exp(float(np.mean(y[a:b]))) for a, b in itertools.pairwise(cuts)]
    by_index = {s.index: s for s in found}
    return [Step(k, level[i], level[i + 1], by_index[k].z) for i, k in enumerate(cuts[1:-1])]


def _segment(y: np.ndarray, lo: int, hi: int, sigma: float, alpha: float, min_size: int, min_change: float,
             out: list[Step]) -> None:
    splits = range(lo + min_size, hi - min_size + 1)
    if len(splits) == 0:
        return
    best_z, best_k = -1.0, -1
    for k in splits:
        left, right = y[lo:k], y[k:hi]
        z = abs(float(right.mean() - left.mean())) / (sigma * math.sqrt(1 / len(left) + 1 / len(right)))
        if z > best_z:
            best_z, best_k = z, k
    # Student's t rather than the normal: sigma is itself estimated from the history's few runs
    threshold = float(student_t.ppf(1 - alpha / (2 * len(splits)), max(len(y) - 2, 1)))
    before, after = math.exp(float(np.mean(y[lo:best_k]))), math.exp(float(np.mean(y[best_k:hi])))
    if best_z <= threshold or abs(after / before - 1) < min_change:
        return
    mid = (math.log(before) + math.log(after)) / 2  # the runs either side of the split must sit on their side:
    if (y[best_k] - mid) * (y[best_k - 1] - mid) >= 0:  # else the new level is too short to place (wait for runs)
        return
    out.append(Step(best_k, before, after, best_z))
    _segment(y, lo, best_k, sigma, alpha, min_size, min_change, out)
    _segment(y, best_k, hi, sigma, alpha, min_size, min_change, out)
