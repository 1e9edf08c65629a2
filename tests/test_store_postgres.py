"""The PostgreSQL store on a real server: schema and migration, bad connection input (unreachable host, wrong
password, missing database, another application's database, a newer schema), credentials never shown, the CLI's
--store URL, and a server restart in the middle of a run.

The shared tests (round trips, concurrent writers creating one store) run on both back ends in test_store.py
(`store_location` fixture)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_store import make_run, result

from opbench.cli import main
from opbench.errors import UsageError
from opbench.results.dialects import PostgresDialect, mask_url
from opbench.results.store import MIGRATIONS, SCHEMA_VERSION, Store
from opbench.testing.fakes import register_fakes

FAST = ["--preset", "quick", "--budget", "0.01", "--min-samples", "3", "--format", "md"]


def tables(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as db:
        return [r[0] for r in db.execute("SELECT table_name FROM information_schema.tables "
                                         "WHERE table_schema = 'public' ORDER BY table_name")]


def sql(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        for statement in statements:
            db.execute(statement)


def test_mask_url_hides_passwords() -> None:
    assert mask_url("postgresql://bench:s3cr%40t@db.example:5432/opbench") == \
        "postgresql://bench:***@db.example:5432/opbench"
    assert mask_url("postgres://db/x?user=a&password=hunter2&sslmode=require") == \
        "postgres://db/x?user=a&password=***&sslmode=require"
    assert mask_url("postgresql://bench@db/opbench") == "postgresql://bench@db/opbench"


def test_new_database_gets_the_schema_with_64_bit_counts_and_nan(postgres_url: str) -> None:
    big = result(flops=2**40, bytes=2**35, rel_error=math.inf, tolerance=math.nan)
    with Store(postgres_url) as s:
        s.save_run(make_run(results=(big,)))
        back = s.load_run("latest").results[0]
    assert (back.flops, back.bytes, back.rel_error) == (2**40, 2**35, math.inf) and math.isnan(back.tolerance)
    assert back.samples_ms == big.samples_ms  # raw samples kept, float8 exact
    assert tables(postgres_url) == ["opbench_store", "results", "runs"]


def test_migrates_a_version_1_database(postgres_url: str) -> None:
    dialect = PostgresDialect(postgres_url)
    sql(postgres_url, *dialect.schema(MIGRATIONS[0]),
        "CREATE TABLE opbench_store (application TEXT NOT NULL, schema_version INTEGER NOT NULL)",
        "INSERT INTO opbench_store VALUES ('opbench', 1)",
        "INSERT INTO runs VALUES ('old-run', '2025-01-01T00:00:00+00:00', 'seed', 'float32', '{}', '{}', '{}', 0, '')",
        "INSERT INTO results (run_id, case_name, family, backend, dtype, status, samples_ms) VALUES "
        "('old-run', 'Sum / dim=4', 'Sum', 'cpu', 'float32', 'ok', '[2.0, 4.0]')")
    with Store(postgres_url) as s:
        run = s.load_run("old-run")
    assert run.results[0].samples_ms == (2.0, 4.0) and run.results[0].published_ms is None
    import psycopg

    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT schema_version FROM opbench_store").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("SELECT process_medians_ms FROM results").fetchone() == ("[]",)


def test_database_of_another_application_is_refused_untouched(postgres_url: str) -> None:
    sql(postgres_url, "CREATE TABLE customers (id INTEGER)")
    with pytest.raises(UsageError, match=r"not an opbench store \(a PostgreSQL database of another application "
                                         r"with tables customers\)"):
        Store(postgres_url)
    assert tables(postgres_url) == ["customers"]


def test_newer_schema_is_refused(postgres_url: str) -> None:
    Store(postgres_url).close()
    sql(postgres_url, f"UPDATE opbench_store SET schema_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(UsageError, match="newer than this opbench"):
        Store(postgres_url)


@pytest.mark.parametrize("problem", ["unreachable", "password", "no-database"])
def test_bad_connection_is_one_line_exit_2_without_the_password(problem: str, postgres_server, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    secret = "Wr0ngS3cret"
    admin = postgres_server[1]
    base = admin.split("@", 1)[1].split("/", 1)[0]  # host:port
    url = {"unreachable": f"postgresql://bench:{secret}@127.0.0.1:1/opbench?connect_timeout=3",
           "password": f"postgresql://postgres:{secret}@{base}/postgres",
           "no-database": f"{admin.rsplit('/', 1)[0]}/no_such_db_{secret}"}[problem]
    expected = {"unreachable": "Connection refused", "password": "password authentication failed",
                "no-database": "does not exist"}[problem]
    for argv in (["runs", "--store", url], ["export", "latest", "--store", url],
                 ["run", "--backends", "fake_numpy", "--ops", "ReLU", "--store", url, "--out", str(tmp_path / "o"),
                  *FAST]):
        register_fakes()
        assert main(argv) == 2
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
        assert ("cannot connect to the store postgresql://" in err) and "***" in err
        if problem != "no-database":
            assert secret not in err + captured.out
    assert not (tmp_path / "o").exists()  # nothing measured or written


def test_runs_on_an_empty_database_creates_nothing(postgres_url: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["runs", "--store", postgres_url]) == 0
    assert "no runs stored yet" in capsys.readouterr().out
    assert tables(postgres_url) == []


def test_cli_run_into_postgres_keeps_credentials_out_of_files(postgres_url: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture) -> None:
    register_fakes()
    monkeypatch.setenv("OPBENCH_STORE", postgres_url)  # the environment variable takes a URL too
    out = tmp_path / "out"
    assert main(["run", "--backends", "fake_numpy", "--ops", "ReLU", "--out", str(out), *FAST]) == 0
    captured = capsys.readouterr()
    password = postgres_url.split(":")[2].split("@")[0]
    assert password not in captured.out + captured.err and "postgres:***@" in captured.err
    for file in out.iterdir():
        assert password not in file.read_text() and "postgresql://" not in file.read_text()
    stored = json.loads((out / "run.json").read_text())
    with Store(postgres_url) as s:
        run = s.load_run("latest")
    assert run.run_id == stored["run_id"] and len(run.results) == len(stored["results"]) > 0
    assert main(["runs", "--format", "md"]) == 0
    assert run.run_id in capsys.readouterr().out


def test_server_restart_is_a_one_line_error_and_a_fresh_store_works(postgres_server, postgres_url: str) -> None:
    server = postgres_server[0]
    if server is None:
        pytest.skip("an external server ($OPBENCH_TEST_POSTGRES_URL) is not restarted by the tests")
    store = Store(postgres_url)
    store.save_run(make_run(results=(result(),)))
    server.restart()
    with pytest.raises(UsageError, match="lost the connection to the store postgresql://postgres:\\*\\*\\*@") as err:
        store.add_result("20260101-000000-abcd", result("Sum / dim=4"))
    assert "\n" not in str(err.value)
    store.close()
    with Store(postgres_url) as s:
        assert [r.case for r in s.load_run("latest").results] == ["ReLU / dim=4x4"]
