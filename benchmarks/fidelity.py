"""Fidelity: are opbench's GPU times right? Every case timed by opbench's engine and, independently, with CUDA events.

For each case of the preset on a PyTorch CUDA backend (`cuda` or `cuda_compile`) this script measures:

* `opbench`  - `runner.measure_case`, exactly what `opbench run` does (wall clock around blocks of back-to-back
               calls, one device sync per block, adaptive stop), and its median per call;
* `events`   - the independent reference: after warm-up, `samples` samples of N back-to-back calls, each sample
               bracketed by two CUDA events and preceded by an L2 flush (a 256 MiB buffer set to zero, as
               `triton.testing.do_bench` does). N is chosen so a sample lasts about `--sample-ms`; the value is
               the median of the per-call times (elapsed / N);
* `events_hot` - the same without the flush (isolates the L2 effect from the clock's);
* `do_bench` - `triton.testing.do_bench(..., return_mode="median")` when Triton is installed: one call per event
               pair, L2 flushed before every call (cold cache per call, no host overhead in the number).

It prints one row per case with the ratios opbench/events and opbench/do_bench, then a summary against the
target: |opbench/events - 1| <= 5 % for every case whose events time is >= 50 us. Shorter cases are reported
with the launch/sync floor in mind: a wall-clock block includes the host's dispatch rate when it is slower than
the kernel, an event pair measures only the GPU.

Run on a CUDA machine from the repository root:
    PYTHONPATH=src python3 benchmarks/fidelity.py [--backend cuda] [--preset seed] [--ops ...] [--json PATH]
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

from opbench.backends import get_backend
from opbench.catalog import preset_cases, select_cases
from opbench.engine.runner import measure_case
from opbench.engine.timing import TimingSettings
from opbench.errors import UsageError

FLUSH_BYTES = 256 << 20
TARGET = 0.05
LONG_CASE_MS = 0.050


def event_samples(torch: Any, op: Any, args: tuple, n_calls: int, samples: int, flush: Any | None) -> list[float]:
    """Per-call times (ms) of `samples` samples of `n_calls` back-to-back calls, each bracketed by CUDA events;
    `flush` (a tensor) is zeroed before each sample, outside the bracket."""
    out: list[float] = []
    for _ in range(samples):
        if flush is not None:
            flush.zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n_calls):
            op(*args)
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) / n_calls)
    return out


SLEEP_CYCLES_PER_US = 2000  # torch.cuda._sleep spins for clock cycles; ~2 GHz SM clocks on H100/H200
HOST_US_PER_CALL = 40.0  # a generous bound on the host's time to issue one eager call (checked per sample)


def queued_samples(torch: Any, op: Any, args: tuple, n_calls: int, samples: int) -> tuple[list[float], int]:
    """`event_samples` with a sleep kernel ahead of the start event (nvbench's blocking kernel), so the start
    event fires on a busy GPU and the first call follows at once: device time without the host's start gap
    (results/h100-defaults/modes-gap: plain events read 2.3 % above this on cases of 50 µs or more, 10x
    longer samples 0.4 %). Returns the per-call times (ms) and how many samples the sleep did not cover (the
    host had not issued the sample before the sleep ended)."""
    out: list[float] = []
    uncovered = 0
    sleep_us = max(200.0, n_calls * HOST_US_PER_CALL)
    for _ in range(samples):
        torch.cuda.synchronize()
        torch.cuda._sleep(int(sleep_us * SLEEP_CYCLES_PER_US))
        issued = time.perf_counter()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n_calls):
            op(*args)
        end.record()
        if (time.perf_counter() - issued) * 1e6 > 0.8 * sleep_us:
            uncovered += 1
        end.synchronize()
        out.append(start.elapsed_time(end) / n_calls)
    return out, uncovered


def chosen_cases(script: str, preset: str, names: list[str] | None) -> list[Any] | None:
    """The distinct cases of `preset` that `names` (families or case names; None: all) select, or None after
    printing `script`'s one-line error for a name that is neither (the caller exits 2 before touching CUDA)."""
    try:
        cases = select_cases(preset_cases(preset), names)
    except UsageError as exc:
        print(f"{script}: {exc}", file=sys.stderr)
        return None
    return list({c.name: c for c in cases}.values())


def independent(backend: Any, case: Any, dtype: str, seed: int, samples: int, sample_ms: float,
                use_do_bench: bool) -> dict[str, float]:
    """The event-based measurements of one case (see the module docstring)."""
    import torch

    inputs = case.make_inputs(dtype, seed)
    prepared = backend.prepare(case, inputs)
    op = backend.compile(prepared.op) if backend.compiled else prepared.op
    args = prepared.args
    for _ in range(3):  # warm-up: compilation, autotuning, allocator, cuDNN plans
        op(*args)
    torch.cuda.synchronize()
    flush = torch.empty(FLUSH_BYTES // 4, dtype=torch.float32, device="cuda")
    probe = statistics.median(event_samples(torch, op, args, 1, 5, flush))
    n_calls = max(1, min(2000, math.ceil(sample_ms / max(probe, 1e-4))))
    cold = event_samples(torch, op, args, n_calls, samples, flush)
    hot = event_samples(torch, op, args, n_calls, samples, None)
    result = {"events_ms": statistics.median(cold), "events_hot_ms": statistics.median(hot),
              "events_calls": n_calls, "events_spread": (max(cold) - min(cold)) / statistics.median(cold)}
    if use_do_bench:
        from triton.testing import do_bench

        result["do_bench_ms"] = float(do_bench(lambda: op(*args), warmup=25, rep=100, return_mode="median"))
    del flush
    backend.release()  # prepared inputs and outputs go with this frame
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cuda", help="a PyTorch CUDA backend: cuda or cuda_compile")
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--ops", help="comma-separated families or case names (default: all)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--samples", type=int, default=25, help="event samples per case (default 25)")
    parser.add_argument("--sample-ms", type=float, default=2.0, help="target length of one event sample")
    parser.add_argument("--budget", type=float, default=0.5, help="opbench's per-case budget (default 0.5 s)")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args(argv)

    cases = chosen_cases("fidelity.py", args.preset, args.ops.split(",") if args.ops else None)
    if cases is None:
        return 2
    import torch

    if not torch.cuda.is_available():
        print("fidelity.py needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    try:
        import triton.testing  # noqa: F401

        use_do_bench = True
    except ImportError:
        use_do_bench = False
    backend = get_backend(args.backend)
    backend.setup()
    timing = TimingSettings(budget_s=args.budget)
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    print(f"{'case':58s} {'opbench':>9s} {'events':>9s} {'ev_hot':>9s} {'do_bench':>9s} {'ob/ev':>7s} "
          f"{'ob/db':>7s} {'N':>5s}")
    for case in cases:
        res = measure_case(backend, case, args.dtype, 0, timing)
        row: dict[str, Any] = {"case": case.name, "family": case.family, "status": res.status}
        if not res.timed:
            row["error"] = res.error
            print(f"{case.name[:58]:58s} {res.status}: {res.error[:60]}")
            rows.append(row)
            continue
        row.update(opbench_ms=res.median_ms, opbench_n=res.n, opbench_calls=res.calls_per_sample)
        try:
            row.update(independent(backend, case, args.dtype, 0, args.samples, args.sample_ms, use_do_bench))
        except Exception as exc:  # an independent failure is reported, the script goes on
            row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            print(f"{case.name[:58]:58s} events failed: {row['error'][:60]}")
            rows.append(row)
            continue
        row["ratio_events"] = row["opbench_ms"] / row["events_ms"]
        row["ratio_do_bench"] = row["opbench_ms"] / row["do_bench_ms"] if "do_bench_ms" in row else math.nan
        rows.append(row)
        print(f"{case.name[:58]:58s} {row['opbench_ms']:9.4f} {row['events_ms']:9.4f} {row['events_hot_ms']:9.4f} "
              f"{row.get('do_bench_ms', math.nan):9.4f} {row['ratio_events']:7.3f} {row['ratio_do_bench']:7.3f} "
              f"{row['events_calls']:5d}", flush=True)
    wall = time.perf_counter() - t_start
    summary = summarize(rows)
    print_summary(summary, wall)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"backend": args.backend, "preset": args.preset, "dtype": args.dtype,
                                         "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                                         "wall_s": wall, "summary": summary, "rows": rows}, indent=1))
    return 0


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Split the measured cases at 50 us (events time) and describe each group's opbench/events ratios."""
    measured = [r for r in rows if "ratio_events" in r]
    long = [r for r in measured if r["events_ms"] >= LONG_CASE_MS]
    short = [r for r in measured if r["events_ms"] < LONG_CASE_MS]

    def describe(group: list[dict[str, Any]]) -> dict[str, Any]:
        if not group:
            return {"n": 0}
        ratios = np.array([r["ratio_events"] for r in group])
        worst = max(group, key=lambda r: abs(r["ratio_events"] - 1))
        return {"n": len(group), "within_target": int(np.sum(np.abs(ratios - 1) <= TARGET)),
                "geomean_ratio": float(np.exp(np.mean(np.log(ratios)))), "min_ratio": float(ratios.min()),
                "max_ratio": float(ratios.max()), "worst_case": worst["case"], "worst_ratio": worst["ratio_events"],
                "misses": [(r["case"], round(r["ratio_events"], 4)) for r in group
                           if abs(r["ratio_events"] - 1) > TARGET]}

    return {"long": describe(long), "short": describe(short), "failed": [r["case"] for r in rows
                                                                        if "ratio_events" not in r]}


def print_summary(summary: dict[str, Any], wall: float) -> None:
    print(f"\nfidelity summary (target |opbench/events - 1| <= {TARGET:.0%} for cases >= {LONG_CASE_MS * 1e3:.0f} us)"
          f", wall {wall:.0f} s")
    for label, key in (("cases >= 50 us", "long"), ("cases < 50 us", "short")):
        g = summary[key]
        if not g["n"]:
            print(f"  {label}: none")
            continue
        print(f"  {label}: {g['within_target']}/{g['n']} within 5 %, geomean ratio {g['geomean_ratio']:.3f}, "
              f"range {g['min_ratio']:.3f}..{g['max_ratio']:.3f}, worst {g['worst_case']} ({g['worst_ratio']:.3f})")
        for name, ratio in g["misses"]:
            print(f"    miss: {name} {ratio}")
    if summary["failed"]:
        print(f"  not measured: {', '.join(summary['failed'])}")


if __name__ == "__main__":
    raise SystemExit(main())
