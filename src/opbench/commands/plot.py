"""`opbench plot RUN`: the run's charts as PNG or SVG files (and a run-vs-run ratio chart with `--vs`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from opbench.commands import add_store, console, options, progress
from opbench.errors import UsageError
from opbench.results import Run
from opbench.results.ids import folder_name


def register(sub: argparse._SubParsersAction) -> None:
    from opbench.report.plots import FORMATS

    p = sub.add_parser("plot", help="draw a run's charts: a panel per case, one chart per family, speedup heatmap")
    p.add_argument("run", metavar="RUN", type=options.run_ref,
                   help="run id (prefix, latest), run.json or its directory, or FILE.md#SECTION")
    p.add_argument("--out", type=options.output_dir, help="output directory (default: RUN's directory/plots, or "
                                            "opbench-out/RUN_ID/plots for a stored run)")
    p.add_argument("--format", choices=FORMATS, default="png", help="image format (default png)")
    p.add_argument("--log", action="store_const", const=True, default=None,
                   help="logarithmic time axes on every chart (default: log where a chart's times span over 1.5 "
                        "decades)")
    p.add_argument("--pairs", type=options.speedup_pairs,
                   help="speedup pairs of the heatmap as A/B, e.g. cuda/cpu,mlx_gpu/mps")
    p.add_argument("--vs", metavar="RUN_B", type=options.run_ref,
                   help="also chart RUN_B against RUN (time ratios with significance)")
    add_store(p)
    p.set_defaults(func=run)


def output_base(ref: str, run: Run) -> Path:
    """Where a run's rendered files go by default: beside its run.json, else opbench-out/RUN_ID."""
    path = Path(ref)
    if path.is_dir():
        return path
    if path.is_file():
        return path.parent
    return Path("opbench-out") / folder_name(run.run_id)


def load(ref: str, store: str | None) -> Run:
    """A run by id, run file or directory, or a published Markdown table (`FILE.md#SECTION`)."""
    from opbench.results.resolve import load_run_or_table

    run = load_run_or_table(ref, store)
    if not run.results:
        raise UsageError(f"run {run.run_id} has no results to show")
    return run


def load_pair(ref_a: str, ref_b: str | None, store: str | None):  # -> (Run, Comparison | None)
    """Run A, and its comparison with run B when B is given (the plots and the report show both)."""
    run_a = load(ref_a, store)
    if not ref_b:
        return run_a, None
    from opbench.analysis.compare import compare_runs

    return run_a, compare_runs(run_a, load(ref_b, store),
                               pairing_hint="`opbench compare A B --map A_BACKEND=B_BACKEND` pairs different ones")


def run(args: argparse.Namespace) -> int:
    from opbench.report import plots
    from opbench.report.tables import Table, parse_pairs, to_rich

    pairs = parse_pairs(args.pairs)
    run_a, comparison = load_pair(args.run, args.vs, args.store)
    options.check_pairs_present(pairs, run_a.backend_names(), f"run {run_a.run_id}")
    out_dir = args.out or output_base(args.run, run_a) / "plots"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    jobs = len(plots.plan_run_figures(run_a, log=args.log, pairs=pairs)) + (1 if comparison else 0)
    bar, advance = progress(jobs, "drawing")
    with bar:
        written = plots.write_run_figures(run_a, out_dir, args.format, log=args.log, pairs=pairs, on_done=advance)
        if comparison is not None:
            a, b = run_a.label or run_a.run_id, comparison.run_b.label or comparison.run_b.run_id
            if comparison.rows:
                fig = plots.comparison_chart(comparison.rows, a, b)
                path = plots.save(fig, out_dir / f"compare-{plots.slug(b)}.{args.format}")
                written.append(plots.PlotFile(f"{b} vs {a}", path))
            advance("comparison")
    table = Table(f"{len(written)} charts of {run_a.run_id}", ["File", "Chart"],
                  [[str(w.path), w.title] for w in written])
    console().print(to_rich(table))
    if comparison is not None and not comparison.rows:
        console(stderr=True).print("no case was timed in both runs: no comparison chart")
    return 0
