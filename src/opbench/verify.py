"""Verification: every backend's output against the float64 NumPy reference, with dtype-aware tolerances.

The measure is the normwise relative error ‖out − ref‖ / ‖ref‖ (computed in float64). The verdict is

- `ok` when it is within what correct arithmetic in the input dtype gives: `u · (128 + 2·√K)`, where `u` is the
  dtype's unit roundoff and `K` the number of terms summed into one output element (the family's
  `accumulation`). The √K term is the random-walk growth of rounding error over a sum; the 128 covers
  transcendental functions accurate to a few ulps. For float32 that is 7.6e-6 for elementwise ops and
  1.2e-4 for a sum of 10^6 terms, while TF32 (10-bit mantissa) lands near 3e-4 on zero-mean data.
- `reduced-precision` when the error is above that but below `max(0.1, 5 × tol)`: the op computed the right
  function in a narrower type (TF32 or bf16 inside a float32 op, float32 inside float64).
- `wrong` otherwise, or for NaN, a shape mismatch, or an integer result that is not exact.

Family-specific checks: Argmax is tie-aware (the chosen index must point at a maximal value; the error is the
fraction of positions that do not). Scatter with duplicate indices accepts any one of the competing rows, whole:
a row whose elements come from different duplicates (GPU scatters that write element by element can do
this) is `wrong`, and the detail counts such rows as torn.
Sort compares values, so ties cannot matter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from opbench.catalog import Case

OK = "ok"
REDUCED = "reduced-precision"
WRONG = "wrong"

_UNIT_ROUNDOFF = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24, "float64": 2.0**-53}


@dataclass(frozen=True)
class Verdict:
    status: str
    rel_error: float
    tolerance: float
    detail: str = ""


def tolerance(dtype: str, accumulation: int) -> float:
    """Largest relative error that correct arithmetic in `dtype` produces for a K-term accumulation."""
    u = _UNIT_ROUNDOFF.get(dtype)
    if u is None:
        return 0.0  # integers: exact
    return min(u * (128 + 2 * math.sqrt(max(1, accumulation))), 2e-2)


def wrong_threshold(tol: float) -> float:
    return min(max(0.1, 5 * tol), 0.5)


def relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    diff = np.linalg.norm((out.astype(np.float64) - ref).ravel())
    scale = np.linalg.norm(ref.ravel())
    if scale == 0:
        return float(diff)
    return float(diff / scale)


def classify(err: float, tol: float) -> str:
    if not np.isfinite(err):
        return WRONG
    if err <= tol:
        return OK
    if tol > 0 and err <= wrong_threshold(tol):
        return REDUCED
    return WRONG


def verify(case: Case, inputs: tuple[np.ndarray, ...], out: np.ndarray, ref: np.ndarray, dtype: str,
           rows: np.ndarray | None = None) -> Verdict:
    """Compare one backend output (already in canonical layout, NumPy, possibly only `rows`) with `ref`."""
    out = np.asarray(out)
    tol = tolerance(dtype, case.spec.accumulation(case))
    if out.shape != ref.shape:
        return Verdict(WRONG, math.inf, tol, f"shape {out.shape} != expected {ref.shape}")
    if out.dtype.kind == "f" and not np.all(np.isfinite(out[np.isfinite(ref)])):
        return Verdict(WRONG, math.inf, tol, "non-finite values where the reference is finite")
    check = case.spec.check
    if check == "argmax":
        return _verify_argmax(case, inputs[0], out, tol)
    if check == "scatter":
        return _verify_scatter(inputs, out, ref, tol)
    err = relative_error(out, ref)
    detail = f"checked {len(rows)} sampled rows" if rows is not None else ""
    return Verdict(classify(err, tol), err, tol, detail)


def _verify_argmax(case: Case, x: np.ndarray, out: np.ndarray, tol: float) -> Verdict:
    axis = case.axis % x.ndim
    size = x.shape[axis]
    if out.dtype.kind not in "iu" or np.any(out < 0) or np.any(out >= size):
        return Verdict(WRONG, math.inf, 0.0, "indices are not integers in range")
    picked = np.take_along_axis(x, np.expand_dims(out.astype(np.int64), axis), axis=axis).squeeze(axis)
    bad = np.count_nonzero(picked != x.max(axis=axis))
    err = bad / max(1, out.size)
    return Verdict(OK if bad == 0 else WRONG, err, 0.0, f"{bad} positions do not point at a maximum" if bad else "")


def _verify_scatter(inputs: tuple[np.ndarray, ...], out: np.ndarray, ref: np.ndarray, tol: float) -> Verdict:
    _, idx, upd = inputs
    got = out.astype(np.float64)
    row_ok = np.all(got == ref, axis=tuple(range(1, got.ndim)))
    torn = 0
    for r in np.flatnonzero(~row_ok):  # a duplicate index: any one of the competing update rows is right
        competing = upd[np.flatnonzero(idx == r)]
        row_ok[r] = any(np.array_equal(got[r], row) for row in competing)
        # a torn row: every element comes from some competing update, but no single update wrote the row
        torn += bool(not row_ok[r] and len(competing) > 1 and np.all(np.any(competing == got[r], axis=0)))
    bad = int(np.count_nonzero(~row_ok))
    if not bad:
        return Verdict(OK, 0.0, 0.0)
    detail = f"{bad} rows are not one whole scattered update"
    if torn:
        detail += f" ({torn} torn: elements mixed from competing duplicate updates)"
    return Verdict(WRONG, relative_error(out, ref), 0.0, detail)
