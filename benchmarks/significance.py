"""Calibration of `opbench compare`: an A/A test (false positives) and a planted-slowdown power test.

    PYTHONPATH=src python benchmarks/significance.py aa    --preset quick --backends cpu,mlx_cpu,jax_cpu --out DIR
    PYTHONPATH=src python benchmarks/significance.py power --preset quick --backends cpu,mlx_cpu,jax_cpu --out DIR
    PYTHONPATH=src python benchmarks/significance.py both  --preset quick --backends cpu,mlx_cpu,jax_cpu --out DIR
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

Every step prints its wall time and the load average before and after (a busy machine is noisier); the last
lines are the summary: per backend, the A/A false-positive rate under 50 µs and at 50 µs or more, and the
power at 50 µs or more. DIR/figures.json holds the same figures, DIR/figures.txt the printed text. `show`
also reads the older layout (DIR/a.json, DIR/b.json, DIR/figures.json of one goal), and rows without a
`verdict` (runs compared by an older opbench) count as different when they are `significant`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from opbench import machine
from opbench.analysis.compare import compare_runs
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
    results = []
    with partial.open("w") as sink:
        def keep(result) -> None:
            sink.write(json.dumps(result.to_dict(), default=str) + "\n")
            sink.flush()

        for backend, cases in cases_by_backend.items():
            if cases:
                t0 = time.perf_counter()
                results += run_plan(Plan(tuple(cases), (backend,), processes=units), keep)
                log(f"  {label}: {backend}: {len(cases)} cases in {time.perf_counter() - t0:.0f} s")
    wall = time.perf_counter() - start
    after = os.getloadavg()
    log(f"{label}: {len(results)} results in {wall:.0f} s ({units} units per case); load average "
        f"{', '.join(f'{x:.2f}' for x in load)} before, {', '.join(f'{x:.2f}' for x in after)} after")
    return Run(run_id=label, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               preset=preset, dtype="float32", machine=machine.collect(),
               settings={"wall_s": wall, "load_before": list(load), "load_after": list(after), "units": units},
               results=tuple(results))


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


def figures(a: Run, b: Run, mapping: dict[str, str] | None, goal: str, per_op: int, log: Log) -> dict:
    """Per backend and duration class (A's time / `per_op` under or at least 50 µs): rows, hits (called
    different for aa, slower for power), ambiguous; printed and returned."""
    comparison = compare_runs(a, b, mapping)
    table: dict[str, dict[str, list[int]]] = {}
    for row in comparison.rows:
        split = "under 50 us" if row.time_a_ms / per_op < SHORT_CASE_MS else "50 us or more"
        counts = table.setdefault(base_backend(row.backend), {}).setdefault(split, [0, 0, 0])
        v = verdict(row)
        counts[0] += v in ("faster", "slower") if goal == "aa" else v == "slower"
        counts[1] += 1
        counts[2] += v == "ambiguous"
    what = "called different" if goal == "aa" else "called slower"
    log(f"{goal}: {'A/A, two default runs' if goal == 'aa' else f'planted {PERCENT} % slowdown'}")
    for backend, splits in table.items():
        for split, (hit, n, amb) in sorted(splits.items(), reverse=True):
            log(f"  {backend:>12} {split:>14}: {hit:3d} of {n:3d} {what} ({100 * hit / n:5.1f} %), {amb} ambiguous")
    return {"goal": goal, "table": table}


def summary(results: dict[str, dict], log: Log) -> None:
    """The closing lines: per backend, A/A false positives by duration class and power at 50 µs or more."""
    log("summary (goal: A/A at most 5 % called different; power at least 90 % of rows of 50 us or more slower)")
    backends = list(dict.fromkeys(b for r in results.values() for b in r["table"]))
    if not backends:
        log("  no pair of runs finished")

    def cell(goal: str, backend: str, split: str) -> str:
        hit, n, _ = results.get(goal, {}).get("table", {}).get(backend, {}).get(split, [0, 0, 0])
        return f"{hit}/{n} = {100 * hit / n:.1f} %" if n else "-"

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
                log(f"  {label}: {hit} of {n} ({100 * hit / n:.1f} %)")


def show(path: Path) -> int:
    log = Log()
    meta = json.loads((path / "figures.json").read_text())
    if "goal" in meta:  # the older layout: one goal, DIR/a.json and DIR/b.json
        runs = {meta["goal"]: (path, meta.get("map"), 1)}
    else:
        runs = {goal: (path / goal, m.get("map"), m.get("per_op", 1)) for goal, m in meta["goals"].items()}
    results = {goal: figures(Run.from_json(d / "a.json"), Run.from_json(d / "b.json"), mapping, goal, per_op, log)
               for goal, (d, mapping, per_op) in runs.items()}
    summary(results, log)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("aa", "power", "both", "show"))
    p.add_argument("dir", nargs="?", type=Path, help="for show: the output directory of an earlier call")
    p.add_argument("--preset", default="quick", choices=("quick", "seed"))
    p.add_argument("--backends", default="cpu,mlx_cpu,jax_cpu")
    p.add_argument("--ops", help="comma-separated families or case names (default: all; for a smoke test)")
    p.add_argument("--out", type=Path)
    p.add_argument("--deadline", type=float, help="seconds from now: skip a run that (estimated from the earlier "
                   "runs' time per case) would end after it; the figures of the finished runs are kept")
    args = p.parse_args()
    if args.mode == "show":
        if args.dir is None or not (args.dir / "figures.json").is_file():
            print(f"significance.py: no figures.json in {args.dir}", file=sys.stderr)
            return 2
        return show(args.dir)
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

    def save() -> None:
        (args.out / "figures.json").write_text(json.dumps({"goals": goals, "preset": args.preset,
                                                          "backends": backends}, indent=1) + "\n")
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
    if args.mode in ("aa", "both"):
        out = args.out / "aa"
        out.mkdir(parents=True, exist_ok=True)
        a = run("aa-a", {b: cases for b in backends}, out)
        b = run("aa-b", {b: cases for b in backends}, out) if a else None
        if a and b:
            results["aa"] = figures(a, b, None, "aa", 1, log)
            goals["aa"] = {"map": None, "per_op": 1, "table": results["aa"]["table"]}
            save()
        if args.mode == "both" and a:
            long = {(r.backend, r.case) for r in a.results if r.timed and r.median_ms >= SELECT_MS}
            power_cases = {backend: [c for c in cases if (backend, c.name) in long] for backend in backends}
            log(f"power cases (A/A run A at {SELECT_MS * 1e3:g} us or more): "
                + ", ".join(f"{b} {len(c)} of {len(cases)}" for b, c in power_cases.items()))
    if args.mode in ("power", "both"):
        from opbench.testing.planted import calls_per_op, register_planted

        out = args.out / "power"
        out.mkdir(parents=True, exist_ok=True)
        mapping = register_planted(backends, PERCENT)
        k = calls_per_op(PERCENT)
        a = run("power-a", {f"{b}_x{k}": power_cases[b] for b in backends}, out)
        b = run("power-b", {mapping[f"{b}_x{k}"]: power_cases[b] for b in backends}, out) if a else None
        if a and b:
            results["power"] = figures(a, b, mapping, "power", k, log)
            goals["power"] = {"map": mapping, "per_op": k, "table": results["power"]["table"]}
    summary(results, log)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
