"""`opbench list`: the catalog's cases with shapes, FLOP and byte counts."""

from __future__ import annotations

import argparse

from opbench.catalog import PRESETS, preset_cases, select_cases
from opbench.commands import add_catalog_option, add_format, console, load_catalog_option
from opbench.report.tables import Table, to_markdown, to_rich


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the catalog's cases")
    p.add_argument("--preset", default="seed", help=f"one of {', '.join(PRESETS)} (default seed)")
    p.add_argument("--ops", help="comma-separated families or case names")
    add_catalog_option(p)
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    catalogs = load_catalog_option(args.catalog)
    ops = args.ops.split(",") if args.ops else [f for c in catalogs for f in c.families] or None
    cases = select_cases(preset_cases(args.preset), ops)
    rows = [[c.name, c.family, ",".join(sorted(c.tags)), f"{c.flops / 1e6:.1f}", f"{c.bytes_moved() / 1e6:.1f}"]
            for c in cases]
    table = Table(f"{len(cases)} cases ({args.preset})", ["Case", "Family", "Tags", "MFLOP", "MB (float32)"], rows)
    if args.format == "md":
        print(to_markdown(table, legend=False), end="")
    else:
        console().print(to_rich(table))
    return 0
