"""`opbench report RUN [RUN_B]`: one self-contained HTML page with metadata, sortable tables, charts and,
given a second run, the comparison of RUN_B against RUN."""

from __future__ import annotations

import argparse

from opbench.commands import add_store, add_table_options, console, options, progress
from opbench.commands.plot import load_pair, output_base
from opbench.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write one self-contained HTML report of a run (and its comparison)")
    p.add_argument("run", metavar="RUN", type=options.run_ref,
                   help="run id (prefix, latest), run.json or its directory, or FILE.md#SECTION")
    p.add_argument("run_b", metavar="RUN_B", nargs="?", type=options.run_ref, help="a second run, compared against RUN")
    p.add_argument("--out", type=options.output_file, help="HTML file (default: RUN's directory/report.html)")
    p.add_argument("--log", action="store_const", const=True, default=None,
                   help="logarithmic time axes on every chart (default: log where a chart's times span over 1.5 "
                        "decades)")
    p.add_argument("--no-plots", action="store_true", help="tables only (faster, smaller)")
    add_table_options(p)
    p.add_argument("--roofline", action="store_true",
                   help="add the roofline section: %% of calibrated peak per case (see `opbench calibrate`)")
    p.add_argument("--calibration", type=options.input_path,
                   help="calibration file for --roofline (default: the run's machine's stored one; implies --roofline)")
    add_store(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from opbench.report.html import figure_count, render_report, report_figures
    from opbench.report.tables import parse_pairs
    from opbench.results.files import atomic_write

    pairs = parse_pairs(args.pairs)
    run_a, comparison = load_pair(args.run, args.run_b, args.store)
    options.check_pairs_present(pairs, run_a.backend_names(), f"run {run_a.run_id}")
    out = args.out or output_base(args.run, run_a) / "report.html"
    figures = []
    if not args.no_plots:
        bar, advance = progress(figure_count(run_a, comparison), "drawing")
        with bar:
            figures = report_figures(run_a, comparison, log=args.log, pairs=pairs, on_done=advance)
    roofline = None
    if args.roofline or args.calibration:
        from opbench.commands.roofline import calibration_for
        from opbench.report.roofline import roofline_entries
        from opbench.studies.roofline import backend_settings

        roofline = roofline_entries(run_a.results, calibration_for(run_a, args.calibration),
                                    backend_settings(run_a.backends))
    page = render_report(run_a, comparison, figures, pairs=pairs, geometric=args.geomean, roofline=roofline)
    try:
        atomic_write(out, page)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
    console(stderr=True).print(f"report: {out} ({len(page.encode()) / 1e6:.1f} MB, {len(figures)} charts)")
    return 0
