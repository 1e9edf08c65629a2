"""Is a `wrong` mlx_cpu SumAll/BCE a verifier's false alarm, or MLX's CPU summing sequentially in float32?

    PYTHONPATH=src python benchmarks/sequential_sum_evidence.py

For the seed cases where mlx_cpu is `wrong` (SumAll over 1.28e8 values, BCE's mean over 3.2e6 to 1.28e7 terms),
this prints the relative error of a sequential (left-to-right) float32 accumulation (`np.cumsum`) and of
NumPy's pairwise float32 sum, both against float64. If the sequential error equals what mlx_cpu returned (the
`rel_error` in results/cpu-verify/run.json), MLX's CPU reduction is a plain sequential float32 loop: once the
running sum's ulp approaches the terms, every addition loses a fraction of a term, and the result is off by
0.1 % to 75 % while a pairwise sum of the same float32 values is within 1e-7. That is a real defect of the
backend, not of the bound. Nothing is timed.
"""

from __future__ import annotations

import numpy as np

from opbench.catalog import all_cases

CASES = ("SumAll / dim=64x128x128x128", "SumAll / dim=1000000x128", "SumAll / dim=128x1000000",
         "BCE / dim=100000x32 dim=100000x32", "BCE / dim=100000x64x2 dim=100000x64x2",
         "BCE / dim=128x100000 dim=128x100000")


def main() -> None:
    cases = {c.name: c for c in all_cases()}
    print("| case | terms | sequential float32 rel. error | pairwise float32 rel. error |")
    print("|---|---:|---:|---:|")
    for name in CASES:
        case = cases[name]
        inputs = case.make_inputs("float32", 0)
        if case.family == "BCE":
            p, t = inputs
            terms = -(t * np.log(p) + (1 - t) * np.log1p(-p)).astype(np.float32)
        else:
            terms = inputs[0]
        flat = terms.reshape(-1)
        exact = float(flat.sum(dtype=np.float64))
        sequential = float(np.cumsum(flat, dtype=np.float32)[-1])
        pairwise = float(flat.sum(dtype=np.float32))
        print(f"| {name} | {flat.size:.3g} | {abs(sequential - exact) / abs(exact):.6g} | "
              f"{abs(pairwise - exact) / abs(exact):.2g} |")


if __name__ == "__main__":
    main()
