"""How long `opbench compare` takes for a full run: 91 cases x 3 backends, at several sample counts.

Prints, per samples-per-case count, the wall time of `compare_runs` (bootstrap + Mann-Whitney per row) and of
the bootstrap alone. Synthetic runs (log-normal samples), so it needs no framework.

    python benchmarks/compare_speed.py
"""

from __future__ import annotations

import time

import numpy as np

from opbench.analysis.compare import BOOTSTRAP_RESAMPLES, bootstrap_medians, compare_runs
from opbench.results import CaseResult, Run

CASES, BACKENDS = 91, ("cpu", "mlx_cpu", "jax_cpu")


def synthetic_run(n: int, seed: int) -> Run:
    rng = np.random.default_rng(seed)
    results = tuple(CaseResult(case=f"F{i % 20} / dim={i}", family=f"F{i % 20}", backend=b, dtype="float32",
                               status="ok", samples_ms=tuple(rng.lognormal(0.0, 0.02, n)))
                    for i in range(CASES) for b in BACKENDS)
    return Run(run_id=f"synthetic-{seed}", created="", preset="seed", dtype="float32", results=results)


def main() -> None:
    print(f"{CASES} cases x {len(BACKENDS)} backends, {BOOTSTRAP_RESAMPLES} bootstrap resamples per side")
    for n in (5, 50, 500, 5000):
        a, b = synthetic_run(n, 1), synthetic_run(n, 2)
        compare_runs(a, b)  # warm (scipy import)
        t0 = time.perf_counter()
        comparison = compare_runs(a, b)
        t1 = time.perf_counter()
        rng = np.random.default_rng(0)
        for r in a.results:
            bootstrap_medians(np.asarray(r.samples_ms), rng, BOOTSTRAP_RESAMPLES)
        t2 = time.perf_counter()
        print(f"n={n:5d} samples/case: compare {t1 - t0:6.2f} s for {len(comparison.rows)} rows "
              f"({1e3 * (t1 - t0) / len(comparison.rows):.2f} ms/row); bootstrap alone "
              f"{1e3 * (t2 - t1) / len(a.results):.2f} ms per side")


if __name__ == "__main__":
    main()
