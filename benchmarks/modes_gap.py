"""Why the `device` mode reads a few percent under CUDA events (issue 17): five ways of timing one op, interleaved.

`benchmarks/modes_check.py` found CUDA-graph replay (and CUPTI) 3.5 % under CUDA events around back-to-back
eager calls on the H100, 5-8.5 % on 10 of 46 cases of 50 µs or more. Three explanations predict different
things, and this script times each case five ways, in `--rounds` interleaved rounds (so that a drift of clocks
or temperature hits every method alike), reading the SM clock and power (NVML) after each method:

* `events`       - the reference of modes_check/fidelity: N back-to-back eager calls between two CUDA events,
                   N chosen so a sample lasts about `--sample-ms` (2 ms). The start event is recorded on an
                   idle GPU, so the sample includes the time the host takes to issue the first call;
* `events_long`  - the same with samples 10x longer: a start gap shrinks 10x per call;
* `events_queued`- the same as `events`, but a `torch.cuda._sleep` kernel runs first, long enough to cover the
                   host issuing the whole sample, so the start event fires on a busy GPU and the first call
                   follows at once (the "blocking kernel" nvbench uses);
* `graph`        - `CUDAGraphTimer`, what `opbench run --mode device` uses on torch (the second of two
                   back-to-back replays of a graph of about 2 ms);
* `graph_long`   - the same graph replayed back to back for 10x longer (sustained load, as `events_long`).

Predictions. (a) power or clocks under a longer series: `events_long` ≈ `graph_long` > `graph`, and the SM
clock is lower after the long methods. (b) eager calls allocating their outputs: `events_queued` ≈ `events`
> `graph`. (c) the start gap of the events reference: `events_queued` ≈ `graph`, `events_long` between.

    PYTHONPATH=src python3 benchmarks/modes_gap.py [--ops ...] [--from results/h100-modes/check.json] --json F
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
from opbench.backends._device_timers import CUDAGraphTimer
from opbench.engine.nvml import open_gpu

METHODS = ("events", "events_long", "events_queued", "graph", "graph_long")
def graph_samples(torch: Any, graph: CUDAGraphTimer, samples: int, replays: int) -> list[float]:
    """Per-call times (ms): `replays` back-to-back replays after one untimed replay, between two events."""
    out = []
    for _ in range(samples):
        graph._graph.replay()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(replays):
            graph._graph.replay()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) / (replays * graph.calls))
    return out


def gap_case(backend: Any, case: Any, dtype: str, rounds: int, samples: int, sample_ms: float,
             gpu: Any) -> dict[str, Any]:
    import torch

    inputs = case.make_inputs(dtype, 0)
    prepared = backend.prepare(case, inputs)
    op, args = prepared.op, prepared.args
    for _ in range(3):
        op(*args)
    torch.cuda.synchronize()
    probe = statistics.median(event_samples(torch, op, args, 1, 5, None))
    n = max(1, min(2000, math.ceil(sample_ms / max(probe, 1e-4))))
    n_long = max(1, min(20000, math.ceil(10 * sample_ms / max(probe, 1e-4))))
    graph = CUDAGraphTimer(op, args, probe / 1e3)
    graph_replays_long = max(1, math.ceil(10 * sample_ms / max(probe * graph.calls, 1e-4)))
    values: dict[str, list[float]] = {m: [] for m in METHODS}
    clocks: dict[str, list[float]] = {m: [] for m in METHODS}
    power: dict[str, list[float]] = {m: [] for m in METHODS}
    uncovered = 0
    try:
        for r in range(rounds):
            order = METHODS if r % 2 == 0 else METHODS[::-1]  # alternate the order: no method always first
            for method in order:
                if method == "events":
                    got = event_samples(torch, op, args, n, samples, None)
                elif method == "events_long":
                    got = event_samples(torch, op, args, n_long, max(2, samples // 3), None)
                elif method == "events_queued":
                    got, missed = queued_samples(torch, op, args, n, samples)
                    uncovered += missed
                elif method == "graph":
                    got = graph_samples(torch, graph, samples, 1)
                else:
                    got = graph_samples(torch, graph, max(2, samples // 3), graph_replays_long)
                values[method].extend(got)
                if gpu is not None:
                    reading = gpu.read()
                    clocks[method].append(reading.get("sm_mhz", math.nan))
                    power[method].append(reading.get("power_w", math.nan))
    finally:
        graph.close()
        backend.release()
    row: dict[str, Any] = {"events_calls": n, "events_long_calls": n_long, "graph_calls": graph.calls,
                           "graph_long_replays": graph_replays_long, "queued_uncovered": uncovered}
    for method in METHODS:
        row[f"{method}_ms"] = float(np.median(values[method]))
        if clocks[method]:
            row[f"{method}_sm_mhz"] = float(np.nanmedian(clocks[method]))
            row[f"{method}_power_w"] = float(np.nanmedian(power[method]))
    return row


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """For each method against `events` and against `graph`: within ±5 % and the geomean, on cases whose
    queued-events time is at least 50 µs."""
    long_rows = [r for r in rows if r.get("events_queued_ms", 0) >= LONG_CASE_MS]
    out: dict[str, Any] = {"n": len(long_rows)}
    for ref in ("events", "events_queued"):
        for method in METHODS:
            if method == ref:
                continue
            ratios = np.array([r["graph_ms" if method == "graph" else f"{method}_ms"] / r[f"{ref}_ms"]
                               for r in long_rows])
            if not len(ratios):
                continue
            out[f"{method}/{ref}"] = {"within_5pct": int(np.sum(np.abs(ratios - 1) <= TARGET)),
                                      "geomean": float(np.exp(np.mean(np.log(ratios)))),
                                      "min": float(ratios.min()), "max": float(ratios.max())}
    return out


def _long_cases(path: Path) -> list[str]:
    """The cases whose events time was at least 50 µs in an earlier modes_check JSON, or a file's lines."""
    if path.suffix != ".json":
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    data = json.loads(path.read_text())
    return [r["case"] for r in data["rows"] if r.get("events_ms", 0) >= LONG_CASE_MS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cuda")
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--ops", help="comma-separated families or case names (default: --from's cases)")
    parser.add_argument("--from", dest="source", type=Path, default=Path("results/h100-modes/check.json"),
                        help="a modes_check JSON (its cases with events >= 50 µs) or a text file of case names, "
                             "one a line (default %(default)s)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=6, help="samples per method and round (default 6)")
    parser.add_argument("--sample-ms", type=float, default=2.0)
    parser.add_argument("--deadline", type=float, default=math.inf, help="stop starting cases after this many s")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.samples < 1 or not args.sample_ms > 0:
        parser.error("--rounds and --samples must be >= 1, --sample-ms > 0")

    names = args.ops.split(",") if args.ops else _long_cases(args.source)
    cases = chosen_cases("modes_gap.py", args.preset, names)
    if cases is None:
        return 2
    import torch

    if not torch.cuda.is_available():
        print("modes_gap.py needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    backend = get_backend(args.backend)
    backend.setup()
    gpu = open_gpu()
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    head = " ".join(f"{m:>13s}" for m in METHODS)
    print(f"{'case':50s} {head}  (ms; then ratios to events_queued)", flush=True)
    for case in cases:
        if time.perf_counter() - start > args.deadline:
            print(f"deadline: {len(cases) - len(rows)} cases not measured", flush=True)
            break
        row: dict[str, Any] = {"case": case.name}
        try:
            row.update(gap_case(backend, case, args.dtype, args.rounds, args.samples, args.sample_ms, gpu))
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            print(f"{case.name[:50]:50s} failed: {row['error'][:80]}", flush=True)
            rows.append(row)
            continue
        rows.append(row)
        ref = row["events_queued_ms"]
        print(f"{case.name[:50]:50s} " + " ".join(f"{row[f'{m}_ms']:13.4f}" for m in METHODS) + "  "
              + " ".join(f"{row[f'{m}_ms'] / ref:.3f}" for m in METHODS)
              + (f"  sm {row.get('events_long_sm_mhz', math.nan):.0f}/{row.get('graph_sm_mhz', math.nan):.0f}"
                 if gpu else "") + (f"  uncovered {row['queued_uncovered']}" if row["queued_uncovered"] else ""),
              flush=True)
    summary = summarize([r for r in rows if "error" not in r])
    print(f"\nsummary on {summary['n']} cases with events_queued >= 50 µs, wall {time.perf_counter() - start:.0f} s")
    for key, s in summary.items():
        if key != "n":
            print(f"  {key:28s} {s['within_5pct']}/{summary['n']} within 5 %, geomean {s['geomean']:.3f}, "
                  f"range {s['min']:.3f}..{s['max']:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                                         "summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
