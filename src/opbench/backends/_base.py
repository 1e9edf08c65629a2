"""The backend protocol: how one framework on one device runs a catalog case or a calibration probe.

An adapter has these parts, and nothing else: availability (with a reason), from/to NumPy, force and sync,
compile, one builder per family, and the facts about its framework that the studies need: the precision modes
it offers (and which one gives IEEE float32 or TF32 matmuls), free memory on its device, what its compiler
did, and its calibration probes. A builder turns framework-neutral inputs into a `Prepared` call: the timed
function, its already-materialized native arguments, and an untimed conversion of the output back to the
catalog's canonical (channels-last) layout.

Every framework fact lives behind this interface: nothing outside `backends/` imports a framework or asks
`framework == ...` (`tests/test_layering.py` walks the tree to hold that). Each fact has a default here, so a
new adapter works before it says anything about its framework: a probe it does not provide is `n/a` with a
reason, free memory on an unknown device is None (unknown), an uncompiled backend reports no compiler.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from opbench.backends.arithmetic import narrower_arithmetic
from opbench.catalog import FAMILIES, Case
from opbench.catalog.probes import PROBE_OPS, Probe
from opbench.catalog.user import user_implementation

if TYPE_CHECKING:
    from opbench.engine.modes import DeviceTimer


class CacheFlush(Protocol):
    """A cache flush of the `cold` mode (`Backend.flush_cache`)."""

    def __call__(self) -> None: ...

    def describe(self) -> str: ...

# Lower-case fragments of the allocation-failure messages of the frameworks (and of the C library).
OOM_MARKERS = ("out of memory", "failed to allocate", "can't allocate memory", "cannot allocate memory",
               "resource_exhausted", "resource exhausted", "bad_alloc", "attempting to allocate",
               "not enough memory", "memory allocation failed", "enomem")


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str


@dataclass
class Prepared:
    """A case made ready to time on one backend.

    `op(*args)` is exactly what is timed. `args` are native arrays on the device, already materialized.
    `canonical(out)` is applied to the output after timing (for instance NCHW -> NHWC); it is never timed.
    """

    op: Callable[..., Any]
    args: tuple[Any, ...]
    canonical: Callable[[Any], Any] = field(default=lambda out: out)
    how: str = ""  # what the timed call is, in the framework's words (recorded by calibration probes)
    fresh_outputs: bool = True  # False: writes into a preallocated buffer on purpose (no stale-output check)


Builder = Callable[["Backend", Case, tuple[Any, ...]], Prepared]


@dataclass(frozen=True)
class PrecisionMode:
    """One setting of a framework's float32 matmul precision.

    `enter` is a context-manager factory that applies the setting in this process; `env` are environment
    variables that apply it but are read once at start-up (MLX_ENABLE_TF32), so they need a fresh process.
    `strict` marks the full-float32 setting.
    """

    description: str
    strict: bool = False
    enter: Callable[[], AbstractContextManager[Any]] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def in_force(self) -> bool:
        """Whether this process already runs under the mode's environment variables (always, without any)."""
        return all(os.environ.get(k) == v for k, v in self.env.items())


# Probe ops that an adapter gets from one of its own family builders unless it declares its own.
_PROBE_FAMILIES = {"read": "SumAll", "matmul": "MatMul"}


def host_free_memory() -> int | None:
    """Available host memory in bytes (Linux MemAvailable, else sysconf), None when unknown."""
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return None


class NotForcedError(RuntimeError):
    """A timed output was never forced: its time would measure nothing."""


class Backend:
    """Base adapter. Subclasses set the class attributes and override what their framework needs.

    `lazy` frameworks (MLX) build graphs that only run when forced; for them `force` must dispatch the work
    and `ready` must confirm that the output holds data, or the engine refuses to report a time.
    """

    name: ClassVar[str]
    framework: ClassVar[str]
    device_kind: ClassVar[str] = "cpu"
    compiled: ClassVar[bool] = False
    lazy: ClassVar[bool] = False
    # Whether `from_numpy` may return an array that shares the NumPy input's host memory (torch.from_numpy on
    # the CPU; JAX's `device_put` of a 64-byte-aligned buffer). On a CPU backend that may, the engine reads
    # cached inputs into private memory (`input_cache.case_inputs(private=True)`), so the timed calls read the
    # same kind of memory (anonymous, huge-page eligible) as freshly generated inputs; an adapter that copies
    # every input into its own allocator (MLX, the NumPy adapter) reads the cache's copy-on-write mapping
    # instead and is spared a copy of every input (`tests/test_backends_input_memory.py` checks, on a
    # page-aligned mapped array like a cache entry, that such an adapter really copies). True, the cautious
    # answer, unless an adapter says otherwise.
    shares_input_memory: ClassVar[bool] = True
    builders: ClassVar[dict[str, Builder]] = {}
    # Calibration probes by op (`PROBE_OPS`): `copy` has no default; `read` and `matmul` default to the
    # adapter's SumAll and MatMul builders. A probe builder gets the `catalog.probes.Probe` as its case.
    probes: ClassVar[dict[str, Builder]] = {}

    # Every catalog family is either in `builders` or here, with the reason the adapter cannot run it
    # (`tests/test_backend_completeness.py` fails otherwise): a missing builder is never silently `unsupported`.
    unsupported: ClassVar[dict[str, str]] = {}
    # dtypes the framework cannot hold or compute in, with the reason (NumPy has no bfloat16).
    unsupported_dtypes: ClassVar[dict[str, str]] = {}
    # The framework's distributions, whose versions are recorded with the machine (`opbench.machine.packages`).
    packages: ClassVar[tuple[str, ...]] = ()
    # Set by a worker process: told each case's first-call time as soon as it is known (`opbench.engine.worker`
    # then extends that case's time-out to its expected cost).
    on_first_call: Callable[[float], None] | None = None

    # --- discovery -------------------------------------------------------------------------------------
    def availability(self) -> Availability:
        raise NotImplementedError

    def setup(self) -> None:
        """Import the framework and select the device. Called once in the process that measures."""

    def preload(self) -> None:
        """Import the framework without touching a device, so that a held worker pays for its import before
        its pass begins (`BackendWorker.prestart`). Default: nothing (the import happens in `setup`)."""

    def compile_cache_env(self, directory: str) -> dict[str, str]:
        """Environment variables that let this backend's workers keep compiled executables in `directory` for
        a run's later passes (`worker.shared_compile_cache`); {} when the framework already keeps its own on
        disk between processes, or has nothing to compile. Read before any worker starts."""
        return {}

    def versions(self) -> dict[str, str]:
        return {}

    def settings(self) -> dict[str, Any]:
        """Thread counts and precision modes in force (recorded with every result)."""
        return {}

    def narrower_arithmetic(self, family: str, dtype: str) -> str | None:
        """The narrower arithmetic this process runs `family` in for `dtype` (e.g. `TF32 (cudnn.allow_tf32)`), or
        None; derived from `settings()` by `opbench.backends.arithmetic`, so stored runs can be re-classified."""
        return narrower_arithmetic(self.name, self.settings(), family, dtype)

    def precision_modes(self) -> dict[str, PrecisionMode]:
        """The framework's float32 matmul precision switches, by name (empty: the framework has none)."""
        return {}

    def precision_in_force(self) -> str:
        """What sets the float32 matmul precision when nothing was changed: the precision/TF32 entries of
        `settings()` and the current value of every environment variable a mode would set."""
        in_force = {k: v for k, v in self.settings().items() if "precision" in k or "tf32" in k.lower()}
        for mode in self.precision_modes().values():
            in_force.update({k: os.environ.get(k, "<unset>") for k in mode.env})
        text = ", ".join(f"{k}={v}" for k, v in in_force.items())
        return f"nothing set ({text})" if text else "nothing set (the framework has no switch)"

    def matmul_mode(self, arithmetic: str) -> str | None:
        """The precision mode (a key of `precision_modes()`) under which float32 matmuls on this device run in
        `arithmetic`: "float32" (IEEE) or "TF32" (tensor cores); "" when nothing needs to be set, None when the
        device cannot. Answered without importing the framework (the parent process asks before any worker
        starts). Default: the strict mode, if any, for float32; no TF32."""
        if arithmetic != "float32":
            return None
        return next((name for name, mode in self.precision_modes().items() if mode.strict), "")

    # --- resources -----------------------------------------------------------------------------------
    def free_memory(self) -> int | None:
        """Free bytes where this backend keeps its arrays: host memory for a CPU backend; for a GPU, what its
        adapter reads from the framework, None (unknown) by default. Called after `setup`."""
        return host_free_memory() if self.device_kind != "gpu" else None

    def reset_compile_counters(self) -> None:
        """Zero the compiler's counters before a case whose compilation `compile_counters` reports."""

    def compile_counters(self) -> dict[str, Any]:
        """What the compiler did since `reset_compile_counters`, for a compiled backend: at least `compiler`
        and `fell_back_to_eager` (True when the timed op did not run compiled, so its time is not a compiled
        time); {} for an uncompiled backend."""
        if not self.compiled:
            return {}
        return {"compiler": self.framework, "fell_back_to_eager": False}

    # --- data --------------------------------------------------------------------------------------------
    def from_numpy(self, a: np.ndarray, dtype: str | None = None) -> Any:
        """A native array holding `a`; with `dtype` (a name such as "bfloat16"), converted to that type."""
        raise NotImplementedError

    def dtype_name(self, x: Any) -> str:
        """The element type of a native array as a plain name: `torch.float32`, `mlx.core.float32` -> float32."""
        return str(getattr(x, "dtype", "?")).rsplit(".", 1)[-1]

    def to_numpy(self, x: Any) -> np.ndarray:
        raise NotImplementedError

    def take_rows(self, x: Any, rows: np.ndarray) -> Any:
        return x[rows]

    def output_fingerprint(self, x: Any) -> str | None:
        """An exact identity of native array `x` (its bytes, shape and element type), computed where `x` lives
        without copying it to the host, or None where the adapter has none (the default; CPU backends, whose
        host digest costs no copy). Equal strings mean bit-identical outputs with certainty for any change of
        one element, and with a chance of about 2^-64 per sum of a collision otherwise (`backends._fingerprint`
        states the algorithm and the trade-off). It forces the evaluation of a lazy array. The verdict cache
        (`engine.verdict_cache.fingerprint_key`) uses it to skip the copy and the hash of an output verified
        before."""
        return None

    # --- execution ---------------------------------------------------------------------------------------
    def force(self, out: Any) -> None:
        """Make sure the work that produces `out` is dispatched (no-op for eager frameworks)."""

    def ready(self, out: Any) -> bool:
        """True when `out` is materialized after `force` and `sync` (checked by the engine after every block)."""
        return True

    def same_buffer(self, a: Any, b: Any) -> bool:
        """True when outputs `a` and `b`, both alive, are one result (the engine's stale-output check)."""
        return a is b

    def sync(self) -> None:
        """Block until every dispatched computation on the device has finished."""

    def compile(self, op: Callable[..., Any]) -> Callable[..., Any]:
        return op

    def release(self) -> None:
        """Free cached device memory between cases."""

    # --- timing modes and telemetry (`opbench.engine.modes`, `opbench.engine.telemetry`) -------------------
    def device_timer(self, op: Callable[..., Any], args: tuple[Any, ...], per_call_s: float) -> DeviceTimer:
        """A timer of `op(*args)`'s device time alone (the `device` mode), given the wall-clock estimate of one
        call. The default: none on a CPU backend (`ModeNotApplicable`), CUPTI kernel time through torch.profiler
        on a GPU one (needs a CUDA build of torch in the process). Adapters with something better override it."""
        from opbench.backends._device_timers import ProfilerTimer
        from opbench.engine.modes import ModeNotApplicable

        if self.device_kind == "cpu":
            raise ModeNotApplicable("CPU (no device apart from the host: its time is the latency mode's)")
        return ProfilerTimer(op, args, self.force, self.sync)

    def flush_cache(self) -> CacheFlush:
        """What the `cold` mode calls before each timed call, outside the timed region: a callable that evicts the
        caches the case's data sits in, with `describe()`. CPU backends write a buffer larger than the last-level
        cache (`modes.CPUCacheFlush`); GPU adapters write one larger than the L2. A flush is made for one mode's
        timing and dropped after it, so its buffer never counts in another case's peak memory."""
        from opbench.engine.modes import CPUCacheFlush, ModeNotApplicable

        if self.device_kind != "cpu":
            raise ModeNotApplicable(f"no L2 flush for {self.name}")
        return CPUCacheFlush()

    def reset_peak_memory(self) -> None:
        """Start a new peak of the framework's device memory counter (before a case is timed)."""

    def peak_memory(self) -> tuple[int, str] | None:
        """(peak device bytes since `reset_peak_memory`, the counter that said so), or None where the framework
        has no counter (CPU backends: the telemetry samples the resident memory instead)."""
        return None

    def is_oom(self, exc: BaseException) -> bool:
        """Whether `exc` is an allocation failure: Python's MemoryError, or a framework's own message (torch's
        `DefaultCPUAllocator: can't allocate memory`, `CUDA out of memory`, XLA's `RESOURCE_EXHAUSTED`, MLX's
        `[metal::malloc] Attempting to allocate ...`, a C++ `std::bad_alloc`)."""
        text = str(exc).lower()
        return isinstance(exc, MemoryError) or any(marker in text for marker in OOM_MARKERS)

    # --- cases -------------------------------------------------------------------------------------------
    def builder(self, family: str) -> Builder | None:
        """The adapter's own builder of `family`, else a loaded user catalog's implementation for this
        backend's framework (`catalog.user`), else None."""
        if family in self.builders:
            return self.builders[family]
        factory = user_implementation(family, self.framework)
        if factory is None:
            return None
        return lambda be, case, args: Prepared(factory(case), args)

    def supports(self, family: str) -> bool:
        return self.builder(family) is not None

    def probe_builder(self, op: str) -> Builder | None:
        """The builder of calibration probe `op`: the adapter's own, else (read, matmul) its SumAll/MatMul
        builder, else None."""
        if op in self.probes:
            return self.probes[op]
        family = _PROBE_FAMILIES.get(op)
        return self.builders.get(family) if family else None

    def probe_unavailable(self, op: str) -> str | None:
        """Why this adapter cannot run probe `op` (the calibration records it as n/a), or None."""
        if op not in PROBE_OPS:
            return f"unknown probe {op!r}; valid choices: {', '.join(PROBE_OPS)}"
        if self.probe_builder(op) is None:
            family = _PROBE_FAMILIES.get(op)
            return (f"the {self.name} adapter declares no {op} probe"
                    + (f" and has no {family} builder" if family else ""))
        return None

    def why_unsupported(self, family: str, dtype: str | None = None) -> str | None:
        """Why this backend cannot run `family` in `dtype` (None: it can): the dtype's declared reason, the
        family's declared reason, or for a user family the frameworks its catalog implements."""
        if dtype in self.unsupported_dtypes:
            return f"{self.name} cannot run {dtype}: {self.unsupported_dtypes[dtype]}"
        if self.supports(family):
            return None
        if family in self.unsupported:
            return f"{self.name} does not implement {family}: {self.unsupported[family]}"
        from opbench.catalog.user import unsupported_reason

        return unsupported_reason(self.name, family)

    def prepare(self, case: Case, inputs: tuple[np.ndarray, ...], dtype: str | None = None) -> Prepared:
        """Convert the inputs (data to `dtype` when given, index inputs as they are) and build the call.
        Without `dtype`, `from_numpy` is called with the array alone (the adapter's own default conversion)."""
        index = case.spec.index_inputs
        native = tuple(self.from_numpy(a) if dtype is None or i in index else self.from_numpy(a, dtype)
                       for i, a in enumerate(inputs))
        build = self.builder(case.family)
        if build is None:
            raise KeyError(f"{self.name} has no implementation of {case.family}")
        prepared = build(self, case, native)
        self.sync()
        return prepared

    def prepare_probe(self, probe: Probe, inputs: tuple[np.ndarray, ...], dtype: str) -> Prepared:
        """Convert the probe's inputs to `dtype` and build its call (`probe_builder`)."""
        build = self.probe_builder(probe.op)
        if build is None:
            raise KeyError(self.probe_unavailable(probe.op))
        prepared = build(self, probe, tuple(self.from_numpy(a, dtype) for a in inputs))
        self.sync()
        return prepared


def undeclared_families(adapter: type[Backend]) -> dict[str, str]:
    """What is wrong with an adapter's family declarations, by family: a catalog family with neither a builder
    nor a declared reason, one with both, a declared reason that is empty, or a name that is no family."""
    problems: dict[str, str] = {}
    for family in FAMILIES:
        built, declared = family in adapter.builders, family in adapter.unsupported
        if not built and not declared:
            problems[family] = "no builder and no declared reason"
        elif built and declared:
            problems[family] = "a builder and a declared reason"
        elif declared and not str(adapter.unsupported[family]).strip():
            problems[family] = "declared unsupported with an empty reason"
    for family in set(adapter.builders) | set(adapter.unsupported):
        if family not in FAMILIES:
            problems[family] = "not a catalog family"
    return problems


def simple_builder(make: Callable[[], Callable[..., Any]]) -> Builder:
    """A builder whose timed function is made at prepare time, once the framework is imported, so a timed call
    is the framework's own function (or a one-line closure over it): no import, attribute lookup or wrapper
    inside the timed loop. Used by the eager adapters (torch, MLX)."""
    return lambda be, case, args: Prepared(make(), args)


def axis_builder(make: Callable[[int], Callable[..., Any]]) -> Builder:
    """`simple_builder` for families with an axis: `make(case.axis)` gives the timed function."""
    return lambda be, case, args: Prepared(make(case.axis), args)


def missing_module_reason(module: str, extra: str) -> str:
    return f"{module} is not installed (pip install 'opbench[{extra}]')"
