"""The SQLite result store: runs and their per-case results, written as they arrive, read back as `Run`s.

One file, no server (stdlib `sqlite3`). The default path is under the user's data directory
(`$XDG_DATA_HOME/opbench/opbench.sqlite` on Linux, `~/Library/Application Support/opbench` on macOS,
`%LOCALAPPDATA%\\opbench` on Windows); `$OPBENCH_STORE` or an explicit path overrides it.

Safety: every write is one transaction started with `BEGIN IMMEDIATE` (it takes the write lock up front, so
a writer never fails half-way), so a crash or `kill -9` loses at most the transaction in flight and the file
is never half-written. The file is identified by `PRAGMA application_id`; its schema version is
`PRAGMA user_version`, upgraded in place by `MIGRATIONS` (both pragmas live in the database header and are
transactional). A corrupt file, another application's database, a newer schema, a read-only file and a file
locked by another process (after a short busy timeout) each become a one-line `UsageError`.

Trade-off: the default rollback journal (not WAL) keeps a read-only store readable without any side file,
at the cost of readers and the writer briefly blocking each other; writes are one small row each, so the
busy timeout absorbs that.

Schema versions (`SCHEMA_VERSION`):
  1 - runs (metadata as JSON columns) and results per (run, case, backend, dtype) with raw samples.
  2 - results gain `published_ms` (imported tables) and stored stats (median, IQR, n); runs gain `label`
      and `opbench_version`; index on results(run_id).
  3 - results gain `process_medians_ms` (JSON list: one median per worker process, `run --processes N`).
  4 - results gain `unit_sizes` (JSON list of ints: how many of `samples_ms`, in order, each independent unit
      -- a worker process -- took; '[]' for one unit or a result stored before units were recorded).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opbench.errors import UsageError
from opbench.results.model import CaseResult, Run

APPLICATION_ID = 0x4F504231  # "OPB1": marks an SQLite file as an opbench store
SCHEMA_VERSION = 4
BUSY_TIMEOUT_S = 10.0  # a writer waits this long for another process's transaction (a loaded machine is slow)
STORE_ENV_VAR = "OPBENCH_STORE"
STORE_FILE_NAME = "opbench.sqlite"

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
)
assert len(MIGRATIONS) == SCHEMA_VERSION

_RESULT_COLUMNS = ("run_id", "case_name", "family", "backend", "dtype", "status", "samples_ms",
                   "calls_per_sample", "first_call_ms", "warmup_calls", "stop_reason", "rel_error", "tolerance",
                   "detail", "error", "flops", "bytes", "published_ms", "median_ms", "iqr_ms", "n",
                   "process_medians_ms", "unit_sizes")
_RUN_COLUMNS = ("id", "created", "preset", "dtype", "machine", "settings", "backends", "imported", "source",
                "label", "opbench_version")


def default_store_path() -> Path:
    """`$OPBENCH_STORE`, else `opbench.sqlite` in the platform's per-user data directory."""
    env = os.environ.get(STORE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    elif sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "opbench" / STORE_FILE_NAME


def _real_in(x: float | None) -> float | str | None:
    """SQLite stores NaN as NULL; keep it (and the infinities) as text so it reads back as NaN."""
    if x is None:
        return None
    x = float(x)
    return repr(x) if not math.isfinite(x) else x


def _real_out(x: Any) -> float | None:
    return None if x is None else float(x)


class Store:
    """Runs and results in one SQLite file. Methods raise `UsageError` (one line) for every store problem."""

    def __init__(self, path: Path | None = None, *, create: bool = True) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        if not self.path.exists():
            if not create:
                raise UsageError(f"no opbench store at {self.path} (nothing stored yet; `opbench run` creates it, "
                                 f"or pass --store PATH / set {STORE_ENV_VAR})")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot create the store directory {self.path.parent}: {exc.strerror}") from None
        if self.path.is_dir():
            raise UsageError(f"store path {self.path} is a directory; pass a file path with --store")
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            self._open()
        except BaseException:
            self._db.close()
            raise

    # --- lifecycle ---------------------------------------------------------------------------------------
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, exc: sqlite3.Error) -> UsageError:
        text = str(exc)
        low = text.lower()
        if "locked" in low or "busy" in low:
            return UsageError(f"store {self.path} is locked by another process (waited {BUSY_TIMEOUT_S:g} s); "
                              "try again when it has finished")
        if "readonly" in low or "read-only" in low:
            return UsageError(f"store {self.path} is read-only; make it writable or pass another --store PATH")
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            return UsageError(f"store {self.path} is not a valid SQLite database (corrupt?): {text}")
        if "unable to open" in low:
            return UsageError(f"cannot open store {self.path}: {text}")
        return UsageError(f"store {self.path}: {text}")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: everything inside is committed together or not at all."""
        with self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _open(self) -> None:
        """Check the header and schema, migrating an older store. The three reads share one read transaction:
        read one by one, a process creating the same new store in between made its fresh tables look like
        another application's (application id read before its commit, tables after)."""
        with self._errors():
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("BEGIN")
            try:
                app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                tables = [r[0] for r in self._db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
            finally:
                self._db.execute("COMMIT")
        if app_id != APPLICATION_ID and (tables or version):
            raise UsageError(f"{self.path} is not an opbench store (an SQLite database of another application"
                             f"{' with tables ' + ', '.join(tables[:6]) if tables else ''}); "
                             "pass another --store PATH")
        if version > SCHEMA_VERSION:
            raise UsageError(f"store {self.path} has schema version {version}, newer than this opbench "
                             f"(reads up to {SCHEMA_VERSION}); upgrade opbench")
        if version < SCHEMA_VERSION:
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        """Apply MIGRATIONS[version:] in one transaction (statement by statement: executescript would commit).

        The version is read again under the write lock: another process may have migrated the file meanwhile.
        """
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # --- writing -----------------------------------------------------------------------------------------
    def create_run(self, run: Run) -> None:
        """Store a run's metadata (its results, if any, are not written: see `save_run`)."""
        with self._write() as db:
            self._insert_run(db, run)

    def update_backends(self, run_id: str, backends: dict) -> None:
        """Replace a run's per-backend metadata (availability, versions, settings) in one transaction."""
        with self._write() as db:
            self._require_run(db, run_id)
            db.execute("UPDATE runs SET backends = ? WHERE id = ?", (_dumps(backends), run_id))

    def add_result(self, run_id: str, result: CaseResult) -> None:
        """Store one result in its own transaction; a result for the same (case, backend, dtype) is replaced."""
        with self._write() as db:
            self._require_run(db, run_id)
            self._insert_result(db, run_id, result)

    def save_run(self, run: Run) -> None:
        """Store a run and all its results in one transaction."""
        with self._write() as db:
            self._insert_run(db, run)
            for result in run.results:
                self._insert_result(db, run.run_id, result)

    def delete_run(self, run_id: str) -> None:
        run_id = self.resolve(run_id)
        with self._write() as db:
            db.execute("DELETE FROM results WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def _insert_run(self, db: sqlite3.Connection, run: Run) -> None:
        from opbench import __version__

        if not run.run_id or run.run_id == "latest":
            raise UsageError(f"invalid run id {run.run_id!r}")
        if db.execute("SELECT 1 FROM runs WHERE id = ?", (run.run_id,)).fetchone():
            raise UsageError(f"run {run.run_id} is already in the store {self.path}")
        version = "" if run.imported else str(run.machine.get("packages", {}).get("opbench", __version__))
        values = (run.run_id, run.created, run.preset, run.dtype, _dumps(run.machine), _dumps(run.settings),
                  _dumps(run.backends), int(run.imported), run.source, run.label, version)
        db.execute(f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('?' * len(values))})", values)

    def _require_run(self, db: sqlite3.Connection, run_id: str) -> None:
        if not db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            raise UsageError(f"unknown run id {run_id!r} in store {self.path}; create_run first")

    @staticmethod
    def _insert_result(db: sqlite3.Connection, run_id: str, r: CaseResult) -> None:
        values = (run_id, r.case, r.family, r.backend, r.dtype, r.status, json.dumps(list(r.samples_ms)),
                  r.calls_per_sample, _real_in(r.first_call_ms), r.warmup_calls, r.stop_reason,
                  _real_in(r.rel_error), _real_in(r.tolerance), r.detail, r.error, r.flops, r.bytes,
                  _real_in(r.published_ms), _real_in(r.median_ms) if r.samples_ms else None,
                  _real_in(r.iqr_ms) if r.n >= 2 else None, r.n, json.dumps(list(r.process_medians_ms)),
                  json.dumps(list(r.unit_sizes)))
        db.execute(f"INSERT OR REPLACE INTO results ({', '.join(_RESULT_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(values))})", values)

    # --- reading -----------------------------------------------------------------------------------------
    def run_ids(self) -> list[str]:
        """Stored run ids, newest first."""
        with self._errors():
            return [r[0] for r in self._db.execute("SELECT id FROM runs ORDER BY created DESC, rowid DESC")]

    def resolve(self, ref: str) -> str:
        """A full run id from an id, an unambiguous prefix of one, or `latest` (the newest run)."""
        ids = self.run_ids()
        if ref == "latest" and ids:
            return ids[0]
        if ref in ids:
            return ref
        matches = [i for i in ids if i.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UsageError(f"run id prefix {ref!r} is ambiguous: {', '.join(matches[:8])}")
        known = ", ".join(ids[:10]) + (f", ... ({len(ids)} in all)" if len(ids) > 10 else "")
        raise UsageError(f"unknown run id {ref!r}; known: {known or 'none (the store is empty)'}")

    def load_run(self, run_id: str) -> Run:
        """A stored run with all its results, in the order they were stored. Accepts prefixes and `latest`."""
        run_id = self.resolve(run_id)
        with self._errors():
            row = self._db.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE id = ?",
                                   (run_id,)).fetchone()
            rows = self._db.execute(f"SELECT {', '.join(_RESULT_COLUMNS)} FROM results WHERE run_id = ? "
                                    "ORDER BY seq", (run_id,)).fetchall()
        run = self._run_from_row(row)
        return Run(**{**run.__dict__, "results": tuple(self._result_from_row(r) for r in rows)})

    def list_runs(self) -> list[Run]:
        """Every stored run, newest first, without results (`results == ()`)."""
        with self._errors():
            rows = self._db.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs "
                                    "ORDER BY created DESC, rowid DESC").fetchall()
        return [self._run_from_row(r) for r in rows]

    def result_counts(self) -> dict[str, int]:
        """Number of stored results per run id."""
        with self._errors():
            return dict(self._db.execute("SELECT run_id, COUNT(*) FROM results GROUP BY run_id").fetchall())

    def result_backends(self) -> dict[str, list[str]]:
        """The backends that have results, per run id, in the order they were first stored."""
        with self._errors():
            rows = self._db.execute("SELECT run_id, backend, MIN(seq) AS first FROM results "
                                    "GROUP BY run_id, backend ORDER BY run_id, first").fetchall()
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
            raise UsageError(f"store {self.path}: run {d['id']} has corrupt metadata ({exc})") from None

    def _result_from_row(self, row: tuple) -> CaseResult:
        d = dict(zip(_RESULT_COLUMNS, row))
        try:
            samples = tuple(float(x) for x in json.loads(d["samples_ms"]))
            process_medians = tuple(float(x) for x in json.loads(d["process_medians_ms"]))
            unit_sizes = tuple(int(x) for x in json.loads(d["unit_sizes"]))
        except (ValueError, TypeError) as exc:
            raise UsageError(f"store {self.path}: corrupt samples for {d['case_name']} ({exc})") from None
        return CaseResult(case=d["case_name"], family=d["family"], backend=d["backend"], dtype=d["dtype"],
                          status=d["status"], samples_ms=samples, calls_per_sample=d["calls_per_sample"],
                          first_call_ms=_real_out(d["first_call_ms"]), warmup_calls=d["warmup_calls"],
                          stop_reason=d["stop_reason"], rel_error=_real_out(d["rel_error"]),
                          tolerance=_real_out(d["tolerance"]), detail=d["detail"], error=d["error"],
                          flops=d["flops"], bytes=d["bytes"], published_ms=_real_out(d["published_ms"]),
                          process_medians_ms=process_medians, unit_sizes=unit_sizes)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def open_store(path: str | Path | None = None, *, create: bool = True) -> Store:
    """The store at `path`, else `$OPBENCH_STORE`, else the default path. `create=False`: it must exist."""
    return Store(Path(path) if path is not None else None, create=create)
