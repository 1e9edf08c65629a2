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
  4. `wrong` when the result is outside every plausible rounding (verify's `wrong`, or an inexact integer result);
  5. `ok` otherwise.
- the **relative error** ‖out − ref‖/‖ref‖ against the float64 NumPy reference computed from exactly the values the
  backend saw, and the **expected error** for that dtype (`verify.tolerance`);
- the **median time** per call from the core timing engine, with a short budget: in this study time is secondary
  to status and error, and the per-cell budget bounds the whole matrix to minutes.

The matmul precision study (`measure_precision`) runs one square matmul per backend and dtype under the
framework's default setting and under each of its float32 precision modes (`Backend.precision_modes`): modes that
work in-process are entered around preparation and timing; modes set by environment variables read once at
start-up (MLX_ENABLE_TF32) run in a fresh Python process (`python -m opbench.dtypes child ...`).
Trade-off: cells run in this process, so a framework that crashes the interpreter ends the study; the JSON is
rewritten after every cell, so what was measured before is kept.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from opbench.backends._base import Backend, NotForcedError, PrecisionMode
from opbench.catalog import Case
from opbench.timing import TimingSettings, measure
from opbench.verify import OK, REDUCED, WRONG, verify

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
INT_DTYPES = ("int32", "int64")
STUDY_DTYPES = (*FLOAT_DTYPES, *INT_DTYPES)

NA = "n/a"
UNSUPPORTED = "unsupported"
CONVERTED = "silently-converted"
ERROR = "error"  # opbench itself failed (a never-forced output, a conversion back to NumPy that broke)
STATUSES = (OK, CONVERTED, UNSUPPORTED, WRONG, NA, ERROR)

DEFAULT_MODE = "as-is"  # nothing set: the framework default, unless the environment changed it
MATRIX_TIMING = TimingSettings(budget_s=0.05, min_samples=3, block_s=0.005, max_warmup=10)
PRECISION_TIMING = TimingSettings(budget_s=0.3, min_samples=5, block_s=0.02, max_warmup=20)
FORMAT_NAME = "opbench-dtypes"
SCHEMA_VERSION = 1  # 1 - first version: cells (matrix) and precision rows (matmul modes)

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
    mode: str = DEFAULT_MODE
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
    """The first case of each family in catalog order (or every case)."""
    if every_case:
        return list(cases)
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


def _expected_out(case: Case, dtype: str) -> str | None:
    """The output type a faithful implementation returns, or None for 'any integer type' (indices)."""
    return None if case.spec.output_kind == "index" else dtype


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
                 timing: TimingSettings = MATRIX_TIMING, mode: str = DEFAULT_MODE,
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
        ref = case.reference(inputs)
        verdict = verify(case, inputs, out_np, ref, dtype)
    except Exception as exc:
        return Cell(status=ERROR, error=f"verifying: {first_line(exc)}", samples_ms=samples, **base)
    measured = {"in_dtype": in_dtype, "out_dtype": out_dtype, "rel_error": verdict.rel_error,
                "expected_error": verdict.tolerance, "samples_ms": samples}
    expected = _expected_out(case, dtype)
    if in_dtype != dtype:
        return Cell(status=CONVERTED, detail=f"{dtype} data became {in_dtype} on the way in", **measured, **base)
    if expected is not None and out_dtype != expected:
        widened = _widened(expected, out_dtype)
        how = "widened: no precision lost" if widened else "narrowed"
        return Cell(status=CONVERTED, detail=f"{dtype} in, {out_dtype} out ({how})", widened=widened,
                    **measured, **base)
    if expected is None and is_integer(out_dtype) is False:
        return Cell(status=WRONG, detail=f"indices returned as {out_dtype}", **measured, **base)
    if verdict.status == REDUCED:
        like = precision_like(verdict.rel_error)
        return Cell(status=CONVERTED, detail=f"{out_dtype} out, but error {verdict.rel_error:.1e} > "
                    f"{verdict.tolerance:.1e} expected: computed like {like}", **measured, **base)
    detail = verdict.detail
    if verdict.status == WRONG and not detail:
        detail = f"error {verdict.rel_error:.1e}, far above the {verdict.tolerance:.1e} expected in {dtype}"
    return Cell(status=verdict.status, detail=detail, **measured, **base)


def measure_matrix(backend: Backend, cases: list[Case], dtypes: list[str], seed: int = 0,
                   timing: TimingSettings = MATRIX_TIMING, on_cell: Callable[[Cell], None] = lambda c: None
                   ) -> list[Cell]:
    cells = []
    for case in cases:
        for dtype in dtypes:
            cell = measure_cell(backend, case, dtype, seed, timing)
            cells.append(cell)
            on_cell(cell)
    return cells


def measure_precision(backend: Backend, n: int, dtypes: list[str], seed: int = 0,
                      timing: TimingSettings = PRECISION_TIMING,
                      on_cell: Callable[[Cell], None] = lambda c: None) -> list[Cell]:
    """A square n x n matmul in every dtype under the default setting, and in float32 under every precision
    mode the framework has (the modes only change float32 matmuls)."""
    case = matmul_case(n)
    cells = []
    for dtype in dtypes:
        modes: list[tuple[str, PrecisionMode | None]] = [(DEFAULT_MODE, as_is_mode(backend))]
        if dtype == "float32":
            modes += list(backend.precision_modes().items())
        for name, mode in modes:
            if mode is not None and mode.env:
                cell = _measure_in_child(backend.name, n, dtype, seed, timing, name, mode)
            else:
                cell = measure_cell(backend, case, dtype, seed, timing, name, mode)
            cells.append(cell)
            on_cell(cell)
    return cells


def as_is_mode(backend: Backend) -> PrecisionMode:
    """The setting nothing was changed from, described by what is in force: the precision/TF32 entries of
    `settings()` and the current value of every environment variable a mode would set."""
    in_force = {k: v for k, v in backend.settings().items() if "precision" in k or "tf32" in k.lower()}
    for mode in backend.precision_modes().values():
        in_force.update({k: os.environ.get(k, "<unset>") for k in mode.env})
    text = ", ".join(f"{k}={v}" for k, v in in_force.items())
    return PrecisionMode(f"nothing set ({text})" if text else "nothing set (the framework has no switch)")


# --------------------------------------------------------------------------------------- fresh processes


def _measure_in_child(backend_name: str, n: int, dtype: str, seed: int, timing: TimingSettings, mode_name: str,
                      mode: PrecisionMode) -> Cell:
    """Measure one matmul cell in a new Python process with `mode.env` set (settings read once at start-up)."""
    request = {"backend": backend_name, "n": n, "dtype": dtype, "seed": seed, "timing": asdict(timing),
               "mode": mode_name}
    env = {**os.environ, **mode.env}
    base = {"backend": backend_name, "family": "MatMul", "case": matmul_case(n).name, "dtype": dtype,
            "flops": matmul_case(n).flops, "mode": mode_name, "mode_description": mode.description,
            "strict": mode.strict}
    try:
        proc = subprocess.run([sys.executable, "-m", "opbench.dtypes", "child", json.dumps(request)], env=env,
                              capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        return Cell(status=ERROR, error="the child process timed out after 600 s", **base)
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return Cell(status=ERROR, error=f"child process failed: {tail[:300]}", **base)
    cell = Cell.from_dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    return Cell(**{**asdict(cell), "mode_description": mode.description, "strict": mode.strict})


def _child_main(request_json: str) -> None:
    from opbench.backends import get_backend

    request = json.loads(request_json)
    backend = get_backend(request["backend"])
    backend.setup()
    cell = measure_cell(backend, matmul_case(request["n"]), request["dtype"], request["seed"],
                        TimingSettings(**request["timing"]), request["mode"])
    print(json.dumps(cell.to_dict()))


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "child":
    _child_main(sys.argv[2])
