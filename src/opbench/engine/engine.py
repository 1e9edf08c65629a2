"""The engine every study measures through: tasks in, measurements out, each in the right process.

`Engine.run(task)` hands the task to the worker process of its backend (`BackendWorker`, started on first use
and kept for the next task), and that worker runs it (`engine.execute.run_task`): the dtype study, the sweep
and the calibration all measure this way, as `opbench run` does (`runner.run_plan`, which adds fresh workers
per pass). A precision mode set by environment variables read once at start-up (MLX_ENABLE_TF32) gets a worker
of its own, started with them; so a backend can have several workers, one per environment, never more than
one measuring at a time (tasks run one after another, so they never disturb each other's timings).

For tests and debugging, `in_process` backends (already set up) are measured in this process instead, except
for tasks whose precision mode needs a process started with its environment: those still go to a worker (the
backend must then be registered by name). Either way a study sees the same thing: a `Measurement` per task,
with a worker's crash, hang or failed start as its status.

Trade-off: idle workers keep their framework loaded (and, on a GPU, a context) until the engine is closed, so
a study that goes back and forth between backends (the sweep: every backend per size) pays one start per
backend, not one per task; the price is that every backend of the study is resident at once, as it was when
studies set up every framework in one process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from opbench.backends import Backend, get_backend
from opbench.engine.execute import run_task
from opbench.engine.task import Measurement, Task
from opbench.engine.timing import TimingSettings
from opbench.engine.worker import BackendWorker, WorkerFailure, default_case_timeout

Env = tuple[tuple[str, str], ...]


class InProcess:
    """A set-up backend measured in this process, with a worker's interface (`run`, `call`, `info`)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend.name
        self._be = backend
        self._info: dict[str, Any] = {}

    @property
    def info(self) -> dict[str, Any]:
        if not self._info:
            self._info = {"pid": os.getpid(), "versions": self._be.versions(), "settings": self._be.settings()}
        return self._info

    def run(self, task: Task) -> Measurement:
        return run_task(self._be, task)

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], doing: str, timeout: float | None = None,
             timing: TimingSettings | None = None) -> Any:
        return fn(self._be, *args)

    def stop(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        pass


class Engine:
    """Measures tasks in worker processes (see the module docstring); a context manager that stops them."""

    def __init__(self, timeout: float | None = None, in_process: Mapping[str, Backend] | None = None,
                 on_info: Callable[[str, dict[str, Any]], None] = lambda name, info: None) -> None:
        """`timeout`: each task's time-out in seconds; by default it adapts to the task (at least
        `default_case_timeout` of its timing, more for a task whose cost the backend's earlier tasks predict:
        `worker.CaseCost`). `on_info(name, info)` is told each backend's versions and settings once, as the
        process that measures it reports them (for the default environment)."""
        self.timeout = timeout
        self.in_process = dict(in_process or {})
        self.on_info = on_info
        self._workers: dict[tuple[str, Env], BackendWorker | InProcess] = {}
        self._reported: set[str] = set()

    # --- where a task runs ---------------------------------------------------------------------------------
    def env_of(self, task: Task) -> dict[str, str]:
        """The environment variables the task's precision mode needs at process start ({} for most)."""
        if not task.precision_mode:
            return {}
        be = self.in_process.get(task.backend) or get_backend(task.backend)  # the adapter only, no framework
        mode = be.precision_modes().get(task.precision_mode)
        return dict(mode.env) if mode is not None else {}

    def _executor(self, backend: str, env: dict[str, str], timing: TimingSettings) -> BackendWorker | InProcess:
        if backend in self.in_process and (not env or all(os.environ.get(k) == v for k, v in env.items())):
            key: tuple[str, Env] = (backend, ())
            if key not in self._workers:
                self._workers[key] = InProcess(self.in_process[backend])
            return self._workers[key]
        key = (backend, tuple(sorted(env.items())))
        if key not in self._workers:
            timeout = self.timeout if self.timeout is not None else default_case_timeout(timing)
            self._workers[key] = BackendWorker(backend, timeout, env=env, adaptive=self.timeout is None)
        return self._workers[key]

    # --- the public operations -----------------------------------------------------------------------------
    def run(self, task: Task) -> Measurement:
        """Measure `task` in its process; never raises for a problem with the task or its process."""
        env = self.env_of(task)
        executor = self._executor(task.backend, env, task.timing)
        measurement = executor.run(task)
        if not env and task.backend not in self._reported and executor.info:
            self._reported.add(task.backend)
            self.on_info(task.backend, executor.info)
        return measurement

    def ask(self, backend: str, fn: Callable[..., Any], doing: str, default: Any = None) -> Any:
        """`fn(backend_object)` in the backend's (default) measuring process, or `default` if it cannot answer
        (the worker fails to start, dies or raises): for the facts a study needs between tasks, such as free
        memory (`engine.execute.free_memory`)."""
        executor = self._executor(backend, {}, TimingSettings())
        try:
            return executor.call(fn, (), doing, 120.0)
        except WorkerFailure:
            return default

    def info(self, backend: str) -> dict[str, Any]:
        """What the backend's measuring process reported at start ({} before it started, or if it failed)."""
        executor = self._workers.get((backend, ()))
        return executor.info if executor is not None else {}

    def close(self, *exc: object) -> None:
        """Stop every worker: asked to exit, or killed when `exc` (an exception's type, value, traceback) says
        the study is being cut short (Ctrl-C, a time-out)."""
        workers, self._workers = self._workers, {}
        for worker in workers.values():
            worker.__exit__(*(exc or (None, None, None)))

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(*exc)
