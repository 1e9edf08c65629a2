"""Measuring a case in several independent processes, and what one result says about all of them.

Within one process a case's samples agree closely, yet a second process can settle elsewhere (an MLX Gather
at 48 µs in one worker and 16 µs in the next, `results/h100-rerun/REPRODUCIBILITY.md`). Samples of one process
understate run-to-run variance, so `opbench run` measures each backend in `timing.DEFAULT_UNITS` passes
(`--processes N`), each pass in a fresh worker process, one after another (pyperf's design: several
processes, not only several samples); each pass is one independent unit of `opbench.analysis.significance`.

`combine` folds a new pass into what earlier passes gave:
- both timed: the samples are pooled (the median over all passes is the reported time) and each pass's own
  median is kept in `process_medians_ms`; the verdict is the most severe one seen (`wrong` over
  `reduced-precision` over `ok`, with the largest error), and a verdict that changed between passes is said
  in `detail`: a nondeterministic kernel (GPU scatter with duplicate indices) can be right in one process
  and wrong in the next;
- either side untimed (error, crash, timeout, oom, ...): the untimed one stands, with what the other passes
  measured in `detail`: an op that fails in one process of three is not reliable, and a failed case is not
  measured again in later passes (a timeout would cost its full limit each time).

**A call slower than the whole budget: one unit.** When the first pass of a case shows that one call costs at
least the case's whole timing budget (`Plan.timing.budget_s`, the budget of all units together: the median of
that pass's timed samples, `slower_than_budget`), the case gets no further passes in that run (`Plan.units`):
every further unit would spend more than the whole budget again on its first call and one sample (a 1e6x64
MatMul on mlx_cpu: a minute per call, two minutes per unit). The rule reads the timed samples, not the first
call: a first call that compiles (2 s of JAX tracing before 1 ms calls) says nothing about the call's own
cost, and such a case keeps all its units; and it takes the whole budget, not one unit's share, so a call
between the two (0.17-0.5 s at the defaults) still gets every unit, one sample each. Such a result is marked
`ONE_UNIT` in its `stop_reason` (the runner's decision, kept with the result: a resume reads it and measures
nothing more; the tables' notes name the cases). Its statistics: the untimed first call (`first_call_ms`),
then the unit's `slow_samples` timed calls (`timing`, "Slow calls": the case's 3 split across the planned
units, so 1 at the default 3 units), in one process: the median is that call, with no IQR, no interval and
no spread between processes; `~` cannot be judged (`detectable_change` is nan below two samples) and
`compare` reads such a row `untested`. `run --all-units` (`Plan.all_units`) measures every unit anyway (one
call per unit after its first: 3 samples from 3 processes, which `compare` can test). Trade-off: comparing
such cases needs `--all-units`; in exchange a suite skips two thirds of its slowest calls (`results/cpu-suite`:
mlx_cpu's 41 slow cases took 905 s of first calls and samples in 3 units).

Trade-off: pooling weights each pass by its sample count (a noisier pass draws more samples); the median of
the pooled samples stays robust to one outlying pass, and `CaseResult.noisy` flags a case whose pass medians
are too spread to detect a 10 % change (`significance.NOISY_DETECTABLE`), so the pooling never hides a
bimodal case.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from opbench.analysis.significance import NOISY_DETECTABLE, log_unit_spread, result_detectable_change
from opbench.engine.phases import add as add_phases
from opbench.engine.telemetry import merge as merge_conditions
from opbench.results import CaseResult
from opbench.results.model import SHORT_CASE_MS

# Timed verdicts, least to most severe.
TIMED_SEVERITY = ("ok", "reduced-precision", "wrong")


def passes_done(result: CaseResult | None) -> float:
    """How many passes `result` holds: 0 for none, infinity for an untimed (final) result, else the number of
    pass medians (1 for a result measured before passes were recorded)."""
    if result is None:
        return 0
    if not result.timed:
        return math.inf
    return len(result.process_medians_ms) or 1


# The runner's mark (a `stop_reason` entry) on a result it completed after one unit: `slower_than_budget`.
ONE_UNIT = "one unit: a call took longer than the case budget"


def slower_than_budget(result: CaseResult, budget_s: float) -> bool:
    """Whether `result`, one timed pass, shows a call costing at least `budget_s` (the case's whole budget):
    the median of its timed samples (ms per call), not its first call (which may compile)."""
    return (result.timed and bool(result.samples_ms) and passes_done(result) == 1
            and float(np.median(result.samples_ms)) >= budget_s * 1e3)


def one_unit(result: CaseResult) -> bool:
    """Whether the runner completed `result` after its first unit (`ONE_UNIT` in its stop reason)."""
    return ONE_UNIT in result.stop_reason.split(" | ")


def mark_one_unit(result: CaseResult) -> CaseResult:
    """`result` marked complete after its one unit (`ONE_UNIT` added to its stop reason)."""
    if one_unit(result):
        return result
    return replace(result, stop_reason=" | ".join(r for r in (result.stop_reason, ONE_UNIT) if r))


def _medians(result: CaseResult) -> tuple[float, ...]:
    return result.process_medians_ms or (float(np.median(result.samples_ms)),)


def _unit_sizes(result: CaseResult) -> tuple[int, ...]:
    """The samples per unit of `result`: its own record, or all of its samples as one unit."""
    if result.unit_sizes and sum(result.unit_sizes) == len(result.samples_ms):
        return result.unit_sizes
    return (len(result.samples_ms),)


DIFFER = "verdicts differ between processes: "


def _pass_verdicts(result: CaseResult) -> tuple[list[str], str]:
    """The verdict of each pass in `result` (its `unit_statuses`) and its own detail (without the summary that
    `combine` put in front: `verdicts differ between processes: ok in 2, wrong in 1 of 3; <detail>`)."""
    passes = len(_medians(result))
    rest = result.detail[len(DIFFER):].partition("; ")[2] if result.detail.startswith(DIFFER) else result.detail
    if len(result.unit_statuses) == passes:
        return list(result.unit_statuses), rest
    if not result.detail.startswith(DIFFER):
        return [result.status] * passes, result.detail
    return _legacy_pass_verdicts(result), rest


def _legacy_pass_verdicts(result: CaseResult) -> list[str]:
    """LEGACY: results stored before `unit_statuses` was kept (stores from before that migration, run.json
    files without the field) have their verdicts only in `detail`'s summary; read them back from it."""
    counts = result.detail[len(DIFFER):].partition("; ")[0]
    verdicts = []
    for part in counts.rsplit(" of ", 1)[0].split(", "):
        status, _, n = part.partition(" in ")
        verdicts += [status] * int(n)
    return verdicts


def combine(prior: CaseResult | None, new: CaseResult) -> CaseResult:
    """`prior` (earlier passes, or None) and one more pass `new` of the same case as one result (rules in
    the module docstring)."""
    if prior is None:
        return new if not new.timed else replace(new, process_medians_ms=_medians(new),
                                                  unit_sizes=(len(new.samples_ms),), unit_statuses=(new.status,))
    if not new.timed:
        earlier = len(_medians(prior))
        summary = (f"pass {earlier + 1}: {new.status}; {earlier} earlier pass(es) timed it at "
                   f"{np.median(prior.samples_ms):.4g} ms ({prior.status})")
        return replace(new, detail=summary + (f"\n{new.detail}" if new.detail else ""),
                       phases_ms=add_phases(prior.phases_ms, new.phases_ms))
    worst = max((prior, new), key=lambda r: (TIMED_SEVERITY.index(r.status), r.rel_error or 0.0))
    verdicts, prior_detail = _pass_verdicts(prior)
    verdicts.append(new.status)
    detail = prior_detail if worst is prior else new.detail
    if len(set(verdicts)) > 1:
        counts = ", ".join(f"{s} in {verdicts.count(s)}" for s in TIMED_SEVERITY if s in verdicts)
        detail = f"{DIFFER}{counts} of {len(verdicts)}" + (f"; {detail}" if detail else "")
    errors = [e for e in (prior.rel_error, new.rel_error) if e is not None]
    return replace(worst, samples_ms=prior.samples_ms + new.samples_ms,
                   process_medians_ms=_medians(prior) + _medians(new),
                   unit_sizes=(*_unit_sizes(prior), len(new.samples_ms)), unit_statuses=tuple(verdicts),
                   conditions=merge_conditions(prior.conditions, new.conditions),
                   warnings=tuple(dict.fromkeys(prior.warnings + new.warnings)),
                   warmup_calls=prior.warmup_calls + new.warmup_calls,
                   phases_ms=add_phases(prior.phases_ms, new.phases_ms),
                   first_call_ms=prior.first_call_ms, detail=detail,
                   rel_error=max(errors) if errors else None,
                   stop_reason=" | ".join(dict.fromkeys(r for r in (*prior.stop_reason.split(" | "), new.stop_reason)
                                                        if r and r != ONE_UNIT)))  # more units: no longer one


def process_spread_note(results: Sequence[CaseResult], processes: int,
                        is_gpu: Callable[[str], bool],
                        run_variances: dict[tuple[str, bool], float] | None = None) -> str | None:
    """What this run measured about the spread between its worker processes, in the terms of the model that
    `compare` tests (`opbench.analysis.significance`): per duration class (split at `SHORT_CASE_MS`), the median over
    results of the standard deviation of their log process medians, and of the smallest change a comparison
    with a like run would detect nine times in ten (`CaseResult.detectable_change`); and how many results
    cannot detect `NOISY_DETECTABLE` (marked ~). After a one-process run the between-process spread was not
    measured: it says so (the ~ mark then rests on the spread inside one process, a lower bound), naming the
    GPU results under `SHORT_CASE_MS`, whose times move most between processes. With `run_variances` (σ²_run
    per (backend, short) that `opbench noise` measured on this machine, `significance.run_variance`), it adds
    what a comparison of two runs detects under the model that `compare` then uses (the units' spread plus
    the run-to-run component, which the ~ mark of one result, judged on its own run, does not include).
    None when there is nothing to say."""
    split = f"{SHORT_CASE_MS * 1e3:g} µs"
    timed = [r for r in results if r.timed and r.samples_ms]
    if processes <= 1:
        short = sum(r.median_ms < SHORT_CASE_MS and is_gpu(r.backend) for r in timed)
        if not short:
            return None
        return (f"{short} GPU result(s) took under {split} per call: such times are bound by host dispatch and "
                "move most between worker processes; this run used one process per backend, so their spread "
                "was not measured and `compare` cannot test them against it (`--processes 3`, the default)")
    groups: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    across: dict[bool, list[float]] = {True: [], False: []}
    for r in timed:
        if len(r.unit_medians_ms) >= 2:
            var, _ = log_unit_spread(r.unit_medians_ms, ())
            short = r.median_ms < SHORT_CASE_MS
            groups[short].append((math.sqrt(var), r.detectable_change))
            if run_variances is not None:
                across[short].append(result_detectable_change(r.unit_medians_ms, r.samples_ms,
                                                              run_variances.get((r.backend, short), 0.0)))
    if not groups[True] and not groups[False]:
        return None
    parts = [f"{label} {100 * float(np.median([s for s, _ in v])):.1f} % and "
             f"{100 * float(np.nanmedian([d for _, d in v])):.1f} % ({len(v)} result(s))"
             for label, v in ((f"under {split}", groups[True]), (f"at or above {split}", groups[False])) if v]
    over = sum(r.noisy for r in timed)
    text = (f"spread between the {processes} worker processes of this run (median sd of the log process medians) "
            f"and the change a comparison with a like run detects 9 times in 10 (median): {'; '.join(parts)}; "
            f"{over} result(s) cannot detect {100 * NOISY_DETECTABLE:.0f} % (marked ~)")
    if run_variances is not None and (across[True] or across[False]):
        found = [f"{label} {100 * float(np.nanmedian(v)):.1f} %" for label, v in
                 ((f"under {split}", across[True]), (f"at or above {split}", across[False])) if v]
        beyond = sum(d > NOISY_DETECTABLE for v in across.values() for d in v)
        text += (f"; with the run-to-run variance `opbench noise` measured on this machine, a comparison of two runs "
                 f"detects (median) {', '.join(found)}, and {beyond} result(s) cannot detect "
                 f"{100 * NOISY_DETECTABLE:.0f} %")
    return text
