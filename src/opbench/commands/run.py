"""`opbench run`: measure the catalog on the available backends and print the seed's tables."""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import opbench.defaults as defaults
import opbench.machine as machine
from opbench.backends import availability_table, get_backend, parse_backends
from opbench.catalog import PRESETS, Case, preset_cases, select_cases
from opbench.commands import (
    DTYPES,
    add_catalog_option,
    add_format,
    add_store,
    add_table_options,
    check_dtype,
    console,
    load_catalog_option,
    options,
    print_tables,
    progress,
)
from opbench.commands.options import check_pairs_present
from opbench.engine.eta import CostModel, StartCosts, pass_phases
from opbench.engine.modes import parse_modes
from opbench.engine.passes import process_spread_note
from opbench.engine.phases import WALL
from opbench.engine.resume import check_resumable, fill_options, measured_results
from opbench.engine.runner import Plan, run_plan
from opbench.engine.timing import MIN_UNIT_SAMPLES, TimingSettings
from opbench.errors import UsageError, unknown
from opbench.interrupts import deferred_interrupt
from opbench.paths import os_error_text
from opbench.report.tables import average_table, by_mode, detailed_table, parse_pairs, to_markdown, write_run_tables
from opbench.results import CaseResult, Run
from opbench.results.files import RunDirectory
from opbench.results.ids import folder_name
from opbench.results.status import Status
from opbench.results.store import check_store, mask_url, open_store


def register(sub: argparse._SubParsersAction) -> None:
    from opbench.backends import backend_names

    p = sub.add_parser(
        "run", help="measure cases on backends and print the Detailed and Average tables",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Measure every selected case on every selected backend, each backend in its own worker "
                    "process; verify each output against a float64 reference; store the results (SQLite) and "
                    "write run.json, detailed.md and average.md; print the seed's Detailed and Average tables.",
        epilog="backends: " + ", ".join(backend_names()) + " (`opbench backends` says which are available here)\n\n"
               "examples:\n"
               "  opbench run --backends cpu,mlx_cpu --preset quick      small shapes: a quick look\n"
               "  opbench run --ops Softmax,MatMul --format md            two families, Markdown tables\n"
               "  opbench run --backends cuda,cuda_compile --processes 3  3 worker processes per backend\n"
               "  opbench run --backends cuda,mlx_gpu --mode throughput,latency,device   three timing modes\n"
               "  opbench run --resume RUN_ID                             measure what a cut-off run lacks")
    p.add_argument("--backends", type=options.backend_list,
                   help="comma-separated backends (default: every available one)")
    p.add_argument("--ops", type=options.op_list,
                   help="comma-separated families or exact case names (default: all)")
    p.add_argument("--preset", help=f"{' | '.join(PRESETS)} (default {defaults.PRESET}: the seed's shapes)")
    p.add_argument("--dtype", help=f"{' | '.join(DTYPES)} (default {defaults.DTYPE})")
    p.add_argument("--out", type=options.output_dir, help="output directory (default opbench-out/RUN_ID)")
    add_store(p)
    p.add_argument("--resume", metavar="RUN", type=options.run_ref,
                   help="measure only what stored run RUN (id, prefix or 'latest') is "
                   "missing, with its own options unless given")
    p.add_argument("--case-timeout", type=options.seconds, help="seconds before a case is recorded as timeout "
                   f"(default: adaptive, at least {defaults.CASE_TIMEOUT_BASE_S:g} + "
                   f"{defaults.CASE_TIMEOUT_BUDGETS:g} x budget and more for a case whose FLOP/byte counts or first "
                   "call predict more on this machine)")
    p.add_argument("--no-isolate", action="store_true",
                   help="measure in this process instead of one worker process per backend (debugging)")
    p.add_argument("--budget", type=options.seconds,
                   help="seconds of timed samples per case, split across the processes "
                   f"(default {defaults.RUN_BUDGET_S:g}; GPU backends: --gpu-budget)")
    p.add_argument("--gpu-budget", type=options.seconds,
                   help="the same for GPU backends (default: --budget when given, else "
                   f"{defaults.GPU_RUN_BUDGET_S:g})")
    p.add_argument("--min-samples", type=options.bounded_int(1, options.MAX_SAMPLES),
                   help="minimum samples per case, split across the processes with at least "
                   f"{MIN_UNIT_SAMPLES} each (default {defaults.RUN_MIN_SAMPLES})")
    p.add_argument("--seed", type=options.seed, help=f"input generator seed (default {defaults.SEED})")
    p.add_argument("--processes", type=options.bounded_int(1, options.MAX_PROCESSES),
                   help="measure each backend in N passes, each in a fresh worker process (the independent "
                        f"units `compare` tests), splitting the budget between them (default {defaults.UNITS}; "
                        "1 with --no-isolate)")
    p.add_argument("--all-units", action=argparse.BooleanOptionalAction, default=None,
                   help="measure every process of a case even when its first process shows one call longer than "
                        "the whole budget (default: such a case is complete after that process, with its untimed "
                        "first call and one timed call, which `compare` cannot test; the tables' notes name them)")
    p.add_argument("--mode", type=options.mode_list,
                   help="timing mode(s), comma-separated: throughput (back-to-back calls, one sync per block; "
                        "the default), latency (a sync after every call, the seed's method), device (device "
                        "time only: CUDA-graph replay or CUPTI kernel time), cold (caches flushed before each "
                        "call); each result records its mode and method")
    add_catalog_option(p)
    add_table_options(p)
    p.add_argument("--roofline", action="store_true",
                   help="add %% of calibrated peak columns and the roofline table (see `opbench calibrate`)")
    add_format(p)
    p.set_defaults(func=run)


def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def resolve_backends(text: str | None) -> tuple[list[str], dict[str, dict]]:
    """The backends to run and the availability of every backend (recorded with the run)."""
    table = availability_table()
    info = {n: {"available": a.available, "reason": a.reason} for n, a in table.items()}
    wanted = parse_backends(text)
    if wanted is None:
        wanted = [n for n, a in table.items() if a.available]
        if not wanted:
            raise UsageError("no backend is available here; see `opbench backends`")
    return wanted, info


def available_backends(wanted: list[str] | None) -> tuple[list[str], dict[str, dict]]:
    """The backends to use and their availability; only the named ones are probed (each probe imports a
    framework), or all of them when none are named."""
    if wanted is None:
        return resolve_backends(None)
    info = {}
    for name in wanted:
        try:
            a = get_backend(name).availability()
            info[name] = {"available": a.available, "reason": a.reason}
        except Exception as exc:  # a broken install is a reason, not a crash
            info[name] = {"available": False, "reason": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    return wanted, info


def unavailable_error(names: list[str], availability: dict[str, dict]) -> UsageError:
    """One line: why each of `names` cannot run here, and which backends can (every adapter probed: an error
    path, so the framework imports are affordable)."""
    here = [n for n, a in availability_table().items() if a.available]
    return UsageError("not available here: " + "; ".join(f"{n} ({availability[n]['reason']})" for n in names)
                      + f"; available: {', '.join(here) or 'none'}")


def resumed_catalogs(given: list[str] | None, previous: Run) -> list:  # -> list[catalog.user.LoadedCatalog]
    """The user catalogs a resumed run recorded, loaded again (refused if a file changed since)."""
    from opbench.catalog.user import load_recorded

    recorded = previous.settings.get("catalogs", [])
    if given:
        raise UsageError("--catalog cannot be given with --resume: the run's own catalogs are loaded "
                         f"({', '.join(r['source'] for r in recorded) or 'none'})")
    return load_recorded(recorded, f"run {previous.run_id}")


def run(args: argparse.Namespace) -> int:
    """Check everything (options, store, output directory) first; the store is written from `create_run` on."""
    catalogs = [] if args.resume else load_catalog_option(args.catalog)  # a bad file: before the store is touched
    if catalogs and args.ops is None:  # --catalog alone: its own families
        args.ops = ",".join(f for c in catalogs for f in c.families)
    here = machine.collect()
    previous = None
    if args.resume:
        with open_store(args.store, create=False) as found:
            previous = found.load_run(args.resume)
        check_resumable(previous, here)
        catalogs = resumed_catalogs(args.catalog, previous)
    else:
        check_store(args.store)
    if args.no_isolate and args.processes is None:
        args.processes = 1  # in-process measurement has one process to give
    fill_options(args, previous)
    dtype = check_dtype(args.dtype)
    modes = parse_modes(args.mode)
    if args.preset not in PRESETS:
        raise unknown("preset", args.preset, PRESETS)
    if not (0 < args.budget <= options.MAX_SECONDS and 0 < args.gpu_budget <= options.MAX_SECONDS
            and args.min_samples >= 1 and args.processes >= 1):
        raise UsageError(f"run {args.resume} has unusable settings (budget {args.budget!r} s, gpu budget "
                         f"{args.gpu_budget!r} s, min_samples "
                         f"{args.min_samples!r}, processes {args.processes!r}); start a new run")
    if args.processes > 1 and args.no_isolate:
        raise UsageError("--processes more than 1 needs worker processes (drop --no-isolate)")
    pairs = parse_pairs(args.pairs)
    cases = select_cases(preset_cases(args.preset), args.ops.split(",") if args.ops else None)
    cases = list({c.name: c for c in cases}.values())  # a preset may shrink two cases to one: measure it once
    backends, availability = available_backends(parse_backends(args.backends))  # probes only what is named
    check_pairs_present(pairs, backends, "the backends of this run")
    run_id = previous.run_id if previous else new_run_id()
    out_dir = options.check_output_dir(args.out or Path("opbench-out") / folder_name(run_id))
    runnable = [b for b in backends if availability[b]["available"]]
    if not runnable:  # a run of nothing but "unavailable" cells measures nothing: refused, not stored
        raise unavailable_error(backends, availability)
    for name in runnable:  # versions and thread/precision settings in force, recorded with the run
        backend = get_backend(name)
        availability[name].update(versions=backend.versions(), settings=backend.settings())

    settings = TimingSettings(budget_s=args.budget, min_samples=args.min_samples)
    gpu_settings = replace(settings, budget_s=args.gpu_budget)
    db = open_store(args.store)
    if previous is None:
        meta = Run(run_id=run_id, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   preset=args.preset, dtype=dtype, machine=here,
                   settings={"budget_s": settings.budget_s, "gpu_budget_s": gpu_settings.budget_s,
                             "min_samples": settings.min_samples,
                             "block_s": settings.block_s, "rel_ci": settings.rel_ci, "seed": args.seed,
                             "backends": backends, "ops": args.ops, "cases": len(cases),
                             "processes": args.processes, "modes": list(modes), "all_units": args.all_units,
                             **({"catalogs": [c.record() for c in catalogs]} if catalogs else {})},
                   backends=availability)
        db.create_run(meta)
    else:
        meta = previous
    store = RunDirectory(out_dir, meta)
    prior = measured_results(meta, dtype)

    def on_backend(name: str, info: dict) -> None:
        """Keep the versions and settings the measuring process reports (thread counts, precision modes)."""
        backends_meta = {**store.run.backends, name: {**store.run.backends.get(name, {}),
                                                      "versions": info.get("versions", {}),
                                                      "settings": info.get("settings", {})}}
        with deferred_interrupt():
            db.update_backends(run_id, backends_meta)
            store.run = replace(store.run, backends=backends_meta)

    def on_pass(name: str, seconds: float) -> None:
        """Add a pass's wall time to the backend's (`wall_s`, `passes`: what `benchmarks/breakdown.py` reads)."""
        entry = store.run.backends.get(name, {})
        backends_meta = {**store.run.backends, name: {**entry, "wall_s": round(entry.get("wall_s", 0.0) + seconds, 3),
                                                      "passes": entry.get("passes", 0) + 1}}
        with deferred_interrupt():
            db.update_backends(run_id, backends_meta)
            store.run = replace(store.run, backends=backends_meta)
            store.write()

    stored: set[tuple[str, str, str, str]] = {r.key for r in meta.results}

    def record(result: CaseResult) -> None:  # the store first (one transaction per result), then run.json
        with deferred_interrupt():
            db.add_result(run_id, result)
            stored.add(result.key)
            store.add(result)

    for name in backends:
        if name not in runnable:
            for case in cases:
                for mode in modes:
                    if (name, case.name, mode) not in prior:
                        record(CaseResult(case=case.name, family=case.family, backend=name, dtype=dtype,
                                          status=Status.UNSUPPORTED, error=availability[name]["reason"], mode=mode))
    plan = Plan(tuple(cases), tuple(runnable), dtype, args.seed, settings, args.processes, modes,
                all_units=args.all_units, gpu_timing=gpu_settings)
    todo = plan.passes_left(prior)
    err = console(stderr=True)
    passes = f" ({args.processes} processes per backend)" if args.processes > 1 else ""
    in_modes = f" in {len(modes)} modes ({', '.join(modes)})" if len(modes) > 1 else f", {modes[0]} mode"
    err.print(f"opbench {run_id}{' (resumed)' if previous else ''}: {len(cases)} cases x {len(runnable)} "
              f"backends ({', '.join(runnable)}){in_modes}, {todo} to measure{passes}, on "
              f"{machine.describe(here)}; store {db.location}", soft_wrap=True)
    hint = f"opbench run --resume {run_id}" + (f" --store {mask_url(args.store)}" if args.store else "")
    try:
        _measure_with_progress(plan, record, err, prior, not args.no_isolate, args.case_timeout, on_backend,
                               on_pass)
        with deferred_interrupt():
            store.flush()  # run.json has every result (`RunDirectory` writes at most once a second as they come)
    except (UsageError, OSError) as exc:  # the store or the output folder failed mid-run (locked, disk full)
        reason = str(exc) if isinstance(exc, UsageError) else os_error_text(exc, out_dir)
        tables = _write_tables_if_possible(store, pairs, args.geomean)
        raise UsageError(f"{reason}; {len(stored)} results kept in the store {db.location}{tables}; resume with: "
                         f"{hint}") from None
    except KeyboardInterrupt:
        tables = _write_tables_if_possible(store, pairs, args.geomean)
        err.print(f"interrupted: {len(stored)} results kept in {db.location} and {out_dir}/run.json{tables}; "
                  f"resume with: {hint}", soft_wrap=True)
        return 130
    try:
        write_run_tables(store.out_dir, store.run.results, pairs, args.geomean)
    except OSError as exc:
        raise UsageError(f"cannot write the tables to {out_dir}: {exc.strerror or exc}; all {len(stored)} results "
                         f"are in the store {db.location} (`opbench show {run_id}`)") from None
    results = store.run.results
    peak = None
    if args.roofline:  # optional % peak columns; the seed's layout is unchanged without the flag
        from opbench.commands.roofline import calibration_for
        from opbench.report.roofline import roofline_column
        from opbench.studies.roofline import backend_settings

        calibration = calibration_for(store.run, None)
        peak = roofline_column(calibration, backend_settings(store.run.backends))
    for subset in by_mode(results).values():  # one Detailed and one Average table per timing mode
        detailed, average = detailed_table(subset, pairs, peak), average_table(subset, pairs, args.geomean)
        if args.format == "md":
            print(f"{detailed.title}:\n{to_markdown(detailed)}\n{average.title}:\n{to_markdown(average)}")
        else:
            print_tables(console(), detailed, average)
    if args.roofline:
        from opbench.commands.roofline import show_roofline

        show_roofline(store.run, calibration, args.format, out_dir)
    from opbench.studies.noise import machine_noise

    try:
        run_variances = machine_noise(store.run)[1]
    except UsageError:  # a corrupt noise result must not cost a finished run its tables; compare says so
        run_variances = None
    spread_hint = process_spread_note(results, args.processes, lambda name: get_backend(name).device_kind == "gpu",
                                      run_variances)
    if spread_hint:
        err.print(f"note: {spread_hint}", soft_wrap=True)
    err.print(f"results: {out_dir}/run.json, {out_dir}/detailed.md, {out_dir}/average.md"
              + (f", {out_dir}/roofline.json, {out_dir}/roofline.md" if args.roofline else ""))
    return 0


def _write_tables_if_possible(store: RunDirectory, pairs: list[tuple[str, str]] | None, geomean: bool) -> str:
    """Write run.json's last results and detailed.md and average.md after a failure; never raises (the disk may
    be what failed): returns '' or a note of why the tables are missing, for the error message."""
    try:
        store.flush()
        write_run_tables(store.out_dir, store.run.results, pairs, geomean)
    except OSError as exc:
        return f" (the tables in {store.out_dir} could not be written: {exc.strerror or exc})"
    return ""


def _measure_with_progress(plan: Plan, record: Callable[[CaseResult], None], err,
                           prior: dict[tuple[str, str, str], CaseResult], isolate: bool, case_timeout: float | None,
                           on_backend: Callable[[str, dict], None],
                           on_pass: Callable[[str, float], None] = lambda name, seconds: None) -> None:
    """Run the plan under the progress bar: its label names the case being measured now, its ETA is the cost
    model's (`opbench.engine.eta`: each pending case's FLOPs and bytes at the rate this machine has shown, from each
    case's recorded phases, plus the worker start-ups still to come). A case complete after fewer passes than
    planned (`Plan.units`) takes its passes that will not come off the bar's total and the estimate."""
    work = {c.name: float(c.flops + c.bytes_moved(plan.dtype)) for c in plan.cases}
    left = {(b, c.name): plan.left(prior, b, c) for b, c in plan.pairs()}  # one per pass and mode
    pending = [(b, work[c]) for (b, c), n in left.items() for _ in range(n)]
    model = CostModel(prior_fixed_s=plan.timing.budget_s + 0.5)
    starts = StartCosts({b: -(-max((n for (bb, _), n in left.items() if bb == b), default=0) // len(plan.modes))
                         for b in plan.backends})  # worker starts: passes, not modes
    before = {key: dict(r.phases_ms) for key, r in prior.items()}
    short = {(b, c.name, m): plan.passes_short(prior.get((b, c.name, m))) for b, c in plan.pairs() for m in plan.modes}
    started: dict[str, float] = {}

    def estimate() -> float:
        running = time.monotonic() - started["at"] if started else 0.0
        return max(model.remaining(pending) - running, model.remaining(pending[1:])) + starts.remaining()

    bar, advance = progress(len(pending), "measuring", err, estimate)
    with bar:

        def on_start(backend: str, case: Case) -> None:
            started.update(at=time.monotonic())
            advance(f"{backend}: {case.name}", done=False)

        def on_result(result: CaseResult) -> None:  # one per case, pass and mode
            record(result)
            key = (result.backend, work.get(result.case, 0.0))
            unit = (result.backend, result.case, result.mode)
            expected, short[unit] = short.get(unit, 1) - 1, plan.passes_short(result)
            dropped = max(0, expected - short[unit])  # passes that will not come (`Plan.units`)
            for _ in range(dropped):
                if key in pending:
                    pending.remove(key)
            if dropped:  # the worker starts still to come: at most as many as the passes any case still needs
                most = max((n for (b, _, _), n in short.items() if b == result.backend), default=0)
                starts.left[result.backend] = min(starts.left.get(result.backend, 0), most)
            phases = pass_phases(before.get((result.backend, result.case, result.mode), {}), result.phases_ms)
            before[(result.backend, result.case, result.mode)] = dict(result.phases_ms)
            elapsed = time.monotonic() - started.pop("at") if started else None
            if "worker_start" in phases:
                starts.started(result.backend, phases["worker_start"] / 1e3)
            if elapsed is not None and key in pending:
                pending.remove(key)
                seconds = (phases[WALL] - phases.get("worker_start", 0.0)) / 1e3 if WALL in phases else elapsed
                model.finished(result.backend, key[1], seconds)
                advance(f"{result.backend}: {result.case} done", dropped=dropped)
            elif dropped:
                advance(f"{result.backend}: {result.case} done", done=False, dropped=dropped)

        run_plan(plan, on_result, prior=prior, isolate=isolate, case_timeout=case_timeout, on_backend=on_backend,
                 on_start=on_start, on_pass=on_pass)
