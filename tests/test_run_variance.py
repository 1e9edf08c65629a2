"""The run-to-run variance component (issue 14): runs whose units share a run-level drift that the units of
one run cannot see. Without the component an A/A comparison calls far more than 5 % of its rows different;
with the component estimated from an independent pair of runs (`opbench noise`'s estimate) it is back near
the nominal rate, a 10 % change is still found, and the estimator says 0 when there is no such drift."""

from __future__ import annotations

import json

import numpy as np
import pytest

from opbench.analysis.compare import compare_runs
from opbench.analysis.significance import moment_run_variance, run_variance, units_for_power
from opbench.results import CaseResult, Run
from opbench.studies.noise import estimate_run_variances


def drifting_run(run_id: str, rows: int, seed: int, slowdown: float = 1.0, units: int = 3,
                 unit_sd: float = 0.04, run_sd: float = 0.05, samples: int = 20) -> Run:
    """`rows` cases (20 µs to 0.36 ms: both duration classes). Each case of this run is shifted by its own
    run-level effect (lognormal, sd `run_sd`, shared by the run's units: the run's time window), each unit by
    a unit effect (sd `unit_sd`), and each sample by 1 % noise."""
    rng = np.random.default_rng(seed)
    base = 0.02 * 1.05 ** (np.arange(rows) % 60)
    level = base[:, None] * slowdown * np.exp(run_sd * rng.standard_normal((rows, 1))
                                              + unit_sd * rng.standard_normal((rows, units)))
    times = level[:, :, None] * np.exp(0.01 * rng.standard_normal((rows, units, samples)))
    results = tuple(CaseResult(case=f"Op / dim={i}", family=f"F{i % 4}", backend="fake", dtype="float32",
                               status="ok", samples_ms=tuple(times[i].ravel().tolist()),
                               unit_sizes=(samples,) * units) for i in range(rows))
    return Run(run_id=run_id, created="2026-01-01T00:00:00+00:00", preset="quick", dtype="float32",
               results=results)


def different(comparison) -> float:
    return sum(r.verdict in ("slower", "faster") for r in comparison.rows) / len(comparison.rows)


def estimate(a: Run, b: Run) -> dict[tuple[str, bool], float]:
    return {key: v[0] for key, v in estimate_run_variances(compare_runs(a, b).rows).items()}


def test_a_held_out_run_component_brings_the_aa_rate_back_to_nominal() -> None:
    noise = estimate(drifting_run("n1", 600, 11), drifting_run("n2", 600, 12))  # pair 1: the noise estimate
    assert set(noise) == {("fake", True), ("fake", False)}
    for value in noise.values():  # the true σ²_run is 0.05² = 0.0025
        assert 0.0015 < value < 0.004
    a, b = drifting_run("a", 600, 1), drifting_run("b", 600, 2)  # pair 2: the A/A figure
    plain = compare_runs(a, b)
    assert different(plain) > 0.2  # the units of one run cannot see the run's drift
    assert any("run-to-run drift is not modelled" in n and "opbench noise" in n for n in plain.notes)
    modelled = compare_runs(a, b, run_variances=noise)
    assert different(modelled) <= 0.06
    assert all(r.run_var > 0 for r in modelled.rows)
    assert any("run-to-run variance from `opbench noise`" in n for n in modelled.notes)
    # the geometric means of an A/A comparison with the component are not called slower or faster
    assert all(s.verdict in ("same", "ambiguous") for s in modelled.family_summaries().values())


def test_a_ten_percent_slowdown_is_still_called_slower_with_the_run_component() -> None:
    quiet = dict(unit_sd=0.01, run_sd=0.01)
    noise = estimate(drifting_run("n1", 300, 21, **quiet), drifting_run("n2", 300, 22, **quiet))
    assert all(v > 0 for v in noise.values())
    a, b = drifting_run("a", 300, 23, **quiet), drifting_run("b", 300, 24, slowdown=1.10, **quiet)
    comparison = compare_runs(a, b, run_variances=noise)
    assert sum(r.verdict == "slower" for r in comparison.rows) / len(comparison.rows) >= 0.9
    assert comparison.overall_summary().verdict == "slower"


def test_the_estimator_is_zero_without_a_run_component() -> None:
    values = [v for seed in range(0, 16, 2)
              for v in estimate(drifting_run("a", 200, 100 + seed, run_sd=0.0),
                                drifting_run("b", 200, 101 + seed, run_sd=0.0)).values()]
    assert sum(v == 0 for v in values) >= 0.7 * len(values)  # 0 about five times in six
    assert max(values) < (0.5 * 0.04) ** 2  # and, when not, under half the units' spread (sd)
    assert run_variance([], [], []) == 0.0 and moment_run_variance([], []) == 0.0


def test_the_estimator_ignores_a_few_rows_that_moved_far() -> None:
    rng = np.random.default_rng(5)
    se = np.full(100, 0.03)
    logs = se * rng.standard_normal(100)
    logs[:3] = [5.0, -4.0, 6.0]  # three rows a hundredfold off (an oversubscribed thread pool)
    assert run_variance(logs, se, np.full(100, 8.0)) == 0.0
    assert moment_run_variance(logs, se) > 0.3  # the plain method of moments is set by them (sd 0.6)


def test_units_for_power() -> None:
    assert units_for_power(0.0004) == 2  # 2 % between units: two a side detect 10 %
    k = units_for_power(0.14 ** 2)  # 14 %, as measured on the 2-core CPU
    assert k is not None and 20 < k < 80
    assert units_for_power(0.14 ** 2, run_var=0.05 ** 2) is None  # the run component alone is too large


def test_noise_results_store_the_run_component_and_old_ones_still_load(tmp_path, monkeypatch, capsys) -> None:
    from opbench.cli import main
    from opbench.machine import collect
    from opbench.results.formats import NOISE
    from opbench.studies.calibrate import machine_fingerprint
    from opbench.studies.noise import machine_noise
    from opbench.testing.fakes import register_fakes

    register_fakes()
    monkeypatch.setenv("OPBENCH_DATA_DIR", str(tmp_path / "data"))
    code = main(["noise", "--backends", "fake_numpy", "--ops", "ReLU", "--processes", "2", "--budget", "0.02",
                 "--store", str(tmp_path / "s.sqlite"), "--format", "md"])
    assert code == 0 and "Run-to-run sd" in capsys.readouterr().out
    here = collect()
    path = tmp_path / "data" / "noise" / f"{machine_fingerprint(here)}.json"
    saved = json.loads(path.read_text())
    assert saved["schema_version"] == NOISE.version == 2
    figures = next(iter(next(iter(saved["backends"].values())).values()))
    assert {"sigma2_run", "run_rows", "sigma2_run_moments", "different_with_run"} <= set(figures)
    run = Run("x", "", "quick", "float32", machine=here)
    floors, variances, note = machine_noise(run)
    assert floors and variances is not None and set(variances) <= set(floors) and "run-to-run" in note
    # a version-1 noise result (before the run component) still loads: floors, no component
    old = {**saved, "schema_version": 1, "backends": {b: {c: {k: v for k, v in f.items() if k in
                                                                ("rows", "different", "floor", "detectable")}
                                                            for c, f in cls.items()}
                                                        for b, cls in saved["backends"].items()}}
    path.write_text(json.dumps(old))
    floors, variances, note = machine_noise(run)
    assert floors and variances is None and "run `opbench noise` again" in note
    path.write_text(json.dumps({**saved, "schema_version": 3}))
    from opbench.errors import UsageError

    with pytest.raises(UsageError, match="reads versions 1 to 2; upgrade opbench"):
        machine_noise(run)


def test_the_python_api_compares_with_the_machines_noise_as_the_cli_does(monkeypatch) -> None:
    """`opbench.compare` takes the floors and σ²_run that `opbench noise` stored for A's machine, like
    `opbench compare`; `machine_noise=False` leaves them out."""
    import opbench
    import opbench.studies.noise as noise_module

    a, b = drifting_run("a", 60, 31), drifting_run("b", 60, 32)
    stored = ({("fake", True): 0.05, ("fake", False): 0.03}, {("fake", True): 0.0025, ("fake", False): 0.0025},
              "noise floors and run-to-run variance from `opbench noise`")
    monkeypatch.setattr(noise_module, "machine_noise", lambda run: stored)
    with_noise = opbench.compare(a, b).comparison
    assert all(r.run_var == pytest.approx(2 * 0.0025) for r in with_noise.rows)  # 2σ²_run
    assert any("run-to-run variance from `opbench noise`" in n for n in with_noise.notes)
    plain = opbench.compare(a, b, machine_noise=False).comparison
    assert all(r.run_var == 0 for r in plain.rows)
    assert any("run-to-run drift is not modelled" in n for n in plain.notes)


def test_a_shift_of_every_row_is_named_in_the_notes_and_an_aa_pair_gets_none() -> None:
    quiet = dict(unit_sd=0.01, run_sd=0.01)
    a = drifting_run("a", 80, 41, **quiet)
    shifted = compare_runs(a, drifting_run("b", 80, 42, slowdown=0.86, **quiet))
    note = next(n for n in shifted.notes if "moved the same way" in n)
    assert note.startswith("fake: 100 % of its 80 rows") and "median B/A 0.86" in note
    aa = compare_runs(a, drifting_run("b", 80, 43, **quiet))
    assert not any("moved the same way" in n for n in aa.notes)
    few = compare_runs(drifting_run("a", 8, 44, **quiet), drifting_run("b", 8, 45, slowdown=0.8, **quiet))
    assert not any("moved the same way" in n for n in few.notes)  # under SHIFT_MIN_ROWS tested rows
