"""Run one task in this process: prepare -> time -> verify -> one `Measurement`. The only measuring code.

`run_task` is what a worker process does with each task it receives (`opbench.engine.worker`), and what a
study does in-process when it is asked to (tests, debugging). It never raises for a problem with the task:
an adapter without the family or probe, a precision mode this process cannot apply, an exception while
preparing or timing (an allocation failure is marked as such), an output that was never forced, a compiler
that silently ran the op eagerly, a failure while checking the output: each becomes a measurement with its
status, the phase it happened in, and the framework's own words.

Steps:
1. **Support.** The adapter's builder for the case's family (or the probe op); none: `unsupported`, with the
   reason (`Backend.why_unsupported`: declared or a user catalog's, `Backend.probe_unavailable`).
2. **Mode.** The task's precision mode is entered (in-process modes) or checked to be in force (modes set by
   environment variables, which only a process started with them has); the float32 matmul precision in force
   is recorded either way.
3. **Prepare.** Inputs from the catalog (seeded; from the input cache, `engine.input_cache`), converted by the
   adapter (`Task.check` says how), built into the timed call, compiled for compiled backends; the
   compiler's counters are reset first.
4. **Time.** `opbench.engine.timing.measure`, bracketed by `contention.watch`; the compiler's counters are read after.
   A compiled backend whose compiler fell back to eager gets no time: it would not be a compiled time.
5. **Verify.** The output goes back to NumPy in the canonical layout and is checked against the float64
   expectation (`reference_cache.expected_for`), as `Task.check` says. Probes are not verified. An output
   whose device fingerprint (`Backend.output_fingerprint`) is that of an output verified before gets that
   verdict without being copied to the host (`verdict_cache`; the measurement's conditions count it under
   `verdict_cache.FINGERPRINT_HITS`).
The framework's cached memory is released after every task, whatever happened (`release_case_memory`).
Every phase's wall time is recorded (`engine.phases`), for failures as far as they got.
"""

from __future__ import annotations

import contextlib
import gc
import traceback
import warnings
from dataclasses import replace
from typing import Any

import numpy as np

from opbench.backends import Backend, NotForcedError
from opbench.backends._base import PrecisionMode
from opbench.catalog import Case
from opbench.catalog.probes import Probe
from opbench.engine import contention, verdict_cache
from opbench.engine.input_cache import case_inputs
from opbench.engine.modes import ModeNotApplicable, not_applicable_error
from opbench.engine.phases import PhaseClock
from opbench.engine.reference_cache import expected_for
from opbench.engine.task import UNVERIFIED, Measurement, Task
from opbench.engine.telemetry import ENERGY_MIN_REGION_S, CaseTelemetry, process_gpu
from opbench.engine.timing import measure
from opbench.engine.verify import REDUCED, WRONG, Verdict, builtin, verify
from opbench.results.status import Status

# The narrower arithmetics a silent conversion of each dtype would use, most likely first (check `inferred`).
NARROWER = {"float64": ("float32",), "float32": ("TF32", "bfloat16")}


def run_task(backend: Backend, task: Task) -> Measurement:
    """Measure `task` on `backend` (already set up) in this process (steps in the module docstring)."""
    why = _unsupported(backend, task.subject, task.dtype)
    if why:
        return Measurement.failure(task, Status.UNSUPPORTED, why, "support")
    try:
        mode = _precision_mode(backend, task.precision_mode)
        precision = {"precision": mode.description if mode else backend.precision_in_force(),
                     "strict": bool(mode and mode.strict)}
    except Exception as exc:  # an unknown mode, one that needs a fresh process, a framework that cannot say
        return Measurement.failure(task, Status.ERROR, _first_line(exc), "mode")
    enter = mode.enter if mode is not None and mode.enter is not None else contextlib.nullcontext
    clock = PhaseClock()
    with warnings.catch_warnings(record=True) as caught:  # into the measurement, not onto the progress bar
        warnings.simplefilter("default")
        try:
            with enter():
                measurement = _prepare_time_verify(backend, task, clock)
        except Exception as exc:  # entering or leaving the mode failed
            measurement = Measurement.failure(task, Status.ERROR, _first_line(exc), "mode")
        finally:
            with clock("cleanup"):
                release_case_memory(backend)
    said = tuple(dict.fromkeys(f"{w.category.__name__}: {str(w.message).splitlines()[0][:300]}"
                               for w in caught if str(w.message)))
    return replace(measurement, warnings=said, phases_ms=clock.rounded(), **precision)


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


def _unsupported(backend: Backend, subject: Case | Probe, dtype: str) -> str | None:
    if isinstance(subject, Probe):
        if dtype in backend.unsupported_dtypes:
            return f"{backend.name} cannot run {dtype}: {backend.unsupported_dtypes[dtype]}"
        return backend.probe_unavailable(subject.op)
    return backend.why_unsupported(subject.family, dtype)


def _precision_mode(backend: Backend, name: str) -> PrecisionMode | None:
    if not name:
        return None
    modes = backend.precision_modes()
    if name not in modes:
        raise ValueError(f"{backend.name} has no precision mode {name!r}; valid choices: {', '.join(modes) or 'none'}")
    mode = modes[name]
    if not mode.in_force():
        env = " ".join(f"{k}={v}" for k, v in mode.env.items())
        raise ValueError(f"precision mode {name!r} is read once at start-up: it needs a process started with {env}")
    return mode


def _prepare_time_verify(backend: Backend, task: Task, clock: PhaseClock) -> Measurement:
    subject, dtype = task.subject, task.dtype
    in_dtype = ""
    try:
        with clock("inputs"):
            if isinstance(subject, Probe):
                inputs = subject.make_inputs(dtype, task.seed)
            else:
                inputs = case_inputs(subject, dtype, task.seed,
                                     private=backend.device_kind == "cpu" and backend.shares_input_memory)
        with clock("transfer"):
            if isinstance(subject, Probe):
                prepared = backend.prepare_probe(subject, inputs, dtype)
            elif task.check == "inferred":  # exactly `dtype`, and the type that arrived is recorded
                data = next(i for i in range(len(inputs)) if i not in subject.spec.index_inputs)
                in_dtype = backend.dtype_name(backend.from_numpy(inputs[data], dtype))
                prepared = backend.prepare(subject, inputs, dtype)
            elif dtype == "bfloat16":  # float32 arrays of bfloat16 values (catalog._bfloat16): the adapter converts
                prepared = backend.prepare(subject, inputs, dtype)
            else:
                prepared = backend.prepare(subject, inputs)
            backend.reset_compile_counters()
            op = backend.compile(prepared.op) if backend.compiled else prepared.op
    except Exception as exc:
        return _failed(backend, task, exc, "prepare")
    try:
        timing, out, conditions = _time_in_mode(backend, task, op, prepared)
        clock.add("first_call", timing.first_call_s)
        clock.add("warmup", timing.warmup_s)
        clock.add("samples", timing.sampling_s)
        compiled = backend.compile_counters()
    except ModeNotApplicable as why:  # the timing mode does not apply to this backend: say why, no time
        return Measurement.failure(task, Status.UNSUPPORTED, not_applicable_error(str(why)), "time")
    except NotForcedError as exc:
        return Measurement.failure(task, Status.NOT_FORCED, str(exc), "time")
    except Exception as exc:
        return _failed(backend, task, exc, "time")
    del op
    facts: dict[str, Any] = {"in_dtype": in_dtype, "how": prepared.how, "compile": compiled, "conditions": conditions,
                             "method": str(timing.extra.get("method", ""))}
    if compiled.get("fell_back_to_eager"):
        return Measurement.failure(task, Status.ERROR, f"{compiled.get('compiler', 'the compiler')} fell back to eager "
                                   f"(counters: {compiled}); the time would not be a compiled time and is discarded",
                                   "time", **facts)
    if task.check == "none":
        return Measurement(task, UNVERIFIED, timing, **facts)
    assert isinstance(subject, Case)
    try:
        with clock("output"):
            canonical = prepared.canonical(out)
            facts["out_dtype"] = backend.dtype_name(canonical)
        fingerprint_key = _fingerprint_key(backend, task, subject, canonical, clock)
        known = verdict_cache.lookup(fingerprint_key) if fingerprint_key else None
        if known is not None:  # an identical output was verified before: no copy, no hash, no float64 work
            facts["conditions"] = {**conditions, verdict_cache.FINGERPRINT_HITS: 1}
            return Measurement(task, known.status, timing, known.rel_error, known.tolerance, known.detail, **facts)
        with clock("output"):
            out_np = backend.to_numpy(canonical)
            del out, canonical, prepared
        verdict, largest = _verify(backend, task, subject, inputs, out_np, facts["out_dtype"], clock)
        if fingerprint_key:
            verdict_cache.store(fingerprint_key, verdict)
    except Exception as exc:
        return replace(_failed(backend, task, exc, "verify"), timing=timing, **facts)
    return Measurement(task, verdict.status, timing, verdict.rel_error, verdict.tolerance, verdict.detail,
                       largest_exact=largest, **facts)


def _fingerprint_key(backend: Backend, task: Task, case: Case, out: Any, clock: PhaseClock) -> str | None:
    """The verdict-cache key of `out` from its device fingerprint (`Backend.output_fingerprint`, timed under
    `verify`), or None: the check is not `reported`, the cache is off, the case is a user's, the output is
    smaller than `verdict_cache.FINGERPRINT_MIN_BYTES` (its copy and hash cost less), the adapter has no
    fingerprint, or computing it failed (that only loses the shortcut: the output is then copied and hashed)."""
    if task.check != "reported" or not verdict_cache.enabled() or not builtin(case):
        return None
    nbytes = getattr(out, "nbytes", None)
    if isinstance(nbytes, int) and nbytes < verdict_cache.FINGERPRINT_MIN_BYTES:
        return None
    with clock("verify"):
        try:
            fingerprint = backend.output_fingerprint(out)
        except Exception:
            return None
        if not fingerprint:
            return None
        mode = backend.narrower_arithmetic(case.family, task.dtype)
        return verdict_cache.fingerprint_key(case, task.dtype, task.seed, mode, backend.framework, fingerprint)


def _time_in_mode(backend: Backend, task: Task, op: Any, prepared: Any) -> tuple[Any, Any, dict[str, Any]]:
    """`timing.measure` in the task's timing mode, bracketed by `contention.watch` and the telemetry
    (`engine.telemetry`: NVML on GPU backends, which lengthens the sample region to its energy counter's 0.1 s
    where `settings.energy_region` asks for it, and shortens a later unit's by what that cost,
    `TimingSettings.later_unit`; CPU frequency and peak memory everywhere)."""
    settings = task.timing
    gpu = process_gpu() if backend.device_kind == "gpu" else None
    if gpu is not None and settings.energy_region and settings.min_region_s < ENERGY_MIN_REGION_S:
        settings = replace(settings, min_region_s=ENERGY_MIN_REGION_S)
    settings = settings.without_energy_offset(lengthened=gpu is not None)
    with contention.watch() as conditions, CaseTelemetry(backend, gpu) as telemetry:
        timing, out = measure(op, prepared.args, backend, settings, fresh_outputs=prepared.fresh_outputs,
                              mode=task.mode, region=telemetry.region)
    readings = {**conditions, **telemetry.conditions(task.mode, str(timing.extra.get("method", "")))}
    if task.mode == "cold" and "peak_memory_source" in readings:  # the flush buffer was alive while it was taken
        readings["peak_memory_source"] += " (includes the cache-flush buffer)"
    return timing, out, readings


def _verify(backend: Backend, task: Task, case: Case, inputs: tuple[np.ndarray, ...], out: np.ndarray,
            out_dtype: str, clock: PhaseClock) -> tuple[Verdict, float | None]:
    dtype = task.dtype
    if task.check == "reported":
        return _verify_reported(backend, task, case, inputs, out, out_dtype, clock), None
    with clock("reference"):
        exp = expected_for(case, inputs, dtype, task.seed)
    with clock("verify"):
        verdict = narrower_fit(case, inputs, out, dtype, exp, verify(case, inputs, out, dtype, check_dtype=False,
                                                                     exp=exp))
        if verdict.status != WRONG:
            return verdict, None
        ref = case.reference(inputs)
        return verdict, float(np.max(np.abs(ref))) if ref.size else 0.0


def _verify_reported(backend: Backend, task: Task, case: Case, inputs: tuple[np.ndarray, ...], out: np.ndarray,
                     out_dtype: str, clock: PhaseClock) -> Verdict:
    """Every element of `out` under the mode the backend reports, or the verdict of a bit-identical output
    verified before (`verdict_cache`: the passes of one case, and backends that return the same bits)."""
    dtype = task.dtype
    mode = backend.narrower_arithmetic(case.family, dtype)
    key = None
    if verdict_cache.enabled() and builtin(case):
        with clock("verify"):
            key = verdict_cache.verdict_key(case, dtype, task.seed, mode, verdict_cache.output_digest(out, out_dtype))
            known = verdict_cache.lookup(key)
        if known is not None:
            return known
    with clock("reference"):
        exp = expected_for(case, inputs, dtype, task.seed)
    with clock("verify"):
        verdict = verify(case, inputs, out, dtype, mode, out_dtype, exp)
        if key is not None:
            verdict_cache.store(key, verdict)
    return verdict


def verify_output(backend: Backend, case: Case, inputs: tuple[np.ndarray, ...], out: np.ndarray, dtype: str,
                  seed: int, out_dtype: str | None = None) -> Verdict:
    """Every element of `out` against the case's expectation (from the reference cache), under the arithmetic the
    backend reports for this family and dtype (`Backend.narrower_arithmetic`)."""
    exp = expected_for(case, inputs, dtype, seed)
    return verify(case, inputs, out, dtype, backend.narrower_arithmetic(case.family, dtype), out_dtype, exp)


def narrower_fit(case: Case, inputs: tuple[np.ndarray, ...], out: np.ndarray, dtype: str, exp: Any,
                 verdict: Verdict) -> Verdict:
    """A `wrong` verdict that a narrower arithmetic explains becomes `reduced-precision` with that arithmetic
    named: the dtype study looks for silent narrowing, which no backend reports (unlike `run`, where only a
    reported mode earns `reduced-precision`)."""
    if verdict.status != WRONG:
        return verdict
    for word in NARROWER.get(dtype, ()):
        fit = verify(case, inputs, out, dtype, mode=f"{word} (inferred)", check_dtype=False, exp=exp)
        if fit.status == REDUCED:  # keep the dtype's own bound as the expected error
            return Verdict(REDUCED, fit.rel_error, verdict.tolerance, fit.detail)
    return verdict


def _first_line(exc: BaseException) -> str:
    lines = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return lines[0][:500] if lines else type(exc).__name__


def _failed(backend: Backend, task: Task, exc: BaseException, phase: str) -> Measurement:
    oom = backend.is_oom(exc)
    return Measurement.failure(task, Status.OOM if oom else Status.ERROR, _first_line(exc), phase, oom=oom,
                               trace="".join(traceback.format_exception_only(type(exc), exc))[-2000:])


# --- small questions a study asks the measuring process (sent to a worker like a task) ------------------------


def free_memory(backend: Backend) -> int | None:
    """Free bytes where `backend` keeps its arrays (`Backend.free_memory`); None when it cannot say."""
    with contextlib.suppress(Exception):
        return backend.free_memory()
    return None
