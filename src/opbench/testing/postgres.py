"""A throwaway PostgreSQL server for tests and the store load benchmark: `initdb` in a fresh temporary
directory, `pg_ctl start` on a free localhost port, password (SCRAM) authentication over TCP, no Unix socket.

The server binaries come from `$OPBENCH_PG_BIN`, else `pg_config --bindir`, else the newest
`/usr/lib/postgresql/*/bin` (Debian's `postgresql` package). PostgreSQL refuses to run as root, so under root
every server command runs as the `postgres` user (`runuser -u postgres`) and the directory is handed to it.
Trade-off: durability is traded for speed (`fsync=off`): a crashed server loses nothing a test relies on
(its WAL still reaches the page cache), a crashed machine would.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

SUPERUSER = "postgres"
PASSWORD = "opbench-test-secret"


def server_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl, or None when no PostgreSQL server is installed."""
    candidates = [os.environ.get("OPBENCH_PG_BIN", "")]
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            candidates.append(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                             timeout=10).stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]),
                         reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestServer:
    """One private server. `url(db)` is a password URL for database `db`; `create_database()` makes a fresh one."""

    __test__ = False  # not a pytest test class

    def __init__(self, bindir: Path | None = None) -> None:
        found = bindir or server_binaries()
        if found is None:
            raise RuntimeError("no PostgreSQL server binaries (apt-get install postgresql, or set OPBENCH_PG_BIN)")
        self.bindir = found
        self.root = Path(tempfile.mkdtemp(prefix="opbench-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0

    def _cmd(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bindir / tool), *args]
        return ["runuser", "-u", SUPERUSER, "--", *cmd] if self._as_postgres else cmd

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(self._cmd(tool, *args), capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}")

    def start(self) -> TestServer:
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_postgres:
            shutil.chown(self.root, SUPERUSER)
            shutil.chown(pwfile, SUPERUSER)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--pwfile", str(pwfile), "-E", "UTF8",
                  "--auth-host=scram-sha-256", "--auth-local=trust", "--no-sync")
        pwfile.unlink()
        self._pg_ctl("start")
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", action, "-D", str(self.data), "-w", "-t", "60", "-l", str(self.data / "server.log"),
                  "-o", options, *extra)

    def restart(self, mode: str = "fast") -> None:
        """Stop (ending every client's connection) and start again on the same port."""
        self._pg_ctl("restart", "-m", mode)

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its URL."""
        return create_database(self.url(), prefix)

    def __enter__(self) -> TestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_database(admin_url: str, prefix: str = "t") -> str:
    """A new empty database on the server of `admin_url` (a user allowed to CREATE DATABASE); its URL."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
