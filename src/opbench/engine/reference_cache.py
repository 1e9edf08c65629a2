"""A disk cache of verification expectations: the float64 work for a (case, dtype, seed) is done once.

Every backend of a run verifies against the same expectation, and so does every later run with the same seed,
so `expected_for` keeps them under `<data dir>/references/` (`OPBENCH_REFERENCE_CACHE` overrides the path). An
entry is a directory of `.npy` files plus a `meta.json`, named by a SHA-256 of the case name, dtype, seed and a
digest of the code that generates inputs and expectations (the catalog and `verify`): a change to either makes
new keys, and old entries age out.

Concurrency: an entry is written into a private temporary directory and then renamed into place, which is atomic
on one file system; while one process computes an entry it holds the entry's lock, so another process that misses
waits for it rather than computing it again (`disk_cache`). Readers memory-map the arrays, so a large reference
costs page-cache, not a copy. Bound: entries larger than `MAX_ENTRY_BYTES` are not stored, and after each write
the least recently used entries are removed until the cache is under `DEFAULT_TOTAL_MB` (16 GB, at most a quarter
of the free disk; `OPBENCH_REFERENCE_CACHE_MB` overrides it; 0 turns the cache off). Trade-off: a disk read of up
to a few hundred MB per large case instead of seconds of float64 arithmetic.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from opbench.catalog import Case
from opbench.engine import disk_cache
from opbench.engine.disk_cache import bound, evict, locked
from opbench.engine.verify import Expected, cacheable, expected
from opbench.paths import data_dir

MAX_ENTRY_BYTES = 1 << 30
DEFAULT_TOTAL_MB = 16384
# Every size is cached: a small expectation can cost the most to compute (a scatter-sum of 10^6 rows into
# 1024, a matmul with an inner size of 10^6, a mean of 10^7 terms: 0.4-0.9 s each on an H200 host, per pass).
MIN_CACHED_BYTES = 0


def max_total_bytes() -> int:
    """`$OPBENCH_REFERENCE_CACHE_MB`, else `DEFAULT_TOTAL_MB`, at most a quarter of the free disk
    (`disk_cache.bound`)."""
    return bound("OPBENCH_REFERENCE_CACHE_MB", DEFAULT_TOTAL_MB, cache_dir())


def cache_dir() -> Path:
    """`$OPBENCH_REFERENCE_CACHE`, else `<data dir>/references`."""
    return Path(os.environ["OPBENCH_REFERENCE_CACHE"]) if os.environ.get("OPBENCH_REFERENCE_CACHE") else \
        data_dir() / "references"


@functools.cache
def code_digest() -> str:
    """A digest of the modules whose change changes inputs or expectations."""
    import opbench.catalog._bfloat16 as bf
    import opbench.catalog._case as case_module
    import opbench.catalog.families as families
    import opbench.engine.verify as verify

    # and this module, which writes and reads the entries; their code, not their docstrings (`disk_cache`)
    return disk_cache.code_digest([Path(m.__file__) for m in (bf, case_module, families, verify)] + [Path(__file__)],
                                  np.__version__, memo_dir=data_dir() / "code-digests")


def entry_key(case: Case, dtype: str, seed: int) -> str:
    return hashlib.sha256(f"{code_digest()}|{case.name}|{dtype}|{seed}".encode()).hexdigest()[:32]


def _load(path: Path) -> Expected | None:
    try:
        meta = json.loads((path / "meta.json").read_text())
        arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in meta["arrays"]}
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently used: reading counts as use
        return Expected(meta["kind"], arrays, [tuple(t) for t in meta["terms"]], meta["meta"])
    except (OSError, ValueError, KeyError):
        return None


def _store(path: Path, exp: Expected) -> None:
    root = path.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        for name, array in exp.arrays.items():
            np.save(tmp / f"{name}.npy", np.asarray(array, order="C"))  # ascontiguousarray makes 0-d 1-d
        meta = {"kind": exp.kind, "arrays": list(exp.arrays), "terms": exp.terms, "meta": exp.meta}
        (tmp / "meta.json").write_text(json.dumps(meta))
        os.rename(tmp, path)
    except OSError:  # another process stored it first, or the disk is full: the cache is only an optimization
        shutil.rmtree(tmp, ignore_errors=True)
        return
    evict(root, max_total_bytes())


def expected_for(case: Case, inputs: tuple[np.ndarray, ...], dtype: str, seed: int) -> Expected:
    """`verify.expected(case, inputs)`, from the cache when an earlier process computed it for these
    (case, dtype, seed) with the same code. `inputs` must be `case.make_inputs(dtype, seed)`. A process that
    misses computes it under the entry's lock (`disk_cache.locked`), so concurrent processes compute it once."""
    limit = max_total_bytes()
    if limit <= 0 or not cacheable(case):
        return expected(case, inputs)
    path = cache_dir() / entry_key(case, dtype, seed)
    if path.is_dir() and (hit := _load(path)) is not None:
        return hit
    try:
        with locked(path):
            if path.is_dir() and (hit := _load(path)) is not None:
                return hit  # computed by the process that held the lock
            exp = expected(case, inputs)
            if MIN_CACHED_BYTES <= exp.nbytes <= min(MAX_ENTRY_BYTES, limit):
                _store(path, exp)
    except OSError:  # an unwritable cache directory: compute, uncached
        return expected(case, inputs)
    return exp


def prefetch(case: Case, dtype: str, seed: int) -> None:
    """Make sure `case`'s expectation is in the cache (computing it from the cached inputs if not)."""
    if max_total_bytes() <= 0 or not cacheable(case):
        return
    path = cache_dir() / entry_key(case, dtype, seed)
    if not path.is_dir():
        from opbench.engine.input_cache import case_inputs

        expected_for(case, case_inputs(case, dtype, seed), dtype, seed)
