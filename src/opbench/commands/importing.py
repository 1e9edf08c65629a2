"""`opbench import FILE`: store a JSON run file, or every device section of a published Markdown table, as runs.

Published tables become read-only runs marked imported (one number per cell, no samples, not verified).
Their ids are stable (a hash of the file's content and the section), so importing a file again stores
nothing new and says which runs were already there.
"""

from __future__ import annotations

import argparse
import math

from opbench.commands import add_store, options
from opbench.errors import UsageError
from opbench.results import Run
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
        for r in runs:  # every clash refused before the first run is stored
            if r.run_id in known and not same_results(store.load_run(r.run_id), r):
                raise UsageError(f"run {r.run_id} is already stored with other results; the file is not that run "
                                 "(give it another run_id, or import it into another --store)")
        for r in runs:
            status = "already stored" if r.run_id in known else "imported"
            if r.run_id not in known:
                store.save_run(r)
                known.add(r.run_id)
            print(f"{status}  {r.run_id}  {len(r.results)} results  {r.label}")
    return 0


def same_results(a: Run, b: Run) -> bool:
    """Whether two runs hold the same results: the same (case, backend, dtype, mode) keys with the same status
    and median (to 1e-9; NaN and none alike), which a store round trip keeps."""
    def index(run: Run) -> dict[tuple[str, str, str, str], tuple[str, float | None]]:
        return {(r.case, r.backend, r.dtype, r.mode): (r.status, r.median_ms if r.samples_ms else r.published_ms)
                for r in run.results}

    left, right = index(a), index(b)
    return left.keys() == right.keys() and all(
        left[k][0] == right[k][0] and _same_time(left[k][1], right[k][1]) for k in left)


def _same_time(x: float | None, y: float | None) -> bool:
    if x is None or y is None:
        return x is None and y is None
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=1e-9)
