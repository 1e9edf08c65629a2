"""`opbench roofline RUN`: achieved GFLOP/s, GB/s and % of the calibrated peak for every case of a run.

Sorted by % of peak, lowest first, so the cases far under their limit stand out. `opbench run --roofline`
prints the same table (and writes roofline.json/.md next to run.json) at the end of a run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from opbench.commands import add_format, add_store, console, options
from opbench.report.roofline import LEGEND, roofline_table
from opbench.report.tables import to_markdown, to_rich
from opbench.results import Run
from opbench.results.files import atomic_write
from opbench.studies.calibrate import Calibration, load_calibration, read_calibration
from opbench.studies.roofline import backend_settings, roofline_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("roofline", help="%% of calibrated peak (compute or memory bound) for every case of a run")
    p.add_argument("run", metavar="RUN", type=options.run_ref,
                   help="stored run id, unique prefix or 'latest'; or a run.json / run dir")
    add_store(p)
    p.add_argument("--calibration", type=options.input_path,
                   help="calibration file (default: the run's machine's stored one)")
    p.add_argument("--json", type=options.output_file, help="also write the roofline as JSON to this file")
    add_format(p)
    p.set_defaults(func=run)


def calibration_for(run: Run, path: Path | None) -> Calibration | None:
    """The calibration file given, else the stored one of the machine the run was measured on."""
    return read_calibration(path) if path else load_calibration(run.machine)


def show_roofline(run: Run, calibration: Calibration | None, fmt: str, out_dir: Path | None = None,
                  json_path: Path | None = None) -> None:
    settings = backend_settings(run.backends)
    table = roofline_table(run.results, calibration, settings)
    if out_dir is not None:
        atomic_write(out_dir / "roofline.md", f"# {table.title}\n\n" + to_markdown(table, legend=False)
                     + f"\n{LEGEND}\n")
        json_path = json_path or out_dir / "roofline.json"
    if json_path is not None:
        atomic_write(json_path, json.dumps(roofline_json(run.results, calibration, settings), indent=1) + "\n")
    if fmt == "md":
        print(to_markdown(table, legend=False) + f"\n{LEGEND}")
    else:
        from rich.markup import escape

        out = console()
        out.print(to_rich(table))
        out.print(f"[dim]{escape(LEGEND)}[/]")
        for note in table.notes:
            out.print(f"[dim]- {escape(note)}[/]")


def run(args: argparse.Namespace) -> int:
    from opbench.results.resolve import load_run

    loaded = load_run(args.run, store=args.store)
    show_roofline(loaded, calibration_for(loaded, args.calibration), args.format, json_path=args.json)
    return 0
