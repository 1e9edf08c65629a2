"""`opbench import FILE`: store a JSON run file, or every device section of a published Markdown table, as runs.

Published tables become read-only runs marked imported (one number per cell, no samples, not verified).
Their ids are stable (a hash of the file's content and the section), so importing a file again stores
nothing new and says which runs were already there.
"""

from __future__ import annotations

import argparse

from opbench.commands import add_store, options
from opbench.results.importers import import_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="store a JSON run file or a published Markdown benchmark table as runs")
    p.add_argument("file", metavar="FILE", type=options.input_path,
                   help="run.json / `opbench export --format json` output, or a Markdown "
                   "file with published tables (e.g. mlx-benchmark's detailed_benchmark.md)")
    add_store(p)
    p.add_argument("--label", help="label of the run (a prefix of each section's heading for multi-device files)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from opbench.results.store import open_store

    runs = import_file(args.file, args.label)
    with open_store(args.store) as store:
        known = {r.run_id for r in store.list_runs()}
        for r in runs:
            status = "already stored" if r.run_id in known else "imported"
            if r.run_id not in known:
                store.save_run(r)
                known.add(r.run_id)
            print(f"{status}  {r.run_id}  {len(r.results)} results  {r.label}")
    return 0
