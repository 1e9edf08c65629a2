"""`opbench show RUN`: the seed's Detailed and Average tables from a stored run (or a run file)."""

from __future__ import annotations

import argparse
import platform
from dataclasses import replace

import opbench.machine as machine
from opbench.commands import add_format, add_store, add_table_options, console, options, print_tables
from opbench.engine.modes import parse_modes
from opbench.errors import UsageError
from opbench.report.tables import average_table, by_mode, detailed_table, modes_table, parse_pairs, to_markdown
from opbench.results import Run
from opbench.results.resolve import load_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="print the Detailed and Average tables of a stored run")
    p.add_argument("run", metavar="RUN", type=options.run_ref,
                   help="stored run id, unique prefix or 'latest'; or a run.json / run dir")
    add_store(p)
    add_table_options(p)
    p.add_argument("--modes", action="store_true",
                   help="one table with one column per timing mode (and backend), the same case side by side")
    p.add_argument("--mode", type=options.mode_list,
                   help="show only these timing modes (comma-separated; default: every mode of the run)")
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
    """The seed's two tables as Markdown, one pair per timing mode, under the run's heading."""
    parts = [f"# {heading(r)}\n"]
    for results in by_mode(r.results).values():
        detailed, average = detailed_table(results, pairs), average_table(results, pairs, geometric)
        parts.append(f"\n{detailed.title}:\n\n{to_markdown(detailed)}\n{average.title}:\n\n{to_markdown(average)}")
    return "".join(parts)


def select_modes(r: Run, text: str | None) -> Run:
    """`r` with only the results of the modes in `text` (all when None); a mode the run lacks is refused."""
    if text is None:
        return r
    wanted = parse_modes(text)
    missing = [m for m in wanted if m not in r.modes()]
    if missing:
        raise UsageError(f"run {r.run_id} has no result in mode {', '.join(missing)}; its modes: "
                         f"{', '.join(r.modes()) or 'none'}")
    return replace(r, results=tuple(x for x in r.results if x.mode in wanted))


def run(args: argparse.Namespace) -> int:
    pairs = parse_pairs(args.pairs)
    r = select_modes(load_run(args.run, store=args.store), args.mode)
    options.check_pairs_present(pairs, r.backend_names(), f"run {r.run_id}")
    if args.modes:
        table = modes_table(r.results)
        if args.format == "md":
            print(f"# {heading(r)}\n\n{table.title}:\n\n{to_markdown(table)}", end="")
        else:
            out = console()
            out.print(f"[bold]{heading(r)}[/]", soft_wrap=True)
            print_tables(out, table)
        return 0
    if args.format == "md":
        print(markdown_tables(r, pairs, args.geomean), end="")
        _roofline(r, args)
        return 0
    out = console()
    out.print(f"[bold]{heading(r)}[/]", soft_wrap=True)
    for results in by_mode(r.results).values():
        print_tables(out, detailed_table(results, pairs), average_table(results, pairs, args.geomean))
    _roofline(r, args)
    return 0


def _roofline(r: Run, args: argparse.Namespace) -> None:
    if args.roofline:
        from opbench.commands.roofline import calibration_for, show_roofline

        show_roofline(r, calibration_for(r, None), args.format)
