"""The backend protocol: how one framework on one device runs a catalog case.

An adapter has these parts, and nothing else: availability (with a reason), from/to NumPy, force and sync,
compile, and one builder per family. A builder turns framework-neutral inputs into a `Prepared` call: the
timed function, its already-materialized native arguments, and an untimed conversion of the output back to
the catalog's canonical (channels-last) layout.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from opbench.catalog import Case

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
    builders: ClassVar[dict[str, Builder]] = {}
    # Set by a worker process: told each case's first-call time as soon as it is known (`opbench.engine.worker`
    # then extends that case's time-out to its expected cost).
    on_first_call: Callable[[float], None] | None = None

    # --- discovery -------------------------------------------------------------------------------------
    def availability(self) -> Availability:
        raise NotImplementedError

    def setup(self) -> None:
        """Import the framework and select the device. Called once in the process that measures."""

    def versions(self) -> dict[str, str]:
        return {}

    def settings(self) -> dict[str, Any]:
        """Thread counts and precision modes in force (recorded with every result)."""
        return {}

    def narrower_arithmetic(self, family: str, dtype: str) -> str | None:
        """The narrower arithmetic this process runs `family` in for `dtype` (e.g. `TF32 (cudnn.allow_tf32)`), or
        None; derived from `settings()` by `opbench.engine.arithmetic`, so stored runs can be re-classified."""
        from opbench.engine.arithmetic import narrower_arithmetic

        return narrower_arithmetic(self.name, self.settings(), family, dtype)

    def precision_modes(self) -> dict[str, PrecisionMode]:
        """The framework's float32 matmul precision switches, by name (empty: the framework has none)."""
        return {}

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
        from opbench.catalog.user import user_builder

        return user_builder(family, self.framework)

    def supports(self, family: str) -> bool:
        return self.builder(family) is not None

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
