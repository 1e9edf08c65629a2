"""One module per CLI subcommand; each has `register(subparsers)`. Shared option helpers live here."""

from __future__ import annotations

import argparse

from opbench.errors import unknown

DTYPES = ("float16", "bfloat16", "float32", "float64")


def add_format(parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("rich", "md")) -> None:
    parser.add_argument("--format", choices=choices, default=choices[0],
                        help="terminal rendering: rich tables or plain Markdown")


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise unknown("dtype", dtype, DTYPES)
    return dtype


def console(stderr: bool = False):  # -> rich.console.Console
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)
