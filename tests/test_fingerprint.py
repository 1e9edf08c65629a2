"""Device fingerprints of outputs (`backends._fingerprint`): exact, the same sums in every framework, and refused
(None) by the CPU adapters, whose host digest needs no copy.

Each framework available here runs its own implementation on the CPU (torch, JAX, MLX, and the NumPy-like one
that CuPy uses, run on NumPy): one changed bit or element, two exchanged elements, the same bytes in another
shape or type all change the fingerprint; equal arrays give equal fingerprints; 0-d, empty, float16,
bfloat16, int32 and bool outputs are handled.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from opbench.backends import _fingerprint as fp

FRAMEWORKS = ["numpy"] + [m for m in ("torch", "jax", "mlx") if importlib.util.find_spec(m) is not None]


def _impl(framework: str) -> tuple[Callable[[np.ndarray, str | None], Any], Callable[[Any], str | None]]:
    """(make a native array from NumPy, optionally converted to a dtype name; its fingerprint)."""
    if framework == "numpy":
        def make(a: np.ndarray, dtype: str | None = None) -> Any:
            return a if dtype is None else a.astype(dtype)

        return make, lambda x: fp.xp_fingerprint(np, x, "numpy", np.asarray)
    if framework == "torch":
        import torch

        from opbench.backends.torch import torch_fingerprint

        def make_t(a: np.ndarray, dtype: str | None = None) -> Any:
            x = torch.from_numpy(np.array(a))
            return x if dtype is None else x.to(getattr(torch, dtype))

        return make_t, torch_fingerprint
    if framework == "jax":
        from opbench.backends.jax import _jnp, jax_fingerprint

        jnp = _jnp()
        return (lambda a, dtype=None: jnp.asarray(a) if dtype is None else jnp.asarray(a).astype(dtype)), \
            jax_fingerprint
    import mlx.core as mx

    from opbench.backends.mlx import mlx_fingerprint

    return (lambda a, dtype=None: mx.array(a) if dtype is None else mx.array(a).astype(getattr(mx, dtype))), \
        mlx_fingerprint


def _sums(text: str) -> str:
    return text.rsplit("|", 1)[1]


def _flip(a: np.ndarray, index: int, bit: int) -> np.ndarray:
    b = np.array(a)
    raw = b.reshape(-1).view(np.uint8)
    raw[index * a.itemsize + bit // 8] ^= np.uint8(1 << (bit % 8))
    return b


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_one_changed_bit_or_element_changes_the_fingerprint(framework: str) -> None:
    make, fingerprint = _impl(framework)
    a = np.random.default_rng(0).standard_normal((5, 7, 3)).astype(np.float32)
    base = fingerprint(make(a))
    assert base is not None and fingerprint(make(np.array(a))) == base
    seen = {base}
    for index, bit in [(0, 0), (0, 31), (17, 0), (17, 23), (104, 30), (104, 7), (50, 15)]:
        seen.add(fingerprint(make(_flip(a, index, bit))))
    assert len(seen) == 8
    other = np.array(a)
    other[3, 4, 1] += 1.0
    swapped = np.array(a)
    swapped[0, 0, 0], swapped[4, 6, 2] = a[4, 6, 2], a[0, 0, 0]
    assert len({base, fingerprint(make(other)), fingerprint(make(swapped))}) == 3


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_same_bytes_in_another_shape_or_type_differ(framework: str) -> None:
    make, fingerprint = _impl(framework)
    a = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    texts = {fingerprint(make(a)), fingerprint(make(a.reshape(6, 4))), fingerprint(make(a.reshape(-1))),
             fingerprint(make(a.view(np.int32)))}
    assert len(texts) == 4
    assert len({_sums(t) for t in texts}) == 1  # the bytes are the same: only shape and type tell them apart


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int32", "bool", "float32"])
def test_small_types_zero_d_and_empty_outputs(framework: str, dtype: str) -> None:
    if framework == "numpy" and dtype == "bfloat16":
        pytest.skip("NumPy (and CuPy) have no bfloat16")
    make, fingerprint = _impl(framework)
    rng = np.random.default_rng(2)
    values = rng.random((3, 9)) > 0.5 if dtype == "bool" else (rng.standard_normal((3, 9)) * 50).astype(np.float32)
    if dtype == "int32":
        values = values.astype(np.int32)
    convert = dtype if dtype in ("float16", "bfloat16") else None  # made from float32 values by the framework

    def of(a: np.ndarray) -> str | None:
        return fingerprint(make(np.array(a), convert))

    base = of(values)
    assert base is not None and f"|{dtype}|" in base and of(values) == base
    changed = np.array(values)
    changed[2, 8] = not changed[2, 8] if dtype == "bool" else changed[2, 8] + 64
    assert of(changed) != base
    zero_d, empty = of(values[1, 1]), of(values[:0])
    assert zero_d is not None and "|()|" in zero_d and zero_d != of(values[1, 1:2])  # the same bytes in (1,)
    assert empty is not None and "|(0, 9)|" in empty and _sums(empty) == "0" * 48


def test_every_framework_computes_the_same_sums_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The implementations agree word for word (with chunks of 7 words, so the chunked ones cross chunk
    boundaries; JAX's jitted one has no chunks), on values whose int64 sums wrap around."""
    a = np.random.default_rng(3).integers(-2**31, 2**31, size=(11, 13), dtype=np.int64).astype(np.int32)
    reference = {_sums(_impl(f)[1](_impl(f)[0](a))) for f in FRAMEWORKS}
    assert len(reference) == 1
    monkeypatch.setattr(fp, "CHUNK_WORDS", 7)
    assert {_sums(_impl(f)[1](_impl(f)[0](a))) for f in FRAMEWORKS} == reference
    doubles = np.random.default_rng(4).standard_normal((3, 5))  # float64: two words per element
    assert len({_sums(_impl(f)[1](_impl(f)[0](doubles))) for f in FRAMEWORKS if f != "mlx"}) == 1


def test_cpu_adapters_have_no_fingerprint() -> None:
    """On the host the output is already there: the copy costs nothing and the host digest stays."""
    from opbench.backends import get_backend

    for name, module in (("numpy", "numpy"), ("cpu", "torch"), ("jax_cpu", "jax"), ("mlx_cpu", "mlx")):
        if importlib.util.find_spec(module) is None:
            continue
        backend = get_backend(name)
        backend.setup()
        assert backend.output_fingerprint(backend.from_numpy(np.ones(4, np.float32))) is None
