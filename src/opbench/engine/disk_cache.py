"""What the input and reference caches share: a cross-process lock per entry, least-recently-used eviction, and
the digest of the code whose change invalidates their entries.

Both caches keep one directory per entry under a root, written into a private temporary directory and renamed
into place. `locked(entry)` holds an exclusive `flock` on `<entry>.lock` while one process makes an entry, so
that another process that misses it waits for that entry instead of making it too. `evict(root, limit)` keeps
the root under `limit` bytes by removing the entries used least recently (a read touches an entry's mtime).
`bound` is that limit: the user's setting, else a default capped at `FREE_SHARE` of the disk's free space.

Trade-off of least-recently-used eviction: a run walks its cases in a cycle (every backend, every pass), and a
bound below one cycle's working set evicts each entry just before its reuse, so the defaults hold a whole seed
preset (inputs 11.8 GB, expectations about 9.7 GB in float32) where the disk has room for it.

`code_digest(paths)` digests what Python runs of those source files: each file's syntax tree with its
docstrings removed (`ast.dump`), so editing a comment or a docstring keeps the entries, and any change of code
makes new keys. Its whole text made a docstring edit of `input_cache.py` empty the input cache (73f97f2:
73.8 s of `inputs` in the next mlx_cpu suite, against 0.6 s warm). Trade-off: the dump's format belongs to
the Python version, so the digest names it, and a new Python makes new keys (the caches refill once).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

FREE_SHARE = 0.25


def _without_docstrings(tree: ast.AST) -> ast.AST:
    """`tree` with the docstring of its module, classes and functions removed (a body left empty gets `pass`)."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or not body:
            continue
        first = body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return tree


def code_text(source: str) -> str:
    """What Python runs of `source`: its syntax tree without docstrings or comments, as `ast.dump` writes it."""
    return ast.dump(_without_docstrings(ast.parse(source)))


def _python() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


MAX_MEMOS = 256  # code-digest memos kept (`file_code_digest`); 64 bytes each


def file_code_digest(path: Path, memo_dir: Path | None = None) -> str:
    """SHA-256 of `code_text` of the file at `path`. Parsing and dumping the catalog and verifier took 68-170 ms
    per process (every worker pays it once), so with `memo_dir` the digest is kept there under the file's
    path, size and modification time, and a later process with the same file reads it back (one small file);
    a memo that cannot be read or written is only recomputed."""
    memo = None
    if memo_dir is not None:
        with contextlib.suppress(OSError):
            st = path.stat()
            key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{_python()}"
            memo = memo_dir / hashlib.sha256(key.encode()).hexdigest()[:32]
            with contextlib.suppress(OSError):
                known = memo.read_text().strip()
                if len(known) == 64:
                    return known
    digest = hashlib.sha256(code_text(path.read_text(encoding="utf-8")).encode()).hexdigest()
    if memo is not None:
        with contextlib.suppress(OSError):
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_name(f".{memo.name}.{os.getpid()}")
            tmp.write_text(digest)
            os.replace(tmp, memo)  # atomic: a concurrent reader sees all of it or none
            _trim_memos(memo_dir)
    return digest


def _trim_memos(memo_dir: Path) -> None:
    """Remove the oldest-written memos beyond `MAX_MEMOS`: every edit of a digested file leaves one behind, and a
    memo removed while still in use is only recomputed. Runs after a write, which is rare (a file changed)."""
    with contextlib.suppress(OSError):
        memos = [(p.stat().st_mtime_ns, p) for p in memo_dir.iterdir() if not p.name.startswith(".")]
        for _, p in sorted(memos, reverse=True)[MAX_MEMOS:]:
            p.unlink(missing_ok=True)


def code_digest(paths: list[Path], *extra: str, memo_dir: Path | None = None) -> str:
    """16 hex digits of SHA-256 over the Python version, `extra` (e.g. NumPy's version) and the code of each
    file of `paths` (`file_code_digest`, memoized in `memo_dir` when given), in order."""
    h = hashlib.sha256(_python().encode())
    for text in extra:
        h.update(text.encode())
    for path in paths:
        h.update(file_code_digest(path, memo_dir).encode())
    return h.hexdigest()[:16]


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
