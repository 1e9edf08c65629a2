"""`opbench sweep FAMILY --sizes ...`: one family over a range of sizes on several backends, with plots.

`opbench sweep --render DIR` draws the table and plots of a saved sweep again without measuring anything: after
`opbench calibrate` (to add the % peak and the ceiling lines), or for a sweep that was cut off before its end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import Any

import opbench.defaults as defaults
import opbench.machine as machine
from opbench.backends import parse_backends
from opbench.commands import DTYPES, add_format, check_dtype, console, options
from opbench.commands.run import available_backends, new_run_id
from opbench.errors import UsageError
from opbench.report.tables import to_markdown, to_rich
from opbench.results import CaseResult
from opbench.results.files import atomic_write
from opbench.results.formats import SWEEP, load_document
from opbench.results.importers import check_sample_lists
from opbench.results.status import Status
from opbench.studies.calibrate import load_calibration, read_calibration
from opbench.studies.roofline import peaks_for, roofline
from opbench.studies.sweep import (
    SweepPoint,
    SweepSettings,
    parse_sizes,
    ratios,
    resolve_family,
    run_sweep,
    sweep_case,
    template_case,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="one family over a range of sizes on several backends (time, GFLOP/s, plots)")
    p.add_argument("family", nargs="?",
                   help="operation family, e.g. matmul (square N x N @ N x N), softmax, relu, sum")
    p.add_argument("--resume", type=options.input_path, metavar="DIR",
                   help="continue the sweep saved in DIR with its own "
                   "settings: measure only the (size, backend) points it lacks, then draw it again")
    p.add_argument("--render", type=options.input_path, metavar="DIR",
                   help="draw the table and plots of the sweep saved in DIR "
                   "(its sweep.json) again, measuring nothing; --calibration and --out apply")
    p.add_argument("--sizes", default="512:8192:512", help="START:STOP:STEP or a comma list (default 512:8192:512)")
    p.add_argument("--backends", type=options.backend_list,
                   help="comma-separated backends (default: every available one)")
    p.add_argument("--dtype", default="float32", help=f"{' | '.join(DTYPES)} (default float32)")
    p.add_argument("--baseline", type=options.backend_name,
                   help="backend the ratios are taken against (default cpu, else the first)")
    p.add_argument("--budget", type=options.seconds, default=defaults.SWEEP_BUDGET_S,
                   help="seconds per size and backend: timing budget, and larger sizes predicted to need more "
                        f"are skipped (default {defaults.SWEEP_BUDGET_S:g})")
    p.add_argument("--min-samples", type=options.bounded_int(1, options.MAX_SAMPLES),
                   default=defaults.SWEEP_MIN_SAMPLES,
                   help=f"minimum samples per point (default {defaults.SWEEP_MIN_SAMPLES})")
    p.add_argument("--case", help="exact catalog case to scale (non-matmul families; default the family's first)")
    p.add_argument("--calibration", type=options.input_path,
                   help="calibration file (default: this machine's stored one)")
    p.add_argument("--out", type=options.output_dir, help="output directory (default opbench-out/sweep-ID)")
    p.add_argument("--seed", type=options.seed, default=defaults.SEED,
                   help=f"input generator seed (default {defaults.SEED})")
    add_format(p)
    p.set_defaults(func=run)


def describe_axis(family: str, template_name: str | None) -> tuple[str, str]:
    """(x-axis label, plot subject) for the sweep."""
    if family == "MatMul" and template_name is None:
        return "matrix size N (N×N @ N×N)", "MatMul N×N @ N×N"
    case = sweep_case(family, 0, template_case(family, template_name)) if template_name else sweep_case(family, 0)
    pattern = re.sub(r"dim=0(?=[x ]|$)", "dim=N", case.name)
    return f"N, first dimension of {pattern}", pattern


def resume_options(args: argparse.Namespace, record: dict[str, Any]) -> None:
    """Take every measuring option from a saved sweep (a resume must not mix two sweeps in one file); refuse a
    sweep measured on another machine or software."""
    from opbench.engine.resume import refuse_other_machine

    refuse_other_machine(f"sweep {record.get('id', '')}", record["machine"])
    try:
        args.family, args.dtype, args.baseline = record["family"], record["dtype"], record["baseline"]
        args.sizes = ",".join(str(int(n)) for n in record["sizes"])
        args.budget, args.min_samples = float(record["budget_s"]), int(record["min_samples"])
        args.seed, args.case, args.backends = int(record["seed"]), record.get("template"), ",".join(record["backends"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"sweep {record.get('id', '')} lacks its settings ({exc}); it cannot be resumed") from None


def run(args: argparse.Namespace) -> int:
    if args.render:
        if args.family or args.resume:
            raise UsageError("--render draws a saved sweep again: give it alone, without "
                             + ("a FAMILY" if args.family else "--resume") + " (the sweep file names its own)")
        return render_saved(args.render, args.calibration, args.out, args.format)
    previous = load_sweep(args.resume) if args.resume else None
    if previous:
        resume_options(args, previous[0])
    if not args.family:
        raise UsageError("sweep needs a FAMILY (e.g. matmul, softmax) or --render DIR")
    family = resolve_family(args.family)
    sizes = parse_sizes(args.sizes)
    dtype = check_dtype(args.dtype)
    if not (0 < args.budget <= options.MAX_SECONDS and args.min_samples >= 1):
        raise UsageError(f"sweep {args.resume} has unusable settings (budget {args.budget!r} s, min_samples "
                         f"{args.min_samples!r})")
    template = template_case(family, args.case)
    check_sizes(family, sizes, template, dtype)
    wanted = parse_backends(args.backends)  # names are checked before any framework is imported
    if args.baseline and wanted is not None and args.baseline not in wanted:
        raise UsageError(f"--baseline {args.baseline!r} is not among the swept backends: {', '.join(wanted)}")
    names, availability = available_backends(wanted)
    baseline = args.baseline or ("cpu" if "cpu" in names else names[0])
    if baseline not in names:
        raise UsageError(f"--baseline {baseline!r} is not among the swept backends: {', '.join(names)}")
    info = machine.collect()
    calibration = read_calibration(args.calibration) if args.calibration else load_calibration(info)

    runnable = [n for n in names if availability[n]["available"]]
    settings_by_backend = {n: availability[n].get("settings", {}) for n in names}

    def on_info(name: str, reported: dict[str, Any]) -> None:  # from the backend's worker, before its first point
        availability[name].update(versions=reported["versions"], settings=reported["settings"])
        settings_by_backend[name] = reported["settings"]

    sweep_id = previous[0]["id"] if previous else "sweep-" + new_run_id()
    if previous:  # a resume writes next to the sweep it continues
        out_dir = args.out or (args.resume if args.resume.is_dir() else args.resume.parent)
    else:
        out_dir = args.out or Path("opbench-out") / sweep_id
    options.check_output_dir(out_dir)
    xlabel, subject = describe_axis(family, args.case)
    settings = SweepSettings(budget_s=args.budget, min_samples=args.min_samples, dtype=dtype, seed=args.seed)
    record: dict[str, Any] = previous[0] if previous else {
        **SWEEP.header(), "id": sweep_id,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "family": family,
        "case_pattern": subject, "sizes": sizes, "dtype": dtype, "baseline": baseline,
        "template": args.case, "budget_s": args.budget, "min_samples": args.min_samples, "seed": args.seed,
        "machine": info,
        "backends": availability, "calibration": calibration.fingerprint if calibration else None, "points": []}
    if previous:
        record["backends"] = {**record["backends"], **availability}  # versions and settings in force now
    points: list[SweepPoint] = list(previous[1]) if previous else []
    done = {(p.size, p.backend) for p in points}
    err = console(stderr=True)

    def save(point: SweepPoint) -> None:
        points.append(point)
        res = point.result
        record["points"].append({**point.to_dict(), "roofline": point_roofline(point, calibration,
                                                                                settings_by_backend)})
        atomic_write(out_dir / "sweep.json", json.dumps(record, indent=1, default=str) + "\n")
        what = f"{res.median_ms:.3f} ms" if res.timed else (res.error or res.status)
        err.print(f"  {point.size:>6} {res.backend:<16} {res.status:<10} {what}", markup=False, highlight=False)

    err.print(f"opbench {sweep_id}{' (resumed)' if previous else ''}: {subject}, {len(sizes)} sizes x "
              f"{len(names)} backends, {len(sizes) * len(names) - len(done)} points to measure, on "
              f"{machine.describe(info)}")
    for name in names:  # unavailable backends are recorded, not dropped
        if name not in runnable:
            for n in (n for n in sizes if (n, name) not in done):
                case = sweep_case(family, n, template)
                save(SweepPoint(n, CaseResult(case=case.name, family=family, backend=name, dtype=dtype,
                                              status=Status.UNSUPPORTED, error=availability[name]["reason"],
                                              flops=case.flops, bytes=case.bytes_moved(dtype))))
    run_sweep(family, sizes, runnable, settings, template, on_point=save, done=previous[1] if previous else (),
              on_info=on_info)
    annotate(record, points, calibration, settings_by_backend)  # a size's baseline point may come after the others
    atomic_write(out_dir / "sweep.json", json.dumps(record, indent=1, default=str) + "\n")
    return render(points, baseline, calibration, settings_by_backend, dtype, subject, xlabel, out_dir, args.format,
                  show_shape=family != "MatMul" or template is not None)


def check_sizes(family: str, sizes: list[int], template: Any, dtype: str) -> None:
    """Refuse sizes whose case could not even be described: FLOP and byte counts past 64-bit integers."""
    largest = sweep_case(family, max(sizes), template)
    if max(largest.flops, largest.bytes_moved(dtype)) >= 2**62:
        raise UsageError(f"--sizes up to {max(sizes)} is too large for {family}: {largest.name} would need "
                         f"{largest.bytes_moved(dtype):.3g} bytes and {largest.flops:.3g} FLOPs")


def point_roofline(point: SweepPoint, calibration: Any, settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The saved roofline of one point: % of the ceiling its backend's recorded settings apply."""
    res = point.result
    return roofline(res, peaks_for(calibration, res.backend, res.dtype, settings.get(res.backend), res.family)
                    ).to_dict()


def annotate(record: dict[str, Any], points: list[SweepPoint], calibration: Any,
             settings: dict[str, dict[str, Any]]) -> None:
    """Set every saved point's roofline and ratio to the baseline (`record["points"]` is in `points`' order)."""
    r = ratios(points, record["baseline"])
    for entry, point in zip(record["points"], points):
        value = r[(point.size, point.backend)]
        entry.update(roofline=point_roofline(point, calibration, settings),
                     ratio_vs_baseline=None if math.isnan(value) else value)


def load_sweep(path: Path) -> tuple[dict[str, Any], list[SweepPoint]]:
    """A saved sweep (`path` is its sweep.json or the directory holding it) and its points; one-line errors."""
    file, _, record = load_document(path, SWEEP)
    missing = [k for k in ("family", "case_pattern", "dtype", "baseline", "machine", "points") if k not in record]
    if missing:
        raise UsageError(f"malformed sweep {file}: no {', '.join(missing)}")
    check_sample_lists(record["points"], f"malformed sweep {file}")
    try:
        points = [SweepPoint.from_dict(p) for p in record["points"]]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"malformed sweep {file}: {type(exc).__name__}: {exc}") from None
    if not points:
        raise UsageError(f"sweep {file} has no points to draw")
    sizes = [p.size for p in points] + list(record.get("sizes") or [])
    if bad := [n for n in sizes if isinstance(n, bool) or not isinstance(n, int) or n < 1]:
        raise UsageError(f"malformed sweep {file}: size {bad[0]!r}; expected positive integers")
    budget = record.get("budget_s", 1.0)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget < math.inf:
        raise UsageError(f"malformed sweep {file}: budget_s {budget!r}; expected a finite number of seconds > 0")
    return record, points


def render_saved(path: Path, calibration_file: Path | None, out: Path | None, fmt: str) -> int:
    """Draw a saved sweep again: the calibration is the file given, else the sweep's machine's stored one."""
    record, points = load_sweep(path)
    calibration = read_calibration(calibration_file) if calibration_file else load_calibration(record["machine"])
    settings = {n: (info or {}).get("settings", {}) for n, info in record.get("backends", {}).items()}
    subject = record["case_pattern"]
    matmul_default = subject == "MatMul N×N @ N×N"
    xlabel = "matrix size N (N×N @ N×N)" if matmul_default else f"N, first dimension of {subject}"
    out_dir = out or (path if path.is_dir() else path.parent)
    annotate(record, points, calibration, settings)  # the JSON follows this calibration, like the table
    record["calibration"] = calibration.fingerprint if calibration else None
    atomic_write(out_dir / "sweep.json", json.dumps(record, indent=1, default=str) + "\n")
    return render(points, record["baseline"], calibration, settings, record["dtype"], subject, xlabel, out_dir, fmt,
                  show_shape=not matmul_default)


def render(points: list[SweepPoint], baseline: str, calibration: Any, settings: dict[str, dict[str, Any]],
           dtype: str, subject: str, xlabel: str, out_dir: Path, fmt: str, show_shape: bool) -> int:
    from rich.markup import escape

    from opbench.report.sweep_plots import sweep_plots
    from opbench.report.sweep_table import sweep_table

    order = {n: i for i, n in enumerate(dict.fromkeys(p.backend for p in points))}
    points = sorted(points, key=lambda p: (p.size, order[p.backend]))
    table = sweep_table(points, baseline, calibration, settings, show_shape)
    table.title = f"Sweep: {subject} ({dtype})"
    atomic_write(out_dir / "sweep.md", f"# {table.title}\n\n" + to_markdown(table, legend=False))
    plots = sweep_plots(points, baseline, calibration, dtype, f"{subject} ({dtype})", xlabel, out_dir, settings)
    if fmt == "md":
        print(to_markdown(table, legend=False), end="")
    else:
        out = console()
        out.print(to_rich(table))
        for note in table.notes:
            out.print(f"[dim]- {escape(note)}[/]")
    if calibration is None:
        console(stderr=True).print("no calibration for this machine: % peak is blank and the plots have no ceiling "
                                   "lines; run `opbench calibrate` first")
    console(stderr=True).print(f"results: {out_dir}/sweep.json, {out_dir}/sweep.md, "
                               + ", ".join(str(p) for p in plots))
    return 0
