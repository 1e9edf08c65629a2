"""Shared fixtures: every installed backend, skipped with a reason where it cannot run here."""

from __future__ import annotations

import pytest

from opbench.backends import backend_names, get_backend


@pytest.fixture(scope="session", autouse=True)
def _private_store(tmp_path_factory: pytest.TempPathFactory):
    """Runs made by tests (in process or in subprocesses) go to a temporary store, reference cache and input
    cache, never the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPBENCH_STORE", str(tmp_path_factory.mktemp("store") / "opbench.sqlite"))
        mp.setenv("OPBENCH_REFERENCE_CACHE", str(tmp_path_factory.mktemp("references")))
        mp.setenv("OPBENCH_INPUT_CACHE", str(tmp_path_factory.mktemp("inputs")))
        yield


def _available_backends() -> list:
    params = []
    for name in backend_names():
        try:
            avail = get_backend(name).availability()
        except Exception as exc:  # a broken install: skip with the reason
            params.append(pytest.param(name, marks=pytest.mark.skip(reason=str(exc)), id=name))
            continue
        marks = [] if avail.available else [pytest.mark.skip(reason=avail.reason)]
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=_available_backends())
def backend(request):
    be = get_backend(request.param)
    be.setup()
    return be


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL server for the session (`opbench.testing.postgres.TestServer`), or the server of
    `$OPBENCH_TEST_POSTGRES_URL` (a user allowed to create databases; then None is yielded for the server, and
    tests that restart it are skipped). Without either the PostgreSQL tests are skipped; CI installs the server
    and sets OPBENCH_REQUIRE_POSTGRES=1, which turns the skip into a failure."""
    import os

    from opbench.testing.postgres import TestServer, server_binaries

    external = os.environ.get("OPBENCH_TEST_POSTGRES_URL")
    if external:
        yield None, external
        return
    reason = ""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        reason = 'psycopg is not installed (pip install -e ".[postgres]")'
    if not reason and server_binaries() is None:
        reason = "no PostgreSQL server installed (apt-get install postgresql)"
    if reason:
        if os.environ.get("OPBENCH_REQUIRE_POSTGRES"):
            pytest.fail(f"OPBENCH_REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(reason)
    server = TestServer().start()
    try:
        yield server, server.url()
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The URL of a fresh, empty database on the session's server."""
    from opbench.testing.postgres import create_database

    return create_database(postgres_server[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request, tmp_path) -> str:
    """Each store test runs on both back ends: a new SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite")
    return request.getfixturevalue("postgres_url")
