"""What the one-unit rule (`opbench.engine.passes`: a case whose first pass shows a call at least as long as the
whole budget gets no further passes) would have saved on a committed run, from its recorded phases.

    python benchmarks/one_unit_saving.py results/cpu-suite/*.run.json [--budget 0.5]

A result's `phases_ms` add up all its passes, so the phases of passes 2..k are estimated: `first_call` and
`samples` exactly where the result says (the first pass's `first_call_ms`, each unit's samples by
`unit_sizes`, scaled to the recorded `samples` phase), every other per-pass phase (`warmup`, `output`,
`verify`, `transfer`, `inputs`, `cleanup`) as (k-1)/k of its sum. `worker_start` is charged to the first case
of each worker and is not saved. `wall` (the parent's round trips, less worker starts) bounds it from above.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

PER_PASS = ("transfer", "inputs", "warmup", "output", "verify", "cleanup")


def saving(results: list[dict], budget_s: float) -> dict:
    slow, phases, round_trip = [], dict.fromkeys(("first_call", "samples", *PER_PASS), 0.0), 0.0
    for r in results:
        sizes, samples = r.get("unit_sizes") or [], r.get("samples_ms") or []
        if len(sizes) < 2 or sum(sizes) != len(samples) or r.get("status") not in ("ok", "reduced-precision", "wrong"):
            continue
        if np.median(samples[:sizes[0]]) < budget_s * 1e3:
            continue
        k, ph = len(sizes), r.get("phases_ms") or {}
        slow.append(r["case"])
        phases["first_call"] += max(0.0, ph.get("first_call", 0.0) - (r.get("first_call_ms") or 0.0))
        later = sum(samples[sizes[0]:]) * (r.get("calls_per_sample") or 1)
        total = sum(samples) * (r.get("calls_per_sample") or 1)
        phases["samples"] += ph.get("samples", 0.0) * (later / total if total else 0.0)
        for p in PER_PASS:
            phases[p] += ph.get(p, 0.0) * (k - 1) / k
        round_trip += (ph.get("wall", 0.0) - ph.get("worker_start", 0.0)) * (k - 1) / k
    return {"slow_cases": len(slow), "saved_s": {p: v / 1e3 for p, v in phases.items()},
            "saved_total_s": sum(phases.values()) / 1e3, "saved_round_trips_s": round_trip / 1e3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--budget", type=float, default=0.5, help="the case budget the rule compares with (s)")
    args = parser.parse_args(argv)
    print("| backend | wall s | cases >= budget | first_call s | samples s | warmup+output+verify+other s | "
          "saved s (phases) | saved s (round trips) | wall after s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in args.runs:
        run = json.loads(path.read_text())
        for backend in dict.fromkeys(r["backend"] for r in run["results"]):
            s = saving([r for r in run["results"] if r["backend"] == backend], args.budget)
            wall = float((run.get("backends", {}).get(backend) or {}).get("wall_s") or 0.0)
            rest = sum(v for p, v in s["saved_s"].items() if p not in ("first_call", "samples"))
            print(f"| {backend} | {wall:.0f} | {s['slow_cases']} | {s['saved_s']['first_call']:.0f} | "
                  f"{s['saved_s']['samples']:.0f} | {rest:.0f} | {s['saved_total_s']:.0f} | "
                  f"{s['saved_round_trips_s']:.0f} | {wall - s['saved_round_trips_s']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
