"""`opbench compare RUN_A RUN_B`: B against A per case and backend, with significance and geometric means.

A run is a stored run id (or prefix, or `latest`), a run.json / run directory, a JSON export, or a published
Markdown table (`FILE#SECTION` for a multi-device file, e.g. `detailed_benchmark.md#RTX4090`).

Exit codes: 0 compared (and no gate failed); 1 `--fail-above PCT` was given and either some case is called
slower in B than in A (its verdict, `opbench.analysis.significance`) by more than PCT %, or the overall geometric mean
of B/A is called slower and exceeds 1 + PCT/100 (both are named on stderr); 2 bad input (unknown run,
unreadable file, bad option). Rows without raw samples on a side (published tables) are "untested", never
"slower", so with such a run only the bare overall geometric mean can trip the gate. A gated comparison
with no comparable case also exits 1: a gate that checked nothing must not pass.
"""

from __future__ import annotations

import argparse
import sys

from opbench.analysis.compare import DEFAULT_NOISE_FLOOR, compare_runs, parse_backend_map
from opbench.commands import add_format, add_store, console, options
from opbench.errors import UsageError
from opbench.results.files import atomic_write
from opbench.results.resolve import load_run_or_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare run B against run A: ratios, significance, geometric means")
    p.add_argument("run_a", metavar="RUN_A", type=options.run_ref,
                   help="baseline: run id, run file/directory, or FILE.md#SECTION")
    p.add_argument("run_b", metavar="RUN_B", type=options.run_ref,
                   help="the run compared with the baseline (same forms)")
    add_store(p)
    p.add_argument("--map", action="append", metavar="A=B",
                   help="pair backend A of RUN_A with backend B of RUN_B, e.g. cuda=mlx_gpu (repeatable, or "
                        "comma-separated); other backends pair by name")
    p.add_argument("--alpha", type=options.finite_float(0.0, 0.5), default=0.05,
                   help="significance level (default 0.05: 95%% CI)")
    p.add_argument("--noise-floor", type=options.finite_float(0.0, 1000.0, low_inclusive=True),
                   default=100 * DEFAULT_NOISE_FLOOR, metavar="PCT",
                   help="changes below PCT %% are never called slower or faster (default 2; raised to what "
                        "`opbench noise` measured on run A's machine)")
    p.add_argument("--fail-above", type=options.finite_float(0.0, 1e6, low_inclusive=True), metavar="PCT",
                   help="exit 1 if a case is called slower in B by more than PCT %%, or the overall "
                        "geometric mean of B/A is called slower and exceeds 1 + PCT/100")
    p.add_argument("--across-modes", action="store_true",
                   help="compare two single-mode runs of different timing modes (e.g. a throughput run against "
                        "a published table, measured in latency mode); without it such runs are refused")
    p.add_argument("--out", type=options.output_file, help="also write the Markdown report to this file")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from opbench.report.comparison import to_markdown_report, to_rich_renderables

    mapping = parse_backend_map(args.map)
    run_a = load_run_or_table(args.run_a, store=args.store)
    run_b = load_run_or_table(args.run_b, store=args.store)
    from opbench.studies.noise import machine_noise

    floors, run_variances, floor_note = machine_noise(run_a)
    comparison = compare_runs(run_a, run_b, mapping, alpha=args.alpha, noise_floor=args.noise_floor / 100,
                              machine_floors=floors, across_modes=args.across_modes, run_variances=run_variances)
    if floor_note:
        console(stderr=True).print(f"note: {floor_note}", soft_wrap=True)
    report = to_markdown_report(comparison)
    if args.format == "md":
        print(report, end="")
    else:
        out = console()
        for item in to_rich_renderables(comparison):
            out.print(item)
    if args.out:
        try:
            atomic_write(args.out, report)
        except OSError as exc:
            raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    return _gate(comparison, args.fail_above)


def _gate(comparison, threshold: float | None) -> int:
    if threshold is None:
        return 0
    failures = []
    regressions = comparison.regressions(threshold)
    if regressions:
        worst = sorted(regressions, key=lambda r: -r.ratio)
        shown = ", ".join(f"{r.case} [{r.backend}] {r.ratio:.2f}x" for r in worst[:5])
        more = f" and {len(worst) - 5} more" if len(worst) > 5 else ""
        failures.append(f"{len(worst)} regression(s) called slower above {threshold:g}%: {shown}{more}")
    summary = comparison.overall_summary()
    overall = summary.geomean
    if not comparison.rows:
        failures.append("no case could be compared, so nothing was checked (see the notes)")
    elif overall > 1 + threshold / 100 and summary.verdict in ("slower", "untested"):
        failures.append(f"overall geometric mean of B/A {summary.text} exceeds {1 + threshold / 100:.3f}")
    for failure in failures:
        print(f"opbench compare: FAIL: {failure}", file=sys.stderr)
    if not failures:
        print(f"opbench compare: OK: no regression called slower above {threshold:g}%, overall geometric mean "
              f"{summary.text} ({summary.verdict})", file=sys.stderr)
    return 1 if failures else 0
