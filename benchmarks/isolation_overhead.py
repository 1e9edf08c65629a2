"""What worker isolation and the SQLite store cost: worker start-up, per-case round trip, per-result write.

Prints four figures (medians over repetitions):

* `worker start`    - spawn a worker for a backend, import and set it up, until it answers `ready`
                      (the numpy fake: interpreter + opbench; `cpu`: also `import torch`);
* `round trip`      - one case measured through the worker minus the same case measured in process: the cost
                      of pickling the case and its result over the pipe (the measurement itself is identical);
* `store write`     - `Store.add_result`, one committed transaction per result (what `opbench run` does after
                      every case), on a file in --dir;
* `run.json write`  - `RunDirectory.add` with N results already in the run (rewritten atomically each time).

Run on a quiet machine from the repository root:
    PYTHONPATH=src python3 benchmarks/isolation_overhead.py [--backends fake_numpy,cpu] [--repeat 5] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from opbench.catalog import preset_cases, select_cases
from opbench.engine.runner import measure_case
from opbench.engine.timing import TimingSettings
from opbench.engine.worker import BackendWorker
from opbench.results import CaseResult, Run
from opbench.results.files import RunDirectory
from opbench.results.store import Store
from opbench.testing.fakes import register_fakes

TIMING = TimingSettings(budget_s=0.01, min_samples=3, block_s=0.001)


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:8.2f} ms"


def worker_figures(backend: str, repeat: int) -> None:
    from opbench.backends import get_backend

    case = select_cases(preset_cases("quick"), ["ReLU"])[0]
    starts, through_worker = [], []
    for _ in range(repeat):
        with BackendWorker(backend, case_timeout=300) as worker:
            t0 = time.perf_counter()
            worker._start()
            starts.append(time.perf_counter() - t0)
            for _ in range(5):
                t0 = time.perf_counter()
                result = worker.measure(case, "float32", 0, TIMING)
                through_worker.append(time.perf_counter() - t0)
            assert result.status == "ok", result
    be = get_backend(backend)
    be.setup()
    in_process = []
    for _ in range(5 * repeat):
        t0 = time.perf_counter()
        measure_case(be, case, "float32", 0, TIMING)
        in_process.append(time.perf_counter() - t0)
    print(f"{backend:12s} worker start {median_ms(starts)}   case through worker {median_ms(through_worker)}   "
          f"in process {median_ms(in_process)}   round trip "
          f"{(statistics.median(through_worker) - statistics.median(in_process)) * 1e3:8.2f} ms")


def store_figures(directory: Path, n: int) -> None:
    result = CaseResult(case="ReLU / dim=16x16", family="ReLU", backend="cpu", dtype="float32", status="ok",
                        samples_ms=tuple(1.0 + i * 1e-3 for i in range(200)), rel_error=1e-7, tolerance=1e-5)
    run = Run(run_id="bench", created="2026-01-01", preset="seed", dtype="float32")
    with tempfile.TemporaryDirectory(dir=directory) as tmp, Store(Path(tmp) / "s.sqlite") as store:
        store.create_run(run)
        run_dir = RunDirectory(Path(tmp) / "out", run)
        writes, json_writes = [], []
        for i in range(n):
            r = CaseResult(**{**result.__dict__, "case": f"ReLU / dim={i + 1}x16"})
            t0 = time.perf_counter()
            store.add_result("bench", r)
            writes.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            run_dir.add(r)
            json_writes.append(time.perf_counter() - t0)
    print(f"store write  {median_ms(writes)} per result (200 samples each, {n} results; max "
          f"{max(writes) * 1e3:.2f} ms)")
    print(f"run.json     {median_ms(json_writes)} per result (median over a run growing to {n} results; last "
          f"{json_writes[-1] * 1e3:.2f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="fake_numpy,cpu")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--results", type=int, default=200, help="results written in the store benchmark")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the store file lives")
    args = parser.parse_args()
    register_fakes()
    for backend in args.backends.split(","):
        worker_figures(backend, args.repeat)
    store_figures(args.dir, args.results)


if __name__ == "__main__":
    main()
