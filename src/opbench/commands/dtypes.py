"""`opbench dtypes`: the dtype support and precision matrix of every backend (see `opbench.studies.dtypes`).

Writes to --out: `dtypes.json` (everything, rewritten after every cell), `dtypes.md` (matrix, error matrix,
matmul precision and speed-vs-precision tables), `heatmap.png` and `matmul_speed_precision.png`; and stores the
study in the SQLite result store as a run whose results are the cells (the matmul cells carry their precision
mode in the case name).

`--resume DIR` continues a study that was cut off (a timeout, Ctrl-C, a lost machine): it reads DIR/dtypes.json,
keeps every cell already there, measures only the missing ones with the study's own settings, and renders the
tables and pictures again, so a resume with nothing missing just re-renders a saved study.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import opbench.defaults as defaults
import opbench.machine as machine
from opbench.backends import get_backend, parse_backends
from opbench.catalog import PRESETS, preset_cases, select_cases
from opbench.commands import add_format, add_store, console, options, progress
from opbench.commands.run import available_backends
from opbench.engine.timing import TimingSettings
from opbench.errors import UsageError, unknown
from opbench.report.dtypes import LEGEND, error_table, matrix_table, precision_table, speed_precision_table
from opbench.report.tables import Table, to_markdown, to_rich
from opbench.results.files import atomic_write
from opbench.results.store import check_store
from opbench.studies.dtypes import (
    MATRIX_MODE,
    MATRIX_TIMING,
    PRECISION_TIMING,
    STUDY_DTYPES,
    UNSUPPORTED,
    Cell,
    Study,
    first_line,
    representative_cases,
    run_isolated,
    work_items,
)

MAX_MATMUL_SIZE = 1 << 16  # n x n float64 reference matrices of 32 GiB each


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dtypes", help="dtype support and precision matrix of every backend (+ matmul precision)")
    p.add_argument("--backends", type=options.backend_list,
                   help="comma-separated backends (default: every available one)")
    p.add_argument("--ops", type=options.op_list,
                   help="comma-separated families or exact case names (default: every family)")
    p.add_argument("--dtypes", default=",".join(STUDY_DTYPES),
                   help=f"comma-separated dtypes (default {','.join(STUDY_DTYPES)})")
    p.add_argument("--all", action="store_true", help="every case of each family, not one representative")
    p.add_argument("--preset", default="quick", help=f"{' | '.join(PRESETS)}: case shapes (default quick)")
    p.add_argument("--budget", type=options.seconds, default=MATRIX_TIMING.budget_s,
                   help=f"seconds of timed samples per matrix cell (default {MATRIX_TIMING.budget_s})")
    p.add_argument("--matmul-size", type=options.bounded_int(0, MAX_MATMUL_SIZE), default=512,
                   help="n of the n x n matmul of the precision study; 0 skips it (default 512)")
    p.add_argument("--matmul-budget", type=options.seconds, default=PRECISION_TIMING.budget_s,
                   help=f"seconds of timed samples per matmul cell (default {PRECISION_TIMING.budget_s})")
    p.add_argument("--seed", type=options.seed, default=defaults.SEED,
                   help=f"input generator seed (default {defaults.SEED})")
    p.add_argument("--out", type=options.output_dir, help="output directory (default opbench-out/dtypes-RUN_ID)")
    p.add_argument("--resume", type=options.input_path, metavar="DIR",
                   help="continue the study saved in DIR (its dtypes.json) "
                   "with its own settings: measure only the cells it lacks, then render everything again")
    add_store(p)
    p.add_argument("--no-store", action="store_true", help="do not save the study in the result store")
    add_format(p)
    p.set_defaults(func=run)


def parse_dtypes(text: str) -> list[str]:
    names = [d.strip() for d in text.split(",") if d.strip()]
    if not names:
        raise UsageError(f"--dtypes is empty; valid choices: {', '.join(STUDY_DTYPES)}")
    for d in names:
        if d not in STUDY_DTYPES:
            raise unknown("dtype", d, STUDY_DTYPES)
    return sorted(dict.fromkeys(names), key=STUDY_DTYPES.index)


def load_study(path: Path) -> Study:
    """A saved study: `path` is its dtypes.json or the directory holding it. Bad files get one-line errors."""
    from opbench.results.formats import DTYPES, load_document

    file, _, data = load_document(path, DTYPES)
    try:
        study = Study.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"malformed dtype study {file}: {first_line(exc)}") from None
    from opbench.results.ids import check_run_id

    check_run_id(study.run_id, f"malformed dtype study {file}")  # it becomes a stored run
    return study


def resume_options(args: argparse.Namespace, study: Study) -> list:
    """Set the options of a resumed study from its saved settings (measuring with other settings would mix two
    studies in one file); return its cases. Refuses a study measured on another machine or software."""
    from opbench.engine.resume import refuse_other_machine

    refuse_other_machine(f"dtype study {study.run_id}", study.machine)
    s = study.settings
    try:
        args.dtypes, args.preset, args.all = ",".join(s["dtypes"]), s["preset"], bool(s["all_cases"])
        args.backends, args.seed = ",".join(s["backends"]), int(s["seed"])
        args.budget, args.matmul_size = float(s["matrix_budget_s"]), int(s["matmul_size"])
        args.matmul_budget, names = float(s["matmul_budget_s"]), list(s["cases"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"dtype study {study.run_id} lacks its settings ({first_line(exc)}); it cannot be "
                         "resumed") from None
    if args.preset not in PRESETS:
        raise unknown("preset", args.preset, PRESETS)
    return select_cases(preset_cases(args.preset), names) if names else []


def run(args: argparse.Namespace) -> int:
    from opbench.commands.run import new_run_id

    previous = load_study(args.resume) if args.resume else None
    resumed_cases = resume_options(args, previous) if previous else None
    dtypes = parse_dtypes(args.dtypes)
    if args.preset not in PRESETS:
        raise unknown("preset", args.preset, PRESETS)
    if not (0 < args.budget <= options.MAX_SECONDS and 0 < args.matmul_budget <= options.MAX_SECONDS
            and 0 <= args.matmul_size <= MAX_MATMUL_SIZE):
        raise UsageError(f"dtype study {args.resume} has unusable settings (budget {args.budget!r} s, matmul "
                         f"budget {args.matmul_budget!r} s, matmul size {args.matmul_size!r})")
    if resumed_cases is not None:
        cases = resumed_cases
    else:
        cases = representative_cases(select_cases(preset_cases(args.preset),
                                                  args.ops.split(",") if args.ops else None), every_case=args.all)
    backends, availability = available_backends(parse_backends(args.backends))
    runnable = [b for b in backends if availability[b]["available"]]
    matrix_timing = TimingSettings(budget_s=args.budget, min_samples=MATRIX_TIMING.min_samples,
                                   block_s=MATRIX_TIMING.block_s, max_warmup=MATRIX_TIMING.max_warmup)
    matmul_timing = TimingSettings(budget_s=args.matmul_budget, min_samples=PRECISION_TIMING.min_samples,
                                   block_s=PRECISION_TIMING.block_s, max_warmup=PRECISION_TIMING.max_warmup)
    run_id = previous.run_id if previous else "dtypes-" + new_run_id()
    out_dir = args.out or (args.resume if previous and args.resume.is_dir() else
                           args.resume.parent if previous else Path("opbench-out") / run_id)
    study = previous or Study(run_id=run_id, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  machine=machine.collect(), backends=availability,
                  settings={"preset": args.preset, "dtypes": dtypes, "all_cases": args.all, "seed": args.seed,
                            "backends": backends, "cases": [c.name for c in cases],
                            "matrix_budget_s": args.budget, "matmul_size": args.matmul_size,
                            "matmul_budget_s": args.matmul_budget})

    options.check_output_dir(out_dir)
    if not args.no_store:
        check_store(args.store)

    def save() -> None:
        atomic_write(out_dir / "dtypes.json", json.dumps(study.to_dict(), indent=1, default=str) + "\n")

    done = {(c.backend, c.case, c.dtype, c.mode) for c in [*study.cells, *study.precision]}
    for name in backends:
        if name not in runnable:  # asked for by name but not available here: recorded, not run
            reason = availability[name]["reason"]
            study.cells += [Cell(backend=name, family=c.family, case=c.name, dtype=d, status=UNSUPPORTED,
                                 error=reason) for c in cases for d in dtypes
                            if (name, c.name, d, MATRIX_MODE) not in done]
    err = console(stderr=True)
    err.print(f"opbench {run_id}{' (resumed)' if previous else ''}: {len(cases)} cases x {len(dtypes)} dtypes x "
              f"{len(runnable)} backends ({', '.join(runnable)}) on {machine.describe(study.machine)}")
    _measure(study, runnable, cases, dtypes, args, matrix_timing, matmul_timing, save, err, done)
    save()
    text = render_markdown(study)
    atomic_write(out_dir / "dtypes.md", text)
    pictures = _plots(study, out_dir)
    stored = None if args.no_store else _store(study, args.store)
    if args.format == "md":
        print(text, end="")
    else:
        out = console()
        for table in tables(study):
            out.print(to_rich(table))
            for note in table.notes:
                out.print(f"[dim]- {note}[/]", overflow="fold")
        out.print(f"[dim]{LEGEND}[/]")
    written = ", ".join(str(p) for p in [out_dir / "dtypes.json", out_dir / "dtypes.md", *pictures])
    err.print(f"results: {written}" + (f"; stored in {stored}" if stored else ""))
    return 0


def _measure(study: Study, runnable: list[str], cases, dtypes: list[str], args: argparse.Namespace,
             matrix_timing: TimingSettings, matmul_timing: TimingSettings, save, err,
             done: set[tuple[str, str, str, str]]) -> None:
    """Each backend's items through the engine, in its worker processes (`dtypes.run_isolated`); items whose
    cell is in `done` (a resume) are skipped."""
    plans = {}
    for name in runnable:
        backend = get_backend(name)  # imports the adapter module only, not the framework
        plans[name] = [i for i in work_items(backend, cases, dtypes, args.matmul_size)
                       if (name, i.case.name, i.dtype, i.mode or MATRIX_MODE) not in done]
    bar, advance = progress(sum(len(items) for items in plans.values()), "dtypes", err)
    with bar:
        for name, items in plans.items():
            def on_cell(cell: Cell, name: str = name) -> None:
                (study.precision if cell.mode != MATRIX_MODE else study.cells).append(cell)
                save()
                advance(f"{name} {cell.dtype}: {cell.case}")

            def on_info(info: dict, name: str = name) -> None:
                study.backends[name].update(versions=info["versions"], settings=info["settings"])

            if items:
                run_isolated(name, items, args.seed, matrix_timing, matmul_timing, on_cell, on_info)


def tables(study: Study) -> list[Table]:
    out = [matrix_table(study.cells), error_table(study.cells)]
    if study.precision:
        out += [precision_table(study.precision), speed_precision_table(study.precision)]
    return out


def render_markdown(study: Study) -> str:
    """The study as one Markdown document."""
    m = study.machine
    lines = [f"# dtype support and precision: {study.run_id}", "",
             f"Machine: {machine.describe(m)}  ", f"Created: {study.created}  ",
             "Backends: " + "; ".join(f"{b} ({info.get('reason', '')})" for b, info in study.backends.items()
                                      if b in study.settings.get("backends", [])), ""]
    for table in tables(study):
        lines += [f"## {table.title}", "", to_markdown(Table(table.title, table.headers, table.rows), legend=False)]
        if table.title.startswith("dtype support"):
            lines += [LEGEND, ""]
        if table.notes:
            lines += ["Notes:", "", *(f"- {n}" for n in table.notes), ""]
    return "\n".join(lines) + "\n"


def _plots(study: Study, out_dir: Path) -> list[Path]:
    from opbench.report.dtype_plots import heatmap, speed_precision_scatter

    paths = [heatmap(study.cells, out_dir / "heatmap.png", f"dtype support: {machine.describe(study.machine)}")]
    scatter = speed_precision_scatter(study.precision, out_dir / "matmul_speed_precision.png")
    return [*paths, scatter] if scatter else paths


def to_run(study: Study):  # -> opbench.results.Run
    """The study as a `Run` for the result store: one result per cell; matmul cells of the precision study get
    `[precision=MODE]` appended to their case name so that modes do not overwrite each other."""
    from opbench.results import CaseResult, Run

    def result(c: Cell, case: str) -> CaseResult:
        return CaseResult(case=case, family=c.family, backend=c.backend, dtype=c.dtype, status=c.status,
                          samples_ms=c.samples_ms, rel_error=c.rel_error, tolerance=c.expected_error,
                          detail="; ".join(x for x in (c.detail, f"out {c.out_dtype}" if c.out_dtype else "") if x),
                          error=c.error, flops=c.flops)

    results = [result(c, c.case) for c in study.cells]
    results += [result(c, f"{c.case} [precision={c.mode}]") for c in study.precision]
    settings = {**study.settings, "study": "dtypes"}
    return Run(run_id=study.run_id, created=study.created, preset=f"dtypes:{study.settings.get('preset', '')}",
               dtype="mixed", machine=study.machine, settings=settings, backends=study.backends,
               results=tuple(results), label="dtype study")


def _store(study: Study, path: str | None) -> str | None:
    """Save the study in the SQLite store, when this opbench has one."""
    try:
        from opbench.results.store import open_store
    except ImportError:
        return None
    with open_store(path) as store:
        if study.run_id in {r.run_id for r in store.list_runs()}:  # a resumed study replaces its stored self
            store.delete_run(study.run_id)
        store.save_run(to_run(study))
        return store.location

