"""opbench as a library: load, run and compare benchmark runs from Python; results as pandas DataFrames.

    import opbench

    run = opbench.run(ops=["Softmax"], backends=["cpu", "jax_cpu"], preset="quick")   # measured like the CLI
    run.to_dataframe()                      # one row per (case, backend): median, IQR, verdict, GFLOP/s ...
    base = opbench.load("latest")           # a stored run id / prefix / latest, a run.json or its directory,
                                            # or a published table (FILE.md#SECTION)
    opbench.compare(base, run).to_dataframe()

`run` goes through the very code path of `opbench run` (its argument checks, worker process per backend,
store, run.json and tables; see `commands.run`): it builds the command line from its arguments, so every option
means what it means there and a bad one is the same one-line `UsageError`. Trade-off: results come back once
the whole plan is measured (progress shows on stderr); for results as they arrive, read the store.

pandas is an optional extra (`pip install 'opbench[pandas]'`): only `to_dataframe` needs it, and importing
opbench never imports it. Run and comparison objects render as HTML tables in notebooks (`_repr_html_`) and as
rich tables in a terminal (`__rich__`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import io
import math
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opbench.errors import UsageError
from opbench.results.model import CaseResult, Run

if TYPE_CHECKING:
    import pandas as pd

    from opbench.analysis.compare import Comparison
    from opbench.report.tables import Table

RESULT_COLUMNS = ("run_id", "label", "case", "family", "backend", "dtype", "mode", "median_ms", "iqr_ms", "n",
                  "verdict", "error", "gflops", "gbs", "rel_error", "tolerance", "noisy", "first_call_ms",
                  "process_spread", "method", "peak_memory_bytes", "energy_j_per_call", "versions")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("opbench's DataFrames need pandas: pip install 'opbench[pandas]'") from None
    return pandas


def _nan_to_none(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _rate(amount: int, result: CaseResult) -> float | None:
    """Work per second at the median, in G/s (None without a time or a count)."""
    return amount / result.median_ms / 1e6 if amount and result.timed and result.median_ms > 0 else None


def machine_fields(machine: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar fields of a run's machine record, as `machine_<key>` columns (GPU names joined)."""
    fields = {f"machine_{k}": v for k, v in machine.items() if isinstance(v, (str, int, float, bool))}
    gpus = machine.get("gpus")
    if isinstance(gpus, list):
        fields["machine_gpus"] = ", ".join(str(g.get("name", "?")) for g in gpus if isinstance(g, dict))
    return fields


def result_records(run: Run) -> list[dict[str, Any]]:
    """One flat dict per result of `run` (the rows of `RunResults.to_dataframe`), without pandas."""
    machine = machine_fields(run.machine)
    records = []
    for r in run.results:
        versions = (run.backends.get(r.backend) or {}).get("versions") or {}
        records.append({
            "run_id": run.run_id, "label": run.label, "case": r.case, "family": r.family, "backend": r.backend,
            "dtype": r.dtype, "mode": r.mode,
            "median_ms": _nan_to_none(r.median_ms) if r.timed else None,
            "iqr_ms": _nan_to_none(r.iqr_ms) if r.timed else None, "n": r.n, "verdict": r.status,
            "error": r.error, "gflops": _rate(r.flops, r), "gbs": _rate(r.bytes, r), "rel_error": r.rel_error,
            "tolerance": r.tolerance, "noisy": r.noisy if r.timed else None, "first_call_ms": r.first_call_ms,
            "process_spread": _nan_to_none(r.process_spread), "method": r.method,
            "peak_memory_bytes": r.conditions.get("peak_memory_bytes"),
            "energy_j_per_call": r.conditions.get("energy_j_per_call"),
            "versions": " ".join(f"{k}={v}" for k, v in versions.items()), **machine})
    return records


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in table.rows)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
    return (f"<table><caption>{html.escape(table.title)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>" + (f"<ul>{notes}</ul>" if notes else ""))


@dataclasses.dataclass(frozen=True)
class RunResults:
    """A run (`results.model.Run`: metadata and one `CaseResult` per case and backend) with table views.

    `run` is the stored record; `results`, `run_id`, `machine` are shortcuts to it.
    """

    run: Run

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def results(self) -> tuple[CaseResult, ...]:
        return self.run.results

    @property
    def machine(self) -> dict[str, Any]:
        return self.run.machine

    def to_dataframe(self) -> pd.DataFrame:
        """A tidy DataFrame: one row per result, columns `RESULT_COLUMNS` then `machine_*` fields.

        Times are milliseconds per call (median and interquartile range of the samples); `verdict` is the
        verification status (`ok`, `reduced-precision`, `wrong`, `unsupported`, `error`, ...); untimed results
        have no median; `gflops`/`gbs` are the achieved rates at the median.
        """
        pd = _pandas()
        return pd.DataFrame.from_records(result_records(self.run), columns=None if self.run.results else
                                         list(RESULT_COLUMNS))

    def _detailed(self) -> Table:
        """The Detailed table of the run's first timing mode (`modes_table` when it has several)."""
        from opbench.report.tables import detailed_table, modes_table

        if len(self.run.modes()) > 1:
            return modes_table(self.run.results)
        return detailed_table(self.run.results)

    def _title(self) -> str:
        import opbench.machine as machine

        counts: dict[str, int] = {}
        for r in self.run.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        verdicts = ", ".join(f"{n} {s}" for s, n in counts.items())
        return (f"opbench run {self.run.run_id}{f' ({self.run.label})' if self.run.label else ''}: "
                f"{len(self.run.results)} results ({verdicts or 'none'}), {self.run.dtype}, on "
                f"{machine.describe(self.run.machine)}")

    def _repr_html_(self) -> str:
        return f"<div><p><b>{html.escape(self._title())}</b></p>{_table_html(self._detailed())}</div>"

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.markup import escape

        from opbench.report.tables import to_rich

        table = self._detailed()
        return Group(f"[bold]{escape(self._title())}[/]", to_rich(table), *(f"[dim]- {escape(n)}[/]"
                                                                            for n in table.notes))

    def __repr__(self) -> str:
        return f"<{self._title()}>"


@dataclasses.dataclass(frozen=True)
class ComparisonResults:
    """Run B against run A (`compare.Comparison`): per-case ratios B/A with significance, and geometric means."""

    comparison: Comparison

    @property
    def rows(self) -> tuple[Any, ...]:
        return self.comparison.rows

    def regressions(self, threshold_pct: float) -> list[Any]:
        """Rows where B is significantly slower than A by more than `threshold_pct` percent."""
        return self.comparison.regressions(threshold_pct)

    def overall_geomean(self) -> float:
        return self.comparison.overall_geomean()

    def to_dataframe(self) -> pd.DataFrame:
        """One row per compared case and backend: every field of `compare.ComparisonRow` (A's and B's median,
        the ratio B/A, its confidence interval, p-value, `significant`) and its verbal `change`."""
        pd = _pandas()
        records = [{**dataclasses.asdict(row), "change": row.change} for row in self.comparison.rows]
        columns = None if records else [f.name for f in _row_fields()] + ["change"]
        return pd.DataFrame.from_records(records, columns=columns)

    def _title(self) -> str:
        a, b = self.comparison.run_a, self.comparison.run_b
        gm = self.comparison.overall_geomean()
        overall = "nothing compared" if math.isnan(gm) else f"overall B/A {gm:.3f}"
        return f"opbench comparison: {b.label or b.run_id} (B) vs {a.label or a.run_id} (A): " \
               f"{len(self.comparison.rows)} rows, {overall}"

    def _repr_html_(self) -> str:
        from opbench.report.comparison import rows_table, summary_table

        return (f"<div><p><b>{html.escape(self._title())}</b></p>{_table_html(summary_table(self.comparison))}"
                f"{_table_html(rows_table(self.comparison))}</div>")

    def __rich__(self) -> Any:
        from rich.console import Group

        from opbench.report.comparison import to_rich_renderables

        return Group(*to_rich_renderables(self.comparison))

    def __repr__(self) -> str:
        return f"<{self._title()}>"


def _row_fields() -> tuple[dataclasses.Field, ...]:
    from opbench.analysis.compare import ComparisonRow

    return dataclasses.fields(ComparisonRow)


# ------------------------------------------------------------------------------------------------- functions

RunLike = str | Path | Run | RunResults


def load(ref: RunLike, store: str | Path | None = None) -> RunResults:
    """A run: a stored run id, an unambiguous prefix of one, or `latest` (in `store`, default `$OPBENCH_STORE` or
    the user data directory); a run.json or a run directory; a JSON export; or a published Markdown table
    (`FILE.md`, `FILE.md#SECTION`). Raises `UsageError` (one line) for anything else."""
    if isinstance(ref, RunResults):
        return ref
    if isinstance(ref, Run):
        return RunResults(ref)
    from opbench.results.resolve import load_run_or_table

    return RunResults(load_run_or_table(str(ref), store=str(store) if store is not None else None))


def _names(value: str | Iterable[str] | None) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else ",".join(value)


def run(ops: str | Sequence[str] | None = None, backends: str | Sequence[str] | None = None, *,
        catalog: str | Path | Sequence[str | Path] | None = None, preset: str | None = None,
        dtype: str | None = None, budget: float | None = None, gpu_budget: float | None = None,
        min_samples: int | None = None, seed: int | None = None, processes: int | None = None,
        mode: str | Sequence[str] | None = None,
        case_timeout: float | None = None, all_units: bool | None = None,
        isolate: bool = True, store: str | Path | None = None, out: str | Path | None = None,
        resume: str | None = None, echo: bool = False) -> RunResults:
    """Measure a plan as `opbench run` does and return the run (also saved to the store, like the CLI's).

    `ops` are families or exact case names (default: every case, or the `catalog`'s families); `backends`
    default to every available one; `catalog` is a user catalog file (or entry point name), or several;
    `preset`, `dtype`, `budget` (seconds of samples per case), `gpu_budget` (the same on GPU backends),
    `min_samples`, `seed`, `processes`, `mode`
    (timing modes: a comma list or a sequence of throughput, latency, device, cold), `case_timeout`, `resume`
    (a stored run id) are the CLI's options of the same names; `all_units=True` is `--all-units` (every process
    even of a case whose call is slower than the whole budget), False `--no-all-units`. `isolate=False` measures
    in this process (debugging). `out` keeps run.json and the Markdown tables in that directory (default: a
    temporary one, removed). `echo` prints the CLI's tables. Bad input raises `UsageError` before anything is
    measured; Ctrl-C keeps what was measured (resume it with `resume=`) and raises KeyboardInterrupt.
    """
    from opbench.commands.run import run as run_command

    catalogs = [catalog] if isinstance(catalog, (str, Path)) else list(catalog or [])
    options: list[tuple[str, Any]] = [
        ("--ops", _names(ops)), ("--backends", _names(backends)), ("--preset", preset), ("--dtype", dtype),
        ("--budget", budget), ("--gpu-budget", gpu_budget), ("--min-samples", min_samples), ("--seed", seed),
        ("--processes", processes),
        ("--mode", _names(mode)),
        ("--case-timeout", case_timeout), ("--store", store), ("--resume", resume),
        *(("--catalog", c) for c in catalogs)]
    argv = ["run", "--format", "md", *(f"{flag}={value}" for flag, value in options if value is not None)]
    if not isolate:
        argv.append("--no-isolate")
    if all_units is not None:
        argv.append("--all-units" if all_units else "--no-all-units")
    with contextlib.ExitStack() as stack:
        out_dir = Path(out) if out is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        args = _parse([*argv, f"--out={out_dir}"])
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed) if not echo else contextlib.nullcontext():
            code = run_command(args)
        measured = Run.from_json(out_dir / "run.json")
    if code == 130:
        raise KeyboardInterrupt(f"interrupted: {len(measured.results)} results kept; resume with "
                                f"opbench.run(resume={measured.run_id!r})")
    return RunResults(measured)


def _parse(argv: list[str]) -> Any:
    """The CLI's own parser; its one-line usage errors become `UsageError`."""
    from opbench.cli import build_parser

    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages):
            return build_parser().parse_args(argv)
    except SystemExit:
        lines = messages.getvalue().strip().splitlines()
        raise UsageError(lines[-1].split("error: ", 1)[-1] if lines else f"bad options {argv}") from None


def compare(a: RunLike, b: RunLike, *, map: Mapping[str, str] | None = None, alpha: float = 0.05,
            noise_floor: float | None = None, store: str | Path | None = None,
            across_modes: bool = False, machine_noise: bool = True) -> ComparisonResults:
    """Run `b` against baseline `a` (each anything `load` takes, or a loaded run) with the rules of
    `opbench compare` (`compare.compare_runs`): per row an interval of the ratio from the spread between the
    runs' independent units, a verdict against the noise floor (a fraction, default 2 %), and, as on the
    command line, the noise floors and run-to-run variance that `opbench noise` measured on A's machine
    (`machine_noise=False` leaves them out: only these two runs' own spread counts). `map` pairs a backend of A
    with one of B (`{"cpu": "mlx_cpu"}`). Results pair within one timing mode; runs that share none are
    refused unless `across_modes` (one mode each side, compared as such)."""
    from opbench.analysis.compare import DEFAULT_NOISE_FLOOR, compare_runs
    from opbench.studies.noise import machine_noise as measured_noise

    run_a, run_b = load(a, store).run, load(b, store).run
    floor = DEFAULT_NOISE_FLOOR if noise_floor is None else noise_floor
    floors, run_variances, _ = measured_noise(run_a) if machine_noise else ({}, None, "")
    return ComparisonResults(compare_runs(run_a, run_b, dict(map) if map else None, alpha=alpha, noise_floor=floor,
                                          machine_floors=floors, across_modes=across_modes,
                                          run_variances=run_variances))
