"""Calibration of `opbench compare`: an A/A test (false positives) and a planted-slowdown power test.

    PYTHONPATH=src python benchmarks/significance.py aa    --preset quick --backends cpu,mlx_cpu,jax_cpu --out DIR
    PYTHONPATH=src python benchmarks/significance.py power --preset quick --backends cpu,mlx_cpu,jax_cpu --out DIR
    PYTHONPATH=src python benchmarks/significance.py show  DIR        # figures again from the saved runs

`aa` measures the same cases twice with default settings (two runs, one after the other, same code, same
machine) and counts the rows `compare` calls different (faster or slower): the goal is at most 5 %.
`power` measures run A, then run B on backends that do 10 % more real work (`opbench.testing.planted`: every
tenth call runs twice), and counts the rows of 50 µs or more (A's time) called slower: the goal is 90 % or more.
Both save their runs as DIR/a.json and DIR/b.json (re-readable by `opbench compare`) and print the figures
per backend, split at 50 µs, with the load average before and after each run (a busy machine is noisier).

Works against older opbench versions too (for a "before" figure): a row without a `verdict` counts as
different when it is `significant`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from opbench import machine, timing
from opbench.analysis.compare import SHORT_CASE_MS, compare_runs
from opbench.catalog import preset_cases
from opbench.engine.runner import Plan, run_plan
from opbench.results import Run


def measure(preset: str, backends: list[str], label: str) -> Run:
    cases = tuple({c.name: c for c in preset_cases(preset)}.values())
    load = os.getloadavg()
    start = time.perf_counter()
    units = getattr(timing, "DEFAULT_UNITS", 1)  # what `opbench run` does by default (1 before units)
    results = run_plan(Plan(cases, tuple(backends), processes=units))
    wall = time.perf_counter() - start
    print(f"{label}: {len(results)} results in {wall:.0f} s; load average {load[0]:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after", flush=True)
    return Run(run_id=label, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               preset=preset, dtype="float32", machine=machine.collect(),
               settings={"wall_s": wall, "load_before": load[0], "load_after": os.getloadavg()[0]},
               results=tuple(results))


def verdict(row) -> str:
    v = getattr(row, "verdict", None)
    if v is not None:
        return v
    if row.significant:
        return "slower" if row.ratio > 1 else "faster"
    return "same"


def figures(a: Run, b: Run, mapping: dict[str, str] | None, goal: str) -> dict:
    comparison = compare_runs(a, b, mapping)
    table: dict[str, dict[str, list[int]]] = {}
    for row in comparison.rows:
        split = "under 50 us" if row.time_a_ms < SHORT_CASE_MS else "50 us or more"
        counts = table.setdefault(row.backend, {}).setdefault(split, [0, 0, 0])
        v = verdict(row)
        counts[0] += v in ("faster", "slower") if goal == "aa" else v == "slower"
        counts[1] += 1
        counts[2] += v == "ambiguous"
    what = "called different" if goal == "aa" else "called slower"
    total = [0, 0]
    for backend, splits in table.items():
        for split, (hit, n, amb) in sorted(splits.items()):
            total = [total[0] + hit, total[1] + n] if goal == "aa" or split != "under 50 us" else total
            print(f"  {backend:>24} {split:>14}: {hit:3d} of {n:3d} {what} ({100 * hit / n:5.1f} %), "
                  f"{amb} ambiguous")
    label = "A/A: rows called different" if goal == "aa" else "power: rows of 50 us or more called slower"
    if total[1]:
        print(f"  {label}: {total[0]} of {total[1]} ({100 * total[0] / total[1]:.1f} %)")
    return {"goal": goal, "table": table, "total": total}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("aa", "power", "show"))
    p.add_argument("dir", nargs="?", type=Path, help="for show: the directory of a.json and b.json")
    p.add_argument("--preset", default="quick")
    p.add_argument("--backends", default="cpu,mlx_cpu,jax_cpu")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    backends = args.backends.split(",")
    if args.mode == "show":
        meta = json.loads((args.dir / "figures.json").read_text())
        a, b = Run.from_json(args.dir / "a.json"), Run.from_json(args.dir / "b.json")
        figures(a, b, meta.get("map"), meta["goal"])
        return 0
    if args.out is None:
        print("significance.py: --out DIR is required", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    mapping = None
    a = measure(args.preset, backends, "a")
    a.to_json(args.out / "a.json")
    if args.mode == "power":
        from opbench.testing.planted import register_planted

        mapping = register_planted(backends, 10)
        b = measure(args.preset, list(mapping.values()), "b")
    else:
        b = measure(args.preset, backends, "b")
    b.to_json(args.out / "b.json")
    result = figures(a, b, mapping, args.mode)
    (args.out / "figures.json").write_text(json.dumps({**result, "map": mapping, "preset": args.preset,
                                                      "backends": backends}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
