"""Calibration of `opbench compare`: an A/A test (false positives) and a planted-slowdown power test.

    PYTHONPATH=src python benchmarks/significance.py aa    --preset quick --backends cpu,mlx_cpu,jax_cpu --out DIR
    PYTHONPATH=src python benchmarks/significance.py power --preset quick --backends cpu,mlx_cpu,jax_cpu --out DIR
    PYTHONPATH=src python benchmarks/significance.py both  --preset quick --backends cpu,mlx_cpu,jax_cpu --out DIR
    PYTHONPATH=src python benchmarks/significance.py holdout --preset quick --backends cpu,mlx_cpu,jax_cpu --out DIR
    PYTHONPATH=src python benchmarks/significance.py aa --noise-from OLDDIR ...   # the component of an earlier pair
    PYTHONPATH=src python benchmarks/significance.py show  DIR        # figures again from the saved runs

`aa` measures the same cases twice with default settings (two runs, one after the other, same code, same
machine, `DEFAULT_UNITS` worker processes per case) and counts the rows `compare` calls different (faster or
slower): the goal is at most 5 %. Saved as DIR/aa/a.json and DIR/aa/b.json.

`power` measures run A on `<backend>_x10` and run B on `<backend>_x11` (`opbench.testing.planted`: every
timed call makes the op 10, then 11 times, so B does 10 % more real work in every sample) and counts the rows
of 50 µs or more per op (A's time / 10) called slower: the goal is 90 % or more. Saved as DIR/power/.

`both` runs `aa`, then `power` on only the cases the A/A's run A timed at 40 µs or more on that backend (the
power figure is about cases of 50 µs or more; 40 leaves room for the run-to-run change): about half the
cases on a GPU, so the pair costs about one default run more than the A/A alone.

`holdout` is the held-out calibration of the run-to-run variance component (`significance.run_variance`):
pair 1 (DIR/noise/a.json, b.json: two default runs, as `opbench noise` measures) gives σ²_run per backend and
duration class; pair 2 (DIR/aa) is the A/A pair, whose false-positive rate is printed without and with that
component (estimated on the other pair, so not fitted to the rows it is judged on); then the power pair (as
`both`, on the cases pair 2's run A timed at 40 µs or more; `--no-power` skips it) is judged without and
with the same component. `--noise-from DIR` (aa, power, both, show) takes the component from an earlier
call's pair instead (DIR/noise, else DIR/aa, else DIR itself holding a.json and b.json). Four runs plus the
power pair: about 4.5 default runs in all. With a component, the summary also prints per backend how many
units per side the measured between-unit spread (median over pair 2's rows of 50 µs or more) needs for 90 %
power at a 10 % change (`significance.units_for_power`), without and with the component ("none" when the
component alone is too large).

Every step prints its wall time and the load average before and after (a busy machine is noisier); the last
lines are the summary: per backend, the A/A false-positive rate under 50 µs and at 50 µs or more, and the
power at 50 µs or more. DIR/figures.json holds the same figures, DIR/figures.txt the printed text. `show`
also reads the older layout (DIR/a.json, DIR/b.json, DIR/figures.json of one goal), and rows without a
`verdict` (runs compared by an older opbench) count as different when they are `significant`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from opbench import defaults, machine
from opbench.analysis.compare import compare_runs
from opbench.analysis.significance import log_unit_spread, pooled_prior, units_for_power
from opbench.catalog import preset_cases, select_cases
from opbench.engine import timing
from opbench.engine.runner import Plan, run_plan
from opbench.results import Run
from opbench.results.model import SHORT_CASE_MS

PERCENT = 10
SELECT_MS = 0.8 * SHORT_CASE_MS  # `both`: power cases are those the A/A timed at least this long


class Log:
    """Print to stdout and keep the text for DIR/figures.txt."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)


def measure(cases_by_backend: dict[str, list], preset: str, label: str, log: Log, partial: Path) -> Run:
    """One default run (`opbench run`'s settings: `DEFAULT_UNITS` worker processes per case, the default
    budget split across them) of each backend's cases, one backend after another. Each result is appended to
    `partial` (JSON lines) as it comes, so a run cut off by a time limit keeps what it measured."""
    load = os.getloadavg()
    start = time.perf_counter()
    units = getattr(timing, "DEFAULT_UNITS", 1)  # 1 for an opbench from before units
    gpu_budget = getattr(defaults, "GPU_RUN_BUDGET_S", None)  # None for an opbench from before GPU budgets
    gpu = {"gpu_timing": timing.TimingSettings(budget_s=gpu_budget)} if gpu_budget else {}
    results = []
    backends: dict[str, dict] = {}  # as `opbench run` records them: versions, settings, wall_s, passes

    def on_backend(name: str, info: dict) -> None:
        backends.setdefault(name, {}).update(versions=info.get("versions", {}), settings=info.get("settings", {}))

    def on_pass(name: str, seconds: float) -> None:
        entry = backends.setdefault(name, {})
        entry["wall_s"] = round(entry.get("wall_s", 0.0) + seconds, 3)
        entry["passes"] = entry.get("passes", 0) + 1

    accepted = inspect.signature(run_plan).parameters  # an opbench from before these hooks has fewer
    hooks = {k: f for k, f in (("on_backend", on_backend), ("on_pass", on_pass)) if k in accepted}
    with partial.open("w") as sink:
        def keep(result) -> None:
            sink.write(json.dumps(result.to_dict(), default=str) + "\n")
            sink.flush()

        for backend, cases in cases_by_backend.items():
            if cases:
                t0 = time.perf_counter()
                results += run_plan(Plan(tuple(cases), (backend,), processes=units, **gpu), keep, **hooks)
                log(f"  {label}: {backend}: {len(cases)} cases in {time.perf_counter() - t0:.0f} s")
    wall = time.perf_counter() - start
    after = os.getloadavg()
    log(f"{label}: {len(results)} results in {wall:.0f} s ({units} units per case); load average "
        f"{', '.join(f'{x:.2f}' for x in load)} before, {', '.join(f'{x:.2f}' for x in after)} after")
    return Run(run_id=label, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               preset=preset, dtype="float32", machine=machine.collect(),
               settings={"wall_s": wall, "load_before": list(load), "load_after": list(after), "units": units},
               backends=backends, results=tuple(results))


def verdict(row) -> str:
    v = getattr(row, "verdict", None)
    if v is not None:
        return v
    if row.significant:
        return "slower" if row.ratio > 1 else "faster"
    return "same"


def base_backend(name: str) -> str:
    """`cpu` for `cpu`, `cpu_x10` and `cpu_x10 vs cpu_x11`."""
    name = name.split(" vs ")[0]
    head, sep, tail = name.rpartition("_x")
    return head if sep and tail.isdigit() else name


def _count(comparison, goal: str, per_op: int) -> dict[str, dict[str, list[int]]]:
    table: dict[str, dict[str, list[int]]] = {}
    for row in comparison.rows:
        split = "under 50 us" if row.time_a_ms / per_op < SHORT_CASE_MS else "50 us or more"
        counts = table.setdefault(base_backend(row.backend), {}).setdefault(split, [0, 0, 0])
        v = verdict(row)
        counts[0] += v in ("faster", "slower") if goal == "aa" else v == "slower"
        counts[1] += 1
        counts[2] += v == "ambiguous"
    return table


def figures(a: Run, b: Run, mapping: dict[str, str] | None, goal: str, per_op: int, log: Log,
            run_variances: dict[tuple[str, bool], float] | None = None) -> dict:
    """Per backend and duration class (A's time / `per_op` under or at least 50 µs): rows, hits (called
    different for aa, slower for power), ambiguous; printed and returned. With `run_variances` (σ²_run keyed
    by (base backend, short), from another pair of runs), the same again with the component added
    (`table_run`)."""
    table = _count(compare_runs(a, b, mapping), goal, per_op)
    table_run = None
    if run_variances is not None:
        names = {r.backend for r in a.results}
        keyed = {(name, short): v for (base, short), v in run_variances.items() for name in names
                 if base_backend(name) == base}
        table_run = _count(compare_runs(a, b, mapping, run_variances=keyed), goal, per_op)
    what = "called different" if goal == "aa" else "called slower"
    log(f"{goal}: {'A/A, two default runs' if goal == 'aa' else f'planted {PERCENT} % slowdown'}"
        + ("; without / with the run-to-run component of the other pair" if table_run is not None else ""))
    for backend, splits in table.items():
        for split, (hit, n, amb) in sorted(splits.items(), reverse=True):
            line = f"  {backend:>12} {split:>14}: {hit:3d} of {n:3d} {what} ({100 * hit / n:5.1f} %), {amb} ambiguous"
            if table_run is not None:
                hit_r, _, amb_r = table_run[backend][split]
                line += f"; with the component {hit_r:3d} ({100 * hit_r / n:5.1f} %), {amb_r} ambiguous"
            log(line)
    return {"goal": goal, "table": table, **({"table_run": table_run} if table_run is not None else {})}


def estimate(a: Run, b: Run, log: Log) -> dict[tuple[str, bool], float]:
    """σ²_run per (backend, short) from the A/A pair `a`, `b` (`studies.noise.estimate_run_variances`); printed."""
    from opbench.studies.noise import estimate_run_variances

    found = estimate_run_variances(compare_runs(a, b).rows)
    log("run-to-run component (sd of one run's log time; robust, then method of moments), from the noise pair:")
    for (backend, short), (robust, moments, rows) in sorted(found.items()):
        log(f"  {backend:>12} {'under 50 us' if short else '50 us or more':>14}: {100 * math.sqrt(robust):5.1f} % "
            f"({100 * math.sqrt(moments):.1f} %), {rows} rows")
    return {key: v[0] for key, v in found.items()}


def encode(run_variances: dict[tuple[str, bool], float]) -> dict[str, float]:
    return {f"{b}|{'short' if short else 'long'}": v for (b, short), v in run_variances.items()}


def decode(saved: dict[str, float]) -> dict[tuple[str, bool], float]:
    return {(key.split("|")[0], key.split("|")[1] == "short"): float(v) for key, v in saved.items()}


def noise_pair(path: Path) -> tuple[Run, Run]:
    """The A/A pair of an earlier call: DIR/noise, else DIR/aa, else DIR itself."""
    for d in (path / "noise", path / "aa", path):
        if (d / "a.json").is_file() and (d / "b.json").is_file():
            return Run.from_json(d / "a.json"), Run.from_json(d / "b.json")
    raise SystemExit(f"significance.py: no a.json and b.json in {path}/noise, {path}/aa or {path}")


def units_needed(a: Run, b: Run, run_variances: dict[tuple[str, bool], float] | None, log: Log) -> dict:
    """Per backend: the between-unit variance of the rows of 50 µs or more (the prior's estimate: median s²
    over rows, bias-corrected) and the units per side for 90 % power at 10 %, without and with σ²_run."""
    spreads: dict[str, list[tuple[float, int]]] = {}
    index_b = {(r.case, r.backend): r for r in b.results}
    for ra in a.results:
        rb = index_b.get((ra.case, ra.backend))
        if rb is None or not (ra.timed and rb.timed) or ra.median_ms < SHORT_CASE_MS:
            continue
        if len(ra.unit_medians_ms) >= 2 and len(rb.unit_medians_ms) >= 2:
            spreads.setdefault(ra.backend, []).append(log_unit_spread(ra.unit_medians_ms, rb.unit_medians_ms))
    out = {}
    log("units per side for 90 % power at a 10 % change (rows of 50 us or more; between-unit sd, median):")
    for backend, values in spreads.items():
        prior = pooled_prior(values)
        if prior is None:
            continue
        var = prior[0]
        run = (run_variances or {}).get((backend, False), 0.0)
        k0, k1 = units_for_power(var), units_for_power(var, run)
        out[backend] = {"unit_var": var, "sigma2_run": run, "units": k0, "units_with_run": k1}
        alone = units_for_power(0.0, run) is None
        with_run = k1 if k1 else ("none suffice (the component alone is over the 10 % a test can detect)" if alone
                                  else "over 1000")
        log(f"  {backend:>12}: between-unit sd {100 * math.sqrt(var):.1f} %: {k0 or 'over 1000'} units without the "
            f"run component; with it (sd {100 * math.sqrt(run):.1f} %): {with_run}")
    return out


def summary(results: dict[str, dict], log: Log) -> None:
    """The closing lines: per backend, A/A false positives by duration class and power at 50 µs or more
    (with a run component: without it, then with it)."""
    log("summary (goal: A/A at most 5 % called different; power at least 90 % of rows of 50 us or more slower)")
    backends = list(dict.fromkeys(b for r in results.values() for b in r["table"]))
    if not backends:
        log("  no pair of runs finished")

    def cell(goal: str, backend: str, split: str) -> str:
        hit, n, _ = results.get(goal, {}).get("table", {}).get(backend, {}).get(split, [0, 0, 0])
        text = f"{hit}/{n} = {100 * hit / n:.1f} %" if n else "-"
        run = results.get(goal, {}).get("table_run")
        if run is not None and n:
            hit_r = run.get(backend, {}).get(split, [0, 0, 0])[0]
            text += f" -> {hit_r}/{n} = {100 * hit_r / n:.1f} % with the run component"
        return text

    for backend in backends:
        log(f"  {backend:>12}: A/A false positives under 50 us {cell('aa', backend, 'under 50 us')}, "
            f"at 50 us or more {cell('aa', backend, '50 us or more')}; power at 50 us or more "
            f"{cell('power', backend, '50 us or more')}")
    for goal, split, label in (("aa", None, "A/A false positives, all rows"),
                               ("power", "50 us or more", "power, rows of 50 us or more")):
        if goal in results:
            cells = [c for t in results[goal]["table"].values() for s, c in t.items() if split in (None, s)]
            hit, n = sum(c[0] for c in cells), sum(c[1] for c in cells)
            if n:
                line = f"  {label}: {hit} of {n} ({100 * hit / n:.1f} %)"
                run = results[goal].get("table_run")
                if run is not None:
                    hit_r = sum(c[0] for t in run.values() for s, c in t.items() if split in (None, s))
                    line += f"; with the run component {hit_r} of {n} ({100 * hit_r / n:.1f} %)"
                log(line)


def show(path: Path, noise_from: Path | None = None) -> int:
    log = Log()
    meta = json.loads((path / "figures.json").read_text())
    if "goal" in meta:  # the older layout: one goal, DIR/a.json and DIR/b.json
        runs = {meta["goal"]: (path, meta.get("map"), 1)}
    else:
        runs = {goal: (path / goal, m.get("map"), m.get("per_op", 1)) for goal, m in meta["goals"].items()}
    run_variances = None
    if noise_from is not None:
        run_variances = estimate(*noise_pair(noise_from), log)
    elif meta.get("run_variances") is not None:
        run_variances = decode(meta["run_variances"])
    pairs = {goal: (Run.from_json(d / "a.json"), Run.from_json(d / "b.json")) for goal, (d, _, _) in runs.items()}
    results = {goal: figures(*pairs[goal], mapping, goal, per_op, log, run_variances)
               for goal, (d, mapping, per_op) in runs.items()}
    if run_variances is not None and "aa" in pairs:
        units_needed(*pairs["aa"], run_variances, log)
    summary(results, log)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("aa", "power", "both", "holdout", "show"))
    p.add_argument("dir", nargs="?", type=Path, help="for show: the output directory of an earlier call")
    p.add_argument("--preset", default="quick", choices=("quick", "seed"))
    p.add_argument("--backends", default="cpu,mlx_cpu,jax_cpu")
    p.add_argument("--ops", help="comma-separated families or case names (default: all; for a smoke test)")
    p.add_argument("--out", type=Path)
    p.add_argument("--noise-from", type=Path, metavar="DIR", help="the run-to-run component from the A/A pair of "
                   "an earlier call (DIR/noise, DIR/aa or DIR); figures without and with it")
    p.add_argument("--no-power", action="store_true", help="holdout: skip the power pair")
    p.add_argument("--deadline", type=float, help="seconds from now: skip a run that (estimated from the earlier "
                   "runs' time per case) would end after it; the figures of the finished runs are kept")
    args = p.parse_args()
    if args.mode == "show":
        if args.dir is None or not (args.dir / "figures.json").is_file():
            print(f"significance.py: no figures.json in {args.dir}", file=sys.stderr)
            return 2
        return show(args.dir, args.noise_from)
    if args.out is None:
        print("significance.py: --out DIR is required", file=sys.stderr)
        return 2
    from opbench.backends import get_backend
    from opbench.errors import UsageError

    backends = [b for b in args.backends.split(",") if b]
    try:
        for b in backends:
            get_backend(b)
        cases = select_cases(preset_cases(args.preset), args.ops.split(",") if args.ops else None)
    except UsageError as exc:
        print(f"significance.py: {exc}", file=sys.stderr)
        return 2
    log = Log()
    cases = list({c.name: c for c in cases}.values())
    goals: dict[str, dict] = {}
    results: dict[str, dict] = {}

    run_variances: dict[tuple[str, bool], float] | None = None

    def save() -> None:
        (args.out / "figures.json").write_text(json.dumps(
            {"goals": goals, "preset": args.preset, "backends": backends,
             "run_variances": encode(run_variances) if run_variances is not None else None,
             "noise_from": str(args.noise_from) if args.noise_from else ("noise" if args.mode == "holdout" else None)},
            indent=1) + "\n")
        (args.out / "figures.txt").write_text("\n".join(log.lines) + "\n")

    deadline = time.monotonic() + args.deadline if args.deadline else math.inf
    per_case: list[float] = []  # seconds per case of the runs so far, for the deadline's estimates

    def run(label: str, cases_by_backend: dict[str, list], out: Path) -> Run | None:
        """Measure and save `out`/<a|b>.json, or None when the estimate (from earlier runs) overruns the deadline."""
        count = sum(len(c) for c in cases_by_backend.values())
        if not count:
            log(f"{label}: skipped: no cases")
            return None
        estimate = count * float(np.mean(per_case)) if per_case else 0.0
        if time.monotonic() + estimate > deadline:
            log(f"{label}: skipped: about {estimate:.0f} s needed, {deadline - time.monotonic():.0f} s left "
                "before --deadline")
            return None
        t0 = time.perf_counter()
        measured = measure(cases_by_backend, args.preset, label, log, out / f"{label[-1]}.partial.jsonl")
        measured.to_json(out / f"{label[-1]}.json")
        (out / f"{label[-1]}.partial.jsonl").unlink()
        per_case.append((time.perf_counter() - t0) / count)
        return measured

    power_cases = {b: cases for b in backends}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.noise_from is not None:
        run_variances = estimate(*noise_pair(args.noise_from), log)
    if args.mode == "holdout":
        out = args.out / "noise"
        out.mkdir(parents=True, exist_ok=True)
        na = run("noise-a", {b: cases for b in backends}, out)
        nb = run("noise-b", {b: cases for b in backends}, out) if na else None
        if na and nb:
            run_variances = estimate(na, nb, log)
            save()
    if args.mode in ("aa", "both", "holdout"):
        out = args.out / "aa"
        out.mkdir(parents=True, exist_ok=True)
        a = run("aa-a", {b: cases for b in backends}, out)
        b = run("aa-b", {b: cases for b in backends}, out) if a else None
        if a and b:
            results["aa"] = figures(a, b, None, "aa", 1, log, run_variances)
            goals["aa"] = {"map": None, "per_op": 1, "table": results["aa"]["table"],
                           "table_run": results["aa"].get("table_run")}
            if run_variances is not None:
                goals["aa"]["units"] = units_needed(a, b, run_variances, log)
            save()
        if args.mode in ("both", "holdout") and a:
            long = {(r.backend, r.case) for r in a.results if r.timed and r.median_ms >= SELECT_MS}
            power_cases = {backend: [c for c in cases if (backend, c.name) in long] for backend in backends}
            log(f"power cases (A/A run A at {SELECT_MS * 1e3:g} us or more): "
                + ", ".join(f"{b} {len(c)} of {len(cases)}" for b, c in power_cases.items()))
    if args.mode in ("power", "both") or (args.mode == "holdout" and not args.no_power):
        from opbench.testing.planted import calls_per_op, register_planted

        out = args.out / "power"
        out.mkdir(parents=True, exist_ok=True)
        mapping = register_planted(backends, PERCENT)
        k = calls_per_op(PERCENT)
        a = run("power-a", {f"{b}_x{k}": power_cases[b] for b in backends}, out)
        b = run("power-b", {mapping[f"{b}_x{k}"]: power_cases[b] for b in backends}, out) if a else None
        if a and b:
            results["power"] = figures(a, b, mapping, "power", k, log, run_variances)
            goals["power"] = {"map": mapping, "per_op": k, "table": results["power"]["table"],
                              "table_run": results["power"].get("table_run")}
    summary(results, log)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
