"""Stability and suite speed: how much does a case's median move between runs, and what does it cost?

The suite (a preset, optionally filtered by `--ops`, optionally cut to every k-th case by `--every`) is measured
`--repeats` times (default 3) in one process, pass after pass, so that the passes are minutes apart rather than
interleaved. For each case the spread is (max - min) / median of the per-pass medians; the script prints the
median, 90th percentile and maximum spread over the cases, and the timing wall time of one pass.

Two timing schemes can be compared (`--schemes opbench,fixed`):

* `opbench` - the engine of `opbench run` (`timing.measure`: warm-up until stable, ~10 ms blocks, adaptive stop
              at a 1 % CI of the median or the 0.5 s budget);
* `fixed`   - the scheme behind the seed (mlx-benchmark): one warm-up call, then 10 samples of 5 back-to-back
              calls, each sample closed by one device sync, median of the per-call sample times. Same forcing and
              sync as opbench, so only the sampling plan differs.

Both schemes run on the same prepared inputs, in alternation inside each pass, so they see the same machine
state. Wall time counted is the time inside the timing scheme (preparation and verification are shared costs).

Run from the repository root:
    PYTHONPATH=src python3 benchmarks/stability.py --backend cuda [--preset seed] [--repeats 3] [--json PATH]
    PYTHONPATH=src python3 benchmarks/stability.py --backend cpu --preset quick --every 3   # a small CPU subset
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from opbench.backends import get_backend
from opbench.catalog import preset_cases, select_cases
from opbench.engine.timing import TimingSettings, measure

FIXED_SAMPLES = 10
FIXED_CALLS = 5


def fixed_scheme(op: Any, args: tuple, backend: Any) -> list[float]:
    """The seed's plan: one synced warm-up call, then 10 samples of 5 back-to-back calls (seconds per call)."""
    clock = time.perf_counter
    backend.force(op(*args))
    backend.sync()
    samples = []
    for _ in range(FIXED_SAMPLES):
        t0 = clock()
        for _ in range(FIXED_CALLS):
            backend.force(op(*args))
        backend.sync()
        samples.append((clock() - t0) / FIXED_CALLS)
    return samples


def one_pass(backend: Any, cases: list, schemes: list[str], settings: TimingSettings, dtype: str,
             ) -> dict[str, dict[str, Any]]:
    """Median (ms) and timing wall (s) of every case under every scheme, for one pass over the suite."""
    out: dict[str, dict[str, Any]] = {s: {} for s in schemes}
    for case in cases:
        try:
            prepared = backend.prepare(case, case.make_inputs(dtype, 0))
            op = backend.compile(prepared.op) if backend.compiled else prepared.op
            for scheme in schemes:
                t0 = time.perf_counter()
                if scheme == "opbench":
                    timing, _ = measure(op, prepared.args, backend, settings)
                    samples = list(timing.samples_s)
                else:
                    samples = fixed_scheme(op, prepared.args, backend)
                out[scheme][case.name] = (float(np.median(samples)) * 1e3, time.perf_counter() - t0)
            del prepared, op
        except Exception as exc:  # a case that fails is reported, the pass goes on
            print(f"  {case.name}: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}", file=sys.stderr)
        finally:
            backend.release()
    return out


def spreads(passes: list[dict[str, Any]]) -> dict[str, float]:
    """(max - min) / median of each case's per-pass medians, for the cases measured in every pass."""
    names = set.intersection(*(set(p) for p in passes))
    result = {}
    for name in names:
        medians = np.array([p[name][0] for p in passes])
        result[name] = float((medians.max() - medians.min()) / np.median(medians))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cuda")
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--ops", help="comma-separated families or case names (default: all)")
    parser.add_argument("--every", type=int, default=1, help="keep every k-th case (a fixed subset)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--schemes", default="opbench,fixed", help="opbench, fixed or both (default both)")
    parser.add_argument("--budget", type=float, default=0.5, help="opbench's per-case budget (default 0.5 s)")
    parser.add_argument("--min-warmup-s", type=float, default=TimingSettings().min_warmup_s,
                        help="opbench's minimum warm-up time per case (default: the engine's)")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args(argv)

    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    if not schemes or any(s not in ("opbench", "fixed") for s in schemes) or args.repeats < 2 or args.every < 1:
        print("--schemes takes opbench and/or fixed; --repeats >= 2; --every >= 1", file=sys.stderr)
        return 2
    backend = get_backend(args.backend)
    if not backend.availability().available:
        print(f"{args.backend}: {backend.availability().reason}", file=sys.stderr)
        return 2
    backend.setup()
    cases = select_cases(preset_cases(args.preset), args.ops.split(",") if args.ops else None)[::args.every]
    settings = TimingSettings(budget_s=args.budget, min_warmup_s=args.min_warmup_s)
    passes = []
    t_start = time.perf_counter()
    for i in range(args.repeats):
        t0 = time.perf_counter()
        passes.append(one_pass(backend, cases, schemes, settings, args.dtype))
        print(f"pass {i + 1}/{args.repeats}: {time.perf_counter() - t0:.0f} s", flush=True)
    report: dict[str, Any] = {"backend": args.backend, "preset": args.preset, "cases": len(cases),
                              "min_warmup_s": args.min_warmup_s,
                              "repeats": args.repeats, "wall_s": time.perf_counter() - t_start, "schemes": {}}
    print(f"\n{args.backend}, {args.preset} preset, {len(cases)} cases, {args.repeats} passes")
    print(f"{'scheme':8s} {'median spread':>13s} {'p90 spread':>10s} {'max spread':>10s} {'>2 %':>5s} "
          f"{'timing wall/pass':>16s}  worst case")
    for scheme in schemes:
        per_pass = [p[scheme] for p in passes]
        sp = spreads(per_pass)
        values = np.array(list(sp.values()))
        walls = [sum(w for _, w in p.values()) for p in per_pass]
        worst = max(sp, key=sp.get)
        report["schemes"][scheme] = {"median_spread": float(np.median(values)),
                                     "p90_spread": float(np.percentile(values, 90)),
                                     "max_spread": float(values.max()), "over_2pct": int(np.sum(values > 0.02)),
                                     "timing_wall_s_per_pass": walls, "spreads": sp,
                                     "medians_ms": {n: [p[n][0] for p in per_pass] for n in sp}}
        print(f"{scheme:8s} {np.median(values):13.2%} {np.percentile(values, 90):10.2%} {values.max():10.2%} "
              f"{int(np.sum(values > 0.02)):5d} {np.mean(walls):15.1f}s  {worst} ({sp[worst]:.1%})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
