"""Compare two runs case by case: the time ratio B/A, whether it is significant, and geometric-mean summaries.

Matching: a row is one case present and timed in both runs, on a backend of A and the backend of B it is
paired with: the same name by default, or the one `backends_b` maps it to (`{"cpu": "mlx_gpu"}` compares A's
`cpu` with B's `mlx_gpu`; other backends of A still pair by name). This is what makes cross-machine
comparisons work ("my CPU run vs the seed's M3 Max", "RTX 4090 cuda vs M3 Max mlx_gpu").

Statistics, per row (the model and its trade-off: `opbench.analysis.significance`):
- `time_a_ms`, `time_b_ms`: medians of the raw samples (or the published number of an imported table);
  `ratio = time_b / time_a` (> 1: B is slower).
- `ci_low`, `ci_high`, `p_value`: from the spread between independent units (worker processes, `run
  --processes`, 3 by default): Student's interval of the log ratio with the variance of the log unit medians,
  pooled over both runs and moderated by the other rows of the same backend and duration class.
- `verdict`: slower / faster / same / ambiguous (too noisy to tell) / untested, against the noise floor:
  `noise_floor` (default 2 %), raised per backend and duration class to what `opbench noise` measured on run
  A's machine (`machine_floors`).
- Run-to-run drift: the units of one run cannot see how far the run as a whole moved. Where `opbench noise`
  measured this machine, `run_variances` gives its σ²_run per backend and duration class
  (`significance.run_variance`) and each row's squared standard error gets 2σ²_run (`run_var` of the row);
  the rows' "noisy" marks and the geometric means use the same model. Without it (`run_variances=None`) the
  interval reflects the spread between the units of these two runs only, and the notes say that run-to-run
  drift is not modelled and how to measure it.
- A shift of a whole backend (most of its rows moved the same way, `_shared_shift_notes`) is named in the notes:
  it is a change touching every case or the machine's speed between the runs, which one pair cannot separate.
- Runs measured in one process a side (older runs, `--processes 1`) have no between-unit spread: their
  interval falls back to a percentile bootstrap of the ratio of medians over the samples (each resample's
  median drawn from its order-statistic distribution, `bootstrap_medians`, seeded from the case and backend)
  and p to the Mann-Whitney U test; such a row says so in its note, since samples of one process understate
  run-to-run variance.
- Without raw samples on either side (imported published tables) there is no test: p and the interval are
  None and the verdict is "untested"; only the ratio is reported.

Summaries: `family_geomeans()` is the geometric mean of the ratios of a family's rows (all backends pooled),
`family_summaries()` / `backend_summaries()` / `overall_summary()` the same with an interval and a verdict
(`significance.geomean_interval`);
`backend_geomeans_by_duration()` splits each backend's rows at `SHORT_CASE_MS` of A's time (on a GPU the short
ones are mostly bound by host dispatch, and drift between runs far more than the long ones);
`overall_geomean()` is the geometric mean over all rows (every case weighs the same, so families with many
cases weigh more; pyperf's choice). A geometric mean of ratios is symmetric: 2x slower and 2x faster cancel.

Trade-off: a plain bootstrap costs O(resamples × samples) per row (seconds for a full run with hundreds of
samples per case); drawing the resampled medians from their order-statistic distribution makes it
O(resamples), so 10,000 resamples (interval ends stable to well under 1 %) cost about a millisecond per side
whatever the sample count, about as much as the Mann-Whitney test: `benchmarks/compare_speed.py` prints both.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from opbench.analysis.significance import (
    NOISY_DETECTABLE,
    geomean_interval,
    log_unit_spread,
    moderated_spread,
    pooled_prior,
    ratio_interval,
    result_detectable_change,
    verdict,
)
from opbench.errors import UsageError, unknown
from opbench.results.model import SHORT_CASE_MS, CaseResult, Run
from opbench.results.status import Status

BOOTSTRAP_RESAMPLES = 10_000
DEFAULT_NOISE_FLOOR = 0.02
MIN_SAMPLES = 2


@dataclass(frozen=True)
class ComparisonRow:
    """One case on one backend pair: A's and B's times and what their difference means."""

    case: str
    family: str
    backend: str  # A's backend; "a vs b" when mapped to another backend of B
    time_a_ms: float
    time_b_ms: float
    ratio: float  # time_b / time_a  (> 1: B slower)
    ci_low: float | None  # bootstrap CI of the ratio of medians; None without samples
    ci_high: float | None
    p_value: float | None  # two-sided; None without samples
    significant: bool | None  # verdict faster or slower; None when one side has no raw samples (imported tables)
    note: str = ""  # e.g. "A wrong", "B reduced-precision": a marked time
    verdict: str = ""  # slower / faster / same / ambiguous / untested (derived from `significant` if not given)
    log_se: float | None = None  # standard error of log(ratio); None when untested
    units: tuple[int, int] = (0, 0)  # independent units (processes) of A and B
    log_df: float | None = None  # degrees of freedom of the Student interval; None when not Student's
    run_var: float = 0.0  # 2σ²_run added to log_se² (run-to-run component, `opbench noise`); 0: not modelled

    def __post_init__(self) -> None:
        if not self.verdict:
            derived = ("untested" if self.significant is None else "same" if not self.significant
                       else "slower" if self.ratio > 1 else "faster")
            object.__setattr__(self, "verdict", derived)

    @property
    def change(self) -> str:
        """`1.23x slower`, `1.23x faster`, `same`, `ambiguous`, or `1.23x slower (untested)` without samples."""
        if self.verdict in ("same", "ambiguous"):
            return self.verdict
        text = f"{self.ratio:.2f}x slower" if self.ratio >= 1 else f"{1 / self.ratio:.2f}x faster"
        return text if self.verdict != "untested" else f"{text} (untested)"


@dataclass(frozen=True)
class Summary:
    """A geometric mean of B/A over some rows, with its interval and verdict (`significance`)."""

    geomean: float
    ci_low: float | None
    ci_high: float | None
    rows: int
    verdict: str

    @property
    def text(self) -> str:
        """`0.987 (0.95–1.02)` or `0.987` without an interval."""
        if math.isnan(self.geomean):
            return "—"
        if self.ci_low is None or self.ci_high is None:
            return f"{self.geomean:.4g}"
        return f"{self.geomean:.4g} ({self.ci_low:.3g}–{self.ci_high:.3g})"

    def reads(self, b: str = "B") -> str:
        """`B 1.22x slower`, `same`, `ambiguous (too noisy to tell)`, or `B 1.22x slower (untested)`."""
        if math.isnan(self.geomean):
            return "—"
        if self.verdict == "same":
            return "same"
        if self.verdict == "ambiguous":
            return "ambiguous (too noisy to tell)"
        text = f"{b} {self.geomean:.2f}x slower" if self.geomean >= 1 else f"{b} {1 / self.geomean:.2f}x faster"
        return text + (" (untested)" if self.verdict == "untested" else "")


@dataclass(frozen=True)
class Comparison:
    """The rows of a comparison of run B against run A, plus what could not be compared (`notes`)."""

    run_a: Run
    run_b: Run
    rows: tuple[ComparisonRow, ...]
    notes: tuple[str, ...] = ()
    alpha: float = 0.05
    noise_floor: float = DEFAULT_NOISE_FLOOR

    def family_geomeans(self) -> dict[str, float]:
        """Geometric mean of B/A per family (all backends pooled), in the rows' order."""
        by_family: dict[str, list[float]] = {}
        for row in self.rows:
            by_family.setdefault(row.family, []).append(row.ratio)
        return {family: geomean(ratios) for family, ratios in by_family.items()}

    def backend_geomeans(self) -> dict[str, float]:
        """Geometric mean of B/A per backend (pair), in the rows' order."""
        by_backend: dict[str, list[float]] = {}
        for row in self.rows:
            by_backend.setdefault(row.backend, []).append(row.ratio)
        return {backend: geomean(ratios) for backend, ratios in by_backend.items()}

    def backend_geomeans_by_duration(self, threshold_ms: float = SHORT_CASE_MS
                                     ) -> dict[str, tuple[tuple[float, int], tuple[float, int]]]:
        """Per backend (pair): (geomean, rows) of the rows whose A time is under `threshold_ms`, then of the
        others; a geomean is nan for no rows."""
        split: dict[str, tuple[list[float], list[float]]] = {}
        for row in self.rows:
            short, long = split.setdefault(row.backend, ([], []))
            (short if row.time_a_ms < threshold_ms else long).append(row.ratio)
        return {backend: ((geomean(short), len(short)), (geomean(long), len(long)))
                for backend, (short, long) in split.items()}

    def overall_geomean(self) -> float:
        """Geometric mean of B/A over every row; nan when nothing could be compared."""
        return geomean([row.ratio for row in self.rows])

    def summarize(self, rows: Sequence[ComparisonRow]) -> Summary:
        """The geometric mean of `rows` with its interval (`significance.geomean_interval`) and verdict."""
        if not rows:
            return Summary(math.nan, None, None, 0, "untested")
        found = geomean_interval([math.log(r.ratio) for r in rows], [r.log_se for r in rows], self.alpha,
                                 [r.run_var for r in rows if r.log_se is not None])
        gm = geomean([r.ratio for r in rows])
        if found is None:
            return Summary(gm, None, None, len(rows), "untested")
        _, low, high = found
        return Summary(gm, low, high, len(rows), verdict(gm, low, high, self.noise_floor))

    def family_summaries(self) -> dict[str, Summary]:
        """`summarize` per family (all backends pooled), in the rows' order."""
        by_family: dict[str, list[ComparisonRow]] = {}
        for row in self.rows:
            by_family.setdefault(row.family, []).append(row)
        return {family: self.summarize(rows) for family, rows in by_family.items()}

    def backend_summaries(self, threshold_ms: float = SHORT_CASE_MS) -> dict[str, tuple[Summary, Summary, Summary]]:
        """Per backend (pair): `summarize` of all its rows, of those under `threshold_ms` (A's time), and of
        the others."""
        by_backend: dict[str, list[ComparisonRow]] = {}
        for row in self.rows:
            by_backend.setdefault(row.backend, []).append(row)
        return {b: (self.summarize(rows), self.summarize([r for r in rows if r.time_a_ms < threshold_ms]),
                    self.summarize([r for r in rows if r.time_a_ms >= threshold_ms]))
                for b, rows in by_backend.items()}

    def overall_summary(self) -> Summary:
        return self.summarize(self.rows)

    def regressions(self, threshold_pct: float) -> list[ComparisonRow]:
        """Rows that B is called slower on (`verdict`), by more than `threshold_pct` percent."""
        limit = 1 + threshold_pct / 100
        return [row for row in self.rows if row.verdict == "slower" and row.ratio > limit]


def geomean(values: Sequence[float]) -> float:
    """Geometric mean of positive values; nan for none."""
    if not values:
        return math.nan
    return float(np.exp(np.mean(np.log(np.asarray(values, dtype=float)))))


def parse_backend_map(items: Sequence[str] | None) -> dict[str, str] | None:
    """`["cuda=mlx_gpu", "cpu=mlx_cpu,mps=cpu"]` -> {"cuda": "mlx_gpu", "cpu": "mlx_cpu", "mps": "cpu"}."""
    if not items:
        return None
    mapping: dict[str, str] = {}
    for item in ",".join(items).split(","):
        a, sep, b = item.strip().partition("=")
        if not sep or not a.strip() or not b.strip():
            raise UsageError(f"malformed backend mapping {item.strip()!r}; write A_BACKEND=B_BACKEND, "
                             "e.g. cuda=mlx_gpu")
        mapping[a.strip()] = b.strip()
    return mapping


def bootstrap_medians(samples: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Medians of `resamples` bootstrap resamples (n draws with replacement), drawn in O(resamples), not O(n).

    With the samples sorted, the k-th smallest of n draws is the sample at index floor(n·U₍k₎), where U₍k₎ is
    the k-th order statistic of n uniforms: U₍k₎ ~ Beta(k, n + 1 − k). For even n the median averages the
    k-th and (k+1)-th draws, and U₍k+1₎ = U₍k₎ + (1 − U₍k₎)·V with V ~ Beta(1, n − k) (the least of the
    n − k uniforms above U₍k₎). Same distribution as resampling and calling np.median, at a cost independent
    of the number of samples.
    """
    xs = np.sort(np.asarray(samples, dtype=float))
    n = len(xs)

    def at(u: np.ndarray) -> np.ndarray:
        return xs[np.minimum((u * n).astype(np.int64), n - 1)]

    k = (n + 1) // 2 if n % 2 else n // 2
    u = rng.beta(k, n + 1 - k, resamples)
    if n % 2:
        return at(u)
    return (at(u) + at(u + (1 - u) * rng.beta(1, n - k, resamples))) / 2


def _bootstrap_ratio_ci(a: np.ndarray, b: np.ndarray, alpha: float, seed_text: str) -> tuple[float, float]:
    seed = int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    med_a = bootstrap_medians(a, rng, BOOTSTRAP_RESAMPLES)
    med_b = bootstrap_medians(b, rng, BOOTSTRAP_RESAMPLES)
    ratios = med_b / np.maximum(med_a, np.finfo(float).tiny)
    low, high = np.percentile(ratios, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def _mann_whitney_p(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import mannwhitneyu

    if np.all(a == a[0]) and np.all(b == a[0]):
        return 1.0
    p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return 1.0 if math.isnan(p) else p


def compare_pair(case: str, family: str, backend: str, ra: CaseResult, rb: CaseResult, alpha: float = 0.05,
                 noise_floor: float = DEFAULT_NOISE_FLOOR, prior: tuple[float, int] | None = None,
                 run_var: float = 0.0) -> ComparisonRow:
    """One row: the ratio of medians and, when both sides have raw samples, its interval, p and verdict
    (`opbench.analysis.significance`; `prior` moderates the between-unit variance, `run_var` is the machine's
    σ²_run: 2·run_var joins the squared standard error of the log ratio and the "noisy" marks)."""
    time_a, time_b = ra.median_ms, rb.median_ms
    ratio = time_b / time_a
    ci_low = ci_high = p_value = log_se = log_df = None
    added = 0.0
    units = (len(ra.unit_medians_ms), len(rb.unit_medians_ms))
    marks = [f"{side} {r.status}" for side, r in (("A", ra), ("B", rb)) if r.status != Status.OK]
    marks += [f"{side} noisy" for side, r in (("A", ra), ("B", rb)) if _noisy(r, run_var)]
    if ra.n >= MIN_SAMPLES and rb.n >= MIN_SAMPLES:
        spread = log_unit_spread(ra.unit_medians_ms, rb.unit_medians_ms)
        found = ratio_interval(ratio, spread, units, prior, alpha, run_var)
        if found is not None:
            ci_low, ci_high, p_value, log_se = found
            log_df, added = float(moderated_spread(spread, prior)[1]), 2 * max(run_var, 0.0)
        else:  # one process a side: only the samples of each to go by
            a, b = np.asarray(ra.samples_ms, dtype=float), np.asarray(rb.samples_ms, dtype=float)
            ci_low, ci_high = _bootstrap_ratio_ci(a, b, alpha, f"{case}|{backend}")
            p_value = _mann_whitney_p(a, b)
            log_se = (math.log(ci_high) - math.log(ci_low)) / (2 * 1.96) if ci_low > 0 else None
            marks.append("one process a side: spread between processes unknown")
    call = verdict(ratio, ci_low, ci_high, noise_floor)
    significant = None if call == "untested" else call in ("slower", "faster")
    return ComparisonRow(case, family, backend, time_a, time_b, ratio, ci_low, ci_high, p_value, significant,
                         ", ".join(marks), call, log_se, units, log_df, added)


def _noisy(result: CaseResult, run_var: float) -> bool:
    """`CaseResult.noisy` under the comparison's model: with the machine's σ²_run when there is one."""
    if not run_var:
        return result.noisy
    return result.timed and result_detectable_change(result.unit_medians_ms, result.samples_ms,
                                                     run_var) > NOISY_DETECTABLE


def _pairs(a: Run, b: Run, backends_b: dict[str, str] | None) -> list[tuple[str, str]]:
    """(A backend, B backend) pairs: mapped ones, plus every other backend of A that B also has."""
    in_a, in_b = a.backend_names(), b.backend_names()
    mapping = dict(backends_b or {})
    for name_a, name_b in mapping.items():
        if name_a not in in_a:
            raise unknown("backend of run A", name_a, in_a)
        if name_b not in in_b:
            raise unknown("backend of run B", name_b, in_b)
    pairs = [(name_a, mapping.get(name_a, name_a)) for name_a in in_a]
    return [(x, y) for x, y in pairs if y in in_b]


def mode_pairs(a: Run, b: Run, across_modes: bool = False) -> list[tuple[str, str]]:
    """(A's mode, B's mode) pairs to compare: every timing mode both runs measured (like with like). Runs that
    share none are refused (one line, naming each side's modes) unless `across_modes`, which pairs the one mode
    of each side (a comparison labelled as across methods)."""
    modes_a, modes_b = a.modes(), b.modes()
    common = [m for m in modes_a if m in modes_b]
    if common:
        return [(m, m) for m in common]
    if not modes_a or not modes_b:
        return []
    if across_modes and len(modes_a) == 1 and len(modes_b) == 1:
        return [(modes_a[0], modes_b[0])]
    why = ("--across-modes pairs runs of one mode each" if across_modes else
           "measure one again in the other's mode (`opbench run --mode ...`) to compare like with like, or pass "
           "--across-modes to compare two single-mode runs anyway")
    raise UsageError(f"runs {a.run_id} and {b.run_id} share no timing mode (A: {', '.join(modes_a)}; B: "
                     f"{', '.join(modes_b)}): {why}")


def compare_runs(a: Run, b: Run, backends_b: dict[str, str] | None = None, alpha: float = 0.05,
                 noise_floor: float = DEFAULT_NOISE_FLOOR,
                 machine_floors: dict[tuple[str, bool], float] | None = None,
                 across_modes: bool = False,
                 run_variances: dict[tuple[str, bool], float] | None = None,
                 pairing_hint: str = "pair them with --map A_BACKEND=B_BACKEND") -> Comparison:
    """Compare run B against run A (see the module doc for matching and statistics). `machine_floors` maps
    (A's backend, A's time under `SHORT_CASE_MS`) to the noise floor `opbench noise` measured there; a row's
    floor is the larger of it and `noise_floor`. `run_variances` maps the same keys to σ²_run, the run-to-run
    variance `opbench noise` measured there (`significance.run_variance`; a missing key: 0); None: not
    measured, which the notes say. Results pair only within one timing mode (`mode_pairs`); with
    several modes, each row's backend label names its mode (`cuda [latency]`). `pairing_hint` ends the error
    for runs with no backend in common: how the calling command pairs different backends.

    Raises UsageError when a mapped backend is missing from its run, when alpha or the noise floor is out of
    range, when the two runs have no backend in common (naming each run's backends), or no timing mode.
    """
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must be between 0 and 1, got {alpha}")
    if not 0 <= noise_floor < 1:
        raise UsageError(f"the noise floor must be between 0 and 1 (a fraction), got {noise_floor}")
    pairs = _pairs(a, b, backends_b)
    if not pairs:
        raise UsageError(f"runs {a.run_id} and {b.run_id} share no backend (A: {', '.join(a.backend_names())}; "
                         f"B: {', '.join(b.backend_names())}); {pairing_hint}")
    modes = mode_pairs(a, b, across_modes)
    index_a = {(r.case, r.backend, r.mode): r for r in a.results}
    index_b = {(r.case, r.backend, r.mode): r for r in b.results}
    cases = list(dict.fromkeys(r.case for r in a.results))
    matched: list[tuple[str, str, CaseResult, CaseResult]] = []
    skipped: dict[str, list[str]] = {}
    for mode_a, mode_b in modes:
        in_label = "" if len(modes) == 1 and mode_a == mode_b else \
            f" [{mode_a}]" if mode_a == mode_b else f" [{mode_a} vs {mode_b}]"
        for name_a, name_b in pairs:
            label = (name_a if name_a == name_b else f"{name_a} vs {name_b}") + in_label
            for case in cases:
                ra, rb = index_a.get((case, name_a, mode_a)), index_b.get((case, name_b, mode_b))
                if ra is None:
                    continue
                reason = _why_not_comparable(ra, rb)
                if reason:
                    skipped.setdefault(f"{label}: {reason}", []).append(case)
                    continue
                assert rb is not None
                matched.append((name_a + in_label, label, ra, rb))
            only_b = [c for (c, backend, m) in index_b
                      if backend == name_b and m == mode_b and (c, name_a, mode_a) not in index_a]
            if only_b:
                skipped.setdefault(f"{label}: only in B", []).extend(dict.fromkeys(only_b))
    rows = _rows(matched, alpha, noise_floor, machine_floors or {}, run_variances or {})
    notes = [_note(reason, names) for reason, names in skipped.items()]
    drift = _drift_note(rows, run_variances)
    if drift:
        notes.append(drift)
    notes.extend(_shared_shift_notes(rows))
    for side, run, other in (("A", a, b), ("B", b, a)):
        alone = [m for m in run.modes() if m not in other.modes() and not any(m in pair for pair in modes)]
        if alone:
            notes.append(f"only {side} measured mode {', '.join(alone)}: not compared")
    if any(mode_a != mode_b for mode_a, mode_b in modes):
        notes.insert(0, f"across timing modes: A {modes[0][0]}, B {modes[0][1]} (--across-modes): the ratios "
                        "include the difference between the two methods, not only between the runs")
    if a.dtype != b.dtype:
        notes.insert(0, f"the runs measured different dtypes: A {a.dtype}, B {b.dtype}")
    return Comparison(a, b, tuple(rows), tuple(notes), alpha, noise_floor)


def _drift_note(rows: Sequence[ComparisonRow], run_variances: dict[tuple[str, bool], float] | None) -> str:
    """What the comparison assumed about run-to-run drift; "" when no row was tested on units."""
    tested = [r for r in rows if r.log_df is not None]
    if not tested:
        return ""
    if run_variances is None:
        return ("run-to-run drift is not modelled: the intervals reflect the spread between the units of these two "
                "runs only, and two runs differ by more than that; run `opbench noise` on this machine to measure "
                "it (compare then adds it to every row)")
    modelled = sorted({r.backend for r in tested if r.run_var > 0})
    without = sorted({r.backend for r in tested if r.run_var == 0})
    sd: dict[str, float] = {}
    for r in tested:
        if r.run_var > 0:
            sd[r.backend] = max(sd.get(r.backend, 0.0), math.sqrt(r.run_var / 2))
    text = ("run-to-run variance from `opbench noise` added to each row (sd of one run's log time about the "
            "machine's, up to): " + ", ".join(f"{b} {100 * sd[b]:.1f} %" for b in modelled) if modelled else
            "`opbench noise` found no run-to-run variance beyond the units' spread")
    return text + (f"; none measured or found for {', '.join(without)}" if modelled and without else "")


# A backend's rows moved together when at least this many were tested, their median ratio is at least this far
# from 1, and this share of them lies on that side of 1 (`_shared_shift_notes`).
SHIFT_MIN_ROWS = 10
SHIFT_MIN = 0.05
SHIFT_SHARE = 0.8


def _shared_shift_notes(rows: Sequence[ComparisonRow]) -> list[str]:
    """One note per backend whose tested rows all moved the same way: median B/A at least `SHIFT_MIN` from 1
    with `SHIFT_SHARE` of the rows on that side. Such a shift is either a change that touches every case (a
    new BLAS, a slower build) or the machine running at another speed during the two runs (measured on the
    2-core CPU VM: every cpu row of one run 0.86x of an A/A partner minutes apart,
    results/significance/cpu-holdout-0a3bfd6); the rows' verdicts cannot tell which, only a repeat can. The
    verdicts stay as they are: this says how to read them."""
    by_backend: dict[str, list[float]] = {}
    for r in rows:
        if r.log_df is not None and r.ratio > 0:
            by_backend.setdefault(r.backend, []).append(r.ratio)
    notes = []
    for backend, ratios in by_backend.items():
        if len(ratios) < SHIFT_MIN_ROWS:
            continue
        median = float(np.median(ratios))
        if abs(median - 1) < SHIFT_MIN:
            continue
        same_side = sum((x > 1) == (median > 1) for x in ratios) / len(ratios)
        if same_side >= SHIFT_SHARE:
            notes.append(f"{backend}: {100 * same_side:.0f} % of its {len(ratios)} rows moved the same way (median "
                         f"B/A {median:.3f}): a change that touches every case, or the machine running at another "
                         f"speed during one of the runs; they look alike here, repeating either run tells them "
                         f"apart")
    return notes


def _rows(matched: list[tuple[str, str, CaseResult, CaseResult]], alpha: float, noise_floor: float,
          machine_floors: dict[tuple[str, bool], float],
          run_variances: dict[tuple[str, bool], float]) -> list[ComparisonRow]:
    """The rows of `matched` (A backend with its `[mode]` label, label, A result, B result), each moderated by
    the prior of its backend, mode and duration class."""
    def group(name_a: str, ra: CaseResult) -> tuple[str, bool]:
        return name_a, ra.median_ms < SHORT_CASE_MS

    spreads: dict[tuple[str, bool], list[tuple[float, int]]] = {}
    for name_a, _, ra, rb in matched:
        if ra.n >= MIN_SAMPLES and rb.n >= MIN_SAMPLES:
            spreads.setdefault(group(name_a, ra), []).append(log_unit_spread(ra.unit_medians_ms, rb.unit_medians_ms))
    priors = {key: pooled_prior(values) for key, values in spreads.items()}
    rows = []
    for name_a, label, ra, rb in matched:
        key = group(name_a, ra)
        machine_key = (name_a.split(" [")[0], key[1])  # the floor and the run variance: per backend
        floor = max(noise_floor, machine_floors.get(machine_key, 0.0))
        rows.append(compare_pair(ra.case, ra.family, label, ra, rb, alpha, floor, priors.get(key),
                                 run_variances.get(machine_key, 0.0)))
    return rows


def _why_not_comparable(ra: CaseResult, rb: CaseResult | None) -> str:
    if rb is None:
        return "only in A"
    for side, r in (("A", ra), ("B", rb)):
        if not r.timed:
            return f"no time in {side} ({r.status}{': ' + r.error if r.error else ''})"
    for side, r in (("A", ra), ("B", rb)):
        if not r.median_ms > 0:
            return f"time in {side} is 0.00 ms (below the published resolution)"
    return ""


def _note(reason: str, cases: list[str]) -> str:
    shown = ", ".join(cases[:3]) + (f" and {len(cases) - 3} more" if len(cases) > 3 else "")
    return f"{reason} — {len(cases)} case{'s' if len(cases) != 1 else ''}: {shown}"
