"""Run a plan (cases x backends): prepare, time, verify, and turn every outcome into a `CaseResult`.

`measure_case` is the unit of work: it never raises for a problem with the case itself. An exception, an
out-of-memory or a never-forced output becomes a result with its status and message, so one bad case on one
backend cannot end the run. `run_plan` walks backends in the seed's column order and cases in catalog order,
calling `on_result` as each case finishes, so that results already measured are never lost.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

import numpy as np

from opbench.backends import Backend, NotForcedError, get_backend
from opbench.catalog import Case
from opbench.catalog.user import unsupported_reason
from opbench.engine import contention
from opbench.engine.input_cache import case_inputs
from opbench.engine.passes import combine, passes_done
from opbench.engine.phases import WALL, PhaseClock
from opbench.engine.phases import add as add_phases
from opbench.engine.prefetch import Prefetcher
from opbench.engine.reference_cache import expected_for
from opbench.engine.timing import TimingSettings, measure
from opbench.engine.verify import Verdict, verify
from opbench.results import CaseResult

DEFAULT_TIMING = TimingSettings()


@dataclass(frozen=True)
class Plan:
    cases: tuple[Case, ...]
    backends: tuple[str, ...]
    dtype: str = "float32"
    seed: int = 0
    timing: TimingSettings = DEFAULT_TIMING
    processes: int = 1  # passes per backend, each in a fresh worker process (`opbench.engine.passes`): the units

    def unit_timing(self) -> TimingSettings:
        """The timing settings of one pass: the case budget split across the passes."""
        return self.timing.per_unit(self.processes)

    def pairs(self) -> list[tuple[str, Case]]:
        return [(b, c) for b in self.backends for c in self.cases]

    def passes_left(self, prior: Mapping[tuple[str, str], CaseResult]) -> int:
        """Case measurements still to make, given what `prior` holds (for a progress bar)."""
        return sum(int(max(0, self.processes - passes_done(prior.get((b, c.name))))) for b, c in self.pairs())


def verify_output(backend: Backend, case: Case, inputs: tuple[np.ndarray, ...], out: np.ndarray, dtype: str,
                  seed: int, out_dtype: str | None = None) -> Verdict:
    """Every element of `out` against the case's expectation (from the reference cache), under the arithmetic the
    backend reports for this family and dtype (`Backend.narrower_arithmetic`)."""
    exp = expected_for(case, inputs, dtype, seed)
    return verify(case, inputs, out, dtype, backend.narrower_arithmetic(case.family, dtype), out_dtype, exp)


def _base(case: Case, backend: Backend, dtype: str) -> dict:
    return {"case": case.name, "family": case.family, "backend": backend.name, "dtype": dtype,
            "flops": case.flops, "bytes": case.bytes_moved(dtype)}


def release_case_memory(backend: Backend) -> None:
    """Free what the case left behind: a full garbage collection (device arrays caught in reference cycles),
    then the framework's cached device memory (`Backend.release`).

    The survivors of the collection are then frozen (`gc.freeze`): a framework imports a few hundred thousand
    long-lived objects, and a full collection that walks them all took 190-230 ms per case with torch, JAX
    and MLX imported (2-core VM); frozen, the next collection walks only what later cases made (well under
    a millisecond). Trade-off: a frozen object that later becomes cyclic garbage is never collected; what
    survives a full collection between cases is the framework's own state, not the cases' arrays.
    """
    gc.collect()
    gc.freeze()
    with contextlib.suppress(Exception):
        backend.release()


def measure_case(backend: Backend, case: Case, dtype: str = "float32", seed: int = 0,
                 timing: TimingSettings = DEFAULT_TIMING) -> CaseResult:
    """Prepare, time and verify one case on an already set-up backend."""
    base = _base(case, backend, dtype)
    if not backend.supports(case.family):
        return CaseResult(status="unsupported", error=unsupported_reason(backend.name, case.family), **base)
    with warnings.catch_warnings(record=True) as caught:  # into the result, not onto the progress bar
        warnings.simplefilter("default")
        result = _measure_verified(backend, case, dtype, seed, timing, base)
    said = tuple(dict.fromkeys(f"{w.category.__name__}: {str(w.message).splitlines()[0][:300]}"
                               for w in caught if str(w.message)))
    return replace(result, warnings=said) if said else result


def _measure_verified(backend: Backend, case: Case, dtype: str, seed: int, timing: TimingSettings,
                      base: dict) -> CaseResult:
    clock = PhaseClock()
    try:
        with clock("inputs"):
            inputs = case_inputs(case, dtype, seed, private=backend.device_kind == "cpu")
        with clock("transfer"):
            # bfloat16 inputs are float32 arrays of bfloat16 values (catalog._bfloat16): the adapter converts them
            prepared = backend.prepare(case, inputs, dtype) if dtype == "bfloat16" else backend.prepare(case, inputs)
            op = backend.compile(prepared.op) if backend.compiled else prepared.op
        with contention.watch() as conditions:
            result, out = measure(op, prepared.args, backend, timing)
        clock.add("first_call", result.first_call_s)
        clock.add("warmup", result.warmup_s)
        clock.add("samples", result.sampling_s)
        with clock("output"):
            canonical = prepared.canonical(out)
            out_dtype = backend.dtype_name(canonical)
            out_np = backend.to_numpy(canonical)
            del out, canonical, prepared
        with clock("reference"):
            exp = expected_for(case, inputs, dtype, seed)
        with clock("verify"):
            verdict = verify(case, inputs, out_np, dtype, backend.narrower_arithmetic(case.family, dtype), out_dtype,
                             exp)
    except NotForcedError as exc:
        return CaseResult(status="not-forced", error=str(exc), phases_ms=clock.rounded(), **base)
    except Exception as exc:
        status = "oom" if backend.is_oom(exc) else "error"
        message = f"{type(exc).__name__}: {exc}".strip().splitlines()
        return CaseResult(status=status, error=message[0][:500] if message else type(exc).__name__,
                          detail="".join(traceback.format_exception_only(type(exc), exc))[-2000:],
                          phases_ms=clock.rounded(), **base)
    finally:
        with clock("cleanup"):
            release_case_memory(backend)
    return CaseResult(
        status=verdict.status,
        samples_ms=tuple(s * 1e3 for s in result.samples_s),
        calls_per_sample=result.calls_per_sample,
        first_call_ms=result.first_call_s * 1e3,
        warmup_calls=result.warmup_calls,
        stop_reason=result.stop_reason,
        rel_error=verdict.rel_error,
        tolerance=verdict.tolerance,
        detail=verdict.detail,
        conditions=conditions,
        phases_ms=clock.rounded(),
        **base,
    )


def _off_host(name: str) -> bool:
    """Whether backend `name` measures a device other than the host CPU (GPU work overlaps host work)."""
    try:
        return get_backend(name).device_kind != "cpu"
    except Exception:
        return False


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
             prior: Mapping[tuple[str, str], CaseResult] | None = None, isolate: bool = True,
             case_timeout: float | None = None,
             on_backend: Callable[[str, dict], None] = lambda name, info: None,
             on_start: Callable[[str, Case], None] = lambda name, case: None,
             on_pass: Callable[[str, float], None] = lambda name, seconds: None) -> list[CaseResult]:
    """Measure every (backend, case) pair in order, `plan.processes` passes each; `prior` holds results already
    measured, keyed by (backend, case name): a pair is measured only for the passes it lacks (see
    `passes.passes_done`), and new passes are combined with it (`passes.combine`).

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
    from opbench.engine.worker import BackendWorker, default_case_timeout, shared_compile_cache

    if plan.processes < 1 or (plan.processes > 1 and not isolate):
        raise ValueError("processes must be >= 1, and more than one needs isolated worker processes")
    current = dict(prior or {})
    timeout = case_timeout if case_timeout is not None else default_case_timeout(plan.timing)
    measured: dict[tuple[str, str], CaseResult] = {}

    def keep(name: str, case: Case, result: CaseResult) -> None:
        key = (name, case.name)
        current[key] = measured[key] = combine(current.get(key), result)
        on_result(current[key])

    def measure_backend(name: str, cache_env: dict[str, str]) -> None:
        reported = False
        off_host = _off_host(name)
        spare: BackendWorker | None = None  # the next pass's worker, importing its framework meanwhile
        try:
            while todo := [c for c in plan.cases if passes_done(current.get((name, c.name))) < plan.processes]:
                began = time.perf_counter()
                if not isolate:
                    backend = get_backend(name)
                    backend.setup()
                    on_backend(name, {"versions": backend.versions(), "settings": backend.settings()})
                    for case in todo:
                        on_start(name, case)
                        t0 = time.perf_counter()
                        result = measure_case(backend, case, plan.dtype, plan.seed, plan.unit_timing())
                        keep(name, case, replace(result, phases_ms=add_phases(
                            result.phases_ms, {WALL: (time.perf_counter() - t0) * 1e3})))
                    on_pass(name, time.perf_counter() - began)
                    break
                # one pass: every case still short of passes; a GPU backend's inputs and references made ahead
                worker = spare or BackendWorker(name, timeout, env=cache_env, adaptive=case_timeout is None)
                spare = None
                another = off_host and any(passes_done(current.get((name, c.name))) + 1 < plan.processes for c in todo)
                with worker, prefetcher(name, todo, plan, off_host) as ahead:
                    for case in todo:
                        on_start(name, case)
                        ahead.advance(case)
                        result = worker.measure(case, plan.dtype, plan.seed, plan.unit_timing())
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

    with shared_compile_cache() if isolate else contextlib.nullcontext({}) as cache_env:
        for name in plan.backends:
            measure_backend(name, cache_env)
    return list(measured.values())
