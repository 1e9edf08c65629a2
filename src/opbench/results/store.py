"""The result store: runs and their per-case results, written as they arrive, read back as `Run`s.

Two back ends share this one implementation (the SQL is written once; `opbench.results.dialects` holds the
small seam where SQLite and PostgreSQL differ):
- an SQLite file, the embedded default: no server, stdlib `sqlite3`. The default path is under the user's data
  directory (`$XDG_DATA_HOME/opbench/opbench.sqlite` on Linux, `~/Library/Application Support/opbench` on
  macOS, `%LOCALAPPDATA%\\opbench` on Windows);
- a PostgreSQL database (`postgresql://user@host/db`, through psycopg 3): one history for a fleet of machines.
`$OPBENCH_STORE` or an explicit `--store PATH|URL` overrides the default.

Safety: every write is one transaction (SQLite: `BEGIN IMMEDIATE`, which takes the write lock up front, so a
writer never fails half-way), so a crash or `kill -9` (or a database server restarting) loses at most the
transaction in flight and the store is never half-written. The store is identified by an application marker
and carries its schema version (SQLite: `PRAGMA application_id` / `user_version`; PostgreSQL: the
`opbench_store` table), upgraded in place by `MIGRATIONS` in one transaction. A corrupt file, another
application's database, a newer schema, a read-only store, a store locked by another process (after a short
busy timeout), an unreachable server or refused credentials each become a one-line `UsageError`, raised before
anything is written.

Schema versions (`SCHEMA_VERSION`):
  1 - runs (metadata as JSON columns) and results per (run, case, backend, dtype) with raw samples.
  2 - results gain `published_ms` (imported tables) and stored stats (median, IQR, n); runs gain `label`
      and `opbench_version`; index on results(run_id).
  3 - results gain `process_medians_ms` (JSON list: one median per worker process, `run --processes N`).
  4 - results gain `unit_sizes` (JSON list of ints: how many of `samples_ms`, in order, each independent unit
      -- a worker process -- took; '[]' for one unit or a result stored before units were recorded).
  5 - results gain `conditions` (JSON object: other processes' CPU use, load average and CPU frequency while
      the case was timed, `opbench.engine.contention`) and `warnings` (JSON list of the framework's warnings).
  6 - results gain `phases_ms` (JSON object: wall time per phase of the case, `opbench.engine.phases`).
  7 - results gain `mode` (the timing mode, `opbench.engine.modes`; existing rows are `throughput`, the only mode
      before) and `method` (how that mode's number was taken); the mode joins the result's identity:
      UNIQUE (run_id, case_name, backend, dtype, mode). SQLite cannot change a table's constraint, so the table
      is rebuilt (rows copied in `seq` order, so they keep their order and both back ends number new rows
      after them).
  8 - results gain `unit_statuses` (JSON list: the verdict of each independent unit, in order; '[]' for
      one unit or a result stored before they were kept, whose passes read their verdicts from `detail`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opbench.errors import UsageError
from opbench.paths import user_data_dir
from opbench.results.dialects import (
    APPLICATION_ID,
    BUSY_TIMEOUT_S,
    STORE_ENV_VAR,
    MissingStore,
    check_target,
    dialect_for,
    is_url,
    mask_url,
)
from opbench.results.ids import check_run_id
from opbench.results.model import CaseResult, Run

__all__ = ["BUSY_TIMEOUT_S", "MIGRATIONS", "SCHEMA_VERSION", "STORE_ENV_VAR", "MissingStore", "Store",
           "default_store_location", "default_store_path", "is_url", "mask_url", "open_store"]

SCHEMA_VERSION = 8
STORE_FILE_NAME = "opbench.sqlite"

# The result columns of schema version 6 (copied by the rebuild of migration 6 -> 7).
_V6_RESULT_COLUMNS = ("run_id", "case_name", "family", "backend", "dtype", "status", "samples_ms",
                      "calls_per_sample", "first_call_ms", "warmup_calls", "stop_reason", "rel_error", "tolerance",
                      "detail", "error", "flops", "bytes", "published_ms", "median_ms", "iqr_ms", "n",
                      "process_medians_ms", "unit_sizes", "conditions", "warnings", "phases_ms")

# MIGRATIONS[i] upgrades a store from version i to version i + 1 (version 0 is an empty file).
MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1
    f"""
    PRAGMA application_id = {APPLICATION_ID};
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        preset TEXT NOT NULL,
        dtype TEXT NOT NULL,
        machine TEXT NOT NULL,
        settings TEXT NOT NULL,
        backends TEXT NOT NULL,
        imported INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE results (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        case_name TEXT NOT NULL,
        family TEXT NOT NULL,
        backend TEXT NOT NULL,
        dtype TEXT NOT NULL,
        status TEXT NOT NULL,
        samples_ms TEXT NOT NULL,
        calls_per_sample INTEGER NOT NULL DEFAULT 0,
        first_call_ms REAL,
        warmup_calls INTEGER NOT NULL DEFAULT 0,
        stop_reason TEXT NOT NULL DEFAULT '',
        rel_error REAL,
        tolerance REAL,
        detail TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT '',
        flops INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        UNIQUE (run_id, case_name, backend, dtype)
    );
    """,
    # 1 -> 2
    """
    ALTER TABLE runs ADD COLUMN label TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN opbench_version TEXT NOT NULL DEFAULT '';
    ALTER TABLE results ADD COLUMN published_ms REAL;
    ALTER TABLE results ADD COLUMN median_ms REAL;
    ALTER TABLE results ADD COLUMN iqr_ms REAL;
    ALTER TABLE results ADD COLUMN n INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX results_by_run ON results(run_id, seq);
    """,
    # 2 -> 3
    """
    ALTER TABLE results ADD COLUMN process_medians_ms TEXT NOT NULL DEFAULT '[]';
    """,
    # 3 -> 4
    """
    ALTER TABLE results ADD COLUMN unit_sizes TEXT NOT NULL DEFAULT '[]';
    """,
    # 4 -> 5
    """
    ALTER TABLE results ADD COLUMN conditions TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE results ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]';
    """,
    # 5 -> 6
    """
    ALTER TABLE results ADD COLUMN phases_ms TEXT NOT NULL DEFAULT '{}';
    """,
    # 6 -> 7
    f"""
    CREATE TABLE results_v7 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        case_name TEXT NOT NULL,
        family TEXT NOT NULL,
        backend TEXT NOT NULL,
        dtype TEXT NOT NULL,
        status TEXT NOT NULL,
        samples_ms TEXT NOT NULL,
        calls_per_sample INTEGER NOT NULL DEFAULT 0,
        first_call_ms REAL,
        warmup_calls INTEGER NOT NULL DEFAULT 0,
        stop_reason TEXT NOT NULL DEFAULT '',
        rel_error REAL,
        tolerance REAL,
        detail TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT '',
        flops INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        published_ms REAL,
        median_ms REAL,
        iqr_ms REAL,
        n INTEGER NOT NULL DEFAULT 0,
        process_medians_ms TEXT NOT NULL DEFAULT '[]',
        unit_sizes TEXT NOT NULL DEFAULT '[]',
        conditions TEXT NOT NULL DEFAULT '{{}}',
        warnings TEXT NOT NULL DEFAULT '[]',
        phases_ms TEXT NOT NULL DEFAULT '{{}}',
        mode TEXT NOT NULL DEFAULT 'throughput',
        method TEXT NOT NULL DEFAULT '',
        UNIQUE (run_id, case_name, backend, dtype, mode)
    );
    INSERT INTO results_v7 ({", ".join(_V6_RESULT_COLUMNS)})
        SELECT {", ".join(_V6_RESULT_COLUMNS)} FROM results ORDER BY seq;
    DROP TABLE results;
    ALTER TABLE results_v7 RENAME TO results;
    CREATE INDEX results_by_run ON results(run_id, seq);
    """,
    # 7 -> 8
    """
    ALTER TABLE results ADD COLUMN unit_statuses TEXT NOT NULL DEFAULT '[]';
    """,
)
assert len(MIGRATIONS) == SCHEMA_VERSION

_RESULT_COLUMNS = (*_V6_RESULT_COLUMNS, "mode", "method", "unit_statuses")
_RUN_COLUMNS = ("id", "created", "preset", "dtype", "machine", "settings", "backends", "imported", "source",
                "label", "opbench_version")


def default_store_location() -> str | Path:
    """`$OPBENCH_STORE` (a path or a PostgreSQL URL), else the default SQLite file."""
    env = os.environ.get(STORE_ENV_VAR)
    if env:
        try:
            check_target(env)
        except UsageError as exc:
            raise UsageError(f"${STORE_ENV_VAR}: {exc}") from None
        if is_url(env):
            return env
    return default_store_path()


def default_store_path() -> Path:
    """`$OPBENCH_STORE` (when it is a path), else `opbench.sqlite` in opbench's per-user data directory
    (platformdirs)."""
    env = os.environ.get(STORE_ENV_VAR)
    if env and not is_url(env):
        return Path(env).expanduser()
    return user_data_dir() / STORE_FILE_NAME


def _real_out(x: Any) -> float | None:
    return None if x is None else float(x)


class Store:
    """Runs and results in an SQLite file or a PostgreSQL database. Methods raise `UsageError` (one line) for
    every store problem. `location` names the store for people (a path, or the URL with its password masked);
    `path` is the SQLite file (None for PostgreSQL)."""

    def __init__(self, path: str | Path | None = None, *, create: bool = True) -> None:
        self._dialect = dialect_for(path if path is not None else default_store_location())
        self.path, self.location = self._dialect.path, self._dialect.location
        self._dialect.prepare(create)
        with self._errors():
            self._db = self._dialect.connect()
        try:
            self._open(create)
        except BaseException:
            self._db.close()
            raise

    # --- lifecycle ---------------------------------------------------------------------------------------
    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._dialect.Error as exc:
            raise self._dialect.error(exc) from None

    def _execute(self, sql: str, params: tuple = ()) -> Any:
        return self._db.execute(self._dialect.sql(sql), params)

    @contextlib.contextmanager
    def _write(self) -> Iterator[Store]:
        """One transaction: everything inside is committed together or not at all."""
        with self._errors():
            self._db.execute(self._dialect.begin_write)
            try:
                yield self
            except BaseException:
                with contextlib.suppress(Exception):  # a lost connection has rolled back already
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _open(self, create: bool) -> None:
        """Check the header and schema, migrating an older store. The reads share one read transaction: read
        one by one, a process creating the same new store in between made its fresh tables look like another
        application's (marker read before its commit, tables after)."""
        with self._errors():
            self._db.execute("BEGIN")
            try:
                marked, version, tables = self._dialect.read_header(self._db)
            finally:
                self._db.execute("COMMIT")
        if not marked and (tables or version):
            raise UsageError(f"{self._dialect.foreign(tables)}; pass another --store")
        if version > SCHEMA_VERSION:
            raise UsageError(f"store {self.location} has schema version {version}, newer than this opbench "
                             f"(reads up to {SCHEMA_VERSION}); upgrade opbench")
        if version == 0 and not create:
            raise MissingStore(self.location)
        missing = [t for t in ("runs", "results") if t not in tables]
        if marked and version and missing:
            raise UsageError(f"store {self.location} is damaged: it lacks its table(s) {', '.join(missing)}; pass "
                             "another --store")
        if version < SCHEMA_VERSION:
            self._migrate()

    def _migrate(self) -> None:
        """Apply MIGRATIONS[version:] in one transaction, statement by statement (executescript would commit).

        The version is read again under the write lock: another process may have migrated the store meanwhile.
        """
        with self._write():
            self._dialect.lock_schema(self._db)
            marked, version, tables = self._dialect.read_header(self._db)
            if not marked and (tables or version):
                raise UsageError(f"{self._dialect.foreign(tables)}; pass another --store")
            for step in range(version, SCHEMA_VERSION):
                for statement in self._dialect.schema(MIGRATIONS[step]):
                    self._db.execute(statement)
            self._dialect.write_version(self._db, SCHEMA_VERSION)

    # --- writing -----------------------------------------------------------------------------------------
    def create_run(self, run: Run) -> None:
        """Store a run's metadata (its results, if any, are not written: see `save_run`)."""
        with self._write() as db:
            db._insert_run(run)

    def update_backends(self, run_id: str, backends: dict) -> None:
        """Replace a run's per-backend metadata (availability, versions, settings) in one transaction."""
        with self._write() as db:
            db._require_run(run_id)
            db._execute("UPDATE runs SET backends = ? WHERE id = ?", (_dumps(backends), run_id))

    def add_result(self, run_id: str, result: CaseResult) -> None:
        """Store one result in its own transaction; a result for the same (case, backend, dtype, mode) is
        replaced."""
        self.add_results(run_id, [result])

    def add_results(self, run_id: str, results: list[CaseResult], backends: dict | None = None) -> None:
        """Store results (and, given, new per-backend metadata) of a stored run in one transaction."""
        with self._write() as db:
            db._require_run(run_id)
            if backends is not None:
                db._execute("UPDATE runs SET backends = ? WHERE id = ?", (_dumps(backends), run_id))
            for result in results:
                db._insert_result(run_id, result)

    def save_run(self, run: Run) -> None:
        """Store a run and all its results in one transaction."""
        with self._write() as db:
            db._insert_run(run)
            for result in run.results:
                db._insert_result(run.run_id, result)

    def delete_run(self, run_id: str) -> None:
        run_id = self.resolve(run_id)
        with self._write() as db:
            db._execute("DELETE FROM results WHERE run_id = ?", (run_id,))
            db._execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def _insert_run(self, run: Run) -> None:
        from opbench._version import __version__

        check_run_id(run.run_id)
        if self._execute("SELECT 1 FROM runs WHERE id = ?", (run.run_id,)).fetchone():
            raise UsageError(f"run {run.run_id} is already in the store {self.location}")
        version = "" if run.imported else str(run.machine.get("packages", {}).get("opbench", __version__))
        values = (run.run_id, run.created, run.preset, run.dtype, _dumps(run.machine), _dumps(run.settings),
                  _dumps(run.backends), int(run.imported), run.source, run.label, version)
        self._execute(f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('?' * len(values))})",
                      values)

    def _require_run(self, run_id: str) -> None:
        if not self._execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            raise UsageError(f"unknown run id {run_id!r} in store {self.location}; create_run first")

    def _insert_result(self, run_id: str, r: CaseResult) -> None:
        """Insert, replacing a result of the same (case, backend, dtype, mode): delete then insert, so the new row
        takes the next `seq` on both back ends (SQLite's INSERT OR REPLACE does the same)."""
        _real_in = self._dialect.real
        values = (run_id, r.case, r.family, r.backend, r.dtype, r.status, json.dumps(list(r.samples_ms)),
                  r.calls_per_sample, _real_in(r.first_call_ms), r.warmup_calls, r.stop_reason,
                  _real_in(r.rel_error), _real_in(r.tolerance), r.detail, r.error, r.flops, r.bytes,
                  _real_in(r.published_ms), _real_in(r.median_ms) if r.samples_ms else None,
                  _real_in(r.iqr_ms) if r.n >= 2 else None, r.n, json.dumps(list(r.process_medians_ms)),
                  json.dumps(list(r.unit_sizes)), _dumps(r.conditions), json.dumps(list(r.warnings)),
                  json.dumps(r.phases_ms), r.mode, r.method, json.dumps(list(r.unit_statuses)))
        self._execute("DELETE FROM results WHERE run_id = ? AND case_name = ? AND backend = ? AND dtype = ? "
                      "AND mode = ?", (run_id, r.case, r.backend, r.dtype, r.mode))
        self._execute(f"INSERT INTO results ({', '.join(_RESULT_COLUMNS)}) "
                      f"VALUES ({', '.join('?' * len(values))})", values)

    # --- reading -----------------------------------------------------------------------------------------
    def run_ids(self) -> list[str]:
        """Stored run ids, newest first."""
        with self._errors():
            return [r[0] for r in self._execute("SELECT id FROM runs ORDER BY created DESC, rowid DESC")]

    def resolve(self, ref: str) -> str:
        """A full run id from an id, an unambiguous prefix of one, or `latest` (see `latest`)."""
        ids = self.run_ids()
        if ref == "latest" and ids:
            return self.latest()
        if ref in ids:
            return ref
        matches = [i for i in ids if i.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UsageError(f"run id prefix {ref!r} is ambiguous: {', '.join(matches[:8])}")
        known = ", ".join(ids[:10]) + (f", ... ({len(ids)} in all)" if len(ids) > 10 else "")
        raise UsageError(f"unknown run id {ref!r}; known: {known or 'none (the store is empty)'}")

    def latest(self) -> str:
        """What `latest` means in a store several processes and machines share: the newest run measured on
        this host, else the newest measured run from any host, else the newest run (an imported table).
        Commands that show a run say which host measured it (`commands.show.heading`)."""
        import platform

        runs = self.list_runs()
        here = platform.node()
        for wanted in (lambda r: not r.imported and r.machine.get("hostname") == here, lambda r: not r.imported):
            found = next((r for r in runs if wanted(r)), None)
            if found is not None:
                return found.run_id
        return runs[0].run_id

    def load_run(self, run_id: str) -> Run:
        """A stored run with all its results, in the order they were stored. Accepts prefixes and `latest`."""
        run_id = self.resolve(run_id)
        with self._errors():
            row = self._execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE id = ?",
                                   (run_id,)).fetchone()
            rows = self._execute(f"SELECT {', '.join(_RESULT_COLUMNS)} FROM results WHERE run_id = ? "
                                    "ORDER BY seq", (run_id,)).fetchall()
        run = self._run_from_row(row)
        return Run(**{**run.__dict__, "results": tuple(self._result_from_row(r) for r in rows)})

    def list_runs(self) -> list[Run]:
        """Every stored run, newest first, without results (`results == ()`)."""
        with self._errors():
            rows = self._execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs "
                                    "ORDER BY created DESC, rowid DESC").fetchall()
        return [self._run_from_row(r) for r in rows]

    def result_counts(self) -> dict[str, int]:
        """Number of stored results per run id."""
        with self._errors():
            return dict(self._execute("SELECT run_id, COUNT(*) FROM results GROUP BY run_id").fetchall())

    def result_backends(self) -> dict[str, list[str]]:
        """The backends that have results, per run id, in the order they were first stored."""
        with self._errors():
            rows = self._execute("SELECT run_id, backend, MIN(seq) AS first_seq FROM results "
                                 "GROUP BY run_id, backend ORDER BY run_id, first_seq").fetchall()
        found: dict[str, list[str]] = {}
        for run_id, backend, _ in rows:
            found.setdefault(run_id, []).append(backend)
        return found

    def _run_from_row(self, row: tuple) -> Run:
        d = dict(zip(_RUN_COLUMNS, row))
        try:
            return Run(run_id=d["id"], created=d["created"], preset=d["preset"], dtype=d["dtype"],
                       machine=json.loads(d["machine"]), settings=json.loads(d["settings"]),
                       backends=json.loads(d["backends"]),
                       imported=bool(d["imported"]), source=d["source"], label=d["label"])
        except (ValueError, TypeError) as exc:
            raise UsageError(f"store {self.location}: run {d['id']} has corrupt metadata ({exc})") from None

    def _result_from_row(self, row: tuple) -> CaseResult:
        d = dict(zip(_RESULT_COLUMNS, row))
        try:
            samples = tuple(float(x) for x in json.loads(d["samples_ms"]))
            process_medians = tuple(float(x) for x in json.loads(d["process_medians_ms"]))
            unit_sizes = tuple(int(x) for x in json.loads(d["unit_sizes"]))
            unit_statuses = tuple(str(x) for x in json.loads(d["unit_statuses"]))
            conditions = dict(json.loads(d["conditions"]))
            warnings = tuple(str(x) for x in json.loads(d["warnings"]))
            phases = {str(k): float(v) for k, v in dict(json.loads(d["phases_ms"])).items()}
        except (ValueError, TypeError) as exc:
            raise UsageError(f"store {self.location}: corrupt samples for {d['case_name']} ({exc})") from None
        return CaseResult(case=d["case_name"], family=d["family"], backend=d["backend"], dtype=d["dtype"],
                          status=d["status"], samples_ms=samples, calls_per_sample=d["calls_per_sample"],
                          first_call_ms=_real_out(d["first_call_ms"]), warmup_calls=d["warmup_calls"],
                          stop_reason=d["stop_reason"], rel_error=_real_out(d["rel_error"]),
                          tolerance=_real_out(d["tolerance"]), detail=d["detail"], error=d["error"],
                          flops=d["flops"], bytes=d["bytes"], published_ms=_real_out(d["published_ms"]),
                          process_medians_ms=process_medians, unit_sizes=unit_sizes, conditions=conditions,
                          warnings=warnings, phases_ms=phases, mode=d["mode"], method=d["method"],
                          unit_statuses=unit_statuses)


def _check_header(db: sqlite3.Connection, path: Path) -> int:
    """The schema version of the database `db`, or a UsageError for another application's database, a newer
    schema, or an opbench store that lost its tables. The reads share one read transaction: read one by one,
    a process creating the same new store in between made its fresh tables look like another application's."""
    db.execute("BEGIN")
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    finally:
        db.execute("COMMIT")
    if app_id != APPLICATION_ID and (tables or version):
        raise UsageError(f"{path} is not an opbench store (an SQLite database of another application"
                         f"{' with tables ' + ', '.join(tables[:6]) if tables else ''}); pass another --store PATH")
    if version > SCHEMA_VERSION:
        raise UsageError(f"store {path} has schema version {version}, newer than this opbench "
                         f"(reads up to {SCHEMA_VERSION}); upgrade opbench")
    missing = [t for t in ("runs", "results") if t not in tables]
    if app_id == APPLICATION_ID and version and missing:
        raise UsageError(f"store {path} is damaged: it lacks its table(s) {', '.join(missing)}; pass another "
                         "--store PATH")
    return version


def check_store(path: str | Path | None = None) -> Path:
    """Check, without creating or changing anything, that the store at `path` (default: `$OPBENCH_STORE`, else
    the default path) can be opened for writing: an opbench store (or an empty file) that is writable, or a
    file that can be created. Commands call this before they measure, so a bad store is refused up front."""
    from urllib.parse import quote

    from opbench.paths import check_output_file, check_path_text, exists
    from opbench.results.dialects import SQLiteDialect

    target = path if path is not None else default_store_location()
    if is_url(target):  # a server store: connected to once (and left as it is), so a bad URL fails up front
        dialect_for(target).connect().close()
        return target  # type: ignore[return-value]
    resolved = Path(target).expanduser()
    check_path_text(str(resolved), "store path", UsageError)
    if not exists(resolved):
        check_output_file(resolved, "store")
        return resolved
    if resolved.is_dir():
        raise UsageError(f"store path {resolved} is a directory; pass a file path with --store")
    if not os.access(resolved, os.R_OK | os.W_OK):
        raise UsageError(f"store {resolved} is read-only; make it writable or pass another --store PATH")
    try:
        db = sqlite3.connect(f"file:{quote(str(resolved.absolute()))}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S,
                             isolation_level=None)
        try:
            _check_header(db, resolved)
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise SQLiteDialect(resolved).error(exc) from None
    return resolved


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def open_store(target: str | Path | None = None, *, create: bool = True) -> Store:
    """The store at `target` (a path or a PostgreSQL URL), else `$OPBENCH_STORE`, else the default path.
    `create=False`: it must exist (`MissingStore` otherwise)."""
    return Store(target, create=create)
