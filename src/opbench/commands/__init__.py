"""One module per CLI subcommand; each has `register(subparsers)`. Shared option helpers live here."""

from __future__ import annotations

import argparse
import os
import sys

from opbench.errors import unknown

DTYPES = ("float16", "bfloat16", "float32", "float64")


def add_format(parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("rich", "md")) -> None:
    parser.add_argument("--format", choices=choices, default=choices[0],
                        help="terminal rendering: rich tables or plain Markdown")


def add_store(parser: argparse.ArgumentParser) -> None:
    """--store PATH|URL: every command that reads or writes the result store takes it."""
    from opbench.commands.options import store_location

    parser.add_argument("--store", metavar="PATH|URL", type=store_location,
                        help="result store: an SQLite file or a postgresql://user@host/db URL "
                             "(default $OPBENCH_STORE, else opbench.sqlite in the user data directory)")


def add_table_options(parser: argparse.ArgumentParser) -> None:
    """--pairs and --geomean: the seed tables' speedup columns and Average-table mean."""
    from opbench.commands.options import speedup_pairs

    parser.add_argument("--pairs", type=speedup_pairs, help="speedup columns as A/B pairs, e.g. cuda/cpu,mlx_gpu/mps")
    parser.add_argument("--geomean", action="store_true",
                        help="Average table with geometric instead of arithmetic means")


def add_catalog_option(parser: argparse.ArgumentParser) -> None:
    from opbench.commands.options import name_list

    parser.add_argument("--catalog", action="append", metavar="FILE", type=name_list("catalog file"),
                        help="also load your own families from FILE.py (or an installed 'opbench.catalogs' entry "
                             "point); without --ops only its families are used (repeatable, or comma-separated)")


def load_catalog_option(values: list[str] | None) -> list:  # -> list[catalog.user.LoadedCatalog]
    """Load the catalogs named by --catalog (one-line UsageError for a bad one, before anything is measured)."""
    from opbench.catalog.user import load_catalogs

    return load_catalogs([s.strip() for v in values or () for s in v.split(",") if s.strip()])


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise unknown("dtype", dtype, DTYPES)
    return dtype


PIPED_WIDTH = 1000  # columns of a console writing to a pipe or file: lines are never folded there


def console(stderr: bool = False):  # -> rich.console.Console
    """A rich console; one writing to a pipe or a file gets PIPED_WIDTH columns, so a table row stays on one
    line (`opbench show latest | grep Softmax` finds whole rows) instead of being folded at rich's default 80."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, highlight=False, width=PIPED_WIDTH if piped else None)


def print_tables(out, *tables, notes: bool = True) -> None:  # out: rich.console.Console; tables: report Tables
    """Print report tables with rich, fitted to the terminal (see `report.tables.to_rich`), each followed by its
    caption (the legend of the marks it shows), then the tables' notes, each once."""
    from rich.markup import escape

    from opbench.report.tables import to_rich

    for table in tables:
        out.print(to_rich(table, out.width, caption=False))
        if table.caption:
            out.print(f"[dim]{escape(table.caption)}[/]", soft_wrap=True)
    if notes:
        for note in dict.fromkeys(n for t in tables for n in t.notes):
            out.print(f"[dim]- {escape(note)}[/]", soft_wrap=True)


def progress(total: int, description: str, console_=None, estimate=None):  # -> (rich Progress, advance)
    """A transient rich progress bar on stderr. `advance(title)` counts one finished item; `advance(title,
    done=False)` only shows the item now being worked on. The label is never cut (it folds onto a second line
    in a narrow terminal), so long case names stay distinguishable. The ETA is `estimate()` (seconds left, a
    cost model's: `opbench.engine.eta`) when given, else rich's count-based one. Every long command uses this bar."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column
    from rich.text import Text

    class EstimateColumn(ProgressColumn):
        def render(self, task) -> Text:
            left = estimate()
            if left is None or task.finished:
                return Text("-:--:--", style="progress.remaining")
            seconds = int(max(0.0, left))
            return Text(f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}", style="progress.remaining")

    eta = EstimateColumn() if estimate is not None else TimeRemainingColumn()
    bar = Progress(BarColumn(bar_width=20), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), eta,
                   TextColumn("{task.description}", table_column=Column(no_wrap=False, overflow="fold")),
                   console=console_ or console(stderr=True), transient=True)
    task = bar.add_task(description, total=total)
    totals = [total]

    def advance(title: str, done: bool = True, dropped: int = 0) -> None:
        """`dropped`: items that will not come after all (the total shrinks by as many)."""
        totals[0] -= dropped
        bar.update(task, advance=1 if done else 0, description=f"{description}: {title}", total=totals[0])

    return bar, advance
