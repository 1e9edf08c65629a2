"""`opbench runs`: every stored run, newest first, with its machine, preset, backends and result count."""

from __future__ import annotations

import argparse

import opbench.machine as machine
from opbench.commands import add_format, add_store, console
from opbench.report.tables import Table, to_markdown, to_rich
from opbench.results import Run
from opbench.results.store import MissingStore, open_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list the runs in the result store")
    add_store(p)
    add_format(p)
    p.set_defaults(func=run)


def backends_of(r: Run, with_results: list[str]) -> str:
    """The backends a run asked for (its settings), else those it has results for (imported runs)."""
    return ",".join(r.settings.get("backends") or with_results)


def run(args: argparse.Namespace) -> int:
    try:
        store = open_store(args.store, create=False)
    except MissingStore as missing:
        print(f"no runs stored yet (no store at {missing.location})")
        return 0
    with store:
        runs, counts, backends = store.list_runs(), store.result_counts(), store.result_backends()
    rows = [[r.run_id, r.created, machine.describe(r.machine) if r.machine else r.label or r.source,
             r.preset, r.dtype, backends_of(r, backends.get(r.run_id, [])), str(counts.get(r.run_id, 0)),
             "yes" if r.imported else "", r.label] for r in runs]
    table = Table(f"{len(runs)} runs in {store.location}", ["Run", "Created", "Machine", "Preset", "Dtype", "Backends",
                                                  "Results", "Imported", "Label"], rows)
    if args.format == "md":
        print(to_markdown(table, legend=False), end="")
    else:
        console().print(to_rich(table))
    return 0
