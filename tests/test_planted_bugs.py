"""Planted bugs: plausible implementation mistakes, planted into the real adapters, must all be caught.

For every family, the real adapter (torch `cpu`, `mlx_cpu`, `jax_cpu`: whichever is installed) builds the case's
op; each planted kind changes one thing a real implementation gets wrong (an axis, a missing scale or bias, an
index off by one, a part of the output, the arithmetic type, forcing, a memoized result), and the result must
be `wrong` or `not-forced`. Output-level kinds act on the adapter's real output (then handed back to the
framework), input-level kinds run the adapter's own op on changed inputs or a changed case and are verified
against the original inputs (an output plant keeps the output's shape, so it is caught by its values). `PLANTED_KINDS`
names every kind; `test_every_kind_is_counted` prints the count of kinds x families.

Negative controls (`CONTROLS`): correct implementations that differ only in rounding (a reordered or blocked
float32 summation, a one-pass variance, softmax without the max shift, every element one ulp off, the last of
tied maxima, the first of duplicate scatter updates) must stay `ok`, so that the bounds are not simply tight
enough to call everything wrong.

Cost: tiny shapes and no timing engine for value bugs (one call, then the runner's own verification); the
forcing and staleness kinds go through `measure_case` with a minimal budget.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from opbench.backends import get_backend
from opbench.catalog import FAMILIES, Case
from opbench.catalog.families import LEAKY_SLOPE, SELU_SCALE
from opbench.engine.runner import measure_case, verify_output
from opbench.engine.timing import TimingSettings

BACKENDS = [name for name, module in (("cpu", "torch"), ("mlx_cpu", "mlx"), ("jax_cpu", "jax"))
            if importlib.util.find_spec(module) is not None]
TINY = TimingSettings(budget_s=0.002, min_samples=1, max_samples=2, block_s=0.001, max_warmup=1, min_warmup_s=0.0)

# One small case per family; square where a wrong axis or transposition must keep the shape.
CASES: dict[str, Case] = {c.family: c for c in [
    Case("Argmax", ((8, 12, 12),), 2), Case("BCE", ((6, 40), (6, 40))), Case("Concat", ((12, 8), (12, 8)), 1),
    Case("Conv1d", ((3, 20, 4), (6, 3, 4))), Case("Conv2d", ((2, 9, 9, 3), (5, 3, 3, 3))),
    Case("Gather", ((24, 8), (40,))), Case("LeakyReLU", ((8, 9, 10),)), Case("Linear", ((4, 10, 16), (16, 12), (12,))),
    Case("MatMul", ((6, 16, 16), (16, 16))), Case("PReLU", ((8, 9, 10), (1,))), Case("ReLU", ((8, 9, 10),)),
    Case("Scatter", ((16, 6), (10,))), Case("ScatterSum", ((16, 6), (10,))), Case("ScatterMax", ((16, 6), (10,))),
    Case("SeLU", ((8, 9, 10),)), Case("Sigmoid", ((8, 9, 10),)), Case("Softmax", ((6, 16, 16),), -1),
    Case("Softplus", ((8, 9, 10),)), Case("Sort", ((6, 16, 16),), 2), Case("Sum", ((6, 12, 12, 12),), 1),
    Case("SumAll", ((40, 50),)), Case("LayerNorm", ((6, 10, 32),)),
    Case("ScaledDotProductAttention", ((2, 3, 8, 16), (2, 3, 8, 16), (2, 3, 8, 16))),
]}

Inputs = tuple[np.ndarray, ...]


@dataclasses.dataclass(frozen=True)
class Plant:
    """One planted mistake. Exactly one of `output` (f(case, inputs, real output) -> planted output),
    `inputs` (f(case, inputs) -> (case to build, inputs to build it with)) or `forcing` (a backend mutation
    that needs the timing engine) is set."""

    kind: str
    families: frozenset[str]
    output: Callable[[Case, Inputs, np.ndarray], np.ndarray] | None = None
    inputs: Callable[[Case, Inputs], tuple[Case, Inputs]] | None = None
    forcing: str = ""


ALL = frozenset(FAMILIES)
FLOAT_OUT = ALL - {"Argmax"}
ARRAY_OUT = ALL - {"SumAll", "BCE"}


def _zero_tail(case: Case, inp: Inputs, out: np.ndarray) -> np.ndarray:
    """The last 1/64 of the work not done: of the output's nonzero elements (a scatter's untouched rows are zero
    anyway), the last 1/64 stay zero."""
    flat = out.copy().reshape(-1)
    nonzero = np.flatnonzero(flat)
    flat[nonzero[-max(1, nonzero.size // 64):]] = 0
    return flat.reshape(out.shape)


def _one_element(value: float) -> Callable[[Case, Inputs, np.ndarray], np.ndarray]:
    def plant(case: Case, inp: Inputs, out: np.ndarray) -> np.ndarray:
        bad = out.copy()
        flat = bad.reshape(-1)
        i = flat.size // 3
        flat[i] = value if not np.isnan(value) else np.nan
        if flat[i] == out.reshape(-1)[i]:  # the element already had that value: lose it differently
            flat[i] = out.reshape(-1)[i] + 1
        return bad

    return plant


def _wrong_index(case: Case, inp: Inputs, out: np.ndarray) -> np.ndarray:
    bad = out.copy().reshape(-1)
    bad[bad.size // 3] = (bad[bad.size // 3] + 1) % case.shapes[0][case.axis]
    return bad.reshape(out.shape)


def _duplicated_row(case: Case, inp: Inputs, out: np.ndarray) -> np.ndarray:
    bad = out.copy()
    last = max(i for i in range(1, len(bad)) if not np.array_equal(bad[i], bad[i - 1]))
    bad[last] = bad[last - 1]  # a race or an off-by-one loop bound writes one row twice
    return bad


def _float16_out(case: Case, inp: Inputs, out: np.ndarray) -> np.ndarray:
    return out.astype(np.float16)


def _float16_compute(case: Case, inp: Inputs) -> tuple[Case, Inputs]:
    index = case.spec.index_inputs
    return case, tuple(a if i in index else a.astype(np.float16).astype(np.float32) for i, a in enumerate(inp))


def _replace(i: int, fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[Case, Inputs], tuple[Case, Inputs]]:
    def plant(case: Case, inp: Inputs) -> tuple[Case, Inputs]:
        return case, tuple(fn(a) if j == i else a for j, a in enumerate(inp))

    return plant


def _axis(axis: int) -> Callable[[Case, Inputs], tuple[Case, Inputs]]:
    return lambda case, inp: (dataclasses.replace(case, axis=axis), inp)


def _zero_fraction(fraction: float) -> Callable[[np.ndarray], np.ndarray]:
    """The reduction skips the last `fraction` of its input (a partial reduction / a short loop bound)."""
    def cut(a: np.ndarray) -> np.ndarray:
        flat = a.copy().reshape(-1)
        flat[-max(1, int(flat.size * fraction)):] = 0
        return flat.reshape(a.shape)

    return cut


def _bce_subset(case: Case, inp: Inputs) -> tuple[Case, Inputs]:
    p, t = inp
    n = max(1, p.shape[0] // 2)  # the mean over only part of the batch
    return dataclasses.replace(case, shapes=((n, *p.shape[1:]), (n, *t.shape[1:]))), (p[:n], t[:n])


def _swap(case: Case, inp: Inputs) -> tuple[Case, Inputs]:
    return case, (inp[1], inp[0], *inp[2:])


def _scatter_set_not_add(case: Case, inp: Inputs) -> tuple[Case, Inputs]:
    y, idx, upd = inp
    return dataclasses.replace(case, family="Scatter"), (np.zeros_like(y), idx, upd)


def _scatter_max_without_zeros(case: Case, inp: Inputs, out: np.ndarray) -> np.ndarray:
    _, idx, upd = inp
    bad = out.copy()
    for r in np.unique(idx):
        bad[r] = upd[idx == r].max(axis=0)  # the maximum of the updates only (include_self=False)
    return bad


def _scatter_column_zero(case: Case, inp: Inputs, out: np.ndarray) -> np.ndarray:
    y, idx, upd = inp
    bad = y.copy()
    bad[idx, 0] = upd[:, 0]  # the seed's torch code: only column 0 scattered
    return bad


def _sdpa_unscaled(case: Case, inp: Inputs) -> tuple[Case, Inputs]:
    q, k, v, m = inp
    return case, (q * np.float32(np.sqrt(q.shape[-1])), k, v, m)


EXACT = frozenset({"ReLU", "Concat", "Gather", "Sort", "Scatter", "ScatterMax"})  # copies: bit for bit
F16, F32 = np.float16, np.float32


def _nonzero_index(out: np.ndarray) -> int:
    """A flat index near the output's first third whose element is nonzero (a scatter's untouched rows are 0)."""
    flat = out.reshape(-1)
    nonzero = np.flatnonzero(flat)
    return int(nonzero[np.searchsorted(nonzero, flat.size // 3).clip(0, nonzero.size - 1)])


def _one_element_shifted(delta: float) -> Callable[[Case, Inputs, np.ndarray], np.ndarray]:
    """One element moved by `delta` times the output's RMS (not its own size: a correct float32 product may
    err by u·‖a‖‖b‖ on an element that cancels to nearly zero, so a relative change of such an element is no
    bug to find)."""
    def plant(case: Case, inp: Inputs, out: np.ndarray) -> np.ndarray:
        bad = out.copy().reshape(-1)
        i = _nonzero_index(out)
        bad[i] = bad[i] + delta * np.sqrt(np.mean(np.square(out, dtype=np.float64)))
        return bad.reshape(out.shape)

    return plant


def _ulp_off(case: Case, inp: Inputs, out: np.ndarray) -> np.ndarray:
    """Every nonzero element one ulp away from what was computed (rounded the other way)."""
    return np.where(out != 0, np.nextafter(out, np.inf), out).astype(out.dtype)


def _transposed(case: Case, inp: Inputs, out: np.ndarray) -> np.ndarray:
    """The two square axes of the output swapped (rows for columns; H for W in a convolution)."""
    axes = (1, 2) if case.family == "Conv2d" else (-1, -2)
    assert out.shape[axes[0]] == out.shape[axes[1]], "the plant needs a square output"
    return np.ascontiguousarray(np.swapaxes(out, *axes))


def _rotated_rows(case: Case, inp: Inputs, out: np.ndarray) -> np.ndarray:
    """Each row's elements shifted by one place (an offset or stride bug): a permutation within rows."""
    return np.ascontiguousarray(np.roll(out, 1, axis=-1))


def _f16_sum(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """Sequential accumulation in float16 along `axis` (a float16 accumulator, every partial sum rounded)."""
    terms = np.moveaxis(np.asarray(a, dtype=F32), axis, 0)
    acc = np.zeros(terms.shape[1:], dtype=F16)
    for term in terms:
        acc = (acc.astype(F32) + term).astype(F16)
    return acc.astype(F32)


def _f16_accumulation(case: Case, inp: Inputs, out: np.ndarray) -> np.ndarray:
    """The op with float32 products/terms but a float16 accumulator, returned as float32."""
    fam = case.family
    if fam == "Sum":
        return _f16_sum(inp[0], case.axis)
    if fam == "SumAll":
        return np.asarray(_f16_sum(inp[0].reshape(-1)))
    if fam in ("MatMul", "Linear"):
        a, b = inp[0], inp[1]
        prods = np.moveaxis(a[..., :, None] * b, -2, 0)  # (K, ..., N): one float32 product per term
        res = _f16_sum(prods)
        return (res + inp[2]).astype(F32) if fam == "Linear" else res
    if fam == "BCE":
        p, t = inp
        terms = -(t * np.log(p) + (1 - t) * np.log1p(-p)).astype(F32)
        return np.asarray(_f16_sum(terms.reshape(-1)) / F32(terms.size), dtype=F32)
    if fam == "Softmax":
        e = np.exp(inp[0] - inp[0].max(axis=case.axis, keepdims=True)).astype(F32)
        return (e / np.expand_dims(_f16_sum(e, case.axis), case.axis)).astype(F32)
    if fam == "ScatterSum":
        y, idx, upd = inp
        acc = np.zeros(y.shape, dtype=F16)
        for i, row in zip(idx, upd):
            acc[i] = (acc[i].astype(F32) + row).astype(F16)
        return acc.astype(F32)
    raise AssertionError(fam)


def _ln_variant(inp: Inputs, eps: float = 1e-5, unbiased: bool = False, eps_outside: bool = False) -> np.ndarray:
    x, w, b = (a.astype(np.float64) for a in inp)
    var = x.var(-1, keepdims=True, ddof=1 if unbiased else 0)
    scale = 1 / (np.sqrt(var) + eps) if eps_outside else 1 / np.sqrt(var + eps)
    return ((x - x.mean(-1, keepdims=True)) * scale * w + b).astype(F32)


def _sdpa_softmax_over_queries(case: Case, inp: Inputs, out: np.ndarray) -> np.ndarray:
    q, k, v, m = (a.astype(np.float64) for a in inp)
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]) + m
    e = np.exp(scores - scores.max(axis=-2, keepdims=True))
    return (e / e.sum(axis=-2, keepdims=True) @ v).astype(F32)


PLANTS: list[Plant] = [
    # every family
    Plant("zeroed tail (last 1/64 of the output)", ARRAY_OUT, output=_zero_tail),
    Plant("one NaN", FLOAT_OUT, output=_one_element(np.nan)),
    Plant("one lost element (set to 0)", FLOAT_OUT, output=_one_element(0.0)),
    Plant("one wrong index", frozenset({"Argmax"}), output=_wrong_index),
    Plant("one row written twice", ARRAY_OUT, output=_duplicated_row),
    Plant("float16 result in a float32 case", FLOAT_OUT, output=_float16_out),
    Plant("float16 computation returned as float32", FLOAT_OUT - {"Gather", "Concat", "Scatter"},
          inputs=_float16_compute),
    Plant("stale output (memoized first call)", ALL, forcing="stale"),
    # per family
    Plant("wrong axis, same shape", frozenset({"Sum", "Softmax", "Sort", "Argmax"}),
          inputs=lambda case, inp: _axis({"Sum": 3, "Softmax": 1, "Sort": 1, "Argmax": 1}[case.family])(case, inp)),
    Plant("partial reduction (last 8% skipped)", frozenset({"Sum", "SumAll"}),
          inputs=_replace(0, _zero_fraction(0.08))),
    Plant("last 0.1% skipped", frozenset({"SumAll"}), inputs=_replace(0, _zero_fraction(0.001))),
    Plant("mean over part of the batch", frozenset({"BCE"}), inputs=_bce_subset),
    Plant("sum instead of mean", frozenset({"BCE"}), output=lambda case, inp, out: out * inp[0].size),
    Plant("missing scale", frozenset({"SeLU"}), output=lambda case, inp, out: out / SELU_SCALE),
    Plant("missing bias", frozenset({"Linear", "LayerNorm"}), inputs=lambda case, inp: _replace(
        len(inp) - 1, np.zeros_like)(case, inp)),
    Plant("missing weight", frozenset({"LayerNorm"}), inputs=_replace(1, np.ones_like)),
    Plant("eps 1e-3 instead of 1e-5", frozenset({"LayerNorm"}), output=lambda case, inp, out: _ln(inp, 1e-3)),
    Plant("wrong slope (0.2, TensorFlow's default)", frozenset({"LeakyReLU"}),
          output=lambda case, inp, out: np.where(inp[0] > 0, inp[0], 0.2 * inp[0]).astype(out.dtype)),
    Plant("default slope 0.25 instead of the learned one", frozenset({"PReLU"}),
          inputs=_replace(1, lambda w: np.full_like(w, 0.25))),
    Plant("leaky instead of plain", frozenset({"ReLU"}),
          output=lambda case, inp, out: np.where(inp[0] > 0, inp[0], LEAKY_SLOPE * inp[0]).astype(out.dtype)),
    Plant("tanh instead of sigmoid", frozenset({"Sigmoid"}), output=lambda case, inp, out: np.tanh(inp[0])),
    Plant("linear threshold at 1 instead of 20", frozenset({"Softplus"}),
          output=lambda case, inp, out: np.where(inp[0] > 1, inp[0], out).astype(out.dtype)),
    Plant("off-by-one index", frozenset({"Gather", "Scatter", "ScatterSum", "ScatterMax"}),
          inputs=lambda case, inp: _replace(1, lambda idx: (idx + 1) % case.shapes[0][0])(case, inp)),
    Plant("set instead of add", frozenset({"ScatterSum"}), inputs=_scatter_set_not_add),
    Plant("maximum without the zeros", frozenset({"ScatterMax"}), output=_scatter_max_without_zeros),
    Plant("only column 0 scattered", frozenset({"Scatter"}), output=_scatter_column_zero),
    Plant("operands swapped", frozenset({"Concat", "MatMul"}), inputs=_swap),
    Plant("flipped kernel (convolution, not correlation)", frozenset({"Conv1d", "Conv2d"}),
          inputs=lambda case, inp: _replace(1, lambda w: np.ascontiguousarray(
              np.flip(w, axis=tuple(range(1, w.ndim - 1)))))(case, inp)),
    Plant("descending", frozenset({"Sort"}), output=lambda case, inp, out: np.flip(out, axis=case.axis).copy()),
    Plant("argmin", frozenset({"Argmax"}), inputs=_replace(0, lambda x: -x)),
    Plant("no 1/sqrt(d) scale", frozenset({"ScaledDotProductAttention"}), inputs=_sdpa_unscaled),
    Plant("no causal mask", frozenset({"ScaledDotProductAttention"}), inputs=_replace(3, np.zeros_like)),
    Plant("never evaluated (force does nothing)", ALL, forcing="lazy"),
    # what a reviewer tries next
    Plant("transposed output (square)", frozenset({"MatMul", "Softmax", "Sort", "Conv2d"}), output=_transposed),
    Plant("elements rotated by one within each row", ARRAY_OUT, output=_rotated_rows),
    Plant("one element off by 0.01% of the output's RMS", FLOAT_OUT, output=_one_element_shifted(1e-4)),
    Plant("one ulp off everywhere in an exact op", EXACT, output=_ulp_off),
    Plant("accumulated in float16, returned as float32",
          frozenset({"Sum", "SumAll", "MatMul", "Linear", "BCE", "Softmax", "ScatterSum"}), output=_f16_accumulation),
    Plant("no eps", frozenset({"LayerNorm"}), output=lambda case, inp, out: _ln_variant(inp, eps=0.0)),
    Plant("eps outside the square root", frozenset({"LayerNorm"}),
          output=lambda case, inp, out: _ln_variant(inp, eps_outside=True)),
    Plant("unbiased variance (N-1)", frozenset({"LayerNorm"}),
          output=lambda case, inp, out: _ln_variant(inp, unbiased=True)),
    Plant("mean instead of sum", frozenset({"Sum", "SumAll"}),
          output=lambda case, inp, out: (out / (inp[0].shape[case.axis] if case.family == "Sum" else inp[0].size))
          .astype(out.dtype)),
    Plant("sign error: sigmoid(-x)", frozenset({"Sigmoid"}), output=lambda case, inp, out: (1 - out).astype(out.dtype)),
    Plant("ELU's alpha 1 instead of SeLU's", frozenset({"SeLU"}),
          output=lambda case, inp, out: (SELU_SCALE * np.where(inp[0] > 0, inp[0], np.expm1(
              np.minimum(inp[0].astype(np.float64), 0)))).astype(out.dtype)),
    Plant("slope on the positive side", frozenset({"PReLU"}),
          output=lambda case, inp, out: np.where(inp[0] > 0, inp[1][0] * inp[0], inp[0]).astype(out.dtype)),
    Plant("softmax over the queries, not the keys", frozenset({"ScaledDotProductAttention"}),
          output=_sdpa_softmax_over_queries),
    Plant("kernel's height and width swapped", frozenset({"Conv2d"}),
          inputs=_replace(1, lambda w: np.ascontiguousarray(np.swapaxes(w, 1, 2)))),
]
PLANTED_KINDS = sorted({p.kind for p in PLANTS})

# ------------------------------------------------------------------------------------------ negative controls
# Correct implementations that differ from the adapter's in rounding only: a reordered or blocked summation, a
# different but exact-in-real-arithmetic formula, another tie or duplicate choice, one ulp everywhere. Each
# must stay `ok`: a verifier that calls these wrong would be a false alarm.


def _seq_f32(terms: np.ndarray, axis: int = 0, reverse: bool = False) -> np.ndarray:
    """Recursive float32 summation along `axis`, in index order or reversed."""
    t = np.moveaxis(np.asarray(terms, dtype=F32), axis, 0)
    acc = np.zeros(t.shape[1:], dtype=F32)
    for term in (t[::-1] if reverse else t):
        acc = acc + term
    return acc


def _reordered(case: Case, inp: Inputs, out: np.ndarray) -> tuple[np.ndarray, Inputs]:
    """The op in float32 NumPy with its sums in another order (recursive, reversed or split in blocks)."""
    fam, x = case.family, inp[0]
    if fam == "Sum":
        return _seq_f32(x, case.axis, reverse=True), inp
    if fam == "SumAll":
        return np.asarray(_seq_f32(x.reshape(-1), reverse=True)), inp
    if fam in ("MatMul", "Linear"):
        a, b = inp[0], inp[1]
        half = a.shape[-1] // 2  # two blocks of K, each a float32 matmul, added: a blocked GEMM's order
        res = (a[..., half:] @ b[half:]).astype(F32) + (a[..., :half] @ b[:half]).astype(F32)
        return (inp[2] + res if fam == "Linear" else res).astype(F32), inp
    if fam in ("Conv1d", "Conv2d"):
        w = inp[1]
        spatial = w.shape[1:-1]
        out_sp = tuple(s_ - k + 1 for s_, k in zip(x.shape[1:-1], spatial))
        acc = np.zeros((x.shape[0], *out_sp, w.shape[0]), dtype=F32)
        for offset in reversed(list(np.ndindex(*spatial))):  # kernel offsets last to first, in float32
            window = (slice(None), *(slice(o, o + n) for o, n in zip(offset, out_sp)), slice(None))
            acc = acc + (x[window] @ w[(slice(None), *offset, slice(None))].T).astype(F32)
        return acc, inp
    if fam == "Softmax":
        e = np.exp(x - x.max(axis=case.axis, keepdims=True)).astype(F32)
        return (e / np.expand_dims(_seq_f32(e, case.axis, reverse=True), case.axis)).astype(F32), inp
    if fam == "LayerNorm":  # one pass: var = E[x²] − E[x]², in float32 (cancels, still within bounds)
        xw, w, b = inp
        mean = _seq_f32(xw, -1)[..., None] / F32(xw.shape[-1])
        var = _seq_f32(xw * xw, -1)[..., None] / F32(xw.shape[-1]) - mean * mean
        return ((xw - mean) / np.sqrt(var + F32(1e-5)) * w + b).astype(F32), inp
    if fam == "BCE":
        p_, t = inp
        terms = -(t * np.log(p_) + (1 - t) * np.log1p(-p_)).astype(F32)
        return np.asarray(_seq_f32(terms.reshape(-1), reverse=True) / F32(terms.size), dtype=F32), inp
    if fam == "ScatterSum":
        y, idx, upd = inp
        acc = np.zeros(y.shape, dtype=F32)
        for i, row in zip(idx[::-1], upd[::-1]):
            acc[i] = acc[i] + row
        return acc, inp
    if fam == "ScaledDotProductAttention":
        q, k, v, m = inp
        scores = (q @ np.swapaxes(k, -1, -2)).astype(F32) * F32(1 / np.sqrt(q.shape[-1])) + m
        e = np.exp(scores - scores.max(axis=-1, keepdims=True)).astype(F32)
        p_ = e / _seq_f32(e, -1, reverse=True)[..., None]
        return (p_[..., ::-1] @ v[..., ::-1, :]).astype(F32), inp  # keys in reverse order
    raise AssertionError(fam)


def _softmax_unshifted(case: Case, inp: Inputs, out: np.ndarray) -> tuple[np.ndarray, Inputs]:
    e = np.exp(inp[0]).astype(F32)  # no max subtraction: equal in exact arithmetic, fine for these inputs
    return (e / e.sum(axis=case.axis, keepdims=True)).astype(F32), inp


def _argmax_last_tie(case: Case, inp: Inputs, out: np.ndarray) -> tuple[np.ndarray, Inputs]:
    """Inputs rounded to halves (many ties at the maximum), and the LAST maximal index of each row."""
    x = np.round(inp[0] * 2) / 2
    k = x.shape[case.axis]
    last = k - 1 - np.argmax(np.flip(x, axis=case.axis), axis=case.axis)
    assert np.any(last != np.argmax(x, axis=case.axis)), "the control needs ties"
    return last.astype(np.int64), (x.astype(F32),)


def _scatter_first_wins(case: Case, inp: Inputs, out: np.ndarray) -> tuple[np.ndarray, Inputs]:
    y, idx, upd = inp
    res = y.copy()
    res[idx[::-1]] = upd[::-1]  # with duplicate indices the FIRST update wins (NumPy keeps the last write)
    return res, inp


ARITHMETIC = FLOAT_OUT - EXACT
CONTROLS: list[tuple[str, frozenset[str], Callable[[Case, Inputs, np.ndarray], tuple[np.ndarray, Inputs]]]] = [
    ("reordered summation in float32",
     frozenset({"Sum", "SumAll", "MatMul", "Linear", "Conv1d", "Conv2d", "Softmax", "LayerNorm", "BCE",
                "ScatterSum", "ScaledDotProductAttention"}), _reordered),
    ("one ulp off everywhere (rounded the other way)", ARITHMETIC,
     lambda case, inp, out: (_ulp_off(case, inp, out), inp)),
    ("softmax without the max shift", frozenset({"Softmax"}), _softmax_unshifted),
    ("argmax: the last of tied maxima", frozenset({"Argmax"}), _argmax_last_tie),
    ("scatter: the first duplicate update wins", frozenset({"Scatter"}), _scatter_first_wins),
]


def _control_pairs() -> list[tuple[str, str, str]]:
    return [(b, name, f) for b in BACKENDS for name, fams, _ in CONTROLS for f in sorted(fams)]


@pytest.mark.skipif(not BACKENDS, reason="no framework installed")
@pytest.mark.parametrize(("backend", "control", "family"), _control_pairs())
def test_a_correct_variant_stays_ok(backend: str, control: str, family: str) -> None:
    """Negative controls: the same function computed another correct way is `ok`, handed back through the
    adapter's own array type like a planted output."""
    be = _backend(backend)
    case = CASES[family]
    if not be.supports(family):
        pytest.skip(f"{backend} has no {family}")
    make = next(fn for name, _, fn in CONTROLS if name == control)
    inputs = case.make_inputs("float32", 0)
    real = be.to_numpy(_native_output(be, case, inputs))
    variant, checked_inputs = make(case, inputs, real)
    native = be.from_numpy(_contiguous(variant))
    verdict = verify_output(be, case, checked_inputs, be.to_numpy(native), "float32", 0, be.dtype_name(native))
    assert verdict.status == "ok", f"{backend} {family} '{control}' -> {verdict}"



def _ln(inp: Inputs, eps: float) -> np.ndarray:
    x, w, b = (a.astype(np.float64) for a in inp)
    out = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * w + b
    return out.astype(np.float32)


def _pairs() -> list[tuple[str, Plant, str]]:
    return [(b, p, f) for b in BACKENDS for p in PLANTS for f in sorted(p.families)
            if not (p.forcing == "lazy" and b != "mlx_cpu")]


_BACKENDS: dict[str, Any] = {}


def _backend(name: str) -> Any:
    if name not in _BACKENDS:
        be = get_backend(name)
        be.setup()
        _BACKENDS[name] = be
    return _BACKENDS[name]


def _contiguous(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy that keeps a 0-d array 0-d (np.ascontiguousarray makes it 1-d, and a planted scalar
    would then be caught by its shape instead of its value)."""
    return np.array(a, order="C", copy=True)


def _native_output(be: Any, case: Case, inputs: Inputs) -> Any:
    prepared = be.prepare(case, inputs)
    op = be.compile(prepared.op) if be.compiled else prepared.op
    out = op(*prepared.args)
    be.force(out)
    be.sync()
    return prepared.canonical(out)


def _verdict(be: Any, case: Case, plant: Plant) -> str:
    inputs = case.make_inputs("float32", 0)
    if plant.forcing:
        return _forcing_verdict(be, case, plant.forcing)
    if plant.inputs is not None:
        built_case, built_inputs = plant.inputs(case, inputs)
        native = _native_output(be, built_case, built_inputs)
    else:
        real = be.to_numpy(_native_output(be, case, inputs))
        planted = plant.output(case, inputs, real)
        assert planted.shape == real.shape, "an output plant keeps the shape (it must be caught by its values)"
        native = be.from_numpy(_contiguous(planted))
    verdict = verify_output(be, case, inputs, be.to_numpy(native), "float32", 0, be.dtype_name(native))
    return verdict.status + (f" ({verdict.detail})" if verdict.detail else f" (rel. error {verdict.rel_error:.2g})")


def _forcing_verdict(be: Any, case: Case, how: str) -> str:
    planted = type(f"Planted{type(be).__name__}", (type(be),), {})()
    planted.setup()
    if how == "lazy":
        planted.force = lambda out: None  # the seed's MLX bug: graphs built, never evaluated
    else:  # the op (compiled, where the adapter compiles) returns its first result again
        real_compile = planted.compile

        def memoized(op: Callable[..., Any]) -> Callable[..., Any]:
            cache: list[Any] = []

            def call(*args: Any) -> Any:
                if not cache:
                    cache.append(op(*args))
                return cache[0]

            return call

        planted.compiled = True
        planted.compile = lambda op: memoized(real_compile(op))
    result = measure_case(planted, case, "float32", 0, TINY)
    return result.status + f" ({result.error})"


@pytest.mark.skipif(not BACKENDS, reason="no framework installed")
@pytest.mark.parametrize(("backend", "plant", "family"), _pairs(),
                         ids=lambda v: v.kind if isinstance(v, Plant) else str(v))
def test_planted_bug_is_caught(backend: str, plant: Plant, family: str) -> None:
    be = _backend(backend)
    case = CASES[family]
    if not be.supports(family):
        pytest.skip(f"{backend} has no {family}")
    verdict = _verdict(be, case, plant)
    assert verdict.startswith(("wrong", "not-forced")), f"{backend} {family} '{plant.kind}' -> {verdict}"


@pytest.mark.skipif(not BACKENDS, reason="no framework installed")
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_unplanted_adapter_is_ok(backend: str) -> None:
    """The same cases, nothing planted: every one verifies `ok` (so a planted verdict is the plant's doing)."""
    be = _backend(backend)
    for family, case in CASES.items():
        inputs = case.make_inputs("float32", 0)
        native = _native_output(be, case, inputs)
        verdict = verify_output(be, case, inputs, be.to_numpy(native), "float32", 0, be.dtype_name(native))
        assert verdict.status == "ok", (backend, family, verdict)
    assert measure_case(be, CASES["ReLU"], "float32", 0, TINY).status == "ok"


def test_every_kind_is_counted(capsys: pytest.CaptureFixture[str]) -> None:
    pairs = {(p.kind, f) for p in PLANTS for f in p.families}
    assert {f for _, f in pairs} == set(FAMILIES)  # every family has planted mistakes
    per_family = {f: sum(1 for _, g in pairs if g == f) for f in FAMILIES}
    assert min(per_family.values()) >= 5
    with capsys.disabled():
        print(f"\nplanted bugs: {len(PLANTED_KINDS)} kinds, {len(pairs)} kind x family pairs, "
              f"x {len(BACKENDS)} backends ({', '.join(BACKENDS)}); negative controls: {len(CONTROLS)} kinds, "
              f"{sum(len(f) for _, f, _ in CONTROLS)} kind x family pairs")
