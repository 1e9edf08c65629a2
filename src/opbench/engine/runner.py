"""Run a plan (cases x backends): every case a `Task` through the engine, every outcome a `CaseResult`.

`measure_case` is the unit of work (`engine.execute.run_task`, as a run records it): it never raises for a
problem with the case itself. An exception, an out-of-memory or a never-forced output becomes a result with its
status and message, so one bad case on one backend cannot end the run. `run_plan` walks backends in the seed's
column order and cases in catalog order, calling `on_result` as each case finishes, so that results already
measured are never lost.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

import opbench.defaults as defaults
from opbench.backends import Backend, get_backend
from opbench.catalog import Case
from opbench.engine.execute import release_case_memory, run_task, verify_output
from opbench.engine.modes import DEFAULT_MODE
from opbench.engine.passes import combine, mark_one_unit, one_unit, passes_done, slower_than_budget
from opbench.engine.phases import WALL
from opbench.engine.phases import add as add_phases
from opbench.engine.prefetch import Prefetcher
from opbench.engine.task import Task
from opbench.engine.telemetry import ENERGY_MIN_REGION_S
from opbench.engine.timing import TimingSettings
from opbench.engine.worker import BackendWorker, default_case_timeout, shared_compile_cache
from opbench.results import CaseResult

DEFAULT_TIMING = TimingSettings()
__all__ = ["DEFAULT_TIMING", "Plan", "measure_case", "release_case_memory", "run_plan", "verify_output"]


@dataclass(frozen=True)
class Plan:
    cases: tuple[Case, ...]
    backends: tuple[str, ...]
    dtype: str = "float32"
    seed: int = 0
    timing: TimingSettings = DEFAULT_TIMING
    processes: int = 1  # passes per backend, each in a fresh worker process (`opbench.engine.passes`): the units
    modes: tuple[str, ...] = (DEFAULT_MODE,)  # timing modes (`opbench.engine.modes`): each case timed in every one
    # every unit even of a case whose call is slower than the whole budget (by default such a case has one unit:
    # `opbench.engine.passes`, "A call slower than the whole budget")
    all_units: bool = defaults.ALL_UNITS
    # the settings of GPU backends (`Backend.device_kind` "gpu"), when they differ from `timing` (by default the
    # budget does: `defaults.GPU_RUN_BUDGET_S`); None: `timing` for every backend
    gpu_timing: TimingSettings | None = None

    def timing_of(self, backend: str) -> TimingSettings:
        """The timing settings of one case (all its units together) on `backend`."""
        if self.gpu_timing is not None and _on_gpu(backend):
            return self.gpu_timing
        return self.timing

    def unit_timing(self, backend: str, unit: int = 0) -> TimingSettings:
        """The timing settings of pass `unit` (0: the first) of a case on `backend`: the case budget split
        across the passes; only the first pass lengthens its samples for a GPU's energy counter, and the later
        passes give that time back (`TimingSettings.later_unit`)."""
        timing = self.timing_of(backend).per_unit(self.processes)
        return timing if unit == 0 else timing.later_unit(self.processes, ENERGY_MIN_REGION_S)

    def unit_of(self, prior: Mapping[tuple[str, str, str], CaseResult], backend: str, case: Case, mode: str) -> int:
        """Which pass of (backend, case, mode) comes next (0: the first), given what `prior` holds."""
        done = passes_done(prior.get((backend, case.name, mode)))
        return int(done) if math.isfinite(done) else 0

    def pairs(self) -> list[tuple[str, Case]]:
        return [(b, c) for b in self.backends for c in self.cases]

    def units(self, result: CaseResult | None) -> int:
        """The units (passes) a case needs, given its result so far: `processes`, or 1 for a result the runner
        completed after one unit because a call took longer than the whole budget (unless `all_units`)."""
        return 1 if result is not None and not self.all_units and one_unit(result) else self.processes

    def finish_early(self, result: CaseResult) -> CaseResult:
        """`result` (a case's passes combined so far) marked complete when it is one pass whose call took at
        least the case's whole budget (`passes.slower_than_budget`) and more units were planned; else as it is."""
        budget = self.timing_of(result.backend).budget_s
        if self.all_units or self.processes <= 1 or not slower_than_budget(result, budget):
            return result
        return mark_one_unit(result)

    def passes_short(self, result: CaseResult | None) -> int:
        """The passes one (backend, case, mode) still needs, given its result so far (None: none yet)."""
        return int(max(0, self.units(result) - passes_done(result)))

    def modes_left(self, prior: Mapping[tuple[str, str, str], CaseResult], backend: str, case: Case) -> tuple[str, ...]:
        """The modes in which (backend, case) still lacks passes, given what `prior` holds."""
        return tuple(m for m in self.modes if self.passes_short(prior.get((backend, case.name, m))) > 0)

    def left(self, prior: Mapping[tuple[str, str, str], CaseResult], backend: str, case: Case) -> int:
        """Measurements (one per pass and mode) that (backend, case) still needs."""
        return sum(self.passes_short(prior.get((backend, case.name, m))) for m in self.modes)

    def passes_left(self, prior: Mapping[tuple[str, str, str], CaseResult]) -> int:
        """Measurements still to make (a case in one mode, one pass), given what `prior` holds (progress bar)."""
        return sum(self.left(prior, b, c) for b, c in self.pairs())


def measure_case(backend: Backend, case: Case, dtype: str = "float32", seed: int = 0,
                 timing: TimingSettings = DEFAULT_TIMING, mode: str = DEFAULT_MODE) -> CaseResult:
    """Prepare, time (in timing `mode`) and verify one case on an already set-up backend, in this process
    (`engine.execute`)."""
    return run_task(backend, Task(case, backend.name, dtype, seed, timing, mode=mode)).to_case_result()


def _device_kind(name: str) -> str:
    """The device backend `name` measures (`Backend.device_kind`); "cpu" for a name that is not registered."""
    try:
        return get_backend(name).device_kind
    except Exception:
        return "cpu"


def _on_gpu(name: str) -> bool:
    """Whether backend `name` measures a GPU (its settings may be `Plan.gpu_timing`)."""
    return _device_kind(name) == "gpu"


def _off_host(name: str) -> bool:
    """Whether backend `name` measures a device other than the host CPU (GPU work overlaps host work)."""
    return _device_kind(name) != "cpu"


@contextlib.contextmanager
def prefetcher(name: str, cases: list[Case], plan: Plan, off_host: bool) -> Iterator[Prefetcher | _NoPrefetch]:
    """A `Prefetcher` over `cases` for a backend whose device is not the host CPU (`opbench.engine.prefetch` says
    why not for CPU backends), else one that does nothing."""
    if not off_host:
        yield _NoPrefetch()
        return
    with Prefetcher(cases, plan.dtype, plan.seed) as ahead:
        yield ahead


class _NoPrefetch:
    def advance(self, case: Case) -> None:
        pass


def run_plan(plan: Plan, on_result: Callable[[CaseResult], None] = lambda r: None,
             prior: Mapping[tuple[str, str, str], CaseResult] | None = None, isolate: bool = True,
             case_timeout: float | None = None,
             on_backend: Callable[[str, dict], None] = lambda name, info: None,
             on_start: Callable[[str, Case], None] = lambda name, case: None,
             on_pass: Callable[[str, float], None] = lambda name, seconds: None) -> list[CaseResult]:
    """Measure every (backend, case) pair in order, `plan.processes` passes each, in every timing mode of
    `plan.modes` (one after another in the same worker, each mode its own task: `opbench.engine.modes`);
    `prior` holds results already measured, keyed by (backend, case name, mode): a pair is measured only in the
    modes and passes it lacks (see `passes.passes_done`), and new passes are combined with it (`passes.combine`).
    A case whose first pass shows a call at least as long as the whole budget is complete after that pass
    (`Plan.finish_early`, unless `plan.all_units`; `opbench.engine.passes` says why and what it costs the
    statistics): later passes skip it, and a resume reads the mark its result carries.

    With `isolate` (the default) each pass of a backend runs in its own spawned worker process
    (`opbench.engine.worker`): a segfault, an OS kill or a case running past its time-out becomes a `crashed`, `oom`
    or `timeout` result and the run goes on in a fresh worker. The time-out is `case_timeout` seconds when given; by
    default it adapts: at least `default_case_timeout`, more for a case whose FLOP/byte counts or first call (as
    this backend has shown them) predict more (`worker.CaseCost`). Without `isolate`, everything runs in this
    process (for tests and debugging: a crash ends the run; one pass only, since passes exist to sample independent
    processes). Backends run one after another, never side by side, so they do not disturb each other's timings. For
    a backend whose device is not the host CPU, the parent makes the next cases' inputs and references while the
    device measures (`opbench.engine.prefetch`), and the next pass's worker is spawned during the current pass,
    importing its framework, and set up only when its pass begins (`BackendWorker.prestart`): the device never waits
    for that host work. `on_result` gets each case's combined result after every pass, so a cut-off run keeps the
    passes already made; `on_backend(name, info)` gets the versions and thread/precision settings as the measuring
    process reports them, after its setup; `on_start(name, case)` is called as each case's measurement begins (a
    progress bar's label); `on_pass(name, seconds)` after each pass of a backend with its wall time (worker start to
    stop, storing included). Returns the final result of every pair measured.
    """
    if plan.processes < 1 or (plan.processes > 1 and not isolate):
        raise ValueError("processes must be >= 1, and more than one needs isolated worker processes")
    current = dict(prior or {})
    timeout = case_timeout if case_timeout is not None else default_case_timeout(
        max((plan.timing, plan.gpu_timing or plan.timing), key=lambda t: t.budget_s))
    measured: dict[tuple[str, str, str], CaseResult] = {}

    def keep(name: str, case: Case, result: CaseResult) -> None:
        key = (name, case.name, result.mode)
        current[key] = measured[key] = plan.finish_early(combine(current.get(key), result))
        on_result(current[key])

    def measure_backend(name: str, cache_env: dict[str, str]) -> None:
        reported = False
        off_host = _off_host(name)
        spare: BackendWorker | None = None  # the next pass's worker, importing its framework meanwhile
        try:
            while todo := [c for c in plan.cases if plan.modes_left(current, name, c)]:
                began = time.perf_counter()
                if not isolate:
                    backend = get_backend(name)
                    backend.setup()
                    on_backend(name, {"versions": backend.versions(), "settings": backend.settings()})
                    for case in todo:
                        for mode in plan.modes_left(current, name, case):
                            on_start(name, case)
                            t0 = time.perf_counter()
                            timing = plan.unit_timing(name, plan.unit_of(current, name, case, mode))
                            result = measure_case(backend, case, plan.dtype, plan.seed, timing, mode)
                            keep(name, case, replace(result, phases_ms=add_phases(
                                result.phases_ms, {WALL: (time.perf_counter() - t0) * 1e3})))
                    on_pass(name, time.perf_counter() - began)
                    break
                # one pass: every case still short of passes; a GPU backend's inputs and references made ahead
                worker = spare or BackendWorker(name, timeout, env=cache_env, adaptive=case_timeout is None)
                spare = None
                another = off_host and any(plan.left(current, name, c) > len(plan.modes_left(current, name, c))
                                           for c in todo)
                with worker, prefetcher(name, todo, plan, off_host) as ahead:
                    for case in todo:
                        ahead.advance(case)
                        for mode in plan.modes_left(current, name, case):
                            on_start(name, case)
                            timing = plan.unit_timing(name, plan.unit_of(current, name, case, mode))
                            result = worker.measure(case, plan.dtype, plan.seed, timing, mode)
                            if not reported and worker.info:  # the worker starts on its first case
                                on_backend(name, worker.info)
                                reported = True
                            if another and spare is None and worker.info:
                                spare = BackendWorker(name, timeout, env=cache_env, adaptive=case_timeout is None)
                                spare.prestart()
                            keep(name, case, result)
                on_pass(name, time.perf_counter() - began)
        finally:
            if spare is not None:
                spare.__exit__(*sys.exc_info())

    with shared_compile_cache() if isolate else contextlib.nullcontext("") as cache_dir:
        for name in plan.backends:
            measure_backend(name, get_backend(name).compile_cache_env(cache_dir) if cache_dir else {})
    return list(measured.values())
