"""`Backend.shares_input_memory`: an adapter that says it copies its inputs really does, on every CPU backend
installed here, given what the input cache hands out (a page-aligned copy-on-write mapping of an .npy file),
so the engine may skip the private copy for it; one marked as sharing really can share (the flag is needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opbench.backends import backend_names, get_backend


def _cpu_backends() -> list[str]:
    return [n for n in backend_names()
            if get_backend(n).device_kind == "cpu" and get_backend(n).availability().available]


def _mapped_zeros(tmp_path: Path) -> np.ndarray:
    """A float32 array as `input_cache` gives it to a backend that does not share: `np.load(mmap_mode="c")`."""
    np.save(tmp_path / "0.npy", np.zeros(1 << 16, np.float32))
    return np.asarray(np.load(tmp_path / "0.npy", mmap_mode="c"))


@pytest.mark.parametrize("name", _cpu_backends())
def test_an_adapter_that_says_it_copies_its_inputs_does_not_see_a_later_write(name: str, tmp_path: Path) -> None:
    be = get_backend(name)
    if be.shares_input_memory:
        pytest.skip(f"{name} may share its inputs' memory: the engine gives it a private copy")
    be.setup()
    a = _mapped_zeros(tmp_path)
    x = be.from_numpy(a)
    a[:] = 7.0  # a write to the mapped input after the transfer
    assert not np.asarray(be.to_numpy(x)).any(), f"{name} says it copies its inputs, but its array saw a later write"


@pytest.mark.parametrize("name", [n for n in ("cpu", "jax_cpu") if n in _cpu_backends()])
def test_the_adapters_marked_as_sharing_do_share_a_mapped_input(name: str, tmp_path: Path) -> None:
    """torch.from_numpy always shares; JAX's device_put on the CPU aliases a 64-byte-aligned buffer."""
    be = get_backend(name)
    be.setup()
    assert be.shares_input_memory
    a = _mapped_zeros(tmp_path)
    x = be.from_numpy(a)
    a[:] = 7.0
    assert np.asarray(be.to_numpy(x)).all(), f"{name} is marked as sharing, and its array did not share the input"


def test_jax_cpu_aliases_a_private_read_instead_of_copying_it(tmp_path: Path) -> None:
    """The input cache's private read is 64-byte aligned (`read_private`), so JAX's transfer costs no copy."""
    if "jax_cpu" not in _cpu_backends():
        pytest.skip("jax_cpu is not installed")
    from opbench.engine.input_cache import read_private

    be = get_backend("jax_cpu")
    be.setup()
    np.save(tmp_path / "0.npy", np.zeros(1 << 16, np.float32))
    a = read_private(tmp_path / "0.npy")
    x = be.from_numpy(a)
    a[:] = 7.0
    assert np.asarray(be.to_numpy(x)).all(), "JAX copied the aligned private read instead of aliasing it"
