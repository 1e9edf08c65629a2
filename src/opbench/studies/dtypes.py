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
(MLX_ENABLE_TF32) need a process started with them. The unit of work is a `WorkItem`; `dtype_process` runs
a backend's items in their own process, so that a crash or a hang costs one item, not the study.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from opbench.backends._base import Backend, NotForcedError, PrecisionMode
from opbench.catalog import Case
from opbench.engine.timing import TimingSettings, measure
from opbench.engine.verify import OK, REDUCED, WRONG, expected_output_dtype, verify
from opbench.engine.verify import expected as expectation

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
INT_DTYPES = ("int32", "int64")
STUDY_DTYPES = (*FLOAT_DTYPES, *INT_DTYPES)

NA = "n/a"
UNSUPPORTED = "unsupported"
CONVERTED = "silently-converted"
ERROR = "error"  # opbench itself failed (a never-forced output, a conversion back to NumPy that broke)
CRASHED = "crashed"  # the backend's process died on this item (dtype_process)
TIMEOUT = "timeout"  # the backend's process gave no result in time and was killed (dtype_process)
STATUSES = (OK, CONVERTED, UNSUPPORTED, WRONG, NA, ERROR, CRASHED, TIMEOUT)

MATRIX_MODE = ""  # the `mode` of a matrix cell: no precision mode involved
DEFAULT_MODE = "as-is"  # nothing set: the framework default, unless the environment changed it
MATRIX_TIMING = TimingSettings(budget_s=0.05, min_samples=3, block_s=0.005, max_warmup=10)
PRECISION_TIMING = TimingSettings(budget_s=0.3, min_samples=5, block_s=0.02, max_warmup=20)
FORMAT_NAME = "opbench-dtypes"
SCHEMA_VERSION = 1  # 1 - first version: cells (matrix) and precision rows (matmul modes)

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
        return {"format": FORMAT_NAME, "schema_version": SCHEMA_VERSION, "run_id": self.run_id,
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
                 timing: TimingSettings = MATRIX_TIMING, mode: str = "",
                 precision_mode: PrecisionMode | None = None) -> Cell:
    """Run, time and classify one case in one dtype on an already set-up backend (never raises for a problem
    with the case: a framework's refusal is a status)."""
    base: dict[str, Any] = {"backend": backend.name, "family": case.family, "case": case.name, "dtype": dtype,
                            "flops": case.flops, "mode": mode,
                            "mode_description": precision_mode.description if precision_mode else "",
                            "strict": bool(precision_mode and precision_mode.strict)}
    if is_integer(dtype) and not case.spec.integer_ok:
        return Cell(status=NA, detail=f"{case.family} is not defined on integers", **base)
    if not backend.supports(case.family):
        return Cell(status=UNSUPPORTED, error=f"the {backend.name} adapter has no {case.family}", **base)
    enter = precision_mode.enter if precision_mode and precision_mode.enter else contextlib.nullcontext
    try:
        with enter():
            return _run_cell(backend, case, dtype, seed, timing, base)
    finally:
        gc.collect()
        with contextlib.suppress(Exception):
            backend.release()


def _run_cell(backend: Backend, case: Case, dtype: str, seed: int, timing: TimingSettings,
              base: dict[str, Any]) -> Cell:
    inputs = case.make_inputs(dtype, seed)
    data = next(i for i in range(len(inputs)) if i not in case.spec.index_inputs)
    try:
        in_dtype = backend.dtype_name(backend.from_numpy(inputs[data], dtype))
        prepared = backend.prepare(case, inputs, dtype)
        op = backend.compile(prepared.op) if backend.compiled else prepared.op
        result, out = measure(op, prepared.args, backend, timing)
    except NotForcedError as exc:
        return Cell(status=ERROR, error=str(exc), **base)
    except Exception as exc:  # the framework refused: its own words are the record
        return Cell(status=UNSUPPORTED, error=first_line(exc), **base)
    samples = tuple(s * 1e3 for s in result.samples_s)
    try:
        out_dtype = backend.dtype_name(out)
        out_np = backend.to_numpy(prepared.canonical(out))
        del out, prepared
        exp = expectation(case, inputs)
        verdict = verify(case, inputs, out_np, dtype, check_dtype=False, exp=exp)
        verdict = _narrower_fit(case, inputs, out_np, dtype, exp, verdict)
    except Exception as exc:
        return Cell(status=ERROR, error=f"verifying: {first_line(exc)}", samples_ms=samples, **base)
    measured = {"in_dtype": in_dtype, "out_dtype": out_dtype, "rel_error": verdict.rel_error,
                "expected_error": verdict.tolerance, "samples_ms": samples}
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
    largest = _largest_exact(case, inputs) if verdict.status == WRONG and limit is not None else 0.0
    if largest > (limit or math.inf):
        return Cell(status=NA, detail=f"the exact result (up to {largest:.3g}) does not fit in "
                    f"{dtype} (largest {limit:.4g})", **measured, **base)
    if verdict.status == REDUCED:
        like = precision_like(verdict.rel_error)
        return Cell(status=CONVERTED, detail=f"{out_dtype} out, but error {verdict.rel_error:.1e} > "
                    f"{verdict.tolerance:.1e} expected: computed like {like}", **measured, **base)
    detail = verdict.detail
    if verdict.status == WRONG and not detail:
        detail = f"error {verdict.rel_error:.1e}, far above the {verdict.tolerance:.1e} expected in {dtype}"
    return Cell(status=verdict.status, detail=detail, **measured, **base)


# The narrower arithmetics a silent conversion of each dtype would use, most likely first.
NARROWER = {"float64": ("float32",), "float32": ("TF32", "bfloat16")}


def _narrower_fit(case: Case, inputs: tuple[np.ndarray, ...], out: np.ndarray, dtype: str, exp: Any,
                  verdict: Any) -> Any:
    """A `wrong` verdict that a narrower arithmetic explains becomes `reduced-precision` with that arithmetic
    named: this study looks for silent narrowing, which no backend reports (unlike `run`, where only a reported
    mode earns `reduced-precision`)."""
    if verdict.status != WRONG:
        return verdict
    for word in NARROWER.get(dtype, ()):
        fit = verify(case, inputs, out, dtype, mode=f"{word} (inferred)", check_dtype=False, exp=exp)
        if fit.status == REDUCED:  # keep the dtype's own bound as the expected error
            return type(fit)(REDUCED, fit.rel_error, verdict.tolerance, fit.detail)
    return verdict


def _largest_exact(case: Case, inputs: tuple[np.ndarray, ...]) -> float:
    ref = case.reference(inputs)
    return float(np.max(np.abs(ref))) if ref.size else 0.0


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


def run_item(backend: Backend, item: WorkItem, seed: int = 0, timing: TimingSettings = MATRIX_TIMING,
             matmul_timing: TimingSettings = PRECISION_TIMING) -> Cell:
    """Measure one item in this process. A mode set by environment variables is assumed to be in force already
    (the caller started this process with them: see `dtype_process`)."""
    if item.mode is None:
        return measure_cell(backend, item.case, item.dtype, seed, timing)
    mode = as_is_mode(backend) if item.mode == DEFAULT_MODE else backend.precision_modes()[item.mode]
    return measure_cell(backend, item.case, item.dtype, seed, matmul_timing, item.mode, mode)


def measure_precision(backend: Backend, n: int, dtypes: list[str], seed: int = 0,
                      timing: TimingSettings = PRECISION_TIMING) -> list[Cell]:
    """The matmul precision study of one backend: in this process, except for modes set by environment
    variables, which run in a fresh process with them set."""
    from opbench.studies.dtype_process import run_isolated

    cells = []
    for item in work_items(backend, [], dtypes, n):
        mode = backend.precision_modes().get(item.mode or "")
        if mode is not None and mode.env:
            cells += run_isolated(backend.name, [item], seed=seed, matmul_timing=timing, env=mode.env)
        else:
            cells.append(run_item(backend, item, seed, matmul_timing=timing))
    return cells


def as_is_mode(backend: Backend) -> PrecisionMode:
    """The setting nothing was changed from, described by what is in force: the precision/TF32 entries of
    `settings()` and the current value of every environment variable a mode would set."""
    in_force = {k: v for k, v in backend.settings().items() if "precision" in k or "tf32" in k.lower()}
    for mode in backend.precision_modes().values():
        in_force.update({k: os.environ.get(k, "<unset>") for k in mode.env})
    text = ", ".join(f"{k}={v}" for k, v in in_force.items())
    return PrecisionMode(f"nothing set ({text})" if text else "nothing set (the framework has no switch)")
