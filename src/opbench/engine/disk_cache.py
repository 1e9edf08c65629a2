"""What the input and reference caches share: a cross-process lock per entry and least-recently-used eviction.

Both caches keep one directory per entry under a root, written into a private temporary directory and renamed
into place. `locked(entry)` holds an exclusive `flock` on `<entry>.lock` while one process makes an entry, so
that another process that misses it waits for that entry instead of making it too. `evict(root, limit)` keeps
the root under `limit` bytes by removing the entries used least recently (a read touches an entry's mtime).
`bound` is that limit: the user's setting, else a default capped at `FREE_SHARE` of the disk's free space.

Trade-off of least-recently-used eviction: a run walks its cases in a cycle (every backend, every pass), and a
bound below one cycle's working set evicts each entry just before its reuse, so the defaults hold a whole seed
preset (inputs 11.8 GB, expectations about 9.7 GB in float32) where the disk has room for it.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

FREE_SHARE = 0.25


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `<path>.lock` (a no-op where `fcntl` is missing: the cache stays correct, only a
    second process may generate an entry too)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def evict(root: Path, limit: int) -> None:
    """Remove the least recently used entry directories under `root` until they total at most `limit` bytes
    (and temporary directories a killed writer left over an hour ago)."""
    entries = []
    for p in root.iterdir():
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.name.startswith(".tmp-"):
                entries.append((p.stat().st_mtime, _size(p), p))
            elif p.name.startswith(".tmp-") and time.time() - p.stat().st_mtime > 3600:
                shutil.rmtree(p, ignore_errors=True)  # left by a killed writer
    total = sum(size for _, size, _ in entries)
    for _, size, p in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        shutil.rmtree(p, ignore_errors=True)
        total -= size


def bound(env_var: str, default_mb: int, root: Path) -> int:
    """The cache's size limit in bytes: `$env_var` (MB; 0 turns the cache off), else `default_mb`, at most
    `FREE_SHARE` of the free space on `root`'s disk (with what the cache holds already counted as free).
    What the cache holds is summed (a stat of every file) only when the free space alone would bound it, and
    then at most every `HELD_TTL_S` (`_held`): the caches ask this several times per case, and a walk of a
    cache of ~450 files (~590 stats) took ~5 ms each time on the 2-core VM, 4-5 times per case."""
    import os

    text = os.environ.get(env_var)
    if text:
        try:
            return int(float(text) * (1 << 20))
        except ValueError:
            pass
    limit = default_mb << 20
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return limit
    if FREE_SHARE * free >= limit:
        return limit
    return int(min(limit, FREE_SHARE * (free + _held(root))))


_HELD: dict[Path, tuple[float, int]] = {}  # root -> (when summed, bytes held): `bound`'s memo
HELD_TTL_S = 10.0


def _held(root: Path) -> int:
    """The bytes the entries under `root` hold, summed at most once per `HELD_TTL_S` per process: a bound
    from a sum seconds old is off by what was written since, which the next `evict` corrects."""
    now = time.monotonic()
    cached = _HELD.get(root)
    if cached is not None and now - cached[0] < HELD_TTL_S:
        return cached[1]
    held = sum(_size(p) for p in root.iterdir() if p.is_dir()) if root.is_dir() else 0
    _HELD[root] = (now, held)
    return held
