"""Does a fixed NumPy workload track the drift of a CPU backend's times from one worker process to the next?

Issue 14's CPU A/A pairs fail on whole-backend shifts: between two runs most rows of a backend move the same
way (cpu 0.863x on 91 % of rows, jax_cpu 1.174x on 87 %), with no change in clock, load or steal time. A
machine-speed canary timed in each unit could explain such a shift, and `compare` could then discount it,
but only if the canary moves with the cases. This script measures that: `--rounds` fresh processes one after
another, each timing the canary (a float32 matmul and a large copy, NumPy, one thread and all threads) and
a few cases of one backend with the engine (`opbench.engine.timing.measure`, default settings of one unit),
then prints per round the times and at the end the correlation, across rounds, of each case's log time with
each canary's log time, and the spread (sd of log time) of cases and canaries.

    PYTHONPATH=src python benchmarks/canary_drift.py [--backend cpu] [--rounds 16] [--json F]

`--variants plain,no-aslr,pinned` starts the rounds in turn the plain way, with address-space randomization
off (`setarch -R`) and pinned to CPU 0 (`taskset -c 0`), so the variants share the same stretch of time, and
prints the spread per variant: whether the process-to-process spread comes from where a process's memory
lands (which ASLR chooses) or from which CPU it runs on.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CASES = ("ReLU", "Softmax", "MatMul", "Sum", "Conv2d")
LAUNCHERS = {"plain": [], "no-aslr": ["setarch", platform.machine(), "-R"], "pinned": ["taskset", "-c", "0"]}


def canaries() -> dict[str, float]:
    """Median seconds of the canary workloads (NumPy: its matmul uses every thread of its BLAS)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((512, 512), dtype=np.float32)
    big = rng.standard_normal(16 << 20, dtype=np.float32)  # 64 MB
    out = np.empty_like(big)

    def median_of(fn, n: int) -> float:
        fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    return {"matmul512": median_of(lambda: a @ a, 30), "copy64MB": median_of(lambda: np.copyto(out, big), 20),
            "python_loop": median_of(lambda: sum(range(200_000)), 20)}


def one_round(backend_name: str, budget: float) -> dict[str, float]:
    from opbench.backends import get_backend
    from opbench.catalog import preset_cases, select_cases
    from opbench.engine.timing import TimingSettings, measure

    row = {f"canary:{k}": v for k, v in canaries().items()}
    backend = get_backend(backend_name)
    backend.setup()
    for case in select_cases(preset_cases("quick"), list(CASES)):
        prepared = backend.prepare(case, case.make_inputs("float32", 0))
        timing, _ = measure(prepared.op, prepared.args, backend, TimingSettings(budget_s=budget))
        row[case.name] = timing.median_s
        backend.release()
    row.update({f"canary_after:{k}": v for k, v in canaries().items()})
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--budget", type=float, default=0.1, help="timing budget per case and round (s)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--variants", default="plain", help=f"comma-separated, taken in turn: {', '.join(LAUNCHERS)}")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a round, in its own process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_round(args.backend, args.budget)))
        return 0
    variants = args.variants.split(",")
    if unknown := [v for v in variants if v not in LAUNCHERS]:
        parser.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(LAUNCHERS)}")
    if args.rounds < 3 * len(variants) or not args.budget > 0:
        parser.error("--rounds must be >= 3 per variant and --budget > 0")
    rows: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for r in range(args.rounds):
        variant = variants[r % len(variants)]
        done = subprocess.run([*LAUNCHERS[variant], sys.executable, __file__, "--one", "--backend", args.backend,
                               "--budget", str(args.budget)], capture_output=True, text=True, check=True)
        rows[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"round {r + 1:2d} {variant:8s}: " + "  ".join(f"{k.split(' / ')[0][:18]} {v * 1e3:.3f}"
                                                    for k, v in rows[variant][-1].items()
                                                    if not k.startswith("canary_after")), flush=True)
    summary = {v: _summary(v, rows[v]) for v in variants}
    if args.json:
        args.json.write_text(json.dumps({"backend": args.backend, "rows": rows, "summary": summary}, indent=1))
    return 0


def _summary(variant: str, rows: list[dict[str, float]]) -> dict[str, dict]:
    """Per case and canary: the sd of log time across `rows` and its correlation with each canary (printed)."""
    keys = list(rows[0])
    logs = {k: np.log([row[k] for row in rows]) for k in keys}
    canary_keys = [k for k in keys if k.startswith("canary:")]
    case_keys = [k for k in keys if not k.startswith("canary")]
    print(f"\n{variant}: {len(rows)} rounds; sd of log time (≈ relative spread) and correlation with each canary:")
    summary = {}
    for k in case_keys + canary_keys:
        corr = {c: float(np.corrcoef(logs[k], logs[c])[0, 1]) for c in canary_keys if c != k}
        summary[k] = {"sd_log": float(np.std(logs[k], ddof=1)), "corr": corr}
        print(f"  {k[:60]:60s} sd {summary[k]['sd_log']:.3f}  " + "  ".join(f"{c[7:]} {v:+.2f}"
                                                                          for c, v in corr.items()))
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
