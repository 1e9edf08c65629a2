"""`opbench show RUN`: the seed's Detailed and Average tables from a stored run (or a run file)."""

from __future__ import annotations

import argparse
import platform

from opbench import machine
from opbench.commands import add_format, add_store, add_table_options, console, options, print_tables
from opbench.report.tables import average_table, detailed_table, parse_pairs, to_markdown
from opbench.results import Run
from opbench.results.resolve import load_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="print the Detailed and Average tables of a stored run")
    p.add_argument("run", metavar="RUN", type=options.run_ref,
                   help="stored run id, unique prefix or 'latest'; or a run.json / run dir")
    add_store(p)
    add_table_options(p)
    p.add_argument("--roofline", action="store_true",
                   help="then the roofline table: %% of calibrated peak per case, lowest first")
    add_format(p)
    p.set_defaults(func=run)


def heading(r: Run) -> str:
    """`run ID · created · machine` (imported runs: their label and source)."""
    where = machine.describe(r.machine) if r.machine and not r.imported else f"imported from {r.source or '?'}"
    host = r.machine.get("hostname") if not r.imported else None
    if host and host != platform.node():
        where += f" · measured on host {host}, not this one"
    parts = [f"run {r.run_id}", r.label, r.created, f"{r.preset} preset, {r.dtype}", where]
    return " · ".join(p for p in parts if p)


def markdown_tables(r: Run, pairs: list[tuple[str, str]] | None = None, geometric: bool = False) -> str:
    """The seed's two tables as Markdown, under the run's heading."""
    detailed, average = detailed_table(r.results, pairs), average_table(r.results, pairs, geometric)
    return (f"# {heading(r)}\n\nDetailed benchmark (ms):\n\n{to_markdown(detailed)}\n"
            f"Average benchmark (ms{', geometric mean' if geometric else ''}):\n\n{to_markdown(average)}")


def run(args: argparse.Namespace) -> int:
    pairs = parse_pairs(args.pairs)
    r = load_run(args.run, store=args.store)
    options.check_pairs_present(pairs, r.backend_names(), f"run {r.run_id}")
    if args.format == "md":
        print(markdown_tables(r, pairs, args.geomean), end="")
        _roofline(r, args)
        return 0
    out = console()
    out.print(f"[bold]{heading(r)}[/]", soft_wrap=True)
    print_tables(out, detailed_table(r.results, pairs), average_table(r.results, pairs, args.geomean))
    _roofline(r, args)
    return 0


def _roofline(r: Run, args: argparse.Namespace) -> None:
    if args.roofline:
        from opbench.commands.roofline import calibration_for, show_roofline

        show_roofline(r, calibration_for(r, None), args.format)
