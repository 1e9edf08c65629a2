"""The reference cache: a hit gives the same verdict as a fresh computation, entries are keyed by the code that
made them, concurrent writers do not corrupt an entry, and the cache stays under its bound."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from opbench.catalog import Case
from opbench.engine import reference_cache
from opbench.engine.reference_cache import entry_key, expected_for
from opbench.engine.verify import expected, verify

CASE = Case("Softmax", ((64, 4096),), -1)  # 2 MB of float64: large enough to be cached


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPBENCH_REFERENCE_CACHE", str(tmp_path))
    return tmp_path


def _entries(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".tmp-")]


def test_a_hit_is_read_back_and_verifies_like_a_fresh_expectation(cache: Path) -> None:
    inputs = CASE.make_inputs()
    first = expected_for(CASE, inputs, "float32", 0)
    assert len(_entries(cache)) == 1
    again = expected_for(CASE, inputs, "float32", 0)
    assert isinstance(again.arrays["ref"], np.memmap)  # read from disk, not recomputed
    np.testing.assert_array_equal(again.arrays["ref"], first.arrays["ref"])
    out = np.asarray(first.arrays["ref"], dtype=np.float32)
    out[3, 7] = 0.0
    assert verify(CASE, inputs, out, "float32", exp=again) == verify(CASE, inputs, out, "float32",
                                                                      exp=expected(CASE, inputs))


def test_keys_change_with_the_seed_dtype_and_code(monkeypatch: pytest.MonkeyPatch) -> None:
    key = entry_key(CASE, "float32", 0)
    assert key != entry_key(CASE, "float32", 1) != entry_key(CASE, "float16", 0)
    monkeypatch.setattr(reference_cache, "code_digest", lambda: "another generator")
    assert entry_key(CASE, "float32", 0) != key


def test_the_cache_stays_under_its_bound(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPBENCH_REFERENCE_CACHE_MB", "5")  # room for two entries of ~2.5 MB
    for seed in range(4):
        expected_for(CASE, CASE.make_inputs(seed=seed), "float32", seed)
    assert 1 <= len(_entries(cache)) <= 2
    assert sum(f.stat().st_size for p in _entries(cache) for f in p.iterdir()) <= 5 << 20
    monkeypatch.setenv("OPBENCH_REFERENCE_CACHE_MB", "0")  # off: nothing written
    expected_for(CASE, CASE.make_inputs(seed=9), "float32", 9)
    assert not any(entry_key(CASE, "float32", 9) == p.name for p in _entries(cache))


def _fill(root: str, seed: int) -> float:
    import os

    os.environ["OPBENCH_REFERENCE_CACHE"] = root
    exp = expected_for(CASE, CASE.make_inputs(seed=seed), "float32", seed)
    return float(np.sum(exp.arrays["ref"]))


def test_concurrent_processes_share_one_entry(cache: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        sums = pool.starmap(_fill, [(str(cache), 0)] * 3)
    assert len(_entries(cache)) == 1 and len(set(sums)) == 1
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]
    hit = expected_for(CASE, CASE.make_inputs(), "float32", 0)
    assert float(np.sum(hit.arrays["ref"])) == sums[0]


@pytest.mark.parametrize("family", ["SumAll", "BCE"])
def test_a_scalar_expectation_keeps_its_shape_through_the_cache(cache: Path, family: str) -> None:
    """H200: a 0-d reference came back from the cache as shape (1,) (np.ascontiguousarray makes 0-d arrays
    1-d), and every SumAll and BCE case of a run became `error` (IndexError) once it was cached."""
    case = Case(family, ((1000,), (1000,)) if family == "BCE" else ((1000,),))
    inputs = case.make_inputs()
    first = expected_for(case, inputs, "float32", 0)
    again = expected_for(case, inputs, "float32", 0)
    assert isinstance(again.arrays["ref"], np.memmap) and again.arrays["ref"].shape == first.arrays["ref"].shape == ()
    out = np.asarray(first.arrays["ref"], dtype=np.float32)
    assert verify(case, inputs, out, "float32", exp=again).status == "ok"
    assert verify(case, inputs, out * np.float32(1.01), "float32", exp=again).status == "wrong"
