"""Runs a backend's dtype-study items in the backend's worker process (`opbench.engine.worker`), so that a crash or a
hang costs one item, not the study.

Each item is `dtypes.run_item` sent to a `BackendWorker`; a precision mode that the framework reads once at
start-up (MLX_ENABLE_TF32=0) is the worker's `env`, set before any import. A worker that dies on an item
(segfault, abort, out-of-memory kill) makes that item `crashed`, one that is silent past `item_timeout_s` is
killed and the item is `timeout`; either way a fresh worker takes the next item. A backend that cannot start
is `unsupported` for every item, with its error. Trade-off: one interpreter start and framework import per
backend (and per crash), about a second or two, against a study that survives anything one framework does to
its process; frameworks never share a process (two CUDA frameworks in one process can clash over cuDNN).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opbench.engine.timing import TimingSettings
from opbench.studies.dtypes import (
    CRASHED,
    ERROR,
    MATRIX_TIMING,
    PRECISION_TIMING,
    TIMEOUT,
    UNSUPPORTED,
    Cell,
    WorkItem,
    run_item,
)

DEFAULT_ITEM_TIMEOUT_S = 300.0
# how a worker failure reads as a cell status (an out-of-memory kill is a crash of the item)
FAILURE_STATUS = {"setup-error": UNSUPPORTED, "error": ERROR, "timeout": TIMEOUT, "crashed": CRASHED, "oom": CRASHED}


def run_isolated(backend: str, items: list[WorkItem], seed: int = 0, timing: TimingSettings = MATRIX_TIMING,
                 matmul_timing: TimingSettings = PRECISION_TIMING, env: dict[str, str] | None = None,
                 on_cell: Callable[[Cell], None] = lambda c: None,
                 on_info: Callable[[dict[str, Any]], None] = lambda info: None,
                 item_timeout_s: float = DEFAULT_ITEM_TIMEOUT_S) -> list[Cell]:
    """Measure `items` on `backend` in a worker process with `env` set; one cell per item, in order."""
    from opbench.engine.worker import BackendWorker, WorkerFailure

    cells: list[Cell] = []
    reported = False
    with BackendWorker(backend, item_timeout_s, env=env) as worker:
        for item in items:
            try:
                cell = worker.call(run_item, (item, seed, timing, matmul_timing),
                                   f"measuring {item.case.name} in {item.dtype}")
            except WorkerFailure as failure:
                cell = item.unmeasured(backend, FAILURE_STATUS.get(failure.status, CRASHED), str(failure))
            if not reported and worker.info:  # the worker starts on the first item
                on_info(worker.info)
                reported = True
            cells.append(cell)
            on_cell(cell)
    return cells
