"""`opbench noise`: an A/A check of this machine: the same cases measured twice and compared.

Prints per backend the false-positive rate (rows called different though nothing changed), the run-to-run
variance component (how far a whole run moves, which its own units cannot see: `significance.run_variance`)
and the smallest change that can be told from noise with it, under and at or above 50 µs; saves the result
with the machine's metadata so that `opbench compare` uses it as the noise floor and adds the run component
to its rows (`opbench.studies.noise`). Both runs are stored (labels `noise A`, `noise B`), so nothing
measured is lost. Exit 2 on bad input, before anything is measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import replace

import opbench.defaults as defaults
import opbench.machine as machine
from opbench.analysis.compare import compare_runs
from opbench.catalog import PRESETS, preset_cases, select_cases
from opbench.commands import add_format, console, options, progress
from opbench.engine.resume import asked_gpu_budget
from opbench.engine.runner import Plan, run_plan
from opbench.engine.timing import TimingSettings
from opbench.errors import UsageError, unknown
from opbench.interrupts import deferred_interrupt
from opbench.results import Run
from opbench.results.model import SHORT_CASE_MS
from opbench.results.store import open_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("noise", help="A/A check of this machine: false-positive rate and smallest detectable change")
    p.add_argument("--backends", type=options.backend_list,
                   help="comma-separated backends (default: every available one)")
    p.add_argument("--ops", type=options.op_list,
                   help="comma-separated families or exact case names (default: all)")
    p.add_argument("--preset", default=defaults.NOISE_PRESET,
                   help=f"{' | '.join(PRESETS)} (default {defaults.NOISE_PRESET})")
    p.add_argument("--budget", type=options.seconds,
                   help="seconds of timed samples per case and run, split across the processes "
                   f"(default {defaults.RUN_BUDGET_S:g}, as `opbench run`)")
    p.add_argument("--gpu-budget", type=options.seconds,
                   help=f"the same for GPU backends (default: --budget when given, else {defaults.GPU_RUN_BUDGET_S:g}, "
                        "as `opbench run`)")
    p.add_argument("--processes", type=int, default=defaults.UNITS,
                   help=f"worker processes (units) per backend and run (default {defaults.UNITS}, as `opbench run`)")
    p.add_argument("--store", help="SQLite result store for the two runs (default $OPBENCH_STORE, else the user "
                                   "data directory)")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from opbench.commands.run import new_run_id, resolve_backends, unavailable_error
    from opbench.studies.noise import measure_noise, save_noise

    if args.preset not in PRESETS:
        raise unknown("preset", args.preset, PRESETS)
    gpu_budget = asked_gpu_budget(args.budget, args.gpu_budget)
    gpu_budget = gpu_budget if gpu_budget is not None else defaults.GPU_RUN_BUDGET_S
    budget = args.budget if args.budget is not None else defaults.RUN_BUDGET_S
    if args.processes < 1:
        raise UsageError("--processes must be >= 1")
    cases = select_cases(preset_cases(args.preset), args.ops.split(",") if args.ops else None)
    cases = list({c.name: c for c in cases}.values())
    backends, availability = resolve_backends(args.backends)
    runnable = [b for b in backends if availability[b]["available"]]
    if not runnable:
        raise unavailable_error(backends, availability)
    db = open_store(args.store)
    here = machine.collect()
    plan = Plan(tuple(cases), tuple(runnable), timing=TimingSettings(budget_s=budget), processes=args.processes,
                gpu_timing=TimingSettings(budget_s=gpu_budget))
    err = console(stderr=True)
    err.print(f"opbench noise: {len(cases)} cases x {len(runnable)} backends ({', '.join(runnable)}), measured "
              f"twice with {args.processes} processes each, on {machine.describe(here)}", soft_wrap=True)
    runs = []
    for side in ("A", "B"):
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        meta = Run(run_id=new_run_id(), created=now, preset=args.preset, dtype="float32", machine=here,
                   settings={"budget_s": budget, "gpu_budget_s": gpu_budget, "processes": args.processes,
                             "backends": runnable, "ops": args.ops, "cases": len(cases), "seed": 0},
                   backends=availability, label=f"noise {side}")
        db.create_run(meta)
        bar, advance = progress(plan.passes_left({}), f"noise run {side}", err)
        with bar:

            def record(result, run_id=meta.run_id, advance=advance) -> None:
                with deferred_interrupt():
                    db.add_result(run_id, result)
                advance(f"{result.backend}: {result.case}")

            results = run_plan(plan, record)
        runs.append(replace(meta, results=tuple(results)))
    comparison = compare_runs(runs[0], runs[1])
    figures = measure_noise(comparison)
    path = save_noise(figures, here, (runs[0].run_id, runs[1].run_id), runs[1].created)
    split = f"{SHORT_CASE_MS * 1e3:g} µs"
    headers = ["Backend", f"False positives (< {split})", f"False positives (≥ {split})",
               f"Run-to-run sd (< {split})", f"Run-to-run sd (≥ {split})",
               f"Detectable (< {split})", f"Detectable (≥ {split})"]
    rows = []
    for backend, classes in figures.items():
        cells = [backend]
        for key in ("fpr", "run", "detectable"):
            for cls in ("short", "long"):
                n = classes.get(cls)
                if n is None:
                    cells.append("–")
                elif key == "fpr":
                    cells.append(f"{n.different} of {n.rows} ({100 * n.false_positive_rate:.0f} %); "
                                 f"{n.different_with_run} with the run component")
                elif key == "run":
                    cells.append(f"{100 * n.sigma2_run ** 0.5:.1f} %")
                else:
                    cells.append(f"{100 * n.detectable:.1f} % (floor {100 * n.floor:.1f} %)")
        rows.append(cells)
    from opbench.report.tables import Table, to_markdown, to_rich

    table = Table("A/A noise check", headers, rows, [])
    if args.format == "md":
        print(to_markdown(table, legend=False), end="")
    else:
        console().print(to_rich(table))
    err.print(f"runs {runs[0].run_id} and {runs[1].run_id} stored in {db.path}; noise floors saved to {path} "
              "(`opbench compare` uses them for runs of this machine); false positives: without the run-to-run "
              "component, then with it (fitted to these same rows, so in-sample: `benchmarks/significance.py "
              "holdout` measures it on another pair)", soft_wrap=True)
    return 0
