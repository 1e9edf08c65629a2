"""A synthetic fleet history with planted steps, for the site's tests (and the README's picture).

Two machines, two backends, three cases, 12 runs each, 2 % noise, 30 raw samples per result. Planted:
- host-a cpu, "ReLU / dim=1024": +40 % from run 6 on, when torch goes 2.12.0 -> 2.13.0;
- host-b mlx_cpu, "Sum / dim=1024": -50 % from run 8 on, when mlx goes 0.29.0 -> 0.30.0.
Everything else is stationary. A published table gives reference values for ReLU.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from opbench.results import CaseResult, Run
from opbench.results.store import Store

CASES = {"ReLU / dim=1024": ("ReLU", 0.20), "Sum / dim=1024": ("Sum", 0.05), "Softmax / dim=1024": ("Softmax", 0.9)}
MACHINES = {"host-a": ("cpu", "AMD EPYC 9554"), "host-b": ("mlx_cpu", "Apple M3 Max")}
RUNS = 12
PLANTED = {("host-a", "cpu", "ReLU / dim=1024"): (6, 1.4), ("host-b", "mlx_cpu", "Sum / dim=1024"): (8, 0.5)}
# (machine, backend, case, index of the first run at the new level, kind)
EXPECTED = [("host-a (AMD EPYC 9554)", "cpu", "ReLU / dim=1024", 6, "regression"),
            ("host-b (Apple M3 Max)", "mlx_cpu", "Sum / dim=1024", 8, "improvement")]


def run_id(host: str, i: int) -> str:
    return f"2026010{1 + i // 10}-{i % 10:02d}0000-{host[-1]}{i:03d}"


def fill(store: Store, hostile: str = "") -> None:
    rng = np.random.default_rng(11)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for host, (backend, cpu) in MACHINES.items():
        for i in range(RUNS):
            framework = "torch" if backend == "cpu" else "mlx"
            version = ("2.12.0" if i < 6 else "2.13.0") if framework == "torch" else ("0.29.0" if i < 8 else "0.30.0")
            results = []
            for case, (family, base) in CASES.items():
                at, factor = PLANTED.get((host, backend, case), (RUNS, 1.0))
                level = base * (factor if i >= at else 1.0) * float(np.exp(rng.normal(0, 0.02)))
                samples = tuple(float(x) for x in level * np.exp(rng.normal(0, 0.01, 30)))
                results.append(CaseResult(case=case, family=family, backend=backend, dtype="float32", status="ok",
                                          samples_ms=samples, calls_per_sample=10))
            created = start + dt.timedelta(days=i, hours=6 + (host == "host-b"))
            store.save_run(Run(
                run_id=run_id(host, i), created=created.isoformat(),
                preset="seed", dtype="float32",
                machine={"hostname": host, "cpu_model": cpu, "logical_cores": 16, "gpus": [], "python": "3.11.2",
                         "os": "Linux 6.1", "packages": {framework: version, "numpy": "2.1.0"},
                         "opbench": {"version": "0.1.0", "source_digest": "abc123def456"}},
                settings={"backends": [backend]}, label=hostile if i == 0 else "",
                backends={backend: {"available": True, "reason": "", "versions": {framework: version}}},
                results=tuple(results)))
    # the published table is latency mode, as the importer records the seed article's one-call-plus-sync times
    store.save_run(Run(run_id="published-seed", created="2024-06-01T00:00:00+00:00", preset="seed",
                       dtype="float32", imported=True, source="seed.md", label="M3 Max (published)",
                       results=(CaseResult(case="ReLU / dim=1024", family="ReLU", backend="mps", dtype="float32",
                                           status="ok", published_ms=0.15, mode="latency"),)))
