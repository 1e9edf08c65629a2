"""`opbench export RUN --format json|csv|md`: a stored run written out.

json: `Run.to_dict`, the format `opbench import` reads back (raw samples included). csv: one row per result
with its statistics and the raw samples (space-separated, ms). md: the seed's Detailed and Average tables.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math

from opbench.commands import add_store, options
from opbench.commands.show import markdown_tables
from opbench.errors import UsageError
from opbench.results import Run
from opbench.results.files import atomic_write
from opbench.results.resolve import load_run

CSV_COLUMNS = ("run_id", "case", "family", "backend", "dtype", "mode", "status", "median_ms", "iqr_ms", "n",
               "noisy", "first_call_ms", "rel_error", "tolerance", "flops", "bytes", "published_ms", "calls_per_sample",
               "warmup_calls", "stop_reason", "error", "method", "peak_memory_bytes", "energy_j_per_call",
               "process_medians_ms", "unit_sizes", "samples_ms")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a stored run as JSON (re-importable), CSV or Markdown")
    p.add_argument("run", metavar="RUN", type=options.run_ref,
                   help="stored run id, unique prefix or 'latest'; or a run.json / run dir")
    p.add_argument("--format", choices=("json", "csv", "md"), default="json", help="output format (default json)")
    p.add_argument("--out", type=options.output_file, help="file to write (default: standard output)")
    add_store(p)
    p.set_defaults(func=run)


def _number(x: float | None) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(x)


def to_csv(r: Run) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for res in r.results:
        timed = bool(res.samples_ms) or res.published_ms is not None
        writer.writerow([r.run_id, res.case, res.family, res.backend, res.dtype, res.mode, res.status,
                         _number(res.median_ms) if timed else "", _number(res.iqr_ms), res.n,
                         int(res.noisy), _number(res.first_call_ms), _number(res.rel_error),
                         _number(res.tolerance), res.flops, res.bytes, _number(res.published_ms),
                         res.calls_per_sample, res.warmup_calls, res.stop_reason, res.error, res.method,
                         _number(res.conditions.get("peak_memory_bytes")),
                         _number(res.conditions.get("energy_j_per_call")),
                         " ".join(repr(m) for m in res.process_medians_ms),
                         " ".join(str(k) for k in res.unit_sizes),
                         " ".join(repr(s) for s in res.samples_ms)])
    return buf.getvalue()


def render(r: Run, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(r.to_dict(), indent=1, default=str) + "\n"
    if fmt == "csv":
        return to_csv(r)
    return markdown_tables(r)


def run(args: argparse.Namespace) -> int:
    text = render(load_run(args.run, store=args.store), args.format)
    if args.out is None:
        print(text, end="")
    else:
        try:
            atomic_write(args.out, text)
        except OSError as exc:
            raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    return 0
