"""Verification: every element of every backend output against float64 NumPy, with derived, mode-aware bounds.

Verdicts
--------
- `ok`: the output has the case's shape and dtype, and it is within the bounds that correct arithmetic in the
  case's dtype gives (below), normwise and element by element.
- `reduced-precision`: it is outside the dtype's own bounds but within the bounds of a narrower arithmetic that
  the measuring process *reported* for this family and dtype (`opbench.backends.arithmetic`: TF32 under
  `cudnn.allow_tf32`, `jax_default_matmul_precision`, MLX's TF32 default on CUDA, ...). The detail names that
  mode. Without a reported mode there is no `reduced-precision`: the bound is the dtype's own.
- `wrong`: anything else, including a NaN where the reference is finite, a shape or dtype mismatch (a float16
  result in a float32 case), and a single element beyond its bound. The detail says how many elements fail and
  where the first one is.

Error model
-----------
Each output element gets a standard deviation `σ` that correct rounding produces, from three unit roundoffs:
`u` (elementwise arithmetic: the dtype's, 2^-24 for float32), `u_dot` (the operands of products: the dtype's,
or 2^-11 under TF32, 2^-8 under bfloat16) and `u_acc` (accumulation: float32's for TF32/bf16 modes). Inputs are
exact in the dtype (the catalog generates them so), so only the rounding inside the op counts. Per family:

- Copies and selections (ReLU, Concat, Gather, Sort, Scatter, ScatterMax, Argmax) are exact: σ = 0, compared
  bit for bit in the output's own dtype (Argmax and Scatter tie-aware, see below).
- One rounding (LeakyReLU, PReLU): |err| <= u·|ref|, so σ = u·|ref|.
- Transcendental elementwise (Sigmoid, SeLU, Softplus): the intermediates (1 + e^x, e^x − 1) are O(1), so an
  error of a few ulp of them is an absolute error of a few u, whatever the result's size. libm-quality
  functions are within 1-2 ulp; fast-math ones are not: CUDA's `__expf` is within 2 + 1.16·|x| ulp, and MLX's
  CPU SeLU was measured here at up to 32 u·(|ref| + 1) (RMS 18 u·(|ref| + 1)). σ = 16u·(|ref| + 1)
  (`TRANSCENDENTAL_ULPS`), so 8σ = 128 u·(|ref| + 1): still 10^4 times below the smallest planted mistake.
- A K-term sum (Sum, SumAll, BCE's mean, ScatterSum): each addition rounds the partial sum by a relative u_acc;
  with rounding errors of random sign (the catalog's random data) they add like a random walk, so the error of
  recursive summation is about u_acc·√(K/3)·Σ|x| and pairwise/blocked summation (what frameworks use) is
  smaller: σ = u_acc·(1 + √K)·Σ|x|. A sequential float32 sum of 10^8 positive numbers stalls once the partial
  sum's ulp exceeds the terms (the known mlx_cpu SumAll failure): far outside, hence `wrong`.
- Softmax: exp within 4 ulp plus the rounding of x − max (u·|x − max| relative), and the K-term sum of the
  denominator: σ = (u·(4 + |x − max|) + u_acc·√K)·|ref|. LayerNorm: the mean and variance are K-term sums whose
  error shifts every output by a relative u_acc·√K of its scale: σ = (4u + u_acc·√K)·(|x̂·w| + |w| + |b|).
- A K-term dot product a·b (MatMul, Linear, Conv1d, Conv2d): rounding both operands to u_dot perturbs each
  product by a relative √2·u_dot, which over K independent terms gives √2·u_dot·‖a‖‖b‖/√K on the catalog's iid
  data; accumulating the K products gives at most u_acc·‖a‖‖b‖ (the partial sums are at most ‖a‖‖b‖ in
  magnitude, and their rounding errors add as a random walk of √K steps of size ‖a‖‖b‖/√K):
  σ_ij = (√2·u_dot/√K + u_acc)·‖a_i‖·‖b_j‖ (+ u_acc·|ref| for Linear's bias). TF32 with K = 64 gives 9e-5 of
  ‖a‖‖b‖; float32 gives 6e-8 of it.
- Attention: the scores inherit a dot product's error e_i = (√2·u_dot/√d + u_acc)·scale·‖q_i‖·max_j ‖k_j‖
  (+ u·|s|); softmax turns a score error e into a relative error <= 2e of each weight; the weighted sum of v adds
  one more dot product: σ_id = (2e_i + 4u + √2·u_dot + u_acc·√L)·Σ_j p_ij·|v_jd|.

The checks: componentwise, no element may be further than `Z_ELEMENT` = 8 σ from the reference (a Gaussian
rounding error beyond 8σ has probability 1e-15: none in 10^9 elements); normwise, ‖out − ref‖ must be within
`Z_NORM` = 2 × ‖σ‖ (the RMS of correct rounding, with a factor 2 of margin). The normwise check catches small
errors spread over everything (a missing bias under TF32), the componentwise one localized errors (one wrong
row, a zeroed tail, one lost element) that a norm would average away. The reported tolerance is the normwise
bound relative to ‖ref‖.

Products are checked by Freivalds' method instead of a full float64 product: for random Gaussian vectors r,
out·r must equal A·(B·r) (for a convolution: the convolution with the single filter Σ_j r_j·w_j), which costs
O(n²) instead of O(n³) and checks every element: a wrong element e_ij changes row i's residual by e_ij·r_j,
which is zero only with probability zero. The residual of row i has σ_i² = Σ_j σ_ij²·r_j² + (u_dot·‖a_i‖·‖Br‖/√K)²
(the last term: the rounding of a_i is shared by the row), and the same 8σ / 2‖σ‖ rules apply per row; the
first failing row is re-computed in full to name the first wrong element. Two vectors are used.

Family-specific checks: Argmax is tie-aware (the chosen index must point at a maximal value). Scatter with
duplicate indices accepts any one of the competing rows, whole: a row whose elements come from different
duplicates (GPU scatters that write element by element can do this) is `wrong`, and the detail counts such
rows as torn. Sort compares values, so ties cannot matter.

A family without a derivation here (from a user catalog) gets its own float64 reference and a generic bound:
σ = (16u + u_acc·(1 + √K))·(|ref| + RMS(ref)), an elementwise function of O(1) intermediates followed by a
K-term accumulation (its `accumulation`), the RMS term covering cancellation.

Cost: the expected values of everything but elementwise functions (ReLU included) and Argmax (which has
none) are kept in a reference cache (`opbench.engine.reference_cache`), so the float64 work for a (case, dtype,
seed) is done once for all backends and all runs. The checks run over chunks of `CHUNK_ELEMENTS` in a thread
pool (NumPy releases the GIL inside each array operation), after the timing of the case has ended.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from opbench.catalog import Case
from opbench.catalog._bfloat16 import BFLOAT16
from opbench.results.status import Status

_T = TypeVar("_T")

# The verdicts, in the one vocabulary of results (`results.status`).
OK, REDUCED, WRONG = Status.OK, Status.REDUCED, Status.WRONG

Z_ELEMENT = 8.0
Z_NORM = 2.0
TRANSCENDENTAL_ULPS = 16.0
PROBES = 2  # random vectors for Freivalds' check
CHUNK_ELEMENTS = 1 << 22
MAX_CHECK_THREADS = 8  # threads of the chunked checks (each holds a few float64 chunks: ~250 MB)

FLOAT64_ROUNDOFF = 2.0**-53
_UNIT_ROUNDOFF = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24, "float64": 2.0**-53}
# The arithmetic a mode's first word names -> roundoff of product operands (accumulation stays float32's).
MODE_ROUNDOFF = {"TF32": 2.0**-11, "bfloat16": 2.0**-8, "float16": 2.0**-11, "bfloat16x3": 2.0**-16,
                 "float32": 2.0**-24}


@dataclass(frozen=True)
class Arithmetic:
    """Unit roundoffs of one arithmetic: elementwise `u`, product operands `u_dot`, accumulation `u_acc`."""

    name: str
    u: float
    u_dot: float
    u_acc: float

    @classmethod
    def of(cls, dtype: str, mode: str | None = None) -> Arithmetic:
        """The dtype's own arithmetic, or `mode` ("TF32 (cudnn.allow_tf32)": its first word names it) on top of
        it: TF32/bfloat16/float16 round the operands of products, accumulation stays in the dtype; "float32"
        (inside a float64 case) rounds everything to float32."""
        u = _UNIT_ROUNDOFF.get(dtype, FLOAT64_ROUNDOFF)  # integers: exact, up to the float64 check's own rounding
        if not mode:
            return cls(dtype, u, u, u)
        word = mode.split()[0]
        if word not in MODE_ROUNDOFF:
            raise ValueError(f"unknown arithmetic mode {mode!r}: its first word must be one of {sorted(MODE_ROUNDOFF)}")
        narrow = max(u, MODE_ROUNDOFF[word])
        if word == "float32":
            return cls(mode, narrow, narrow, narrow)
        return cls(mode, u, narrow, u)


@dataclass(frozen=True)
class Verdict:
    status: str
    rel_error: float
    tolerance: float
    detail: str = ""


def tolerance(dtype: str, accumulation: int) -> float:
    """The normwise bound of a K-term sum of positive terms in `dtype` (2 × u·(1 + √K)); 0 for integers."""
    u = _UNIT_ROUNDOFF.get(dtype, 0.0)
    return Z_NORM * u * (1 + math.sqrt(max(1, accumulation)))


def relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    diff = np.linalg.norm((np.asarray(out, dtype=np.float64) - ref).ravel())
    scale = np.linalg.norm(np.asarray(ref, dtype=np.float64).ravel())
    return float(diff) if scale == 0 else float(diff / scale)


def expected_output_dtype(case: Case, dtype: str) -> str | None:
    """The element type a faithful implementation returns, or None for 'any integer type' (indices)."""
    if case.spec.output_kind == "index":
        return None
    if case.spec.output_kind == "float" and dtype.startswith(("int", "uint")):
        return "float64"
    return dtype


# ------------------------------------------------------------------------------------------------ expectations


@dataclass
class Term:
    """One part of σ: `factor · roundoff(which) · scale`, `which` in u / dot / acc; `scale` None means |ref|."""

    which: str
    factor: float
    scale: np.ndarray | None = None


@dataclass
class Expected:
    """What an output is compared with, computed from the inputs alone (so it can be cached).

    `kind` is `exact` (arrays["ref"] in the output's own dtype), `values` (arrays["ref"] in float64 with σ
    terms), `product` (Freivalds probes), `argmax` or `scatter`. `arrays` holds everything that is cached.
    """

    kind: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    terms: list[tuple[str, float, str | None]] = field(default_factory=list)  # (which, factor, array name)
    meta: dict[str, float] = field(default_factory=dict)

    def term_list(self) -> list[Term]:
        return [Term(w, f, None if name is None else self.arrays[name]) for w, f, name in self.terms]

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays.values()))


def f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _exact(ref: np.ndarray) -> Expected:
    return Expected("exact", {"ref": np.asarray(ref)})


def _values(ref: np.ndarray, terms: list[tuple[str, float, np.ndarray | None]]) -> Expected:
    arrays = {"ref": np.asarray(ref, dtype=np.float64)}
    named = []
    for i, (which, factor, scale) in enumerate(terms):
        if scale is None:
            named.append((which, factor, None))
        else:
            arrays[f"s{i}"] = np.asarray(scale, dtype=np.float32)
            named.append((which, factor, f"s{i}"))
    return Expected("values", arrays, named)


def _elementwise(fn: Callable[[np.ndarray], np.ndarray], ulps: float, offset: float) -> Callable[..., Expected]:
    def make(case: Case, inputs: tuple[np.ndarray, ...]) -> Expected:
        ref = fn(f64(inputs[0]))
        scale = np.abs(ref) + offset if offset else None
        return _values(ref, [("u", ulps, scale)])

    return make


def _softmax(case: Case, inputs: tuple[np.ndarray, ...]) -> Expected:
    x = f64(inputs[0])
    shifted = x - x.max(axis=case.axis, keepdims=True)
    e = np.exp(shifted)
    ref = e / e.sum(axis=case.axis, keepdims=True)
    k = x.shape[case.axis]
    return _values(ref, [("u", 1.0, (4 - shifted) * ref), ("acc", math.sqrt(k), None)])


def _layer_norm(case: Case, inputs: tuple[np.ndarray, ...]) -> Expected:
    from opbench.catalog.families import LAYER_NORM_EPS

    x, w, b = (f64(a) for a in inputs)
    xhat = (x - x.mean(axis=-1, keepdims=True)) / np.sqrt(x.var(axis=-1, keepdims=True) + LAYER_NORM_EPS)
    ref = xhat * w + b
    k = x.shape[-1]
    scale = np.abs(xhat * w) + np.abs(w) + np.abs(b)
    return _values(ref, [("u", 4.0, scale), ("acc", math.sqrt(k), scale)])


def _sum(case: Case, inputs: tuple[np.ndarray, ...]) -> Expected:
    x = inputs[0]
    axis = case.axis if case.family == "Sum" else None
    ref = np.sum(x, axis=axis, dtype=np.float64)
    k = x.shape[axis] if axis is not None else x.size
    absolute = ref if np.all(x >= 0) else np.sum(np.abs(x), axis=axis, dtype=np.float64)
    return _values(ref, [("acc", 1 + math.sqrt(k), absolute)])


def _bce(case: Case, inputs: tuple[np.ndarray, ...]) -> Expected:
    p, t = f64(inputs[0]), f64(inputs[1])
    terms = -(t * np.log(p) + (1.0 - t) * np.log1p(-p))
    ref = np.asarray(terms.mean())
    mean_abs = np.asarray(np.abs(terms).mean())
    return _values(ref, [("u", 4.0, mean_abs), ("acc", math.sqrt(terms.size), mean_abs)])


def _scatter_sum(case: Case, inputs: tuple[np.ndarray, ...]) -> Expected:
    y, idx, upd = inputs
    ref = np.zeros(y.shape, dtype=np.float64)
    np.add.at(ref, idx, f64(upd))
    absolute = np.zeros(y.shape, dtype=np.float64)
    np.add.at(absolute, idx, np.abs(f64(upd)))
    counts = np.bincount(idx, minlength=y.shape[0]).reshape((-1,) + (1,) * (y.ndim - 1))
    return _values(ref, [("acc", 1.0, (1 + np.sqrt(counts)) * absolute)])


def _sdpa(case: Case, inputs: tuple[np.ndarray, ...]) -> Expected:
    q, k, v, mask = (f64(a) for a in inputs)
    d, length = q.shape[-1], k.shape[-2]
    scale = 1.0 / math.sqrt(d)
    scores = q @ np.swapaxes(k, -1, -2) * scale + mask
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    ref = p @ v
    weighted_abs = p @ np.abs(v)
    qn = np.linalg.norm(q, axis=-1, keepdims=True)
    kmax = np.linalg.norm(k, axis=-1).max(axis=-1)[..., None, None]
    smax = np.nanmax(np.where(np.isfinite(scores), np.abs(scores), 0.0), axis=-1, keepdims=True)
    dot = scale * qn * kmax  # e_i = (√2·u_dot/√d + u_acc)·dot + u·smax
    return _values(ref, [("dot", 2 * math.sqrt(2 / d), dot * weighted_abs), ("acc", 2.0, dot * weighted_abs),
                         ("u", 2.0, smax * weighted_abs), ("u", 4.0, weighted_abs),
                         ("dot", math.sqrt(2), weighted_abs), ("acc", math.sqrt(length), weighted_abs)])


def _exact_family(fn: Callable[[Case, tuple[np.ndarray, ...]], np.ndarray]) -> Callable[..., Expected]:
    return lambda case, inputs: _exact(fn(case, inputs))


def _scatter_max(case: Case, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    y, idx, upd = inputs
    out = np.zeros_like(y)
    np.maximum.at(out, idx, upd)
    return out


# --- products: Freivalds probes -------------------------------------------------------------------------------


def _probes(case: Case, n: int) -> np.ndarray:
    """`PROBES` Gaussian vectors of length n, the same for a case on every backend and every run."""
    import hashlib

    seed = int.from_bytes(hashlib.sha256(f"freivalds:{case.name}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal((PROBES, n))


def _product_expected(ref_r: list[np.ndarray], a_norm: np.ndarray, b_diag: list[np.ndarray],
                      br_norm: list[np.ndarray], r: np.ndarray, k: int) -> Expected:
    """Probe p of a product: `ref{p}` = (A B)·r_p per output row, with the row's σ parts: ‖a_i‖ (`a_norm`),
    sqrt(Σ_j ‖b_j‖² r_j²) (`bdiag{p}`) and ‖B r_p‖ (`brnorm{p}`), all broadcast to the rows' shape."""
    rows = ref_r[0].shape

    def full(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=np.float64), rows))

    arrays = {"r": r, "a_norm": full(a_norm)}
    for p in range(len(ref_r)):
        arrays[f"ref{p}"], arrays[f"bdiag{p}"], arrays[f"brnorm{p}"] = full(ref_r[p]), full(b_diag[p]), \
            full(br_norm[p])
    return Expected("product", arrays, meta={"k": float(k)})


def _matmul(case: Case, inputs: tuple[np.ndarray, ...]) -> Expected:
    a, b = f64(inputs[0]), f64(inputs[1])
    bias = f64(inputs[2]) if case.family == "Linear" else None
    n, k = b.shape[-1], a.shape[-1]
    r = _probes(case, n)
    a_norm = np.linalg.norm(a, axis=-1)  # (..., M)
    b_col = np.linalg.norm(b, axis=-2)  # (..., N)
    ref_r, b_diag, br_norm = [], [], []
    for p in range(PROBES):
        br = b @ r[p]  # (..., K)
        out_r = np.matmul(a, br[..., None])[..., 0]
        if bias is not None:
            out_r = out_r + bias @ r[p]
        ref_r.append(out_r)
        b_diag.append(np.sqrt((b_col**2) @ (r[p] ** 2))[..., None])  # (..., 1)
        br_norm.append(np.linalg.norm(br, axis=-1)[..., None])
    return _product_expected(ref_r, a_norm, b_diag, br_norm, r, k)


def _conv(case: Case, inputs: tuple[np.ndarray, ...]) -> Expected:
    from opbench.catalog.families import _conv_nd

    x, w = f64(inputs[0]), f64(inputs[1])
    cout, k = w.shape[0], int(np.prod(w.shape[1:]))
    r = _probes(case, cout)
    a_norm = np.sqrt(np.maximum(_conv_nd(x * x, np.ones((1, *w.shape[1:])))[..., 0], 0.0))
    w_norm = np.linalg.norm(w.reshape(cout, -1), axis=1)
    ref_r, b_diag, br_norm = [], [], []
    for p in range(PROBES):
        w_r = np.tensordot(r[p], w, axes=(0, 0))  # the single filter Σ_j r_j w_j
        ref_r.append(_conv_nd(x, w_r[None])[..., 0])
        b_diag.append(np.asarray(math.sqrt(float((w_norm**2) @ (r[p] ** 2)))))
        br_norm.append(np.asarray(float(np.linalg.norm(w_r))))
    return _product_expected(ref_r, a_norm, b_diag, br_norm, r, k)


def _argmax(case: Case, inputs: tuple[np.ndarray, ...]) -> Expected:
    return Expected("argmax")


def _scatter(case: Case, inputs: tuple[np.ndarray, ...]) -> Expected:
    y, idx, upd = inputs
    ref = y.copy()
    ref[idx] = upd  # with duplicates NumPy keeps the last; the check accepts any competing row
    return Expected("scatter", {"ref": ref})


def _lrelu(x: np.ndarray) -> np.ndarray:
    from opbench.catalog.families import LEAKY_SLOPE

    return np.where(x > 0, x, LEAKY_SLOPE * x)


def _prelu(case: Case, inputs: tuple[np.ndarray, ...]) -> Expected:
    x, w = f64(inputs[0]), f64(inputs[1])
    return _values(np.where(x > 0, x, w[0] * x), [("u", 1.0, None)])


def _family_expectations() -> dict[str, Callable[[Case, tuple[np.ndarray, ...]], Expected]]:
    from opbench.catalog import families as fam

    def concat(case: Case, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        return np.concatenate(inputs, axis=case.axis)

    return {
        "ReLU": _exact_family(lambda case, inp: np.maximum(inp[0], inp[0].dtype.type(0))),
        "Concat": _exact_family(concat),
        "Gather": _exact_family(lambda case, inp: inp[0][inp[1]]),
        "Sort": _exact_family(lambda case, inp: np.sort(inp[0], axis=case.axis)),
        "ScatterMax": _exact_family(_scatter_max),
        "Scatter": _scatter,
        "Argmax": _argmax,
        "LeakyReLU": _elementwise(_lrelu, 1.0, 0.0),
        "PReLU": _prelu,
        "Sigmoid": _elementwise(fam._sigmoid, TRANSCENDENTAL_ULPS, 1.0),
        "SeLU": _elementwise(fam._selu, TRANSCENDENTAL_ULPS, 1.0),
        "Softplus": _elementwise(fam._softplus, TRANSCENDENTAL_ULPS, 1.0),
        "Softmax": _softmax,
        "LayerNorm": _layer_norm,
        "Sum": _sum,
        "SumAll": _sum,
        "BCE": _bce,
        "ScatterSum": _scatter_sum,
        "ScaledDotProductAttention": _sdpa,
        "MatMul": _matmul,
        "Linear": _matmul,
        "Conv1d": _conv,
        "Conv2d": _conv,
    }


_ARITHMETIC_ON_INTEGERS = ("MatMul", "Linear", "Conv1d", "Conv2d", "Sum", "SumAll", "ScatterSum", "LeakyReLU",
                           "PReLU")
_EXPECTATIONS: dict[str, Callable[[Case, tuple[np.ndarray, ...]], Expected]] = {}
CACHED_KINDS = ("values", "product")
# cheaper to recompute than to read (one pass over the input); exact copies and selections are cached: a sort,
# a scatter or a concatenation of 10^8 elements costs more than mapping its stored result
UNCACHED_FAMILIES = ("LeakyReLU", "PReLU", "Sigmoid", "SeLU", "Softplus")


def expected(case: Case, inputs: tuple[np.ndarray, ...]) -> Expected:
    """What `case`'s output must be, from `inputs` (no cache: see `reference_cache.expected_for`)."""
    if not _EXPECTATIONS:
        _EXPECTATIONS.update(_family_expectations())
    inputs = tuple(np.asarray(a) for a in inputs)
    data = [a for i, a in enumerate(inputs) if i not in case.spec.index_inputs]
    if data and all(a.dtype.kind in "iub" for a in data) and case.family in _ARITHMETIC_ON_INTEGERS:
        return _values(case.reference(inputs), [])  # small integers: float64 is exact, so is a correct result
    if case.family not in _EXPECTATIONS:
        return _generic(case, inputs)
    return _EXPECTATIONS[case.family](case, inputs)


def _generic(case: Case, inputs: tuple[np.ndarray, ...]) -> Expected:
    """A family with no derivation here (a user catalog's): its own reference, tie-aware checks where it asks
    for them, else an elementwise function of O(1) intermediates followed by a K-term accumulation."""
    if case.spec.check == "argmax":
        return Expected("argmax")
    ref = np.asarray(case.reference(inputs), dtype=np.float64)
    if case.spec.check == "scatter":
        return Expected("scatter", {"ref": ref})
    k = max(1, int(case.spec.accumulation(case)))
    rms = float(np.sqrt(np.mean(np.square(ref)))) if ref.size else 0.0
    scale = np.abs(ref) + rms
    return _values(ref, [("u", TRANSCENDENTAL_ULPS, scale), ("acc", 1 + math.sqrt(k), scale)])


def builtin(case: Case) -> bool:
    """A family derived here (a user catalog's family has code outside the caches' keys)."""
    if not _EXPECTATIONS:
        _EXPECTATIONS.update(_family_expectations())
    return case.family in _EXPECTATIONS


def cacheable(case: Case) -> bool:
    """Worth a disk entry: the built-in families with float64 work (a user family's code is not in the key)."""
    if not _EXPECTATIONS:
        _EXPECTATIONS.update(_family_expectations())
    return case.family in _EXPECTATIONS and case.family not in UNCACHED_FAMILIES and case.family not in (
        "ReLU", "Argmax")


# ------------------------------------------------------------------------------------------------ checking


@dataclass
class _Tally:
    """Accumulates a check over chunks: squared error and σ norms, elements beyond bound, the first one."""

    err2: float = 0.0
    ref2: float = 0.0
    sigma2: float = 0.0
    bad: int = 0
    first: int = -1

    def add(self, diff: np.ndarray, ref: np.ndarray, sigma: np.ndarray | None, offset: int) -> None:
        self.err2 += float(np.sum(diff * diff))
        self.ref2 += float(np.sum(ref * ref))
        if sigma is None:
            beyond = diff != 0
        else:
            self.sigma2 += float(np.sum(sigma * sigma))
            beyond = np.abs(diff) > Z_ELEMENT * sigma
        nbad = int(np.count_nonzero(beyond))
        if nbad and self.first < 0:
            self.first = offset + int(np.flatnonzero(beyond.ravel())[0])
        self.bad += nbad

    def rel_error(self) -> float:
        return math.sqrt(self.err2 / self.ref2) if self.ref2 > 0 else math.sqrt(self.err2)

    def tolerance(self) -> float:
        return Z_NORM * math.sqrt(self.sigma2 / self.ref2) if self.ref2 > 0 else Z_NORM * math.sqrt(self.sigma2)

    def passes(self) -> bool:
        return self.bad == 0 and self.rel_error() <= self.tolerance() * (1 + 1e-12)


def _roundoff(arith: Arithmetic, which: str) -> float:
    return {"u": arith.u, "dot": arith.u_dot, "acc": arith.u_acc}[which]


def _chunks(shape: tuple[int, ...]) -> list[slice]:
    if not shape:
        return [slice(None)]
    per_row = int(np.prod(shape[1:], dtype=np.int64)) or 1
    step = max(1, CHUNK_ELEMENTS // per_row)
    return [slice(i, min(i + step, shape[0])) for i in range(0, shape[0], step)]


def _position(shape: tuple[int, ...], flat: int) -> str:
    return str(tuple(int(i) for i in np.unravel_index(flat, shape))) if shape else "()"


def _threads() -> int:
    """Threads for the chunked checks: the machine's CPUs, at most `MAX_CHECK_THREADS`."""
    import os

    return max(1, min(MAX_CHECK_THREADS, os.cpu_count() or 1))


def _map_chunks(fn: Callable[[slice], _T], slices: list[slice]) -> list[_T]:
    """`fn` over `slices`, in a thread pool when there is more than one (results in order)."""
    workers = min(_threads(), len(slices))
    if workers <= 1:
        return [fn(sl) for sl in slices]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="opbench-verify") as pool:
        return list(pool.map(fn, slices))


def _merge(parts: list[_Tally]) -> _Tally:
    """Chunk tallies (in chunk order) as one: sums, counts and the first bad element of the earliest chunk."""
    total = _Tally()
    for t in parts:
        total.err2 += t.err2
        total.ref2 += t.ref2
        total.sigma2 += t.sigma2
        total.bad += t.bad
        if t.first >= 0 and total.first < 0:
            total.first = t.first
    return total


def _offsets(shape: tuple[int, ...], slices: list[slice]) -> dict[int, int]:
    """The flat offset of each chunk's first element, by its start row."""
    per_row = int(np.prod(shape[1:], dtype=np.int64)) if shape else 1
    return {sl.start or 0: (sl.start or 0) * per_row for sl in slices}


def _check_values(exp: Expected, out: np.ndarray, ariths: list[Arithmetic]) -> tuple[list[_Tally], float]:
    ref = exp.arrays["ref"]
    terms = exp.term_list()
    slices = _chunks(ref.shape)
    offsets = _offsets(ref.shape, slices)

    def chunk(sl: slice) -> list[_Tally]:
        r = np.asarray(ref[sl], dtype=np.float64) if ref.shape else np.asarray(ref, dtype=np.float64)
        o = np.asarray(out[sl] if ref.shape else out, dtype=np.float64)
        diff = o - r
        diff = np.where(np.isnan(diff), np.where(np.isnan(o) & np.isnan(r), 0.0, np.inf), diff)
        absr = np.abs(r)
        tallies = []
        for arith in ariths:
            sigma = np.zeros_like(r)
            for t in terms:
                scale = absr if t.scale is None else np.broadcast_to(t.scale, ref.shape)[sl] if ref.shape else t.scale
                sigma = sigma + t.factor * _roundoff(arith, t.which) * scale
            tally = _Tally()
            tally.add(diff, r, sigma, offsets.get(sl.start or 0, 0))
            tallies.append(tally)
        return tallies

    parts = _map_chunks(chunk, slices)
    return [_merge([p[i] for p in parts]) for i in range(len(ariths))], 0.0


def _check_exact(exp: Expected, out: np.ndarray) -> _Tally:
    ref = exp.arrays["ref"]
    slices = _chunks(ref.shape)
    offsets = _offsets(ref.shape, slices)

    def chunk(sl: slice) -> _Tally:
        r, o = (ref[sl], out[sl]) if ref.shape else (ref, out)
        same = o == r
        if same.all():  # the common case, a correct copy: one comparison in the output's own type, no float64
            return _Tally()
        if o.dtype.kind == "f":
            same |= np.isnan(o) & np.isnan(r)
        r64, o64 = np.asarray(r, dtype=np.float64), np.asarray(o, dtype=np.float64)
        diff = np.where(same, 0.0, o64 - r64)
        diff = np.where(np.isnan(diff), np.inf, diff)
        tally = _Tally()
        tally.add(diff, r64, None, offsets.get(sl.start or 0, 0))
        return tally

    total = _merge(_map_chunks(chunk, slices))
    if total.bad:  # a wrong copy's relative error needs ‖ref‖ over every chunk, not only the differing ones
        total.ref2 = sum(float(np.sum(np.square(ref[sl] if ref.shape else ref, dtype=np.float64))) for sl in slices)
    return total


def _check_product(exp: Expected, out: np.ndarray, ariths: list[Arithmetic]) -> list[_Tally]:
    """Freivalds: each probe's residual out·r − A(B r), row by row (rows = every index but the last)."""
    r = exp.arrays["r"]
    flat = out.reshape(-1, out.shape[-1])
    out_r = np.empty((PROBES, flat.shape[0]))
    step = max(1, CHUNK_ELEMENTS // max(1, out.shape[-1]))

    def rows(sl: slice) -> None:
        block = np.asarray(flat[sl], dtype=np.float64)
        if not np.all(np.isfinite(block)):
            block = np.where(np.isfinite(block), block, np.inf)
        out_r[:, sl] = (block @ r.T).T

    _map_chunks(rows, [slice(i, i + step) for i in range(0, flat.shape[0], step)])
    tallies = []
    for arith in ariths:
        tally = _Tally()
        for p in range(PROBES):
            ref = exp.arrays[f"ref{p}"].ravel()
            diff = out_r[p] - ref
            diff = np.where(np.isnan(diff), np.inf, diff)
            sub = _Tally()
            sub.add(diff, ref, _probe_sigma(exp, p, arith), 0)
            tally.err2 += sub.err2 / PROBES
            tally.ref2 += sub.ref2 / PROBES
            tally.sigma2 += sub.sigma2 / PROBES
            if sub.bad and (tally.first < 0 or sub.first < tally.first):
                tally.first = sub.first
            tally.bad = max(tally.bad, sub.bad)
        tallies.append(tally)
    return tallies


def _probe_sigma(exp: Expected, p: int, arith: Arithmetic) -> np.ndarray:
    """σ of each row's residual for probe p (module docstring)."""
    k = exp.meta["k"]
    an = exp.arrays["a_norm"].ravel()
    indep = (math.sqrt(2) * arith.u_dot / math.sqrt(k) + arith.u_acc) * an * exp.arrays[f"bdiag{p}"].ravel()
    shared = arith.u_dot * an * exp.arrays[f"brnorm{p}"].ravel() / math.sqrt(k)
    return np.sqrt(indep**2 + shared**2) + arith.u_acc * np.abs(exp.arrays[f"ref{p}"].ravel())


def normwise_tolerance(exp: Expected, dtype: str, mode: str | None = None) -> float:
    """The normwise bound (relative to ‖ref‖) that `verify` applies to `exp` under `mode` (0 for exact kinds):
    what re-classifying a stored relative error needs."""
    arith = [Arithmetic.of(dtype, mode)]
    if exp.kind == "values":
        return _check_values(exp, exp.arrays["ref"], arith)[0][0].tolerance()
    if exp.kind == "product":
        sigma2 = sum(float(np.sum(_probe_sigma(exp, p, arith[0]) ** 2)) for p in range(PROBES))
        ref2 = sum(float(np.sum(np.square(exp.arrays[f"ref{p}"]))) for p in range(PROBES))
        return Z_NORM * math.sqrt(sigma2 / ref2) if ref2 > 0 else 0.0
    return 0.0


def _verdict_from(tallies: list[_Tally], ariths: list[Arithmetic], shape: tuple[int, ...], what: str,
                  mode: str | None) -> Verdict:
    strict = tallies[0]
    if strict.passes():
        return Verdict(OK, strict.rel_error(), strict.tolerance())
    if mode and len(tallies) > 1 and tallies[1].passes():
        return Verdict(REDUCED, tallies[1].rel_error(), tallies[1].tolerance(), mode)
    last = tallies[-1]
    parts = []
    if last.rel_error() > last.tolerance():
        parts.append(f"rel. error {last.rel_error():.2g} > {last.tolerance():.2g}")
    if last.bad:
        parts.append(f"{last.bad} {what} beyond {Z_ELEMENT:g}σ of the reference, the first at "
                     f"{_position(shape, last.first)}")
    if mode:
        parts.append(f"even under {mode}")
    return Verdict(WRONG, last.rel_error(), last.tolerance(), "; ".join(parts))


def verify(case: Case, inputs: tuple[np.ndarray, ...], out: np.ndarray, dtype: str, mode: str | None = None,
           out_dtype: str | None = None, exp: Expected | None = None, check_dtype: bool = True) -> Verdict:
    """Check one backend output (NumPy, canonical layout) against `case`'s function of `inputs`.

    `mode` is the narrower arithmetic the measuring process reported for this family and dtype, if any
    (`opbench.backends.arithmetic`); `out_dtype` the output's native element type name (bfloat16 outputs arrive in NumPy
    as float32, so the type is checked before conversion); `exp` the expectation, when it is already known (from
    the reference cache).
    """
    out = np.asarray(out)
    expected_shape = tuple(case.output_shape())
    if out.shape != expected_shape:
        return Verdict(WRONG, math.inf, 0.0, f"shape {out.shape} != expected {expected_shape}")
    want = expected_output_dtype(case, dtype)
    got = out_dtype or (BFLOAT16 if dtype == BFLOAT16 and out.dtype == np.float32 else out.dtype.name)
    if want is None and not (got.startswith(("int", "uint"))):
        return Verdict(WRONG, math.inf, 0.0, f"indices returned as {got}")
    if check_dtype and want is not None and got != want:
        return Verdict(WRONG, math.inf, 0.0, f"{got} result in a {dtype} case (expected {want})")
    exp = exp if exp is not None else expected(case, inputs)
    if exp.kind == "argmax":
        return _verify_argmax(case, inputs[0], out)
    if exp.kind == "scatter":
        return _verify_scatter(inputs, out, exp.arrays["ref"])
    if exp.kind == "exact":
        tally = _check_exact(exp, out)
        if tally.bad == 0:
            return Verdict(OK, 0.0, 0.0)
        return Verdict(WRONG, tally.rel_error(), 0.0, f"{tally.bad} elements differ from the exact result, the "
                       f"first at {_position(expected_shape, tally.first)}")
    ariths = [Arithmetic.of(dtype)] + ([Arithmetic.of(dtype, mode)] if mode else [])
    if exp.kind == "product":
        return _verdict_from(_check_product(exp, out, ariths), ariths, expected_shape[:-1],
                             "output rows (Freivalds' check)", mode)
    tallies, _ = _check_values(exp, out, ariths)
    return _verdict_from(tallies, ariths, expected_shape, "elements", mode)


def _verify_argmax(case: Case, x: np.ndarray, out: np.ndarray) -> Verdict:
    axis = case.axis % x.ndim
    size = x.shape[axis]
    if out.dtype.kind not in "iu" or np.any(out < 0) or np.any(out >= size):
        return Verdict(WRONG, math.inf, 0.0, "indices are not integers in range")
    picked = np.take_along_axis(x, np.expand_dims(out.astype(np.int64), axis), axis=axis).squeeze(axis)
    wrong = picked != x.max(axis=axis)
    bad = int(np.count_nonzero(wrong))
    err = bad / max(1, out.size)
    if not bad:
        return Verdict(OK, 0.0, 0.0)
    first = _position(out.shape, int(np.flatnonzero(wrong.ravel())[0]))
    return Verdict(WRONG, err, 0.0, f"{bad} positions do not point at a maximum, the first at {first}")


def _verify_scatter(inputs: tuple[np.ndarray, ...], out: np.ndarray, ref: np.ndarray) -> Verdict:
    _, idx, upd = inputs
    got = out
    row_ok = np.all(got == ref, axis=tuple(range(1, got.ndim)))
    torn = 0
    bad_rows = np.flatnonzero(~row_ok)
    if len(bad_rows):
        order = np.argsort(idx, kind="stable")  # the updates of each row, found by one sort, not a scan per row
        starts = np.searchsorted(idx[order], bad_rows, side="left")
        ends = np.searchsorted(idx[order], bad_rows, side="right")
    for r, lo, hi in zip(bad_rows, starts, ends) if len(bad_rows) else ():
        # a duplicate index: any one of the competing update rows is right (compared as whole rows at once)
        competing = upd[order[lo:hi]]
        same = competing == got[r]
        row_ok[r] = bool(np.any(np.all(same.reshape(len(competing), -1), axis=1))) if len(competing) else False
        # a torn row: every element comes from some competing update, but no single update wrote the row
        torn += bool(not row_ok[r] and len(competing) > 1 and np.all(np.any(same, axis=0)))
    bad = int(np.count_nonzero(~row_ok))
    if not bad:
        return Verdict(OK, 0.0, 0.0)
    detail = f"{bad} rows are not one whole scattered update, the first is row {int(np.flatnonzero(~row_ok)[0])}"
    if torn:
        detail += f" ({torn} torn: elements mixed from competing duplicate updates)"
    return Verdict(WRONG, relative_error(out, ref), 0.0, detail)
