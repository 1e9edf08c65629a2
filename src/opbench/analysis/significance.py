"""Is B different from A? Tests on independent units: the per-process medians of a case, not its samples.

The samples of one worker process are not independent of each other (lag-1 autocorrelation around 0.5), and
one process can settle at another speed than the next, so a test that treats every sample as independent
calls two runs of the same code different on half of the rows. Here the unit of evidence is a *unit*: one
worker process, summarized by the median of its samples (pyperf's many processes x few values;
google/benchmark's repetitions). Inside one process, `median_ci` at the AR(1) `effective_size` is the interval
of the median that the timing engine's stop rule uses. This module imports nothing of opbench: the result model
(the ~ mark), the engine and the comparison all read it. Per row, with k_A and k_B units:

- the log of each unit median; their variance s² pooled over both sides (k_A + k_B - 2 degrees of freedom:
  a run's spread between its own processes is the evidence for how far apart two runs can be);
- moderated by a prior (`pooled_prior`): the typical s² of the other rows of the same backend and duration
  class (split at 50 µs), with `PRIOR_DF` degrees of freedom (empirical-Bayes shrinkage as in limma's
  moderated t): s²_mod = (d0·s0² + d·s²)/(d0 + d). With three units a side a row alone has 4 degrees of
  freedom (t = 2.78); the prior gives it 8 (t = 2.31) and keeps one row whose three processes happened to
  agree from looking precise;
- the interval of the ratio: ratio · exp(±t · s_mod · sqrt(1/k_A + 1/k_B)) (Welch/Student on log times,
  `ratio_interval`), and a two-sided p from the same t.

Verdicts (`verdict`), with `floor` the smallest change worth reporting (the noise floor: `compare
--noise-floor`, raised to what `opbench noise` measured on this machine) and `EQUIVALENCE` the margin for
"same":
- slower / faster: the interval excludes 1 and the ratio is beyond the floor;
- same: the interval lies within 1 ± max(floor, EQUIVALENCE) (a difference, if any, too small to matter);
- ambiguous: anything else: the interval is too wide to tell (too noisy, or too few units);
- untested: a side has no raw samples (a published table).

Run-to-run variance. The units of one run share its time window, its compile caches, the machine's state
(its clock, its other load): two runs differ by more than their units predict. Measured on the 2-core CPU
(quick preset, 3 units a side), the squared log ratio of an A/A pair was 1.6-2.2x (cpu, mlx_cpu at 50 µs or
more) what the between-unit spread predicts, and A/A called 12.6 % of the rows different. The model is
log(time of a unit) = case + run effect (variance σ²_run, shared by the units of one run) + unit effect
(variance σ², the between-unit spread that a run sees), so the squared standard error of a row's log ratio
is s²_mod·(1/k_A + 1/k_B) + 2σ²_run. A run cannot see its own σ²_run: `run_variance` estimates it from a
pair of like runs (`opbench noise`), per backend and duration class, and `compare` adds 2σ²_run to each row
of runs of that machine (`compare.compare_runs(run_variances=...)`); without a noise result it is 0 (the
comparison's notes say that run-to-run drift is not modelled). Degrees of freedom: kept at the prior's
(k_A + k_B − 2 + PRIOR_DF), not Satterthwaite's: σ²_run comes from one pair of runs whose rows share much of
their difference (the measured A/A pair had a mean log ratio of −0.16 on cpu), so its rows are not
independent evidence of it, and counting them as degrees of freedom would overstate its precision.

Trade-off: unit medians throw away the within-unit detail, and with few units the interval is wide (a real
3 % change on a noisy host may read "ambiguous" rather than "slower"); in exchange two runs of the same code
are called different at about the nominal rate (`benchmarks/significance.py aa`), which per-sample tests
are not. The prior assumes rows of one backend and duration class share their process-to-process spread; a
row noisier than its peers is shrunk towards them, which the noise floor guards against. The run component
buys the same honesty across runs at a price no number of units can lower: with it, a change smaller than
about (t + z₀.₉)·sqrt(2)·σ_run is never detected nine times in ten (`units_for_power` says how many units a
side a 10 % change needs, and when none suffice); it is one figure per backend and duration class (a row
whose runs drift more than its peers' is still under-covered), and it is as good as the pair of runs it
came from (a machine whose load changes needs `opbench noise` again).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PRIOR_DF = 4
PRIOR_MIN_ROWS = 3
EQUIVALENCE = 0.05
POWER_Z = 1.2816  # one-sided z for 90 % power
# A result is marked noisy (~) when a comparison with a run as spread as itself would not detect a change
# this large nine times in ten (`detectable_change`).
NOISY_DETECTABLE = 0.10
RUN_QUANTILE = 0.2  # `run_variance` fits the fraction of A/A rows with p below this to this
VERDICTS = ("slower", "faster", "same", "ambiguous", "untested")
MAX_AUTOCORRELATION = 0.95


def effective_size(samples: list[float] | np.ndarray) -> float:
    """How many independent samples `samples` are worth: n(1 - r)/(1 + r), r their lag-1 autocorrelation
    clipped to [0, MAX_AUTOCORRELATION] (the variance inflation of an AR(1) process; negative correlation is
    not trusted to shrink an interval)."""
    xs = np.asarray(samples, dtype=float)
    n = len(xs)
    if n < 3:
        return float(n)
    dev = xs - xs.mean()
    denom = float(dev @ dev)
    r = float(dev[1:] @ dev[:-1]) / denom if denom > 0 else 0.0
    r = min(max(r, 0.0), MAX_AUTOCORRELATION)
    return n * (1 - r) / (1 + r)


def median_ci(samples: list[float] | np.ndarray, z: float = 1.96, n_eff: float | None = None) -> tuple[float, float]:
    """Distribution-free 95% CI of the median: the order statistics (0-based) floor(n/2 - h) and
    ceil(n/2 + h), h = z*sqrt(n)/2 (normal approximation to the binomial; coverage 0.95 at n = 100-300).

    With `n_eff` (effective independent samples, `effective_size`), h = z*n/(2*sqrt(n_eff)): the same
    quantile spread, sqrt(p(1-p)/n_eff) at p = 1/2, for correlated samples. Small n widens to the range."""
    xs = np.sort(np.asarray(samples, dtype=float))
    n = len(xs)
    n_eff = n if n_eff is None else max(min(n_eff, n), 1e-9)
    half = z * n / (2 * math.sqrt(n_eff))
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half))
    return float(xs[lo]), float(xs[hi])


def log_unit_spread(units_a: Sequence[float], units_b: Sequence[float]) -> tuple[float, int]:
    """(s², degrees of freedom) of the log unit medians, pooled over both sides; (nan, 0) when neither side
    has two units."""
    ss, df = 0.0, 0
    for units in (units_a, units_b):
        if len(units) >= 2:
            logs = np.log(np.asarray(units, dtype=float))
            ss += float(((logs - logs.mean()) ** 2).sum())
            df += len(units) - 1
    return (ss / df if df else math.nan), df


def pooled_prior(spreads: Sequence[tuple[float, int]]) -> tuple[float, int] | None:
    """The prior (s0², PRIOR_DF) of a group of rows: the median of their s², divided by the median of
    chi²(d)/d (so it estimates the mean variance, not a value biased low by the skewed chi²); None with fewer
    than PRIOR_MIN_ROWS rows with units."""
    from scipy.stats import chi2

    usable = [(v, d) for v, d in spreads if d > 0 and math.isfinite(v)]
    if len(usable) < PRIOR_MIN_ROWS:
        return None
    d = int(np.median([d for _, d in usable]))
    s0 = float(np.median([v for v, _ in usable])) / (chi2.median(d) / d)
    return s0, PRIOR_DF


def moderated_spread(spread: tuple[float, int], prior: tuple[float, int] | None) -> tuple[float, int]:
    """(s²_mod, degrees of freedom): the between-unit variance `spread` moderated by `prior` (module doc)."""
    var, df = spread
    if prior is not None:
        s0, d0 = prior
        var = (d0 * s0 + (df * var if df else 0.0)) / (d0 + df)
        df += d0
    return var, df


def ratio_interval(ratio: float, spread: tuple[float, int], units: tuple[int, int],
                   prior: tuple[float, int] | None, alpha: float, run_var: float = 0.0
                   ) -> tuple[float, float, float, float] | None:
    """(low, high, p, standard error of log ratio) for `ratio`, from the between-unit spread moderated by
    `prior`, plus 2·`run_var` (σ²_run of this machine, `run_variance`) in the squared standard error; None when
    there is no spread to go by (one unit a side and no prior)."""
    from scipy.stats import t as student

    var, df = moderated_spread(spread, prior)
    if not df:
        return None
    se = math.sqrt(max(var, 0.0) * (1 / units[0] + 1 / units[1]) + 2 * max(run_var, 0.0))
    log_ratio = math.log(ratio)
    if se == 0:
        return ratio, ratio, (1.0 if log_ratio == 0 else 0.0), 0.0
    q = float(student.ppf(1 - alpha / 2, df))
    p = float(2 * student.sf(abs(log_ratio) / se, df))
    return ratio * math.exp(-q * se), ratio * math.exp(q * se), p, se


def verdict(ratio: float, low: float | None, high: float | None, floor: float) -> str:
    """slower / faster / same / ambiguous / untested, by the rules in the module docstring."""
    if low is None or high is None:
        return "untested"
    if low > 1 and ratio >= 1 + floor:
        return "slower"
    if high < 1 and ratio <= 1 / (1 + floor):
        return "faster"
    margin = 1 + max(floor, EQUIVALENCE)
    if low >= 1 / margin and high <= margin:
        return "same"
    return "ambiguous"


def geomean_interval(log_ratios: Sequence[float], log_ses: Sequence[float | None], alpha: float,
                     run_vars: Sequence[float] = ()) -> tuple[float, float, float] | None:
    """(geomean, low, high) of ratios given as logs, with their standard errors (None: untested row).

    The interval is Student's on the mean log ratio with the largest of three standard errors: the spread of
    the rows' log ratios over sqrt(rows) (how much cases differ from each other: the question "is this
    family slower?" is about cases), the rows' own measurement errors combined (what remains with one row
    or rows that agree), and the run-to-run component of the rows (`run_vars`: each row's 2σ²_run; their
    mean, square-rooted), which does not shrink with more rows: two runs differ by it on all their rows at
    once, as far as the rows tell (conservative where rows drift independently). None when no row was tested."""
    from scipy.stats import t as student

    tested = [s for s in log_ses if s is not None]
    if not tested or not log_ratios:
        return None
    x = np.asarray(log_ratios, dtype=float)
    n = len(x)
    measurement = math.sqrt(sum(s * s for s in tested)) / len(tested)
    between = float(x.std(ddof=1)) / math.sqrt(n) if n >= 2 else 0.0
    run = math.sqrt(float(np.mean(run_vars))) if len(run_vars) else 0.0
    se = max(measurement, between, run)
    df = max(n - 1, PRIOR_DF)
    mean = float(x.mean())
    q = float(student.ppf(1 - alpha / 2, df))
    return math.exp(mean), math.exp(mean - q * se), math.exp(mean + q * se)


def detectable_change(se: float, df: float) -> float:
    """The smallest slowdown that a comparison whose log ratio has standard error `se` and `df` degrees of
    freedom calls "slower" nine times in ten: exp((t₀.₉₇₅(df) + z₀.₉)·se) − 1 (the normal approximation to the
    power of the t interval; df = inf: the normal interval)."""
    from scipy.stats import t as student

    q = 1.959964 if math.isinf(df) else float(student.ppf(0.975, df))
    return math.expm1((q + POWER_Z) * se)


def result_detectable_change(unit_medians: Sequence[float], samples: Sequence[float], run_var: float = 0.0
                             ) -> float:
    """What one result can tell apart: `detectable_change` of a comparison of it with a like run (as many
    units, the same spread), without the moderation of other rows (a result is judged on its own).

    With two or more units: se = sqrt(s²·2/k + 2·run_var), s² the variance of the log unit medians, run_var
    the σ²_run of its machine (`run_variance`; 0: not known), 2(k − 1) degrees of freedom. With one unit
    (`--processes 1`, older runs) the between-unit spread is unknown, and the only evidence is the spread
    inside the process: the 95 % interval of the median at the AR(1) effective size (`median_ci`), as a
    normal standard error of the log median, times sqrt(2). That is a lower bound
    (processes differ more than samples of one process), which the process-spread note says. nan with fewer
    than two samples."""
    k = len(unit_medians)
    if k >= 2 and min(unit_medians) > 0:
        var, df = log_unit_spread(unit_medians, ())
        return detectable_change(math.sqrt(var * 2 / k + 2 * max(run_var, 0.0)), 2 * df)
    if len(samples) < 2 or min(samples) <= 0:
        return math.nan
    lo, hi = median_ci(samples, n_eff=effective_size(samples))
    return detectable_change(math.sqrt(2) * (math.log(hi) - math.log(lo)) / (2 * 1.959964), math.inf)


def run_variance(log_ratios: Sequence[float], within_ses: Sequence[float], dfs: Sequence[float],
                 quantile: float = RUN_QUANTILE) -> float:
    """σ²_run (module doc) from the rows of one A/A pair of runs: their log ratios (B/A, the statistic
    `compare` tests), the standard errors the within-run model gives them (s_mod·sqrt(1/k_A + 1/k_B)) and
    their degrees of freedom.

    Robust, quantile-based method: the two-sided p of the rows of an A/A pair are uniform when the model is right,
    so a fraction `quantile` of them is below `quantile`. σ²_run is the smallest value ≥ 0 at which that holds for p
    computed from |log ratio| / sqrt(se² + 2σ²_run) (Student, the row's degrees of freedom). It is 0 when the rows
    are within noise without it: when no more of them have p < `quantile` than one binomial standard deviation above
    the expected n·quantile (so a pair without a run component gets 0 about five times in six, and a small positive
    value otherwise; a stricter test, one-sided 5 %, zeroed real components of 20-row classes on the measured CPU
    pairs, which costs false positives). `quantile` is 0.2, not the median, because false positives are a tail
    property: on the measured 2-core CPU pairs the excess sat in a fifth to a third of the rows, and a median-based
    fit missed it; yet a fifth of the rows is several rows, so a row that moved a thousandfold (an oversubscribed
    thread pool) does not set it, as it sets the mean of d² (the plain method of moments, `moment_run_variance`).
    The log ratio is the one `compare` tests (of the medians of the pooled samples), not the difference of the mean
    log unit medians: on the measured CPU pair the former was the noisier (mean square 3.4x the within-run
    prediction for cpu at 50 µs or more, against 1.6x), and it is the test that must be calibrated. 0 for no
    rows."""
    from scipy.stats import t as student

    d = np.abs(np.asarray(log_ratios, dtype=float))
    se2 = np.asarray(within_ses, dtype=float) ** 2
    df = np.asarray(dfs, dtype=float)
    keep = np.isfinite(d) & np.isfinite(se2) & (df > 0)
    d, se2, df = d[keep], se2[keep], df[keep]
    n = len(d)
    if n == 0:
        return 0.0

    def below(v: float) -> int:
        """Rows with p < quantile at σ²_run = v."""
        scale = np.sqrt(se2 + 2 * v)
        z = np.divide(d, scale, out=np.where(d > 0, np.inf, 0.0), where=scale > 0)
        return int(np.sum(2 * student.sf(z, df) < quantile))

    if below(0.0) <= n * quantile + math.sqrt(n * quantile * (1 - quantile)):
        return 0.0
    target = quantile * n
    low, high = 0.0, max(float(np.max(d * d)), 1e-12)
    for _ in range(60):  # bisection: fewer rows fall below as v grows
        mid = (low + high) / 2
        low, high = (mid, high) if below(mid) > target else (low, mid)
    return high


def moment_run_variance(log_ratios: Sequence[float], within_ses: Sequence[float]) -> float:
    """The plain method-of-moments σ²_run: max(0, mean(d²) − mean(se²))/2 over the rows (d the log ratio of a
    row of an A/A pair, se its within-run standard error); 0 for no rows. Not robust: one row that moved far
    sets it. Kept for comparison with `run_variance`."""
    d = np.asarray(log_ratios, dtype=float)
    se2 = np.asarray(within_ses, dtype=float) ** 2
    keep = np.isfinite(d) & np.isfinite(se2)
    if not keep.any():
        return 0.0
    return max(0.0, float(np.mean(d[keep] ** 2) - np.mean(se2[keep]))) / 2


def units_for_power(unit_var: float, run_var: float = 0.0, change: float = NOISY_DETECTABLE,
                    max_units: int = 1000) -> int | None:
    """The fewest units per side (k ≥ 2) at which a comparison of two like runs detects a slowdown of `change`
    nine times in ten: `detectable_change`(sqrt(unit_var·2/k + 2·run_var), 2(k − 1) + PRIOR_DF) ≤ change,
    unit_var the between-unit variance of the log unit medians and run_var σ²_run. None when even `max_units`
    do not suffice (the run component alone is too large: no number of units lowers it)."""
    if detectable_change(math.sqrt(2 * run_var), math.inf) > change:
        return None
    for k in range(2, max_units + 1):
        if detectable_change(math.sqrt(unit_var * 2 / k + 2 * run_var), 2 * (k - 1) + PRIOR_DF) <= change:
            return k
    return None
