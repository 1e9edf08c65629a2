"""Worker processes: each backend measures in its own spawned process, so a crash cannot end the run.

Protocol (one duplex pipe): the worker sets its environment, imports and sets up its backend, and sends
`("ready", info)` (or `("setup-error", message)`); then, for each `(fn, args)` it receives (a module-level
function, pickled by reference), it sends back `("result", fn(backend, *args))`, or `("error", message)` if
that raised. `None` asks it to exit. Every study sends `engine.execute.run_task` with a `Task`
(`BackendWorker.run`), and small questions the same way (`engine.execute.free_memory`); environment variables
a framework reads once at start-up (a precision mode such as `MLX_ENABLE_TF32=0`) are given to the worker as
`env` and set before any import.

The parent (`BackendWorker`) waits on the pipe and on the process's sentinel at once, with a deadline:
- a result arrives -> it is returned;
- the process dies (segfault, abort, killed) -> `crashed` with the signal or exit code; death by SIGKILL that
  the parent did not send is recorded as `oom`, since that is how the OS out-of-memory killer ends a process;
- the deadline passes -> the worker is killed and the case is `timeout`.
Either way the dead worker is replaced by a fresh one at the next case.

Trade-off: `spawn` (not `fork`) costs an interpreter start and a framework import per worker (about a second
or two per backend, more after each crash), but a child never inherits a parent's framework state (CUDA
contexts and thread pools do not survive `fork`), and it behaves the same on Linux, macOS and Windows.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import opbench.defaults as defaults
from opbench.catalog import Case
from opbench.catalog.probes import Probe
from opbench.engine.execute import run_task
from opbench.engine.phases import WALL
from opbench.engine.phases import add as add_phases
from opbench.engine.task import Measurement, Task
from opbench.engine.timing import TimingSettings
from opbench.results import CaseResult
from opbench.results.status import Status

# Set in the worker before any framework is imported (existing values win).
WORKER_ENV: dict[str, str] = {
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",  # JAX: allocate GPU memory as needed, not 75 % up front
    "TF_CPP_MIN_LOG_LEVEL": "2",  # JAX/XLA: no C++ info logs on stderr
    "KINETO_LOG_LEVEL": "5",  # torch.profiler (the `device` mode's CUPTI timer): no info logs on stderr
}



@contextlib.contextmanager
def shared_compile_cache() -> Iterator[str]:
    """A temporary directory (removed at the end of the run) where the workers of one run may keep compiled
    executables for the run's later passes: each backend's environment for it is its adapter's to say
    (`Backend.compile_cache_env`). Trade-off: the first call of a later pass is a load, not a compilation (the
    result keeps pass 1's)."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="opbench-compile-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


STOP_GRACE_S = 5.0
MAX_START_FAILURES = 3


# The adaptive time-out allows this many times the expected cost (a loaded machine runs slower than it did).
COST_SAFETY = 3.0
# The adaptive time-out never exceeds this: a prediction from a first call dominated by fixed overhead (a
# compilation on a tiny case) extrapolates to days for a large case. An explicit --case-timeout is not capped.
MAX_ADAPTIVE_TIMEOUT_S = 4 * 3600.0
# A wait on the worker's pipe is made in slices no longer than this (the OS poll takes at most ~24 days).
WAIT_SLICE_S = 600.0
# First calls shorter than this are mostly fixed overhead and say little about a backend's speed per FLOP/byte.
MIN_RATE_CALL_S = 0.05


def default_case_timeout(timing: TimingSettings) -> float:
    """The floor of every case's time-out (`defaults`): 300 s for preparation, compilation and the reference,
    plus 20x the timing budget. A case expected to cost more gets more (`CaseCost`)."""
    return defaults.CASE_TIMEOUT_BASE_S + defaults.CASE_TIMEOUT_BUDGETS * timing.budget_s


def expected_after_first_call(first_call_s: float, timing: TimingSettings) -> float:
    """Seconds a case still needs once its first call took `first_call_s`: the engine makes at most one
    warm-up call and `min_samples` samples past the budget when calls are slow (`opbench.engine.timing`), or spends
    about 1.5x the budget when they are fast; the float64 reference and the check cost a few calls more."""
    return (timing.min_samples + 6) * first_call_s + 2.0 * timing.budget_s


class CaseCost:
    """What this backend has shown so far: the slowest first call per FLOP and per byte among the cases it
    measured (first calls over `MIN_RATE_CALL_S` only). Predicts a new case's first call from its FLOP and
    byte counts, so a case far larger than any before gets a time-out to match before it has even started."""

    def __init__(self) -> None:
        self.s_per_flop = 0.0
        self.s_per_byte = 0.0

    def observe(self, result: CaseResult) -> None:
        first = (result.first_call_ms or 0.0) / 1e3
        if first < MIN_RATE_CALL_S or not result.timed:
            return
        if result.flops:
            self.s_per_flop = max(self.s_per_flop, first / result.flops)
        if result.bytes:
            self.s_per_byte = max(self.s_per_byte, first / result.bytes)

    def first_call_s(self, case: Case | Probe, dtype: str) -> float:
        return max(case.flops * self.s_per_flop, case.bytes_moved(dtype) * self.s_per_byte)


def _apply_env(env: dict[str, str]) -> None:
    for key, value in env.items():
        os.environ.setdefault(key, value)


def _exit_with_parent() -> None:
    """A daemon thread that ends this worker when the parent dies (even by `kill -9`), so a hung worker is
    never left behind."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="opbench-parent-watch").start()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while a worker is spawned: an ignored signal stays ignored across exec, and Python then
    installs no KeyboardInterrupt handler, so a Ctrl-C (sent to the whole process group) cannot print a
    traceback from a half-started worker. Only the parent's main thread may change signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def worker_main(conn: multiprocessing.connection.Connection, backend: str, registry: dict[str, str],
                env: dict[str, str], overrides: dict[str, str] | None = None,
                catalogs: list[tuple[str, str]] | None = None, hold: bool = False) -> None:
    """The worker process's entry point (must stay importable without any framework). With `hold`, it
    imports the framework and then waits for a "go" message before setting up the backend (`prestart`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _apply_env(env)
    os.environ.update(overrides or {})
    _exit_with_parent()
    from opbench.backends import backend_names, get_backend, register

    known = set(backend_names())
    for name, target in registry.items():
        if name not in known:
            register(name, target)
    try:
        from opbench.catalog.user import load_catalog

        for path, digest in catalogs or ():  # the parent's user catalogs, as it loaded them (`catalog.user`)
            load_catalog(path, digest)
        be = get_backend(backend)
        if hold:
            with contextlib.suppress(Exception):  # a broken install fails in setup, with its message
                be.preload()
            try:
                if conn.recv() != "go":
                    return
            except (EOFError, OSError):
                return
        be.on_first_call = lambda seconds: conn.send(("first-call", seconds))
        be.setup()
        info = {"pid": os.getpid(), "versions": be.versions(), "settings": be.settings()}
    except Exception as exc:
        conn.send(("setup-error", f"{type(exc).__name__}: {exc}".splitlines()[0][:500]))
        return
    conn.send(("ready", info))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        fn, args = message
        try:
            reply = ("result", fn(be, *args))
        except Exception as exc:  # outside the task's own handling (e.g. a case's byte count): still one answer
            reply = ("error", f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
        conn.send(reply)


class WorkerFailure(Exception):
    """The worker did not answer: `status` is crashed, oom or timeout; the message says why."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class BackendWorker:
    """The parent's handle on one backend's worker process; restarts it after a failure."""

    def __init__(self, backend: str, case_timeout: float, start_timeout: float | None = None,
                 env: dict[str, str] | None = None, adaptive: bool = False) -> None:
        """`case_timeout` is each call's time-out; with `adaptive` it is a floor, raised to the expected cost of
        each case (`CaseCost`) and, once the worker reports the case's first call, to what that call implies
        (`expected_after_first_call`), both times `COST_SAFETY`."""
        self.backend = backend
        self.env = dict(env or {})  # set in the worker before any import, over what it inherits
        self.case_timeout = case_timeout
        self.adaptive = adaptive
        self.cost = CaseCost()
        self.start_timeout = start_timeout if start_timeout is not None else max(case_timeout, 120.0)
        self.info: dict[str, Any] = {}
        self.setup_error = ""
        self.start_failures = 0
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._killed = False
        self._held = False  # spawned by `prestart`, waiting for "go"
        self.starts = 0  # workers started so far
        self.last_start_s = 0.0  # how long the latest start took: spawn, framework import, device setup

    # --- process lifecycle -------------------------------------------------------------------------------
    def _spawn(self, hold: bool) -> None:
        from opbench.backends import _REGISTRY
        from opbench.catalog.user import loaded_sources

        ctx = multiprocessing.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=worker_main, args=(child_conn, self.backend, dict(_REGISTRY), WORKER_ENV, self.env,
                                                         loaded_sources(), hold),
                           name=f"opbench-worker-{self.backend}", daemon=True)
        with _sigint_ignored():
            proc.start()
        child_conn.close()
        self._proc, self._conn, self._killed = proc, parent_conn, False
        self._held = hold

    def prestart(self) -> None:
        """Spawn the worker now and let it import its framework, but set up no device until its first case
        (`worker_main`'s `hold`): a next pass's worker imports while the current pass measures, so the pass
        after it waits only for the device setup. Does nothing if a worker is already there."""
        if self._proc is None and not self.setup_error:
            self._spawn(hold=True)

    def _start(self) -> None:
        began = time.perf_counter()
        self.starts += 1
        if self._proc is not None and self._held and self._proc.is_alive():
            assert self._conn is not None
            try:
                self._conn.send("go")
            except OSError:
                self._discard()
                self._spawn(hold=False)
        else:
            if self._proc is not None:
                self._discard()
            self._spawn(hold=False)
        self._held = False
        try:
            kind, payload = self._receive(self.start_timeout, "starting the worker")
        except WorkerFailure:
            self.start_failures += 1
            raise
        finally:
            self.last_start_s = time.perf_counter() - began
        if kind == "setup-error":
            self.setup_error = str(payload)
            self.stop()
        else:
            self.info = payload
            self.start_failures = 0

    def stop(self) -> None:
        """Ask the worker to exit; kill it if it does not within a few seconds."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
            conn.close()
        if proc is not None:
            proc.join(STOP_GRACE_S)
            if proc.is_alive():
                proc.kill()
                proc.join()
            proc.close()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._killed = True
            self._proc.kill()
            self._proc.join()

    def _discard(self) -> None:
        """Forget a dead or killed worker (the next case starts a fresh one)."""
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            self._proc.join()
            self._proc.close()
        self._proc = self._conn = None

    # --- messages ----------------------------------------------------------------------------------------
    def _receive(self, timeout: float, doing: str, timing: TimingSettings | None = None) -> tuple[str, Any]:
        """The worker's next answer within `timeout` s; a ("first-call", seconds) report on the way extends the
        deadline to what that call implies (with `timing`, in adaptive mode)."""
        assert self._proc is not None and self._conn is not None
        start = time.monotonic()
        deadline = start + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill()
                self._discard()
                raise WorkerFailure("timeout", f"no answer after {deadline - start:.4g} s while {doing} "
                                               "(--case-timeout); worker killed and restarted")
            ready = multiprocessing.connection.wait([self._conn, self._proc.sentinel],
                                                    timeout=min(left, WAIT_SLICE_S))
            if not ready:
                continue
            if self._conn in ready:
                try:
                    message = self._conn.recv()
                except (EOFError, OSError):
                    message = None  # died after the pipe became readable: classify below
                if message is not None and message[0] == "first-call":
                    if self.adaptive and timing is not None:
                        allowance = COST_SAFETY * expected_after_first_call(float(message[1]), timing)
                        deadline = max(deadline, time.monotonic() + min(allowance, MAX_ADAPTIVE_TIMEOUT_S))
                    continue
                if message is not None:
                    return message
            if ready:
                raise self._death(doing)

    def _death(self, doing: str) -> WorkerFailure:
        assert self._proc is not None
        self._proc.join()
        code = self._proc.exitcode
        self._discard()
        if code is not None and code < 0:
            try:
                sig = signal.Signals(-code).name
            except ValueError:
                sig = f"signal {-code}"
            if sig == "SIGKILL" and not self._killed:
                return WorkerFailure("oom", f"worker killed by SIGKILL while {doing} (most likely the OS "
                                            "out-of-memory killer); restarted")
            return WorkerFailure("crashed", f"worker died with {sig} while {doing}; restarted")
        return WorkerFailure("crashed", f"worker exited with code {code} while {doing}; restarted")

    # --- the public operations ---------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], doing: str, timeout: float | None = None,
             timing: TimingSettings | None = None) -> Any:
        """`fn(backend, *args)` in the worker (started on first use), or WorkerFailure with status
        `setup-error`, `error` (fn raised), `crashed`, `oom` or `timeout`; `doing` names the task in messages.
        `timeout` overrides `case_timeout` for this call; `timing` lets a first-call report extend it."""
        if self.setup_error:
            raise WorkerFailure("setup-error", self.setup_error)
        if self.start_failures >= MAX_START_FAILURES:
            raise WorkerFailure("error", f"worker failed to start {self.start_failures} times; backend skipped")
        if self._proc is None or self._held:
            self._start()
            if self.setup_error:
                raise WorkerFailure("setup-error", self.setup_error)
        assert self._conn is not None
        try:
            self._conn.send((fn, args))
        except OSError:
            raise self._death(doing) from None
        kind, payload = self._receive(self.case_timeout if timeout is None else timeout, doing, timing)
        if kind == "error":
            raise WorkerFailure("error", str(payload))
        assert kind == "result", kind
        return payload

    def run(self, task: Task) -> Measurement:
        """Measure one task in the worker; a worker failure becomes a measurement with its status and message
        (phase `setup` when the backend could not start, `worker` when the process died, hung or raised). The
        measurement's phases gain `wall` (the round trip as the parent saw it) and, when this task started a
        fresh worker, `worker_start`."""
        timeout = self.case_timeout
        if self.adaptive:
            predicted = self.cost.first_call_s(task.subject, task.dtype)
            timeout = max(timeout, COST_SAFETY * (predicted + expected_after_first_call(predicted, task.timing)))
        doing = f"measuring {task.name}" + (f" in {task.dtype}" if task.check == "inferred" else "")
        began, starts = time.perf_counter(), self.starts
        try:
            measurement: Measurement = self.call(run_task, (task,), doing, timeout, task.timing)
            if measurement.timed:
                self.cost.observe(measurement.to_case_result())
        except WorkerFailure as failure:
            phase = "setup" if failure.status == "setup-error" else "worker"
            measurement = Measurement.failure(task, Status.ERROR if phase == "setup" else failure.status, str(failure),
                                              phase)
        parent = {WALL: (time.perf_counter() - began) * 1e3}
        if self.starts != starts:
            parent["worker_start"] = self.last_start_s * 1e3
        return replace(measurement, phases_ms=add_phases(measurement.phases_ms, parent))

    def measure(self, case: Case, dtype: str, seed: int, timing: TimingSettings,
                mode: str = "throughput") -> CaseResult:
        """Measure one case in the worker in one timing mode, as `opbench run` records it (`run` with a task of
        the case)."""
        return self.run(Task(case, self.backend, dtype, seed, timing, mode=mode)).to_case_result()

    def __enter__(self) -> BackendWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc and exc[0] is not None:
            self._kill()
            self._discard()
        else:
            self.stop()
