"""How much of a one-sample CPU time is the first touch of a fresh output (issue 16, the one-unit rule).

A case whose call is slower than the budget gets one timed call after its untimed first call
(`engine.timing`, "Slow calls"). Until c7a8f36 the engine kept the first output alive while that call ran (its
stale-output check compared the two buffers), so the timed call always wrote a freshly allocated output;
from the third call on, the allocator can hand back the memory of an output that was freed. On a CPU a fresh
multi-GB output costs page faults and the kernel's zeroing of every page, which a call in a loop does not pay.

This script times torch's `MatMul 1e6x64 · 64x1024` (a 4 GB float32 output, as in the seed preset) five
times in one process, keeping or dropping earlier outputs, and prints each call's seconds:

    PYTHONPATH=src python benchmarks/first_touch.py [--rows 1000000]

Measured on the 2-core AMD EPYC VM (2026-12-07), two runs: first 3.97 / 2.97 s; second, the first still alive
(what a one-unit case reports) 6.47 / 6.83 s; third, both freed 1.59 / 1.90 s; fourth, the third alive 2.47 /
3.21 s; fifth, the fourth alive and the third freed 1.58 / 2.83 s. The one-unit result of this case in
results/cpu-suite/quiet-bb65925-warm.run.json is 5.94 s.
"""

from __future__ import annotations

import argparse
import time


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number of rows")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=_positive, default=1_000_000, help="rows of the left matrix (default 1e6)")
    args = parser.parse_args()
    import torch

    torch.set_grad_enabled(False)
    a, b = torch.randn(args.rows, 64), torch.randn(64, 1024)

    def call() -> tuple[float, torch.Tensor]:
        start = time.perf_counter()
        out = a @ b
        return time.perf_counter() - start, out

    print(f"MatMul {args.rows}x64 · 64x1024 on torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"output {args.rows * 1024 * 4 / 1e9:.1f} GB")
    t1, o1 = call()
    print(f"first call (fresh output)                      {t1:7.2f} s")
    t2, o2 = call()
    print(f"second, the first output alive (one-unit case) {t2:7.2f} s")
    del o1, o2
    t3, o3 = call()
    print(f"third, both earlier outputs freed              {t3:7.2f} s")
    t4, _kept = call()  # alive during the fifth call
    print(f"fourth, the third alive                        {t4:7.2f} s")
    del o3
    t5, _ = call()
    print(f"fifth, the fourth alive, the third freed       {t5:7.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
