"""Synthetic runs for the plot and report tests: known times, every verdict, a missing result, planted markup."""

from __future__ import annotations

import numpy as np

from opbench.results import CaseResult, Run

CASES = (  # (family, case, base time in ms)
    ("Argmax", "Argmax / dim=64x1024x128 axi=0", 0.50),
    ("Argmax", "Argmax / dim=64x128x1024 axi=2", 0.30),
    ("Softmax", "Softmax / dim=64x1000000 axi=-1", 6.00),
    ("Softmax", "Softmax / dim=1000000x64 axi=-1", 8.00),
    ("Softmax", "Softmax / dim=64x16x32x1024 axi=-1", 2.00),
    ("MatMul", "MatMul / dim=1024x64x1024 dim=1024x1024x32", 40.0),
)
SPEED = {"mlx_cpu": 1.0, "cpu": 0.5, "mps": 0.2}  # time = base * factor


def synthetic_run(run_id: str = "run-a", backends: tuple[str, ...] = ("mlx_cpu", "cpu"),
                  scale: float | tuple[float, ...] = 1.0,
                  hostile: str = "", label: str = "") -> Run:
    """A run over CASES. Softmax on `cpu` is wrong, MatMul on `mlx_cpu` is reduced precision, the last case
    failed on the last backend. `scale` multiplies every time, or each case's (one factor per case).
    `hostile` is appended to the second case's name and the CPU model, to test escaping."""
    scales = scale if isinstance(scale, tuple) else (scale,) * len(CASES)
    rng = np.random.default_rng(len(run_id))
    results = []
    for i, (family, case, base) in enumerate(CASES):
        name = case + hostile if i == 1 else case
        for j, backend in enumerate(backends):
            if i == len(CASES) - 1 and j == len(backends) - 1:
                results.append(CaseResult(case=name, family=family, backend=backend, dtype="float32",
                                          status="error", error="RuntimeError: boom"))
                continue
            median = base * SPEED.get(backend, 1.0) * scales[i]
            samples = tuple(float(x) for x in median * (1 + 0.02 * rng.standard_normal(12)))
            status = "ok"
            if family == "Softmax" and backend == "cpu" and i == 2:
                status = "wrong"
            elif family == "MatMul" and backend == "mlx_cpu":
                status = "reduced-precision"
            results.append(CaseResult(case=name, family=family, backend=backend, dtype="float32", status=status,
                                      samples_ms=samples, calls_per_sample=10, rel_error=1e-7 if status == "ok"
                                      else 0.5, tolerance=1e-5))
    return Run(run_id=run_id, created="2026-11-24T00:00:00+00:00", preset="seed", dtype="float32",
               machine={"cpu_model": "Test CPU" + hostile, "logical_cores": 2, "packages": {"numpy": "2"}},
               settings={"budget_s": 0.5}, backends={b: {"available": True, "reason": "test"} for b in backends},
               results=tuple(results), label=label)
