"""The two database back ends of the result store: an SQLite file (embedded, the default) and a PostgreSQL
server (shared by a fleet of machines). `opbench.results.store.Store` holds all the SQL; a dialect supplies
only what differs between the two:

- connecting, and turning the driver's exceptions into one-line `UsageError`s;
- the store header: SQLite keeps the application id and schema version in `PRAGMA application_id` /
  `PRAGMA user_version`; PostgreSQL in a one-row table `opbench_store (application, schema_version)`;
- SQL spelling: the store writes SQLite's `?` parameters and column types; PostgreSQL gets `%s`, BIGINT for
  INTEGER (SQLite integers are 64-bit), DOUBLE PRECISION for REAL (PostgreSQL's REAL is 32-bit) and an
  identity column for the `AUTOINCREMENT` key. Its `runs` table gets an identity column named `rowid`, so the
  store's `ORDER BY created DESC, rowid DESC` (insertion order among equal timestamps) reads the same on both;
- serialising schema changes: SQLite's `BEGIN IMMEDIATE` takes the write lock; PostgreSQL takes a
  transaction-scoped advisory lock so that two machines opening a new database create its tables once.

Credentials: a PostgreSQL URL is shown everywhere with its password masked (`mask_url`); the URL itself is
never written into a run, a run file or a report.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from opbench.errors import UsageError

APPLICATION_ID = 0x4F504231  # "OPB1": marks an SQLite file (and, as a lock key, a PostgreSQL database) as opbench's
APPLICATION_NAME = "opbench"
BUSY_TIMEOUT_S = 10.0  # a writer waits this long for another process's transaction (a loaded machine is slow)
STORE_ENV_VAR = "OPBENCH_STORE"
CONNECT_TIMEOUT_S = 10  # PostgreSQL: an unreachable host fails after this long, unless the URL sets connect_timeout
URL_SCHEMES = ("postgresql://", "postgres://")


_ANY_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.lower().startswith(URL_SCHEMES)


def check_target(target: str | Path) -> None:
    """Refuse a URL of another scheme (`mysql://`, `foo://`): it is not a file path either (it would make a
    SQLite file named `foo:/bar`)."""
    if isinstance(target, str) and not is_url(target) and (scheme := _ANY_SCHEME.match(target)):
        raise UsageError(f"unknown store URL scheme {scheme.group(0)!r}; valid choices: a SQLite file path, or a "
                         f"PostgreSQL URL ({', '.join(URL_SCHEMES)})")


def mask_url(url: str) -> str:
    """The URL with its password (in the authority or a `password=` parameter) replaced by `***`."""
    url = re.sub(r"^([a-zA-Z]+://[^/@:]*):[^/@]*@", r"\1:***@", url)
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)


def _real_in(x: float | None) -> float | str | None:
    """SQLite stores NaN as NULL; keep it (and the infinities) as text so it reads back as NaN."""
    if x is None:
        return None
    x = float(x)
    return repr(x) if x != x or x in (float("inf"), float("-inf")) else x


class SQLiteDialect:
    """One file, stdlib `sqlite3`. Default rollback journal (not WAL): a read-only store stays readable
    without side files, at the cost of readers and the writer briefly blocking each other."""

    begin_write = "BEGIN IMMEDIATE"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self.Error: type[Exception] = sqlite3.Error

    def exists(self) -> bool:
        return self.path.exists()

    def prepare(self, create: bool) -> None:
        if self.path.is_dir():
            raise UsageError(f"store path {self.path} is a directory; pass a file path with --store")
        if not self.path.exists():
            if not create:
                raise MissingStore(self.location)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot create the store directory {self.path.parent}: {exc.strerror}") from None

    def connect(self) -> Any:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        db.execute("PRAGMA foreign_keys = ON")
        return db

    def sql(self, statement: str) -> str:
        return statement

    def schema(self, migration: str) -> list[str]:
        return [s for s in migration.split(";") if s.strip()]

    def real(self, x: float | None) -> float | str | None:
        return _real_in(x)

    def read_header(self, db: Any) -> tuple[bool, int, list[str]]:
        """(marked as an opbench store, schema version, table names)."""
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return app_id == APPLICATION_ID, version, tables

    def lock_schema(self, db: Any) -> None:
        """Nothing to do: `BEGIN IMMEDIATE` already holds the file's write lock."""

    def write_version(self, db: Any, version: int) -> None:
        db.execute(f"PRAGMA user_version = {int(version)}")

    def foreign(self, tables: list[str]) -> str:
        listed = f" with tables {', '.join(tables[:6])}" if tables else ""
        return f"{self.path} is not an opbench store (an SQLite database of another application{listed})"

    def error(self, exc: Exception) -> UsageError:
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


class PostgresDialect:
    """A PostgreSQL database through psycopg 3 (`pip install "opbench[postgres]"`), in autocommit mode with
    explicit transactions, one connection per `Store`. Tables live in the connection's current schema."""

    begin_write = "BEGIN"
    HEADER_TABLE = "opbench_store"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise UsageError('a PostgreSQL store needs psycopg: pip install "opbench[postgres]"') from None
        self._psycopg = psycopg
        self.url = url
        self.path = None
        self.location = mask_url(url)
        self.Error = psycopg.Error
        self._password = _password_of(url)

    def exists(self) -> bool:
        return True  # known only once connected (`prepare` cannot tell): an empty database is `MissingStore`

    def prepare(self, create: bool) -> None:
        self._create = create

    def connect(self) -> Any:
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(self.url)
        except self._psycopg.ProgrammingError as exc:
            raise UsageError(f"malformed PostgreSQL URL {self.location}: {self._text(exc)}") from None
        options: dict[str, Any] = {"autocommit": True, "application_name": APPLICATION_NAME}
        if "connect_timeout" not in params:
            options["connect_timeout"] = CONNECT_TIMEOUT_S
        try:
            return self._psycopg.connect(self.url, **options)
        except self._psycopg.Error as exc:
            raise UsageError(f"cannot connect to the store {self.location}: {self._text(exc)}") from None

    def _text(self, exc: BaseException) -> str:
        """The driver's message in one line, the password masked should the server or libpq echo it."""
        text = _one_line(exc)
        return text.replace(self._password, "***") if self._password else text

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def schema(self, migration: str) -> list[str]:
        """SQLite's DDL in PostgreSQL's types (see the module docstring); PRAGMAs are the header's job."""
        out = []
        for statement in migration.split(";"):
            if not statement.strip() or statement.strip().upper().startswith("PRAGMA"):
                continue
            statement = statement.replace("INTEGER PRIMARY KEY AUTOINCREMENT",
                                          "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
            statement = re.sub(r"\bINTEGER\b", "BIGINT", statement)
            statement = re.sub(r"\bREAL\b", "DOUBLE PRECISION", statement)
            out.append(statement)
            if re.match(r"\s*CREATE TABLE runs\b", statement):
                out.append("ALTER TABLE runs ADD COLUMN rowid BIGINT GENERATED BY DEFAULT AS IDENTITY")
        return out

    def real(self, x: float | None) -> float | None:
        return None if x is None else float(x)  # float8 keeps NaN and the infinities

    def read_header(self, db: Any) -> tuple[bool, int, list[str]]:
        tables = [r[0] for r in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "ORDER BY table_name")]
        if self.HEADER_TABLE not in tables:
            return False, 0, tables
        row = db.execute(f"SELECT application, schema_version FROM {self.HEADER_TABLE}").fetchone()
        if row is None:
            return False, 0, tables
        return row[0] == APPLICATION_NAME, int(row[1]), tables

    def lock_schema(self, db: Any) -> None:
        """Serialise schema changes across machines until the transaction ends."""
        db.execute("SELECT pg_advisory_xact_lock(%s)", (APPLICATION_ID,))

    def write_version(self, db: Any, version: int) -> None:
        db.execute(f"CREATE TABLE IF NOT EXISTS {self.HEADER_TABLE} "
                   "(application TEXT NOT NULL, schema_version INTEGER NOT NULL)")
        db.execute(f"DELETE FROM {self.HEADER_TABLE}")
        db.execute(f"INSERT INTO {self.HEADER_TABLE} VALUES (%s, %s)", (APPLICATION_NAME, int(version)))

    def foreign(self, tables: list[str]) -> str:
        listed = f" with tables {', '.join(tables[:6])}" if tables else ""
        return f"{self.location} is not an opbench store (a PostgreSQL database of another application{listed})"

    def error(self, exc: Exception) -> UsageError:
        psycopg = self._psycopg
        text = self._text(exc)
        if isinstance(exc, psycopg.OperationalError) and ("closed" in text or "terminat" in text
                                                          or "connection" in text or "server" in text):
            return UsageError(f"lost the connection to the store {self.location}: {text}")
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            return UsageError(f"store {self.location}: permission denied ({text}); ask for write access")
        if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
            return UsageError(f"store {self.location} is read-only (a standby server?): {text}")
        return UsageError(f"store {self.location}: {text}")


class MissingStore(UsageError):
    """Opened with `create=False` where nothing is stored yet (no file; an empty database)."""

    def __init__(self, location: str) -> None:
        self.location = location
        super().__init__(f"no opbench store at {location} (nothing stored yet; `opbench run` creates it, "
                         f"or pass --store PATH / set {STORE_ENV_VAR})")


def _one_line(exc: BaseException) -> str:
    """libpq's multi-line messages ("...failed: Connection refused\\n\\tIs the server running...") in one line."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


def _password_of(url: str) -> str:
    from urllib.parse import parse_qs, unquote, urlsplit

    try:
        parts = urlsplit(url)
        return unquote(parts.password or "") or parse_qs(parts.query).get("password", [""])[0]
    except ValueError:
        return ""


def dialect_for(target: str | Path) -> SQLiteDialect | PostgresDialect:
    check_target(target)
    if is_url(target):
        return PostgresDialect(str(target))
    return SQLiteDialect(Path(target).expanduser())
