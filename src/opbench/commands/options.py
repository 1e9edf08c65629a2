"""The one validation layer of the command line: argparse `type=` functions and up-front path checks.

Every number, name list, run reference and path a subcommand takes is checked here, when the arguments are
parsed, so that bad input ends with one line and exit code 2 before anything is measured or written. A `type=`
function raises `argparse.ArgumentTypeError` (argparse turns it into `opbench CMD: error: argument --x: ...`);
the checks that depend on several options (a default output directory named after a run id, speedup pairs
against the backends of a run) raise `UsageError` and are called by the command before its first write.
Output paths are checked by `opbench.paths` without creating anything.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from opbench.errors import UsageError
from opbench.paths import check_creatable, check_output_dir, check_output_file, check_path_text, exists, is_dir

MAX_SECONDS = 86_400.0  # a day: a longer budget or timeout is a typo, not a plan
MAX_SEED = 2**63 - 1
MAX_SAMPLES = 1_000_000
MAX_PROCESSES = 100
T = TypeVar("T")


# ------------------------------------------------------------------------------------------------ numbers


def _checked(convert: Callable[[str], T], name: str, in_range: Callable[[T], bool],
             expected: str) -> Callable[[str], T]:
    """A `type=` that converts with `convert` and keeps values `in_range`; both refusals say `expected`."""

    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {name}: {text[:60]!r}; expected {expected}") from None
        if not in_range(value):
            raise argparse.ArgumentTypeError(f"{text[:60]!r} is out of range; expected {expected}")
        return value

    parse.__name__ = name.split()[-1]  # argparse names the type in its own messages
    return parse


def finite_float(low: float, high: float = math.inf, *, low_inclusive: bool = False,
                 unit: str = "") -> Callable[[str], float]:
    """A `type=` for a finite float in (low, high] (or [low, high] with `low_inclusive`); NaN and inf refused."""
    bracket = "[" if low_inclusive else "("
    where = f"{bracket}{low:g}, {high:g}]" if math.isfinite(high) else (">= " if low_inclusive else "> ") + f"{low:g}"
    suffix = f" {unit}" if unit else ""

    def in_range(value: float) -> bool:
        return math.isfinite(value) and (low <= value if low_inclusive else low < value) and value <= high

    return _checked(float, "a number", in_range, f"a finite number {where}{suffix}")


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """A `type=` for an integer in [low, high]."""
    return _checked(int, "an integer", lambda v: low <= v <= high, f"an integer from {low} to {high}")


seconds = finite_float(0.0, MAX_SECONDS, unit="seconds")
"""A timing budget or time-out: finite, > 0, at most a day."""
seed = bounded_int(0, MAX_SEED)


# --------------------------------------------------------------------------------------------------- names


def backend_list(text: str) -> str:
    """A `type=` for `--backends`: a non-empty comma list of known backends (returned as typed)."""
    from opbench.backends import backend_names, parse_backends

    if not text.strip(" ,"):
        raise argparse.ArgumentTypeError(f"no backend named in {text!r}; valid choices: {', '.join(backend_names())}")
    try:
        parse_backends(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def backend_name(text: str) -> str:
    """A `type=` for one backend name (`--baseline`)."""
    from opbench.backends import backend_names
    from opbench.errors import unknown

    if text not in backend_names():
        raise argparse.ArgumentTypeError(str(unknown("backend", text, backend_names())))
    return text


def mode_list(text: str) -> str:
    """A `type=` for `--mode`: a non-empty comma list of timing modes (`opbench.engine.modes.MODES`)."""
    from opbench.engine.modes import parse_modes

    try:
        parse_modes(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def name_list(what: str, choices: Callable[[], list[str]] | None = None) -> Callable[[str], str]:
    """A `type=` for a comma list that must name something (`--ops`, `--catalog`); contents are checked later.
    An empty one names the valid `choices` where they are a known set."""

    def parse(text: str) -> str:
        if not text.strip(" ,"):
            named = choices() if choices else []
            raise argparse.ArgumentTypeError(f"no {what} named in {text!r}"
                                             + (f"; valid choices: {', '.join(named)}" if named else ""))
        return text

    parse.__name__ = what
    return parse


def _op_names() -> list[str]:
    """What `--ops` may name: the catalog's families (and its cases, which `opbench list` shows)."""
    from opbench.catalog import FAMILIES

    return [*FAMILIES, "(or a case name: opbench list)"]


op_list = name_list("op", _op_names)
"""A `type=` for `--ops`: a non-empty comma list of families or case names."""


def speedup_pairs(text: str) -> str:
    """A `type=` for `--pairs`: `A/B,...` with two different known backends per pair (returned as typed)."""
    from opbench.backends import backend_names
    from opbench.errors import unknown

    known = backend_names()
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise argparse.ArgumentTypeError(f"no speedup pair in {text!r}; write A/B, e.g. cuda/cpu")
    for item in items:
        a, sep, b = item.partition("/")
        if not sep or not a or not b or "/" in b:
            raise argparse.ArgumentTypeError(f"malformed speedup pair {item!r}; write A/B, e.g. cuda/cpu")
        for name in (a, b):
            if name not in known:
                raise argparse.ArgumentTypeError(str(unknown("backend", name, known)))
        if a == b:
            raise argparse.ArgumentTypeError(f"speedup pair {item!r} compares a backend with itself")
    return text


def check_pairs_present(pairs: list[tuple[str, str]] | None, backends: list[str], where: str) -> None:
    """Refuse a requested speedup pair whose backends are not both in `backends` (it would be dropped)."""
    for a, b in pairs or ():
        missing = [n for n in (a, b) if n not in backends]
        if missing:
            raise UsageError(f"--pairs {a}/{b}: {', '.join(missing)} not in {where}; valid choices: "
                             f"{', '.join(backends) or 'none'}")


def run_ref(text: str) -> str:
    """A `type=` for a run reference (stored id, prefix, `latest`, a run file or directory, FILE.md#SECTION)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty run reference; give a run id, a prefix of one, 'latest', or a "
                                         "run.json / run directory")
    check_path_text(text, "run reference", argparse.ArgumentTypeError)
    return text


# --------------------------------------------------------------------------------------------------- paths


def _as_argparse(check: Callable[[Path], Path]) -> Callable[[str], Path]:
    def parse(text: str) -> Path:
        if not text:
            raise argparse.ArgumentTypeError("empty path")
        try:
            return check(Path(text))
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "path"
    return parse


output_dir = _as_argparse(check_output_dir)
"""A `type=` for an output directory option (`--out DIR`)."""
output_file = _as_argparse(check_output_file)
"""A `type=` for an output file option (`--out FILE`, `--json FILE`)."""


def input_path(text: str) -> Path:
    """A `type=` for a file or directory to read (`--calibration`, `--resume DIR`): well-formed; existence is
    checked by its reader, which names what it expected there."""
    if not text:
        raise argparse.ArgumentTypeError("empty path")
    check_path_text(text, "path", argparse.ArgumentTypeError)
    return Path(text)


def store_location(text: str) -> str:
    """A `type=` for `--store`: a database URL is passed on as typed; a file path must be well-formed and not a
    directory (the store itself is opened, and checked, by the command before it measures)."""
    from opbench.results.dialects import check_target

    try:
        check_target(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if "://" in text:
        return text
    if not text:
        raise argparse.ArgumentTypeError("empty store path")
    check_path_text(text, "store path", argparse.ArgumentTypeError)
    path = Path(text).expanduser()
    if is_dir(path):
        raise argparse.ArgumentTypeError(f"store path {text} is a directory; pass a file path")
    if not exists(path):
        try:
            check_creatable(path, "store", writable=False)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return text
