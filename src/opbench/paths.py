"""Output paths checked before anything is written: well-formed, and writable or creatable. Creates nothing.

An output directory must be a directory or not exist yet, with its nearest existing ancestor a writable
directory; an output file must not be a directory; every path segment fits the 255-byte file name limit of
Linux, macOS and Windows file systems. Problems are one-line `UsageError`s. What these checks cannot foresee
(a disk that fills up later) is handled where the write happens.

"Writable" is tried, not read from the permission bits: `os.access` answers yes to root everywhere, also in
`/proc` or on a file system that refuses new entries, so a run would measure for minutes and then fail to
write. `_writable` creates and at once removes an empty, uniquely named directory in the directory in
question; that probe is the only thing these checks create, and it is gone when they return.

`data_dir()` is where opbench keeps what it learns about a machine (calibrations, noise floors, the reference
cache).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from opbench.errors import UsageError

NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4096


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def check_path_text(text: str, what: str, error: type[Exception]) -> None:
    """`error` (a UsageError or argparse's type error) when `text` cannot name a file at all."""
    if "\x00" in text:
        raise error(f"{what} contains a NUL byte")
    if _size(text) > PATH_MAX_BYTES:
        raise error(f"{what} is longer than {PATH_MAX_BYTES} bytes")
    for part in Path(text).parts:
        if _size(part) > NAME_MAX_BYTES:
            raise error(f"{what} {text[:40]!r}...: a path segment is longer than {NAME_MAX_BYTES} bytes, "
                        "the file system's limit")


def is_dir(path: Path) -> bool:
    """`path.is_dir()`, False for a name the OS cannot look up."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def exists(path: Path) -> bool:
    """`path` exists (a dangling symlink too), False for a name the OS cannot look up."""
    try:
        return path.exists() or path.is_symlink()
    except (OSError, ValueError):
        return False


def _writable(directory: Path) -> bool:
    """Whether this process can create an entry in `directory`: tried with an empty probe directory, removed."""
    try:
        probe = tempfile.mkdtemp(prefix=".opbench-probe-", dir=directory)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        os.rmdir(probe)
    return True


def check_creatable(path: Path, what: str, writable: bool = True) -> None:
    """`path` does not exist; its nearest existing ancestor must be a directory (that this process can write)."""
    parent = path.absolute().parent
    while not exists(parent):
        parent = parent.parent
    if not is_dir(parent):
        raise UsageError(f"cannot create {what} {path}: {parent} is not a directory")
    if writable and not _writable(parent):
        raise UsageError(f"cannot create {what} {path}: {parent} is not writable")


def check_output_dir(path: Path, what: str = "output directory") -> Path:
    """An output directory: an existing writable directory, or creatable. Creates nothing."""
    check_path_text(str(path), what, UsageError)
    if exists(path):
        if not is_dir(path):
            raise UsageError(f"{what} {path} exists and is not a directory; pass a directory path")
        if not _writable(path):
            raise UsageError(f"{what} {path} is not writable")
        return path
    check_creatable(path, what)
    return path


def check_output_file(path: Path, what: str = "output file") -> Path:
    """An output file: an existing writable file (replaced), or creatable. Creates nothing."""
    check_path_text(str(path), what, UsageError)
    if exists(path):
        if is_dir(path):
            raise UsageError(f"{what} {path} is a directory; pass a file path")
        if not os.access(path, os.W_OK) or not _writable(path.absolute().parent):
            raise UsageError(f"{what} {path} is not writable")
        return path
    check_creatable(path, what)
    return path


def os_error_text(exc: OSError, where: Path | str = "") -> str:
    """One line for a failed file operation: `PATH: No space left on device`."""
    path = exc.filename or where
    return f"{path}: {exc.strerror or exc}" if path else f"file error: {exc.strerror or exc}"


def data_dir() -> Path:
    """`$OPBENCH_DATA_DIR`, else opbench's per-user data directory as platformdirs defines it
    (`$XDG_DATA_HOME/opbench` or `~/.local/share/opbench`, `~/Library/Application Support/opbench`,
    `%LOCALAPPDATA%\\opbench`)."""
    if os.environ.get("OPBENCH_DATA_DIR"):
        return Path(os.environ["OPBENCH_DATA_DIR"])
    return user_data_dir()


def user_data_dir() -> Path:
    """opbench's per-user data directory as platformdirs defines it; where platformdirs is missing (opbench run
    from a source tree on a machine without it), the XDG rule it applies on Linux (`$XDG_DATA_HOME/opbench`,
    else `~/.local/share/opbench`), so that a missing dependency costs no run."""
    try:
        from platformdirs import user_data_path
    except ImportError:
        base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        return Path(base) / "opbench"
    return user_data_path("opbench", appauthor=False)
