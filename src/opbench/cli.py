"""The command line: parse, call the library, render. Every subcommand lives in `opbench.commands`.

Bad input (unknown names, malformed shapes, corrupt files) ends with one line on stderr and exit code 2,
never a traceback. Ctrl-C ends with exit code 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from opbench._version import __version__
from opbench.errors import UsageError

# Each module defines `register(subparsers)`, which adds its parser and sets `func` to a function
# taking the parsed args and returning an exit code.
COMMAND_MODULES = ("run", "catalog", "backends", "importing", "compare", "sweep", "calibrate", "roofline", "dtypes",
                   "noise", "plot", "report", "runs", "show", "export", "push", "site")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the message names the valid choices) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="opbench", description="Verified, honestly timed benchmarks of array/ML operations.")
    parser.add_argument("--version", action="version", version=f"opbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"opbench.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"opbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("opbench: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a disk that filled up or a folder that went away after the up-front checks
        if isinstance(exc, BrokenPipeError):
            return _reader_gone()
        from opbench.paths import os_error_text

        print(f"opbench: error: {os_error_text(exc)}", file=sys.stderr)
        return 2


def _reader_gone() -> int:
    """`opbench ... | head`: the reader went away, which is not an error of ours."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0
