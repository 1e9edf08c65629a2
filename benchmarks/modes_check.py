"""Independent check of the `device` timing mode against CUDA events, on torch CUDA (every case of a preset).

For each case this script times the same prepared op three ways, in one process, one after another:

* `events`  - the reference: samples of N back-to-back eager calls, each sample bracketed by two CUDA events, no
              cache flush, the start event queued behind a sleep kernel (`fidelity.queued_samples`), so it
              fires on a busy GPU and the host's time to issue the first call is not in the sample; N is
              chosen so a sample lasts about `--sample-ms`. For a case whose kernels take 50 µs or more the
              GPU then never waits for the host, so this is device time; shorter cases include the gaps where
              the GPU waits for the next launch. Events on an idle GPU (`fidelity.event_samples`, kept in
              the row as `events_idle_ms`) read 2.3 % higher on cases of 50 µs or more: the start gap that
              `benchmarks/modes_gap.py` found (results/h100-defaults/modes-gap), which had put graph replay
              3.5 % under this reference on the H100.
* `graph`   - `modes.CUDAGraphTimer`, what `opbench run --mode device` uses on torch: the op captured in a CUDA
              graph, the second of two back-to-back replays timed with CUDA events;
* `cupti`   - `modes.ProfilerTimer`, what `--mode device` uses for MLX and JAX (and for torch ops that cannot be
              captured): the union of the kernels' device intervals that torch.profiler (CUPTI) recorded over N
              calls, divided by N. Checking it on torch, against events on the very same kernels, checks the
              method that the MLX and JAX numbers rest on.

It prints one row per case and a summary: how many cases with events >= 50 µs agree within ±5 % for graph/events
and cupti/events (the issue's target), and the same ratios for the shorter cases, where `graph` and `cupti`
are expected to read *less* than events (no launch gaps). Each row is appended to `--jsonl` as it is measured,
so a time limit loses only the case in flight.

    PYTHONPATH=src python3 benchmarks/modes_check.py [--preset seed] [--ops ...] [--jsonl PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fidelity import LONG_CASE_MS, TARGET, chosen_cases, event_samples, queued_samples

from opbench.backends import get_backend
from opbench.backends._device_timers import CUDAGraphTimer, ProfilerTimer


def check_case(backend: Any, case: Any, dtype: str, samples: int, sample_ms: float) -> dict[str, Any]:
    import torch

    inputs = case.make_inputs(dtype, 0)
    prepared = backend.prepare(case, inputs)
    op = backend.compile(prepared.op) if backend.compiled else prepared.op
    args = prepared.args
    for _ in range(3):
        op(*args)
    torch.cuda.synchronize()
    probe = statistics.median(event_samples(torch, op, args, 1, 5, None))
    n_calls = max(1, min(2000, math.ceil(sample_ms / max(probe, 1e-4))))
    idle = statistics.median(event_samples(torch, op, args, n_calls, samples, None))
    queued, uncovered = queued_samples(torch, op, args, n_calls, samples)
    row: dict[str, Any] = {"events_ms": statistics.median(queued), "events_calls": n_calls,
                           "events_uncovered": uncovered, "events_idle_ms": idle}
    try:
        graph = CUDAGraphTimer(op, args, probe / 1e3)
        row["graph_ms"] = statistics.median(graph.sample(0)[0] for _ in range(samples)) * 1e3
        row["graph_calls"] = graph.calls
        graph.close()
    except Exception as exc:
        row["graph_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        torch.cuda.synchronize()
    try:
        cupti = ProfilerTimer(op, args, backend.force, backend.sync)
        row["cupti_ms"] = statistics.median(cupti.sample(n_calls)[0] for _ in range(max(3, samples // 2))) * 1e3
        row["cupti_kernels"] = cupti.kernels
    except Exception as exc:
        row["cupti_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    backend.release()
    return row


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method and duration class (events time split at 50 µs): count within ±5 %, geomean and range."""
    out: dict[str, Any] = {}
    for method in ("graph", "cupti"):
        for label, keep in (("long", lambda r: r["events_ms"] >= LONG_CASE_MS),
                            ("short", lambda r: r["events_ms"] < LONG_CASE_MS)):
            group = [r for r in rows if f"{method}_ms" in r and "events_ms" in r and keep(r)]
            ratios = np.array([r[f"{method}_ms"] / r["events_ms"] for r in group])
            if not len(group):
                out[f"{method}_{label}"] = {"n": 0}
                continue
            out[f"{method}_{label}"] = {
                "n": len(group), "within_5pct": int(np.sum(np.abs(ratios - 1) <= TARGET)),
                "geomean": float(np.exp(np.mean(np.log(ratios)))), "min": float(ratios.min()),
                "max": float(ratios.max()),
                "misses": [(r["case"], round(float(x), 4)) for r, x in zip(group, ratios) if abs(x - 1) > TARGET]}
        out[f"{method}_failed"] = [(r["case"], r.get(f"{method}_error", "")) for r in rows if f"{method}_ms" not in r]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cuda")
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--ops", help="comma-separated families or case names (default: all)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--samples", type=int, default=10, help="samples per method and case (default 10)")
    parser.add_argument("--sample-ms", type=float, default=2.0, help="target length of one events sample")
    parser.add_argument("--jsonl", type=Path, help="append one JSON row per case as it is measured")
    parser.add_argument("--json", type=Path, help="write the rows and the summary at the end")
    args = parser.parse_args(argv)

    cases = chosen_cases("modes_check.py", args.preset, args.ops.split(",") if args.ops else None)
    if cases is None:
        return 2
    import torch

    if not torch.cuda.is_available():
        print("modes_check.py needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    backend = get_backend(args.backend)
    backend.setup()
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    print(f"{'case':58s} {'events':>9s} {'graph':>9s} {'cupti':>9s} {'gr/ev':>6s} {'cu/ev':>6s}", flush=True)
    for case in cases:
        row: dict[str, Any] = {"case": case.name, "family": case.family}
        try:
            row.update(check_case(backend, case, args.dtype, args.samples, args.sample_ms))
        except Exception as exc:  # one case failing (an OOM) is reported, the check goes on
            row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        rows.append(row)
        if args.jsonl:
            with args.jsonl.open("a") as f:
                f.write(json.dumps(row) + "\n")
        if "events_ms" not in row:
            print(f"{case.name[:58]:58s} failed: {row.get('error', '')[:60]}", flush=True)
            continue
        ev = row["events_ms"]
        gr, cu = row.get("graph_ms", math.nan), row.get("cupti_ms", math.nan)
        print(f"{case.name[:58]:58s} {ev:9.4f} {gr:9.4f} {cu:9.4f} {gr / ev:6.3f} {cu / ev:6.3f}", flush=True)
    summary = summarize(rows)
    wall = time.perf_counter() - start
    print(f"\ndevice-mode check (target |method/events - 1| <= {TARGET:.0%} where events >= "
          f"{LONG_CASE_MS * 1e3:.0f} µs), wall {wall:.0f} s")
    for key, g in summary.items():
        if key.endswith("_failed"):
            if g:
                print(f"  {key}: {len(g)}: " + "; ".join(f"{c} ({e[:60]})" for c, e in g[:5]))
            continue
        if g["n"]:
            print(f"  {key}: {g['within_5pct']}/{g['n']} within 5 %, geomean {g['geomean']:.3f}, "
                  f"range {g['min']:.3f}..{g['max']:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"backend": args.backend, "preset": args.preset, "dtype": args.dtype,
                                         "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                                         "wall_s": wall, "summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
