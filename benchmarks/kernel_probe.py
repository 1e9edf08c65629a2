"""Kernel probe: which CUDA kernels does a case launch, and how long does each take, under each timing method?

The fidelity benchmark compares opbench's wall-clock blocks with CUDA events. When the methods disagree by
more than the clock can explain, the cause is usually that the library chose a different kernel (cuBLAS
heuristics, split-K or not) or that the cache state differs. This script answers that directly: for each
case it runs, under `torch.profiler` (CUPTI kernel records, so the durations are the GPU's own):

* `hot`   - back-to-back calls, as opbench's blocks and the events "hot" method do;
* `cold`  - a 256 MiB L2 flush (zeroing a buffer) before every call, as `triton.testing.do_bench` does;
* `fresh` - the same back-to-back calls on freshly allocated copies of the inputs (other addresses and
            alignment), to show whether the choice of kernel depends on the input pointers.

It prints, per case and method, every kernel's name, launches per call and mean duration, and the mean GPU
time per call. The trade-off: the profiler adds host overhead per launch, so these numbers describe the
kernels and their device time, not the end-to-end rate; that is what `benchmarks/fidelity.py` measures.

Run on a CUDA machine from the repository root:
    PYTHONPATH=src python3 benchmarks/kernel_probe.py --ops "Linear / dim=100x1x51200 dim=51200x1 dim=1" [--json P]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from opbench.backends import get_backend
from opbench.catalog import preset_cases, select_cases

FLUSH_BYTES = 256 << 20


def profile_calls(torch: Any, op: Any, args: tuple, calls: int, flush: Any | None) -> dict[str, Any]:
    """Profile `calls` calls of `op(*args)` (each preceded by zeroing `flush` if given); per-kernel summary."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            if flush is not None:
                flush.zero_()
            op(*args)
        torch.cuda.synchronize()
    kernels: dict[str, list[float]] = defaultdict(list)
    for event in prof.events():
        if event.device_type.name == "CUDA" and event.device_time_total > 0:
            kernels[event.name].append(event.device_time_total)  # microseconds
    if flush is not None:  # the flush's own kernel is not part of the case
        flush_names = [n for n in kernels if "fill" in n.lower() or "zero" in n.lower()]
        for name in flush_names:
            if len(kernels[name]) == calls:
                del kernels[name]
    rows = [{"kernel": name, "per_call": len(times) / calls, "mean_us": sum(times) / len(times)}
            for name, times in kernels.items()]
    rows.sort(key=lambda r: -r["per_call"] * r["mean_us"])
    return {"kernels": rows, "gpu_us_per_call": sum(r["per_call"] * r["mean_us"] for r in rows)}


def probe_case(torch: Any, backend: Any, case: Any, dtype: str, calls: int) -> dict[str, Any]:
    inputs = case.make_inputs(dtype, 0)
    prepared = backend.prepare(case, inputs)
    op = backend.compile(prepared.op) if backend.compiled else prepared.op
    for _ in range(5):  # warm-up: autotuning, allocator, library plans
        op(*prepared.args)
    flush = torch.empty(FLUSH_BYTES // 4, dtype=torch.float32, device="cuda")
    methods = {"hot": profile_calls(torch, op, prepared.args, calls, None),
               "cold": profile_calls(torch, op, prepared.args, calls, flush)}
    fresh_args = tuple(a.clone() if hasattr(a, "clone") else a for a in prepared.args)
    methods["fresh"] = profile_calls(torch, op, fresh_args, calls, None)
    del flush, fresh_args, prepared
    backend.release()
    return {"case": case.name, "methods": methods}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cuda", help="a PyTorch CUDA backend: cuda or cuda_compile")
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--ops", required=True, help="comma-separated families or exact case names")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--calls", type=int, default=50, help="profiled calls per method (default 50)")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("kernel_probe.py needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    backend = get_backend(args.backend)
    backend.setup()
    report = []
    for case in select_cases(preset_cases(args.preset), args.ops.split(",")):
        found = probe_case(torch, backend, case, args.dtype, args.calls)
        report.append(found)
        print(f"\n{case.name}")
        for method, summary in found["methods"].items():
            print(f"  {method:6s} GPU time per call {summary['gpu_us_per_call']:9.2f} us")
            for row in summary["kernels"]:
                print(f"         {row['per_call']:4.2f} x {row['mean_us']:9.2f} us  {row['kernel'][:100]}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"backend": args.backend, "device": torch.cuda.get_device_name(0),
                                         "torch": torch.__version__, "cases": report}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
