"""What each operation family computes: the one function every backend must implement.

This module is the written-down semantics of opbench. Every backend adapter implements exactly these
functions, and every result is checked against the float64 references below. Where the code behind the seed
article computed something else on one framework, the family docstring says so.

Conventions, shared by all families:
- Shapes are channels-last, as in the seed (`N x L x C`, `N x H x W x C`). Conv weights are `out x k x in`
  (`out x kh x kw x in`). Padding 0, stride 1, dilation 1. A framework with another native layout gets its
  inputs transposed before timing, and its output transposed back after timing.
- Float inputs are standard normal (zero mean, so that reduced-precision arithmetic such as TF32 shows up in
  the relative error), except where a family says otherwise. Integer dtypes get small integers in [-4, 4] so
  that integer results are exact.
- Index inputs are int64 and drawn with replacement, so duplicates occur (Gather, Scatter*); a Scatter case with
  at least two updates always has one.
- FLOP counts are the usual operation counts (one per add, multiply, compare or transcendental); byte counts
  are the minimum traffic: every input read once, the output written once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from opbench.catalog._case import FAMILIES, Case, Family, Inputs, Shape

# ---------------------------------------------------------------------------------------------------- helpers


def f64(a: np.ndarray) -> np.ndarray:
    """Exact upcast of a backend-visible input to float64 (every float16/32 and small int value is exact)."""
    return np.asarray(a, dtype=np.float64)


def _data(rng: np.random.Generator, shape: Shape, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        return rng.integers(-4, 5, size=shape).astype(dtype)
    return rng.standard_normal(size=shape, dtype=np.float32).astype(dtype)


def _positive(rng: np.random.Generator, shape: Shape, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 5, size=shape).astype(dtype)
    return rng.random(size=shape, dtype=np.float32).astype(dtype)


def _size(shape: Shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _rows(x: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    return x if rows is None else x[rows]


def _plain_specs(case: Case, dtype: np.dtype) -> list[tuple[Shape, int]]:
    return [(s, dtype.itemsize) for s in case.shapes]


def _axis_len(case: Case) -> int:
    assert case.axis is not None
    return case.shapes[0][case.axis]


# ---------------------------------------------------------------------------------------------- elementwise


def _unary(name: str, doc: str, fn: Callable[[np.ndarray], np.ndarray], flops_per: float) -> Family:
    return Family(
        name=name,
        doc=doc,
        make_inputs=lambda case, rng, dt: (_data(rng, case.shapes[0], dt),),
        reference=lambda case, inp, rows: fn(f64(_rows(inp[0], rows))),
        output_shape=lambda case: case.shapes[0],
        input_specs=_plain_specs,
        flops=lambda case: flops_per * _size(case.shapes[0]),
        output_kind="same" if name in ("ReLU",) else "float",
        integer_ok=name == "ReLU",
    )


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
LEAKY_SLOPE = 0.01


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(x, 0.0)


def _selu(x: np.ndarray) -> np.ndarray:
    return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ------------------------------------------------------------------------------------------------- families

FAMILY_LIST: list[Family] = []


def _add(f: Family) -> Family:
    FAMILY_LIST.append(f)
    return f


_add(_unary("ReLU", "max(x, 0).", lambda x: np.maximum(x, 0.0), 1))
_add(_unary("LeakyReLU", f"x if x > 0 else {LEAKY_SLOPE}*x.", lambda x: np.where(x > 0, x, LEAKY_SLOPE * x), 2))
_add(_unary("Sigmoid", "1 / (1 + exp(-x)).", _sigmoid, 4))
_add(_unary("SeLU", "scale * (x if x > 0 else alpha * (exp(x) - 1)), the standard SELU constants.", _selu, 5))
_add(_unary("Softplus", "log(1 + exp(x)) (torch's linear threshold at 20 changes nothing in float32).",
            _softplus, 4))

_add(Family(
    name="PReLU",
    doc="x if x > 0 else w*x with a single learned slope w (shape (1,)), drawn from [0.1, 0.3].",
    make_inputs=lambda case, rng, dt: (
        _data(rng, case.shapes[0], dt),
        (rng.uniform(0.1, 0.3, size=case.shapes[1]).astype(dt) if dt.kind == "f" else np.ones(case.shapes[1], dt)),
    ),
    reference=lambda case, inp, rows: (lambda x, w: np.where(x > 0, x, w[0] * x))(f64(_rows(inp[0], rows)),
                                                                                  f64(inp[1])),
    output_shape=lambda case: case.shapes[0],
    input_specs=_plain_specs,
    flops=lambda case: 2 * _size(case.shapes[0]),
    integer_ok=False,
))

_add(Family(
    name="Softmax",
    doc="exp(x - max) / sum(exp(x - max)) along `axis`, which every backend must honour (MLX's version "
        "behind the seed ignored it).",
    make_inputs=lambda case, rng, dt: (_data(rng, case.shapes[0], dt),),
    reference=lambda case, inp, rows: _softmax(f64(_rows(inp[0], rows)), case.axis),
    output_shape=lambda case: case.shapes[0],
    input_specs=_plain_specs,
    flops=lambda case: 5 * _size(case.shapes[0]),
    accumulation=_axis_len,
    output_kind="float",
    integer_ok=False,
))

_add(Family(
    name="LayerNorm",
    doc="(x - mean) / sqrt(var + 1e-5) * w + b over the last axis; w, b have the last axis' length.",
    make_inputs=lambda case, rng, dt: (
        _data(rng, case.shapes[0], dt),
        (1.0 + 0.1 * rng.standard_normal(case.shapes[0][-1])).astype(dt),
        (0.1 * rng.standard_normal(case.shapes[0][-1])).astype(dt),
    ),
    reference=lambda case, inp, rows: _layer_norm(f64(_rows(inp[0], rows)), f64(inp[1]), f64(inp[2])),
    output_shape=lambda case: case.shapes[0],
    input_specs=lambda case, dt: [(case.shapes[0], dt.itemsize), ((case.shapes[0][-1],), dt.itemsize),
                                  ((case.shapes[0][-1],), dt.itemsize)],
    flops=lambda case: 8 * _size(case.shapes[0]),
    accumulation=lambda case: case.shapes[0][-1],
    output_kind="float",
    integer_ok=False,
))

LAYER_NORM_EPS = 1e-5


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * w + b


# --------------------------------------------------------------------------------------------- reductions

_add(Family(
    name="Argmax",
    doc="Index of the maximum along `axis` (honoured on every backend). Ties: any maximal index is right.",
    make_inputs=lambda case, rng, dt: (_data(rng, case.shapes[0], dt),),
    reference=lambda case, inp, rows: np.argmax(inp[0], axis=case.axis),
    output_shape=lambda case: tuple(d for i, d in enumerate(case.shapes[0]) if i != case.axis % len(case.shapes[0])),
    input_specs=_plain_specs,
    flops=lambda case: _size(case.shapes[0]),
    check="argmax",
    output_kind="index",
))

_add(Family(
    name="Sum",
    doc="Sum along `axis` (honoured on every backend). Inputs uniform in [0, 1) keep the sum well conditioned.",
    make_inputs=lambda case, rng, dt: (_positive(rng, case.shapes[0], dt),),
    reference=lambda case, inp, rows: f64(inp[0]).sum(axis=case.axis),
    output_shape=lambda case: tuple(d for i, d in enumerate(case.shapes[0]) if i != case.axis % len(case.shapes[0])),
    input_specs=_plain_specs,
    flops=lambda case: _size(case.shapes[0]),
    accumulation=_axis_len,
))

_add(Family(
    name="SumAll",
    doc="Sum of every element, a scalar. Inputs uniform in [0, 1).",
    make_inputs=lambda case, rng, dt: (_positive(rng, case.shapes[0], dt),),
    reference=lambda case, inp, rows: np.asarray(f64(inp[0]).sum()),
    output_shape=lambda case: (),
    input_specs=_plain_specs,
    flops=lambda case: _size(case.shapes[0]),
    accumulation=lambda case: _size(case.shapes[0]),
))

_add(Family(
    name="BCE",
    doc="Binary cross-entropy, mean reduction: -mean(t*log(p) + (1-t)*log(1-p)). p are probabilities in "
        "[0.02, 0.98] (first shape), t targets in {0, 1} (second shape).",
    make_inputs=lambda case, rng, dt: (
        rng.uniform(0.02, 0.98, size=case.shapes[0]).astype(dt),
        rng.integers(0, 2, size=case.shapes[1]).astype(dt),
    ),
    reference=lambda case, inp, rows: _bce(f64(inp[0]), f64(inp[1])),
    output_shape=lambda case: (),
    input_specs=_plain_specs,
    flops=lambda case: 6 * _size(case.shapes[0]),
    accumulation=lambda case: _size(case.shapes[0]),
    output_kind="float",
    integer_ok=False,
))


def _bce(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.asarray(-np.mean(t * np.log(p) + (1.0 - t) * np.log1p(-p)))


_add(Family(
    name="Sort",
    doc="Sorted values (ascending) along `axis`. Values only, so ties cannot matter.",
    make_inputs=lambda case, rng, dt: (_data(rng, case.shapes[0], dt),),
    reference=lambda case, inp, rows: np.sort(f64(inp[0]), axis=case.axis),
    output_shape=lambda case: case.shapes[0],
    input_specs=_plain_specs,
    flops=lambda case: _size(case.shapes[0]) * max(1.0, math.log2(_axis_len(case))),
))

# ------------------------------------------------------------------------------------- linear algebra / conv


def _matmul_rows(case: Case, inp: Inputs, rows: np.ndarray | None) -> np.ndarray:
    a, b = inp
    if rows is None:
        return np.matmul(f64(a), f64(b))
    b_part = b[rows] if b.ndim == a.ndim and a.ndim >= 3 else b
    return np.matmul(f64(a[rows]), f64(b_part))


def _matmul_out(case: Case) -> Shape:
    a, b = case.shapes
    batch = np.broadcast_shapes(a[:-2], b[:-2]) if len(a) > 2 or len(b) > 2 else ()
    return (*batch, a[-2], b[-1])


_add(Family(
    name="MatMul",
    doc="a @ b with NumPy broadcasting of batch dimensions.",
    make_inputs=lambda case, rng, dt: tuple(_data(rng, s, dt) for s in case.shapes),
    reference=_matmul_rows,
    output_shape=_matmul_out,
    input_specs=_plain_specs,
    flops=lambda case: 2 * _size(_matmul_out(case)) * case.shapes[0][-1],
    accumulation=lambda case: case.shapes[0][-1],
))

_add(Family(
    name="Linear",
    doc="x @ W + b, with W stored `in x out` (second shape) and b of length `out` (third shape).",
    make_inputs=lambda case, rng, dt: tuple(_data(rng, s, dt) for s in case.shapes),
    reference=lambda case, inp, rows: f64(_rows(inp[0], rows)) @ f64(inp[1]) + f64(inp[2]),
    output_shape=lambda case: (*case.shapes[0][:-1], case.shapes[1][-1]),
    input_specs=_plain_specs,
    flops=lambda case: 2 * _size(case.shapes[0]) * case.shapes[1][-1] + _size(case.shapes[0][:-1]) * case.shapes[1][-1],
    accumulation=lambda case: case.shapes[0][-1],
))


def _conv_nd(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Valid cross-correlation, channels-last: x `N x S... x Cin`, w `Cout x K... x Cin` -> `N x S'... x Cout`.

    Loops over kernel offsets and does one matmul per offset: memory stays at the output's size (no im2col
    copy), at the price of prod(K) passes over x.
    """
    spatial = w.shape[1:-1]
    out_sp = tuple(s - k + 1 for s, k in zip(x.shape[1:-1], spatial))
    out = np.zeros((x.shape[0], *out_sp, w.shape[0]), dtype=np.float64)
    for offset in np.ndindex(*spatial):
        window = (slice(None), *(slice(o, o + n) for o, n in zip(offset, out_sp)), slice(None))
        out += x[window] @ w[(slice(None), *offset, slice(None))].T
    return out


def _conv_out(case: Case) -> Shape:
    x, w = case.shapes
    return (x[0], *(s - k + 1 for s, k in zip(x[1:-1], w[1:-1])), w[0])


def _conv(name: str, dims: int) -> Family:
    return Family(
        name=name,
        doc=f"Valid {dims}-D cross-correlation, stride 1, no bias. x is channels-last, w is `out x k x in`.",
        make_inputs=lambda case, rng, dt: tuple(_data(rng, s, dt) for s in case.shapes),
        reference=lambda case, inp, rows: _conv_nd(f64(_rows(inp[0], rows)), f64(inp[1])),
        output_shape=_conv_out,
        input_specs=_plain_specs,
        flops=lambda case: 2 * _size(_conv_out(case)) * _size(case.shapes[1][1:]),
        accumulation=lambda case: _size(case.shapes[1][1:]),
    )


_add(_conv("Conv1d", 1))
_add(_conv("Conv2d", 2))

_add(Family(
    name="ScaledDotProductAttention",
    doc="softmax(q @ k^T * scale + mask) @ v with scale 1/sqrt(d) and the additive causal mask "
        "mask[i, j] = 0 if j <= i else -inf (query i sees keys 0..i, as in mlx-benchmark). q/k/v `B x H x L x d`.",
    make_inputs=lambda case, rng, dt: (*(_data(rng, s, dt) for s in case.shapes), _causal_mask(case, dt)),
    reference=lambda case, inp, rows: _sdpa(*(f64(_rows(a, rows)) for a in inp[:3]), f64(inp[3])),
    output_shape=lambda case: (*case.shapes[0][:-1], case.shapes[2][-1]),
    input_specs=lambda case, dt: [*_plain_specs(case, dt), ((case.shapes[0][-2], case.shapes[1][-2]), dt.itemsize)],
    flops=lambda case: _size(case.shapes[0][:-1]) * case.shapes[1][-2] * (4 * case.shapes[0][-1] + 5),
    accumulation=lambda case: max(case.shapes[0][-1], case.shapes[1][-2]),
    output_kind="float",
    integer_ok=False,
))


def _causal_mask(case: Case, dt: np.dtype) -> np.ndarray:
    lq, lk = case.shapes[0][-2], case.shapes[1][-2]
    keep = np.tril(np.ones((lq, lk), dtype=bool))
    return np.where(keep, 0.0, -np.inf).astype(dt)


def _sdpa(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1]) + mask
    return _softmax(scores, -1) @ v


# -------------------------------------------------------------------------------------- indexing and copying

_add(Family(
    name="Concat",
    doc="Concatenation of the two inputs along `axis`.",
    make_inputs=lambda case, rng, dt: tuple(_data(rng, s, dt) for s in case.shapes),
    reference=lambda case, inp, rows: _concat_rows(case, inp, rows),
    output_shape=lambda case: tuple(
        a + b if i == case.axis % len(case.shapes[0]) else a for i, (a, b) in enumerate(zip(*case.shapes))),
    input_specs=_plain_specs,
    flops=lambda case: 0,
))


def _concat_rows(case: Case, inp: Inputs, rows: np.ndarray | None) -> np.ndarray:
    a, b = inp
    if rows is None:
        return np.concatenate([f64(a), f64(b)], axis=case.axis)
    if case.axis % a.ndim != 0:
        return np.concatenate([f64(a[rows]), f64(b[rows])], axis=case.axis)
    n = a.shape[0]
    return np.stack([f64(a[r]) if r < n else f64(b[r - n]) for r in rows])


def _index_inputs(case: Case, rng: np.random.Generator, dt: np.dtype, with_updates: bool) -> Inputs:
    """A table, m indices into its rows and (Scatter*) m update rows. Scatter indices always contain a duplicate
    when m >= 2 (10 draws from 1024 rows usually have none), so that "set instead of add" cannot pass."""
    table, (m,) = case.shapes
    idx = rng.integers(0, table[0], size=m, dtype=np.int64)
    if not with_updates:
        return _data(rng, table, dt), idx
    if m >= 2 and len(np.unique(idx)) == m:
        later = int(rng.integers(1, m))
        idx[later] = idx[int(rng.integers(0, later))]
    return _data(rng, table, dt), idx, _data(rng, (m, *table[1:]), dt)


def _index_specs(case: Case, dt: np.dtype, with_updates: bool) -> list[tuple[Shape, int]]:
    table, (m,) = case.shapes
    specs = [(table, dt.itemsize), ((m,), 8)]
    return [*specs, ((m, *table[1:]), dt.itemsize)] if with_updates else specs


_add(Family(
    name="Gather",
    doc="x[idx]: whole rows of x (first shape) picked by idx (second shape: how many indices).",
    make_inputs=lambda case, rng, dt: _index_inputs(case, rng, dt, with_updates=False),
    reference=lambda case, inp, rows: f64(inp[0][_rows(inp[1], rows)]),
    output_shape=lambda case: (case.shapes[1][0], *case.shapes[0][1:]),
    input_specs=lambda case, dt: _index_specs(case, dt, with_updates=False),
    flops=lambda case: 0,
    index_inputs=(1,),
))


def _scatter_ref(case: Case, inp: Inputs, rows: np.ndarray | None) -> np.ndarray:
    y, idx, upd = inp
    if case.family == "Scatter":
        out = f64(y).copy()
        out[idx] = f64(upd)  # with duplicates NumPy keeps the last; the verifier accepts any competing row
        return out
    out = np.zeros(y.shape, dtype=np.float64)
    if case.family == "ScatterSum":
        np.add.at(out, idx, f64(upd))
    else:
        np.maximum.at(out, idx, f64(upd))
    return out


def _scatter(name: str, doc: str, check: str, flops_per: int) -> Family:
    return Family(
        name=name,
        doc=doc,
        make_inputs=lambda case, rng, dt: _index_inputs(case, rng, dt, with_updates=True),
        reference=_scatter_ref,
        output_shape=lambda case: case.shapes[0],
        input_specs=lambda case, dt: _index_specs(case, dt, with_updates=True),
        flops=lambda case: flops_per * case.shapes[1][0] * _size(case.shapes[0][1:]),
        accumulation=lambda case: max(1, math.ceil(case.shapes[1][0] / case.shapes[0][0])) if flops_per else 1,
        check=check,
        index_inputs=(1,),
    )


_add(_scatter("Scatter", "y[idx] = updates, whole rows, out of place (y is not modified). With duplicate indices "
              "any one of the competing rows is right. The torch code behind the seed scattered column 0 only.",
              "scatter", 0))
_add(_scatter("ScatterSum", "zeros_like(y) with updates rows added at idx (duplicates accumulate). The MLX code "
              "behind the seed never evaluated its result.", "values", 1))
_add(_scatter("ScatterMax", "zeros_like(y) with the row-wise maximum of itself and the updates at idx.",
              "values", 1))

FAMILIES.update({f.name: f for f in FAMILY_LIST})
