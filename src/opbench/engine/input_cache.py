"""A disk cache of case inputs: each (case, dtype, seed) is generated once and shared by every backend and pass.

Generating the seed preset's inputs takes NumPy's generator about 85 s on a 2-core VM (11.8 GB of float32
arrays): every worker process used to pay that again, three passes per backend. `case_inputs` keeps them
under `<data dir>/inputs/` (`OPBENCH_INPUT_CACHE` overrides the path) as one directory of `.npy` files per
entry, named by a SHA-256 of the case name, dtype, seed and a digest of the code that generates inputs (the
catalog's source and NumPy's version): a change to either makes new keys, and old entries age out.

Readers map the files copy-on-write (`np.load(mmap_mode="c")`): a hit costs page-cache mappings, not a
read, and an adapter that writes into its input (an in-place scatter) changes only its private copy. A CPU
backend whose arrays may share the NumPy input's memory (`Backend.shares_input_memory`: torch, JAX) reads
them into private memory instead (`private`, aligned to 64 bytes so that JAX aliases it: `read_private`);
one that copies every input anyway (MLX) maps them and is spared a second copy (mlx_cpu, five large cases
twice: 18.6 s of inputs and transfer read privately, 5.2 s mapped). Inputs
smaller than `MIN_CACHED_BYTES` are generated each time (faster than opening files).

Concurrency: an entry is written into a private temporary directory and renamed into place (atomic on one
file system). While a process generates an entry it holds an exclusive `flock` on `<key>.lock`; a process
that misses takes the same lock before generating, so a second process waits for the first one's entry
instead of generating it too (single flight), and `prefetch` (the parent generating upcoming cases while a
GPU worker measures) never races the worker. Bound: after each write the least recently used entries are
removed until the cache is under `DEFAULT_TOTAL_MB` (16 GB, at most a quarter of the free disk;
`OPBENCH_INPUT_CACHE_MB` overrides it; 0 turns the cache off), and an
entry is not written when the disk would be left with less than `MIN_FREE_BYTES`.

Trade-off: disk space (the whole seed preset needs 11.8 GB; a smaller bound makes the suite's cyclic access
evict each entry before its reuse, so below the working set the cache saves nothing) for generation time.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from opbench.catalog import Case
from opbench.engine import disk_cache
from opbench.engine.disk_cache import bound, evict, locked
from opbench.paths import data_dir

DEFAULT_TOTAL_MB = 16384
MIN_CACHED_BYTES = 4 << 20
MIN_FREE_BYTES = 2 << 30
ALIGNMENT = 64  # bytes: what JAX's CPU client needs to alias a host buffer instead of copying it


def max_total_bytes() -> int:
    """`$OPBENCH_INPUT_CACHE_MB`, else `DEFAULT_TOTAL_MB`, at most a quarter of the free disk (`disk_cache.bound`)."""
    return bound("OPBENCH_INPUT_CACHE_MB", DEFAULT_TOTAL_MB, cache_dir())


def cache_dir() -> Path:
    """`$OPBENCH_INPUT_CACHE`, else `<data dir>/inputs`."""
    return Path(os.environ["OPBENCH_INPUT_CACHE"]) if os.environ.get("OPBENCH_INPUT_CACHE") else \
        data_dir() / "inputs"


@functools.cache
def code_digest() -> str:
    """A digest of the modules whose change changes the inputs (the catalog: cases, families, bfloat16)."""
    import opbench.catalog._bfloat16 as bf
    import opbench.catalog._case as case_module
    import opbench.catalog.families as families

    # and this module, which writes and reads the entries; their code, not their docstrings (`disk_cache`)
    return disk_cache.code_digest([Path(m.__file__) for m in (bf, case_module, families)] + [Path(__file__)],
                                  np.__version__, memo_dir=data_dir() / "code-digests")


def entry_key(case: Case, dtype: str, seed: int) -> str:
    return hashlib.sha256(f"inputs|{code_digest()}|{case.name}|{dtype}|{seed}".encode()).hexdigest()[:32]


def input_bytes(case: Case, dtype: str) -> int:
    return int(sum(int(np.prod(shape)) * item for shape, item in case.make_input_specs(dtype)))


def cacheable(case: Case, dtype: str) -> bool:
    """Built-in families (a user family's generator is not in the key) with inputs worth a disk entry."""
    from opbench.catalog.user import user_cases

    if any(c.family == case.family for c in user_cases()):
        return False
    return MIN_CACHED_BYTES <= input_bytes(case, dtype) <= max_total_bytes()


def read_private(file: Path) -> np.ndarray:
    """The `.npy` array at `file`, read into fresh anonymous memory whose data starts on a `ALIGNMENT`-byte
    boundary.

    `np.load` reads into a `malloc`ed buffer, which glibc starts 16 bytes into a page. JAX's CPU `device_put`
    copies such a buffer and aliases one aligned to 64 bytes, so an aligned read spares jax_cpu a second copy
    of every input (134 MB: 0.138 s copied, 0.016 s aliased), and the array its timed calls read is still
    this process's own memory. Falls back to `np.load` for a header version this reader does not parse."""
    fmt = np.lib.format
    with open(file, "rb") as f:
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            return np.load(file)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
        if dtype.hasobject:
            raise ValueError(f"{file}: an object array is not a cache entry")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        raw = np.empty(nbytes + ALIGNMENT, np.uint8)
        start = -raw.ctypes.data % ALIGNMENT
        data = raw[start:start + nbytes]
        view, done = memoryview(data), 0
        while done < nbytes:
            got = f.readinto(view[done:])
            if not got:
                raise ValueError(f"{file}: {done} of {nbytes} bytes (a truncated entry)")
            done += got
    return data.view(dtype).reshape(shape, order="F" if fortran_order else "C")


def _load(path: Path, count: int, private: bool) -> tuple[np.ndarray, ...] | None:
    try:
        arrays = tuple(read_private(path / f"{i}.npy") if private else
                       np.asarray(np.load(path / f"{i}.npy", mmap_mode="c")) for i in range(count))
    except (OSError, ValueError):
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # least recently used: reading counts as use
    return arrays


def _store(path: Path, arrays: tuple[np.ndarray, ...]) -> None:
    root = path.parent
    need = sum(a.nbytes for a in arrays)
    with contextlib.suppress(OSError):
        if shutil.disk_usage(root).free - need < MIN_FREE_BYTES:
            return
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        for i, a in enumerate(arrays):
            np.save(tmp / f"{i}.npy", np.asarray(a, order="C"))  # ascontiguousarray makes 0-d 1-d
        os.rename(tmp, path)
    except OSError:  # stored by another process first, or the disk is full: the cache is only an optimization
        shutil.rmtree(tmp, ignore_errors=True)
        return
    evict(root, max_total_bytes())


def case_inputs(case: Case, dtype: str = "float32", seed: int = 0, private: bool = False) -> tuple[np.ndarray, ...]:
    """`case.make_inputs(dtype, seed)`, from the cache when any process made them before with the same code.

    `private` reads a hit into this process's own memory instead of mapping the file: for a CPU backend,
    whose framework may compute on the very NumPy buffer (torch's `from_numpy`), so its timed calls read the
    same kind of memory (anonymous, huge-page eligible) as freshly generated inputs would be."""
    if max_total_bytes() <= 0 or not cacheable(case, dtype):
        return case.make_inputs(dtype, seed)
    count = len(case.make_input_specs(dtype))
    path = cache_dir() / entry_key(case, dtype, seed)
    if path.is_dir() and (hit := _load(path, count, private)) is not None:
        return hit
    try:
        with locked(path):
            if path.is_dir() and (hit := _load(path, count, private)) is not None:
                return hit  # made by the process that held the lock
            arrays = case.make_inputs(dtype, seed)
            _store(path, arrays)
    except OSError:  # an unwritable data directory: generate, uncached
        return case.make_inputs(dtype, seed)
    return arrays


def prefetch(case: Case, dtype: str = "float32", seed: int = 0) -> None:
    """Make sure `case`'s inputs are in the cache (generating them if not), keeping nothing in memory."""
    if max_total_bytes() <= 0 or not cacheable(case, dtype):
        return
    path = cache_dir() / entry_key(case, dtype, seed)
    if path.is_dir():
        return
    with contextlib.suppress(OSError), locked(path):
        if not path.is_dir():
            _store(path, case.make_inputs(dtype, seed))
