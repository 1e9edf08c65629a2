"""`opbench list`: the catalog's cases with shapes, FLOP and byte counts."""

from __future__ import annotations

import argparse

from opbench.catalog import PRESETS, preset_cases, select_cases
from opbench.commands import add_catalog_option, add_format, console, load_catalog_option, print_tables
from opbench.commands.options import op_list
from opbench.report.tables import Table, to_markdown

PLAIN_HEADERS = ["case", "family", "tags", "MFLOP", "MB_float32"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the catalog's cases",
                       description="List the catalog's cases. In a terminal: a table (grouped by family when the "
                                   "full names do not fit); piped or redirected: one tab-separated line per case "
                                   "under a header line, e.g. `opbench list | grep Softmax`.")
    p.add_argument("--preset", default="seed", help=f"one of {', '.join(PRESETS)} (default seed)")
    p.add_argument("--ops", type=op_list, help="comma-separated families or case names")
    add_catalog_option(p)
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    catalogs = load_catalog_option(args.catalog)
    ops = args.ops.split(",") if args.ops else [f for c in catalogs for f in c.families] or None
    cases = select_cases(preset_cases(args.preset), ops)
    rows = [[c.name, c.family, ",".join(sorted(c.tags)), f"{c.flops / 1e6:.1f}", f"{c.bytes_moved() / 1e6:.1f}"]
            for c in cases]
    out = console()
    if args.format == "md":
        print(to_markdown(Table("", ["Case", "Family", "Tags", "MFLOP", "MB (float32)"], rows), legend=False),
              end="")
    elif not out.is_terminal:
        print("\n".join("\t".join(r) for r in [PLAIN_HEADERS, *rows]))
    else:
        table = Table(f"{len(cases)} cases ({args.preset}; MB moved in float32)", ["Case", "Tags", "MFLOP", "MB"],
                      [[name, tags, mflop, mb] for name, _, tags, mflop, mb in rows])
        print_tables(out, table)
    return 0
