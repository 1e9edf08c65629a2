"""`opbench backends`: every backend, whether it can run here, and why."""

from __future__ import annotations

import argparse

from opbench.backends import availability_table
from opbench.commands import add_format, console
from opbench.report.tables import Table, to_markdown, to_rich


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backends", help="list backends and whether they are available here")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = [[name, "yes" if a.available else "no", a.reason] for name, a in availability_table().items()]
    table = Table("Backends", ["Backend", "Available", "Why"], rows)
    if args.format == "md":
        print(to_markdown(table, legend=False), end="")
    else:
        console().print(to_rich(table))
    return 0
