"""The dtype study: which backend runs which family in which dtype, how precisely, and how fast.

For every backend x dtype x family (one representative case per family, or all cases) `measure_cell` records

- a **status**, decided in this order:
  1. `n/a` when the family is not defined on integers (softmax on int32) - nothing is run;
  2. `unsupported` when the adapter has no implementation, or the framework raises while converting the inputs
     or running the op (the framework's own error text is kept);
  3. `silently-converted` when the data handed over in dtype T comes back from `from_numpy` in another type,
     when the output's type differs from what the family must return (float64 in, float32 out; int32 in,
     int64 out is recorded the same way but marked *widened*, because nothing was lost), or when the output
     has the right type but an error above what correct arithmetic in T allows (verify's `reduced-precision`:
     float64 computed with float32-level error, float32 computed in TF32). The detail names the widest type
     whose expected error covers the measured one;
  4. `wrong` when the result is outside every plausible rounding (verify's `wrong`, or an inexact integer result),
     except that a result whose exact value does not fit in the dtype (a float16 sum beyond 65504) is `n/a`;
  5. `ok` otherwise.
- the **relative error** ‖out − ref‖/‖ref‖ against the float64 NumPy reference computed from exactly the values the
  backend saw, and the **expected error** for that dtype (`verify.tolerance`);
- the **median time** per call from the core timing engine, with a short budget: in this study time is secondary
  to status and error, and the per-cell budget bounds the whole matrix to minutes.

The matmul precision study runs one square matmul per backend and dtype with nothing changed (`as-is`), and in
float32 under each of the framework's precision modes (`Backend.precision_modes`): modes that work in-process
are entered around preparation and timing; modes set by environment variables read once at start-up
(MLX_ENABLE_TF32) need a process started with them. The unit of work is a `WorkItem`, which becomes one task
of the engine (`WorkItem.task`, check `inferred`: see `opbench.engine.task`); `run_isolated` measures a
backend's items in its worker processes (`opbench.engine.Engine`), so that a crash or a hang costs one item,
not the study, and `cell_from` turns each measurement into a cell by the rules above. Nothing here times or
verifies anything itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from opbench.backends._base import Backend
from opbench.catalog import Case
from opbench.engine.engine import Engine
from opbench.engine.execute import run_task
from opbench.engine.task import Measurement, Task
from opbench.engine.timing import TimingSettings
from opbench.engine.verify import OK, REDUCED, WRONG, expected_output_dtype
from opbench.results.formats import DTYPES
from opbench.results.status import Status

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
INT_DTYPES = ("int32", "int64")
STUDY_DTYPES = (*FLOAT_DTYPES, *INT_DTYPES)

# A cell's statuses, from the one vocabulary of results (`results.status`).
NA = Status.NOT_APPLICABLE
UNSUPPORTED = Status.UNSUPPORTED
CONVERTED = Status.CONVERTED
ERROR = Status.ERROR  # opbench itself failed (a never-forced output, a conversion back to NumPy that broke)
CRASHED = Status.CRASHED  # the backend's process died on this item (`run_isolated`)
TIMEOUT = Status.TIMEOUT  # the backend's process gave no result in time and was killed (`run_isolated`)
STATUSES = (OK, CONVERTED, UNSUPPORTED, WRONG, NA, ERROR, CRASHED, TIMEOUT)

DEFAULT_ITEM_TIMEOUT_S = 300.0
# how a worker failure reads as a cell status (an out-of-memory kill is a crash of the item)
FAILURE_STATUS = {"setup-error": UNSUPPORTED, "error": ERROR, "timeout": TIMEOUT, "crashed": CRASHED, "oom": CRASHED}

MATRIX_MODE = ""  # the `mode` of a matrix cell: no precision mode involved
DEFAULT_MODE = "as-is"  # nothing set: the framework default, unless the environment changed it
MATRIX_TIMING = TimingSettings(budget_s=0.05, min_samples=3, block_s=0.005, max_warmup=10)
PRECISION_TIMING = TimingSettings(budget_s=0.3, min_samples=5, block_s=0.02, max_warmup=20)

# Largest finite value per dtype: a result beyond it cannot be represented, so the cell is n/a, not wrong.
_LARGEST = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38, "float32": 3.4028234663852886e38,
            "int32": 2.0**31 - 1}

_BITS = {"float16": 16, "bfloat16": 16, "float32": 32, "float64": 64, "int8": 8, "int16": 16, "int32": 32,
         "int64": 64, "uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64, "bool": 1}


@dataclass(frozen=True)
class Cell:
    """One backend x dtype x case of the matrix (or one matmul under one precision mode)."""

    backend: str
    family: str
    case: str
    dtype: str
    status: str
    detail: str = ""
    error: str = ""
    in_dtype: str = ""
    out_dtype: str = ""
    rel_error: float | None = None
    expected_error: float | None = None
    samples_ms: tuple[float, ...] = ()
    flops: int = 0
    mode: str = ""  # MATRIX_MODE for a matrix cell, else the matmul precision mode (DEFAULT_MODE: as-is)
    mode_description: str = ""
    strict: bool = False
    widened: bool = False

    @property
    def median_ms(self) -> float | None:
        return float(np.median(self.samples_ms)) if self.samples_ms else None

    @property
    def gflops(self) -> float | None:
        m = self.median_ms
        return self.flops / (m * 1e6) if m and self.flops else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["samples_ms"] = list(self.samples_ms)
        d["median_ms"] = self.median_ms
        for key in ("rel_error", "expected_error"):
            if d[key] is not None and not math.isfinite(d[key]):
                d[key] = str(d[key])  # JSON has no inf/nan
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cell:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["samples_ms"] = tuple(float(x) for x in kw.get("samples_ms", ()))
        for key in ("rel_error", "expected_error"):
            if isinstance(kw.get(key), str):
                kw[key] = float(kw[key])
        return cls(**kw)


@dataclass
class Study:
    """Everything one `opbench dtypes` invocation measured, plus what is needed to interpret it."""

    run_id: str
    created: str
    machine: dict[str, Any] = field(default_factory=dict)
    backends: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    precision: list[Cell] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**DTYPES.header(), "run_id": self.run_id,
                "created": self.created, "machine": self.machine, "backends": self.backends,
                "settings": self.settings, "cells": [c.to_dict() for c in self.cells],
                "precision": [c.to_dict() for c in self.precision]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Study:
        return cls(run_id=d["run_id"], created=d["created"], machine=d.get("machine", {}),
                   backends=d.get("backends", {}), settings=d.get("settings", {}),
                   cells=[Cell.from_dict(c) for c in d.get("cells", [])],
                   precision=[Cell.from_dict(c) for c in d.get("precision", [])])


# ------------------------------------------------------------------------------------------------ choosing


def representative_cases(cases: Iterable[Case], every_case: bool = False) -> list[Case]:
    """The first case of each family in catalog order (or every case, once: scaled presets can map two seed
    cases onto the same shapes)."""
    if every_case:
        return list({c.name: c for c in cases}.values())
    first: dict[str, Case] = {}
    for c in cases:
        first.setdefault(c.family, c)
    return list(first.values())


def is_integer(dtype: str) -> bool:
    return dtype.startswith(("int", "uint"))


def matmul_case(n: int) -> Case:
    """The square matmul of the precision study."""
    return Case("MatMul", ((n, n), (n, n)))


# ---------------------------------------------------------------------------------------------- measuring


def first_line(exc: BaseException) -> str:
    lines = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def _widened(src: str, dst: str) -> bool:
    """True when `dst` holds every value of `src` (same kind, more bits): int32 -> int64, float16 -> float32."""
    same_kind = is_integer(src) == is_integer(dst) and src.startswith("u") == dst.startswith("u")
    return same_kind and _BITS.get(dst, 0) > _BITS.get(src, 64)


def precision_like(err: float) -> str:
    """The float type whose unit roundoff u is nearest (on a log scale) to the measured error: what the error
    looks like. On zero-mean data a correct dot product lands near u/2 to a few u, whatever its length, so the
    nearest u names the arithmetic that was used (TF32 has float16's 10-bit mantissa, so they look alike)."""
    if not err > 0:
        return "exact arithmetic"
    candidates = (("float64", 2.0**-53), ("float32", 2.0**-24), ("float16/TF32", 2.0**-11), ("bfloat16", 2.0**-8))
    return min(candidates, key=lambda nu: abs(math.log(err / nu[1])))[0]


def measure_cell(backend: Backend, case: Case, dtype: str, seed: int = 0,
                 timing: TimingSettings = MATRIX_TIMING, mode: str = "") -> Cell:
    """Run, time and classify one case in one dtype on an already set-up backend, in this process (never raises
    for a problem with the case: a framework's refusal is a status). `mode` as in `WorkItem`."""
    item = WorkItem(case, dtype, mode or None)
    if not_applicable := item.not_applicable(backend.name):
        return not_applicable
    return cell_from(item, run_task(backend, item.task(backend.name, seed, timing, timing)))


def cell_from(item: WorkItem, m: Measurement) -> Cell:
    """The engine's measurement of an item as a cell of this study (the status rules of the module docstring)."""
    case, dtype = item.case, item.dtype
    base: dict[str, Any] = {"backend": m.task.backend, "family": case.family, "case": case.name, "dtype": dtype,
                            "flops": case.flops, "mode": item.mode or MATRIX_MODE}
    if m.phase in ("setup", "worker"):  # nothing ran: the process could not start, or died, hung or raised
        return item.unmeasured(m.task.backend, FAILURE_STATUS.get(m.status if m.phase == "worker" else "setup-error",
                                                                  CRASHED), m.error)
    if item.mode:
        base.update(mode_description=m.precision, strict=m.strict)
    if m.phase == "support":
        return Cell(status=UNSUPPORTED, error=m.error, **base)
    if m.status == Status.NOT_FORCED or m.phase == "mode" or m.compile.get("fell_back_to_eager"):
        return Cell(status=ERROR, error=m.error, **base)
    if m.phase in ("prepare", "time"):  # the framework refused: its own words are the record
        return Cell(status=UNSUPPORTED, error=m.error[:300], **base)
    samples = m.samples_ms
    if m.phase == "verify":
        return Cell(status=ERROR, error=f"verifying: {m.error[:300]}", samples_ms=samples, **base)
    in_dtype, out_dtype = m.in_dtype, m.out_dtype
    measured = {"in_dtype": in_dtype, "out_dtype": out_dtype, "rel_error": m.rel_error,
                "expected_error": m.tolerance, "samples_ms": samples}
    expected = expected_output_dtype(case, dtype)
    if in_dtype != dtype:
        return Cell(status=CONVERTED, detail=f"{dtype} data became {in_dtype} on the way in", **measured, **base)
    if expected is not None and out_dtype != expected:
        widened = _widened(expected, out_dtype)
        how = "widened: no precision lost" if widened else "narrowed"
        return Cell(status=CONVERTED, detail=f"{dtype} in, {out_dtype} out ({how})", widened=widened,
                    **measured, **base)
    if expected is None and is_integer(out_dtype) is False:
        return Cell(status=WRONG, detail=f"indices returned as {out_dtype}", **measured, **base)
    limit = _LARGEST.get(dtype)
    largest = m.largest_exact or 0.0 if m.status == WRONG and limit is not None else 0.0
    if largest > (limit or math.inf):
        return Cell(status=NA, detail=f"the exact result (up to {largest:.3g}) does not fit in "
                    f"{dtype} (largest {limit:.4g})", **measured, **base)
    assert m.rel_error is not None and m.tolerance is not None
    if m.status == REDUCED:
        like = precision_like(m.rel_error)
        return Cell(status=CONVERTED, detail=f"{out_dtype} out, but error {m.rel_error:.1e} > "
                    f"{m.tolerance:.1e} expected: computed like {like}", **measured, **base)
    detail = m.detail
    if m.status == WRONG and not detail:
        detail = f"error {m.rel_error:.1e}, far above the {m.tolerance:.1e} expected in {dtype}"
    return Cell(status=m.status, detail=detail, **measured, **base)


@dataclass(frozen=True)
class WorkItem:
    """One unit of the study: a matrix cell (`mode` None) or a matmul under a precision mode."""

    case: Case
    dtype: str
    mode: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.case.family, "shapes": [list(s) for s in self.case.shapes], "axis": self.case.axis,
                "dtype": self.dtype, "mode": self.mode}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorkItem:
        case = Case(d["family"], tuple(tuple(s) for s in d["shapes"]), d["axis"])
        return cls(case, d["dtype"], d["mode"])

    def unmeasured(self, backend: str, status: str, error: str) -> Cell:
        """The record of an item that produced no cell of its own (its process crashed or hung)."""
        return Cell(backend=backend, family=self.case.family, case=self.case.name, dtype=self.dtype, status=status,
                    error=error, flops=self.case.flops, mode=self.mode or MATRIX_MODE)

    def not_applicable(self, backend: str) -> Cell | None:
        """The `n/a` cell of a family that is not defined on integers (nothing is run), else None."""
        if is_integer(self.dtype) and not self.case.spec.integer_ok:
            return Cell(backend=backend, family=self.case.family, case=self.case.name, dtype=self.dtype, status=NA,
                        detail=f"{self.case.family} is not defined on integers", flops=self.case.flops,
                        mode=self.mode or MATRIX_MODE)
        return None

    def task(self, backend: str, seed: int, timing: TimingSettings, matmul_timing: TimingSettings) -> Task:
        """The engine's task: a matrix cell with nothing set, a matmul item as-is or under its precision mode."""
        precision = self.mode if self.mode not in (None, DEFAULT_MODE) else ""
        return Task(self.case, backend, self.dtype, seed, timing if self.mode is None else matmul_timing,
                    precision_mode=precision or "", check="inferred")


def work_items(backend: Backend, cases: list[Case], dtypes: list[str], matmul_size: int = 0) -> list[WorkItem]:
    """Every case in every dtype, then (with `matmul_size`) the square matmul in every dtype as-is, and in float32
    under each of the framework's precision modes (the modes only change float32 matmuls)."""
    items = [WorkItem(case, dtype) for case in cases for dtype in dtypes]
    if matmul_size:
        mm = matmul_case(matmul_size)
        for dtype in dtypes:
            items.append(WorkItem(mm, dtype, DEFAULT_MODE))
            if dtype == "float32":
                items += [WorkItem(mm, dtype, name) for name in backend.precision_modes()]
    return items


def run_isolated(backend: str, items: list[WorkItem], seed: int = 0, timing: TimingSettings = MATRIX_TIMING,
                 matmul_timing: TimingSettings = PRECISION_TIMING,
                 on_cell: Callable[[Cell], None] = lambda c: None,
                 on_info: Callable[[dict[str, Any]], None] = lambda info: None,
                 item_timeout_s: float = DEFAULT_ITEM_TIMEOUT_S, in_process: Backend | None = None) -> list[Cell]:
    """Measure `items` on `backend` through the engine, in its worker processes (one more per precision mode
    set by environment variables): one cell per item, in order of `items`; the modes' own processes run after
    the others. A worker that dies on an item makes that item `crashed` (an out-of-memory kill too), one silent
    past `item_timeout_s` is killed and the item is `timeout`; either way a fresh worker takes the next item. A
    backend that cannot start is `unsupported` for every item, with its error. With `in_process` (a set-up
    backend), items run in this process except those whose mode needs a fresh one."""
    cells: dict[int, Cell] = {}
    with Engine(item_timeout_s, {backend: in_process} if in_process else None,
                on_info=lambda name, info: on_info(info)) as engine:
        tasks = {i: item.task(backend, seed, timing, matmul_timing) for i, item in enumerate(items)
                 if item.not_applicable(backend) is None}
        envs = {i: tuple(sorted(engine.env_of(task).items())) for i, task in tasks.items()}
        order = sorted(range(len(items)), key=lambda i: (bool(envs.get(i)), envs.get(i, ())))  # one process per env
        for i in order:
            item = items[i]
            if i not in tasks:
                cell = item.not_applicable(backend)
                assert cell is not None
            else:
                cell = cell_from(item, engine.run(tasks[i]))
            cells[i] = cell
            on_cell(cell)
    return [cells[i] for i in range(len(items))]


def measure_precision(backend: Backend, n: int, dtypes: list[str], seed: int = 0,
                      timing: TimingSettings = PRECISION_TIMING) -> list[Cell]:
    """The matmul precision study of one (set-up) backend: in this process, except for modes set by environment
    variables, which run in a fresh process with them set."""
    return run_isolated(backend.name, work_items(backend, [], dtypes, n), seed, matmul_timing=timing,
                        in_process=backend)
