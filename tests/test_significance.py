"""The statistics of `compare` on independent units: interval coverage under autocorrelation, the A/A
false-positive rate with process-level drift, power against a 10 % change, and `opbench noise`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from opbench.analysis.compare import compare_runs
from opbench.analysis.significance import effective_size, median_ci
from opbench.cli import main
from opbench.results import CaseResult, Run
from opbench.testing.planted import register_planted, repeated


def ar1(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    e = rng.standard_normal(n + 30)
    x = np.empty_like(e)
    x[0] = e[0]
    for i in range(1, len(e)):
        x[i] = rho * x[i - 1] + math.sqrt(1 - rho * rho) * e[i]
    return x[30:]


def coverage(rho: float, n: int, honest: bool, reps: int = 600) -> float:
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(reps):
        x = ar1(rng, n, rho)
        lo, hi = median_ci(x, n_eff=effective_size(x) if honest else None)
        hits += lo <= 0.0 <= hi
    return hits / reps


def test_median_ci_covers_the_median_at_the_nominal_rate_for_independent_samples() -> None:
    assert 0.93 <= coverage(0.0, 200, honest=False) <= 0.975  # upper order statistic no longer one short


def test_median_ci_at_the_effective_size_stays_honest_under_ar1_autocorrelation() -> None:
    assert coverage(0.7, 200, honest=False) < 0.8  # the iid interval: about 0.67
    assert coverage(0.7, 200, honest=True) >= 0.93
    assert coverage(0.3, 60, honest=True) >= 0.93


def simulated_run(run_id: str, rows: int, seed: int, slowdown: float = 1.0, units: int = 3,
                  drift: float = 0.04, record_units: bool = True) -> Run:
    """`rows` cases; each unit (process) of a case settles at its own speed (lognormal, sd `drift`), and its
    40 samples are AR(1)-correlated (rho 0.6, 1 % noise) around that speed."""
    rng = np.random.default_rng(seed)
    results = []
    for i in range(rows):
        base = 0.02 * 1.05 ** (i % 60)  # 20 µs up to several ms: both duration classes
        samples, sizes = [], []
        for _ in range(units):
            level = base * slowdown * math.exp(drift * rng.standard_normal())
            samples += list(level * np.exp(0.01 * ar1(rng, 40, 0.6)))
            sizes.append(40)
        kw = dict(unit_sizes=tuple(sizes)) if record_units else {}
        results.append(CaseResult(case=f"Op / dim={i}", family=f"F{i % 4}", backend="fake", dtype="float32",
                                  status="ok", samples_ms=tuple(samples), **kw))
    return Run(run_id=run_id, created="2026-01-01T00:00:00+00:00", preset="quick", dtype="float32",
               results=tuple(results))


def test_aa_false_positive_rate_with_process_level_drift_is_at_most_five_percent() -> None:
    a, b = simulated_run("a", 200, 1), simulated_run("b", 200, 2)
    verdicts = [r.verdict for r in compare_runs(a, b).rows]
    assert sum(v in ("slower", "faster") for v in verdicts) / len(verdicts) <= 0.05
    # the same samples tested as if every sample were independent (no units recorded): mostly "different"
    flat_a, flat_b = simulated_run("a", 200, 1, record_units=False), simulated_run("b", 200, 2, record_units=False)
    flat = [r.verdict for r in compare_runs(flat_a, flat_b).rows]
    assert sum(v in ("slower", "faster") for v in flat) / len(flat) > 0.3
    # the family geomeans of an A/A comparison are not called slower or faster
    summaries = compare_runs(a, b).family_summaries().values()
    assert all(s.verdict in ("same", "ambiguous") and s.ci_low < s.geomean < s.ci_high for s in summaries)


def test_a_ten_percent_slowdown_is_called_slower() -> None:
    a, b = simulated_run("a", 120, 3, drift=0.02), simulated_run("b", 120, 4, slowdown=1.10, drift=0.02)
    comparison = compare_runs(a, b)
    assert sum(r.verdict == "slower" for r in comparison.rows) / len(comparison.rows) >= 0.9
    overall = comparison.overall_summary()
    assert overall.verdict == "slower" and overall.ci_low < 1.10 < overall.ci_high
    assert comparison.regressions(5) and not comparison.regressions(20)


def test_the_ratio_interval_covers_the_true_ratio_at_about_the_nominal_rate() -> None:
    """compare's 95 % interval of B/A, on simulated runs whose units drift (4 % between processes) and whose
    samples are AR(1)-correlated: it covers the true ratio (1.10) on about 95 % of rows, where the interval of
    the samples tested as independent covers it far less often."""
    def covered(record_units: bool) -> float:
        a = simulated_run("a", 300, 11, record_units=record_units)
        b = simulated_run("b", 300, 12, slowdown=1.10, record_units=record_units)
        rows = compare_runs(a, b).rows
        return sum(r.ci_low <= 1.10 <= r.ci_high for r in rows) / len(rows)

    assert 0.92 <= covered(True) <= 0.99
    assert covered(False) < 0.6


def test_too_few_units_for_a_noisy_case_is_ambiguous_not_a_change() -> None:
    a, b = simulated_run("a", 3, 5, units=2, drift=0.3), simulated_run("b", 3, 6, units=2, drift=0.3)
    assert {r.verdict for r in compare_runs(a, b).rows} <= {"ambiguous", "same"}
    assert all(r.units == (2, 2) for r in compare_runs(a, b).rows)


def test_the_planted_pair_does_ten_percent_more_work_in_every_call() -> None:
    """B's calls make the op 11 times, A's 10: 10 % more work in every sample whatever the block size (one
    call per sample included), every intermediate output forced."""
    calls, forced = [], []
    a = repeated(lambda: calls.append(1) or len(calls), 10, forced.append)
    b = repeated(lambda: calls.append(1) or len(calls), 11, forced.append)
    assert a() == 10 and len(forced) == 9
    assert b() == 21 and len(calls) == 21 and len(forced) == 19


def test_planted_backends_are_registered_in_pairs_and_refuse_bad_input() -> None:
    from opbench.backends import get_backend
    from opbench.testing.fakes import register_fakes

    register_fakes()
    assert register_planted(["fake_numpy"], 10) == {"fake_numpy_x10": "fake_numpy_x11"}
    assert get_backend("fake_numpy_x11").name == "fake_numpy_x11"
    with pytest.raises(ValueError, match="divide 100"):
        register_planted(["fake_numpy"], 7)


def test_noise_command_measures_twice_and_saves_the_floor(tmp_path, monkeypatch, capsys) -> None:
    from opbench.machine import collect
    from opbench.studies.calibrate import machine_fingerprint
    from opbench.studies.noise import machine_floors
    from opbench.testing.fakes import register_fakes

    register_fakes()
    monkeypatch.setenv("OPBENCH_DATA_DIR", str(tmp_path / "data"))
    store = str(tmp_path / "s.sqlite")
    code = main(["noise", "--backends", "fake_numpy", "--ops", "ReLU", "--processes", "2", "--budget", "0.02",
                 "--store", store, "--format", "md"])
    out = capsys.readouterr()
    assert code == 0 and "fake_numpy" in out.out and "False positives" in out.out
    here = collect()
    saved = json.loads((tmp_path / "data" / "noise" / f"{machine_fingerprint(here)}.json").read_text())
    assert saved["machine"]["hostname"] == here["hostname"] and len(saved["runs"]) == 2
    floors, note = machine_floors(Run("x", "", "quick", "float32", machine=here))
    assert floors and all(f >= 0 for f in floors.values()) and "opbench noise" in note
    assert main(["runs", "--store", store]) == 0 and "2 runs" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--preset", "nope"], ["--backends", "nope"], ["--processes", "0"],
                                  ["--budget", "-1"]])
def test_noise_bad_input_is_one_line_exit_2(argv, tmp_path, capsys) -> None:
    try:
        code = main(["noise", "--store", str(tmp_path / "s.sqlite"), *argv])
    except SystemExit as stopped:  # a malformed option value: the parser's own one-line error
        code = stopped.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(("opbench: error:", "opbench noise: error:"))
    assert not (tmp_path / "s.sqlite").exists()
