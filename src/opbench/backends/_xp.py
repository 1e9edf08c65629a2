"""Every catalog family written once against a NumPy-compatible array namespace, bound to `numpy` or `cupy`.

This is array-api-compat's idea applied to opbench's families: the implementations below never name a library.
Each builder asks its backend for an `ArrayNamespace` (the module, `numpy` or `cupy`, plus the few routines the
two spell differently) when a case is prepared, and returns a function that calls only that namespace. So
`backends/numpy.py` and `backends/cupy.py` hold only their device's concerns (conversion, synchronization,
memory, versions), CuPy is imported only by a process that prepares a cupy case, and a third NumPy-like library
(dpnp, array-api-strict) is one more small adapter.

The implementations are what a careful NumPy user writes, not loops over elements:
- Elementwise families are one or two ufunc calls; where several passes are needed the temporaries are reused in
  place (`out=`, `*=`), so a call allocates its output and at most one temporary.
- Softmax and SDPA subtract the row maximum before `exp` (no overflow), LayerNorm centres before squaring.
- Conv1d/Conv2d are im2col + one matrix product per block: a strided view of a block of the input
  (`as_strided`, `n x S'... x K... x C_in`, no copy) is copied once into a `pixels x (prod(K)*C_in)` matrix
  that multiplies the `(prod(K)*C_in) x C_out` weights (reshaped once, before timing) with `dot`. Trade-off:
  one big BLAS/cuBLAS product instead of `prod(K)` thin ones, at the price of that copy; blocks over the batch
  (and over output rows when one sample is too big) bound it to `ArrayNamespace.im2col_bytes`, so memory stays
  near the output's size. Measured on the 2-core VM (NumPy 2.4, OpenBLAS): the `as_strided` copy was ~10x
  faster than stacking the `prod(K)` shifted slices, and `dot` faster than `matmul` for these tall, thin
  products; `einsum(..., optimize=True)` on `sliding_window_view` was 2.5x faster for C_in = 3 but 9x slower
  for C_in = 128.
- ScatterSum/ScatterMax use the unbuffered `ufunc.at` (`numpy.add.at`; `cupy.add.at`, or `cupyx.scatter_add`
  on CuPy before 13), which applies every duplicate index, unlike `out[idx] += upd`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from opbench.backends._base import Backend, Builder, Prepared
from opbench.catalog import Case
from opbench.catalog.families import LAYER_NORM_EPS, LEAKY_SLOPE, SELU_ALPHA, SELU_SCALE


@dataclass(frozen=True)
class ArrayNamespace:
    """What the shared implementations need from a NumPy-like library.

    `xp` is the module (`numpy`, `cupy`); `add_at`/`maximum_at` are unbuffered in-place scatters
    `(out, idx, upd)`; `expit` is the logistic function as one ufunc (SciPy's, CuPy's cupyx.scipy);
    `im2col_bytes` bounds the window copy of one convolution block.
    """

    xp: Any
    add_at: Callable[[Any, Any, Any], None]
    maximum_at: Callable[[Any, Any, Any], None]
    expit: Callable[[Any], Any]
    im2col_bytes: int


Make = Callable[[ArrayNamespace, Case], Callable[..., Any]]


def _bound(make: Make) -> Builder:
    """A builder that makes its timed function from the backend's namespace at prepare time."""
    return lambda be, case, args: Prepared(make(be.namespace(), case), args)


# ---------------------------------------------------------------------------------------------- elementwise


def _relu(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    maximum = ns.xp.maximum
    return lambda x: maximum(x, 0)


def _leaky_relu(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    where = ns.xp.where
    return lambda x: where(x > 0, x, x * LEAKY_SLOPE)


def _sigmoid(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    """`expit` (one pass) where it keeps the dtype; SciPy's has no float16 loop (it would return float32), so
    other dtypes use 0.5·tanh(x/2) + 0.5 in place."""
    expit, tanh = ns.expit, ns.xp.tanh

    def sigmoid(x: Any) -> Any:
        if x.dtype in (np.float32, np.float64):
            return expit(x)
        t = x * 0.5
        tanh(t, out=t)
        t *= 0.5
        t += 0.5
        return t

    return sigmoid


def _selu(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    """scale·max(x, 0) + scale·alpha·expm1(min(x, 0)): the two parts are never both non-zero, so the sum is the
    piecewise SELU, computed in two arrays updated in place."""
    xp = ns.xp

    def selu(x: Any) -> Any:
        neg = xp.minimum(x, 0)
        xp.expm1(neg, out=neg)
        neg *= SELU_SCALE * SELU_ALPHA
        pos = xp.maximum(x, 0)
        pos *= SELU_SCALE
        pos += neg
        return pos

    return selu


def _softplus(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    logaddexp = ns.xp.logaddexp
    return lambda x: logaddexp(x, 0)


def _prelu(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    where = ns.xp.where
    return lambda x, w: where(x > 0, x, w * x)  # w has shape (1,): one slope for every element


def _softmax(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    xp, axis = ns.xp, case.axis

    def softmax(x: Any) -> Any:
        e = x - x.max(axis=axis, keepdims=True)
        xp.exp(e, out=e)
        e /= e.sum(axis=axis, keepdims=True)
        return e

    return softmax


def _layer_norm(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    xp = ns.xp

    def layer_norm(x: Any, w: Any, b: Any) -> Any:
        c = x - x.mean(axis=-1, keepdims=True)
        var = (c * c).mean(axis=-1, keepdims=True)
        var += LAYER_NORM_EPS
        xp.sqrt(var, out=var)
        c /= var
        c *= w
        c += b
        return c

    return layer_norm


# --------------------------------------------------------------------------------------------- reductions


def _axis_op(name: str) -> Make:
    return lambda ns, case: (lambda fn, axis: lambda x: fn(x, axis=axis))(getattr(ns.xp, name), case.axis)


def _sum_all(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    return ns.xp.sum


def _bce(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    xp = ns.xp

    def bce(p: Any, t: Any) -> Any:
        pos = xp.log(p)
        pos *= t
        neg = xp.log1p(-p)
        neg *= 1 - t
        pos += neg
        return -pos.mean()

    return bce


# ------------------------------------------------------------------------------------- linear algebra / conv


def _matmul(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    return ns.xp.matmul


def _linear(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    """x @ W + b as one 2-D product over every leading dimension (one BLAS call, not one per batch row)."""
    matmul = ns.xp.matmul

    def linear(x: Any, w: Any, b: Any) -> Any:
        out = matmul(x.reshape(-1, x.shape[-1]), w).reshape(*x.shape[:-1], w.shape[-1])
        out += b
        return out

    return linear


def _conv(be: Backend, case: Case, args: tuple[Any, ...]) -> Prepared:
    """im2col + matmul (module docstring). The weights `O x K... x C` become a contiguous `(prod(K)*C) x O` matrix
    before timing; the timed call builds each block's window matrix and multiplies it into its rows of the output."""
    ns = be.namespace()
    xp = ns.xp
    x, w = args
    kernel, c_out = w.shape[1:-1], w.shape[0]
    out_sp = tuple(s - k + 1 for s, k in zip(x.shape[1:-1], kernel))
    depth = math.prod(kernel) * x.shape[-1]
    w_mat = xp.ascontiguousarray(w.reshape(c_out, depth).T)
    row_pixels = math.prod(out_sp[1:])  # output pixels per row of the first spatial dimension
    sample_pixels = out_sp[0] * row_pixels
    bytes_per_pixel = depth * x.dtype.itemsize
    per_block = max(1, ns.im2col_bytes // max(1, sample_pixels * bytes_per_pixel))  # samples per block
    row_block = out_sp[0] if per_block > 1 else max(1, ns.im2col_bytes // max(1, row_pixels * bytes_per_pixel))
    dot, empty, result_type = xp.dot, xp.empty, xp.result_type
    as_strided, contiguous = xp.lib.stride_tricks.as_strided, xp.ascontiguousarray

    def windows(part: Any, extent: tuple[int, ...]) -> Any:
        """The view `n x extent... x K... x C` of `part` whose [.., p, k, c] is part[.., p + k, c] (no copy)."""
        strides = part.strides
        return as_strided(part, (part.shape[0], *extent, *kernel, part.shape[-1]),
                          (strides[0], *strides[1:-1], *strides[1:-1], strides[-1]))

    def conv(x: Any, w_mat: Any) -> Any:
        n = x.shape[0]
        out = empty((n * sample_pixels, c_out), dtype=result_type(x, w_mat))
        for n0 in range(0, n, per_block):
            samples = min(per_block, n - n0)
            for r0 in range(0, out_sp[0], row_block):
                rows = min(row_block, out_sp[0] - r0)
                cols = contiguous(windows(x[n0:n0 + samples, r0:r0 + rows + kernel[0] - 1], (rows, *out_sp[1:])))
                start = n0 * sample_pixels + r0 * row_pixels
                dot(cols.reshape(-1, depth), w_mat, out=out[start:start + samples * rows * row_pixels])
        return out.reshape(n, *out_sp, c_out)

    return Prepared(conv, (x, w_mat))


def _sdpa(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    """softmax(q kᵀ · scale + mask) v with the row maximum subtracted, the score matrix updated in place."""
    xp, scale = ns.xp, 1.0 / math.sqrt(case.shapes[0][-1])

    def sdpa(q: Any, k: Any, v: Any, mask: Any) -> Any:
        s = xp.matmul(q, xp.swapaxes(k, -1, -2))
        s *= scale
        s += mask
        s -= s.max(axis=-1, keepdims=True)
        xp.exp(s, out=s)
        s /= s.sum(axis=-1, keepdims=True)
        return xp.matmul(s, v)

    return sdpa


# -------------------------------------------------------------------------------------- indexing and copying


def _concat(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    concatenate, axis = ns.xp.concatenate, case.axis
    return lambda a, b: concatenate((a, b), axis=axis)


def _gather(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    take = ns.xp.take
    return lambda x, idx: take(x, idx, axis=0)


def _scatter(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
    def scatter(y: Any, idx: Any, upd: Any) -> Any:
        out = y.copy()  # out of place: y is not modified
        out[idx] = upd
        return out

    return scatter


def _scatter_reduce(reduce: str) -> Make:
    def make(ns: ArrayNamespace, case: Case) -> Callable[..., Any]:
        zeros_like, at = ns.xp.zeros_like, ns.add_at if reduce == "sum" else ns.maximum_at

        def scatter(y: Any, idx: Any, upd: Any) -> Any:
            out = zeros_like(y)
            at(out, idx, upd)
            return out

        return scatter

    return make


BUILDERS: dict[str, Builder] = {
    "Argmax": _bound(_axis_op("argmax")),
    "BCE": _bound(_bce),
    "Concat": _bound(_concat),
    "Conv1d": _conv,
    "Conv2d": _conv,
    "Gather": _bound(_gather),
    "LayerNorm": _bound(_layer_norm),
    "LeakyReLU": _bound(_leaky_relu),
    "Linear": _bound(_linear),
    "MatMul": _bound(_matmul),
    "PReLU": _bound(_prelu),
    "ReLU": _bound(_relu),
    "ScaledDotProductAttention": _bound(_sdpa),
    "Scatter": _bound(_scatter),
    "ScatterSum": _bound(_scatter_reduce("sum")),
    "ScatterMax": _bound(_scatter_reduce("max")),
    "SeLU": _bound(_selu),
    "Sigmoid": _bound(_sigmoid),
    "Softmax": _bound(_softmax),
    "Softplus": _bound(_softplus),
    "Sort": _bound(_axis_op("sort")),
    "Sum": _bound(_axis_op("sum")),
    "SumAll": _bound(_sum_all),
}

def _copy_probe(be: Backend, probe: Any, args: tuple[Any, ...]) -> Prepared:
    """Calibration's copy: `copyto` into a buffer allocated before timing (a fresh output per call would time
    page faults on a CPU and the memory pool on a GPU)."""
    (x,) = args
    copyto, dst = be.namespace().xp.copyto, be.namespace().xp.empty_like(x)
    return Prepared(lambda a: copyto(dst, a) or dst, (x,), how="copyto(preallocated, x)", fresh_outputs=False)


# `read` and `matmul` are the SumAll and MatMul builders (the `Backend.probe_builder` default); only the copy
# needs its own call.
PROBES: dict[str, Builder] = {"copy": _copy_probe}

BFLOAT16_REASON = ("{library} has no bfloat16 dtype (ml_dtypes adds a storage type, but {library}'s own routines "
                   "do not compute in it)")


class NumPyLikeBackend(Backend):
    """What the numpy and cupy adapters share: the builders above, and refusing bfloat16 with the reason."""

    builders = BUILDERS
    probes: ClassVar[dict[str, Builder]] = PROBES
    unsupported: ClassVar[dict[str, str]] = {}  # every catalog family has a builder

    def namespace(self) -> ArrayNamespace:
        raise NotImplementedError

    def dtype_name(self, x: Any) -> str:
        return str(x.dtype)

    def _check_dtype(self, dtype: str | None) -> None:
        if dtype in self.unsupported_dtypes:
            raise TypeError(self.unsupported_dtypes[dtype])
