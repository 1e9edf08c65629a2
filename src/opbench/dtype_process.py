"""Runs a backend's dtype-study items in a child process, so that a crash or a hang costs one item, not the study.

Protocol: the parent starts `python -m opbench.dtype_process` with the environment it wants in force (a
precision mode such as MLX_ENABLE_TF32=0 that the framework reads once at start-up) and writes the request to
its stdin as JSON: the backend's registry entry, the items, the timing settings, how many items to skip. The
child sets the backend up and writes one line per item to stdout, prefixed with `MARK`:
`{"kind": "cell", "index": i, "cell": {...}}`; before that `{"kind": "info", ...}` with versions and settings,
or `{"kind": "setup-error", "error": ...}`. Other output on stdout is ignored; stderr goes to a temporary file
whose last line explains a crash.

The parent reads the lines from a thread and waits at most `item_timeout_s` for each. When the child dies
(segfault, abort, out-of-memory kill) the item it was on is recorded as `crashed` with the exit code or signal;
when it is silent too long it is killed and the item is `timeout`. Either way a new child resumes after that
item. Trade-off: one interpreter start and framework import per backend (and per crash), about a second or two,
against a study that survives anything one framework does to its process; and frameworks never share a process
(two CUDA frameworks in one process can clash over libraries such as cuDNN).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from opbench.dtypes import (
    CRASHED,
    MATRIX_TIMING,
    PRECISION_TIMING,
    TIMEOUT,
    UNSUPPORTED,
    Cell,
    WorkItem,
    first_line,
    run_item,
)
from opbench.timing import TimingSettings

MARK = "OPBENCH-DTYPES "
DEFAULT_ITEM_TIMEOUT_S = 300.0
MAX_RESTARTS = 25


def _exit_text(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def run_isolated(backend: str, items: list[WorkItem], seed: int = 0, timing: TimingSettings = MATRIX_TIMING,
                 matmul_timing: TimingSettings = PRECISION_TIMING, env: dict[str, str] | None = None,
                 on_cell: Callable[[Cell], None] = lambda c: None,
                 on_info: Callable[[dict[str, Any]], None] = lambda info: None,
                 item_timeout_s: float = DEFAULT_ITEM_TIMEOUT_S) -> list[Cell]:
    """Measure `items` on `backend` in child processes with `env` added; one cell per item, in order."""
    from opbench.backends import _REGISTRY

    cells: list[Cell] = []

    def record(cell: Cell) -> None:
        cells.append(cell)
        on_cell(cell)

    request = {"backend": backend, "target": _REGISTRY.get(backend, ""), "items": [i.to_dict() for i in items],
               "seed": seed, "timing": asdict(timing), "matmul_timing": asdict(matmul_timing)}
    restarts = 0
    while len(cells) < len(items):
        if restarts > MAX_RESTARTS:
            for item in items[len(cells):]:
                record(item.unmeasured(backend, CRASHED, f"not run: the process died {MAX_RESTARTS} times"))
            break
        restarts += 1
        failure = _run_child(backend, {**request, "skip": len(cells)}, env or {}, items, record, on_info,
                             item_timeout_s)
        if failure is not None and len(cells) < len(items):
            status, error = failure
            if status == "setup-error":
                for item in items[len(cells):]:
                    record(item.unmeasured(backend, UNSUPPORTED, error))
            else:
                record(items[len(cells)].unmeasured(backend, status, error))
    return cells


def _run_child(backend: str, request: dict[str, Any], env: dict[str, str], items: list[WorkItem],
               record: Callable[[Cell], None], on_info: Callable[[dict[str, Any]], None],
               item_timeout_s: float) -> tuple[str, str] | None:
    """One child process: record the cells it sends; return (status, error) if it ended before the last item."""
    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "opbench.dtype_process"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=stderr, text=True, env={**os.environ, **env})
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(request))  # on stdin: `--all` makes the request too long for argv
        proc.stdin.close()
        lines: queue.Queue[str | None] = queue.Queue()

        def reader() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=reader, daemon=True).start()
        expected = request["skip"]
        while True:
            try:
                line = lines.get(timeout=item_timeout_s)
            except queue.Empty:
                proc.kill()
                proc.wait()
                return TIMEOUT, f"no result within {item_timeout_s:.0f} s: the process was killed"
            if line is None:
                returncode = proc.wait()
                if expected >= len(items):
                    return None
                stderr.seek(0)
                tail = [ln for ln in stderr.read().strip().splitlines() if ln.strip()]
                return CRASHED, f"the process died ({_exit_text(returncode)})" + (f": {tail[-1][:300]}" if tail else "")
            if not line.startswith(MARK):
                continue
            message = json.loads(line[len(MARK):])
            if message["kind"] == "info":
                on_info(message)
            elif message["kind"] == "setup-error":
                proc.wait()
                return "setup-error", message["error"]
            elif message["kind"] == "cell" and message["index"] == expected:
                record(Cell.from_dict(message["cell"]))
                expected += 1


def child_main(request_json: str) -> None:
    from opbench.backends import get_backend, register

    request = json.loads(request_json)
    if request.get("target"):
        register(request["backend"], request["target"])

    def send(message: dict[str, Any]) -> None:
        print(MARK + json.dumps(message, default=str), flush=True)

    try:
        backend = get_backend(request["backend"])
        backend.setup()
        send({"kind": "info", "versions": backend.versions(), "settings": backend.settings()})
    except Exception as exc:
        send({"kind": "setup-error", "error": first_line(exc)})
        return
    timing, matmul_timing = TimingSettings(**request["timing"]), TimingSettings(**request["matmul_timing"])
    for index, item in enumerate(request["items"]):
        if index < request["skip"]:
            continue
        cell = run_item(backend, WorkItem.from_dict(item), request["seed"], timing, matmul_timing)
        send({"kind": "cell", "index": index, "cell": cell.to_dict()})


if __name__ == "__main__":
    child_main(sys.stdin.read())
