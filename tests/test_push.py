"""`opbench push`: runs copied between stores (SQLite -> PostgreSQL and back), the same run twice stores nothing
new, a run resumed after a push sends only what it gained, and bad targets are one line before any write."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from test_store import make_run, result

from opbench.cli import main
from opbench.results.store import Store


def test_push_twice_stores_nothing_new_and_a_resumed_run_sends_only_its_new_results(
        store_location: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    local = tmp_path / "local.sqlite"
    first = make_run("20260101-000000-aaaa", results=(result(), result("Sum / dim=4", rel_error=math.nan)))
    with Store(local) as s:
        s.save_run(first)
        s.save_run(make_run("20260102-000000-bbbb", created="2026-01-02T00:00:00+00:00", results=(result(),)))
    assert main(["push", "20260101", "latest", "--store", str(local), "--to", store_location]) == 0
    out = capsys.readouterr().out
    assert "stored      20260101-000000-aaaa  2 results" in out and "2 runs pushed" in out
    assert main(["push", "--all", "--store", str(local), "--to", store_location]) == 0
    out = capsys.readouterr().out
    assert out.count("nothing new") == 2 and "stored" not in out  # a NaN error compares equal to itself
    with Store(local) as s:  # resumed locally: one more result
        s.add_result(first.run_id, result("Softmax / dim=4"))
    assert main(["push", first.run_id, "--store", str(local), "--to", store_location]) == 0
    assert "updated     20260101-000000-aaaa  1 results added or changed" in capsys.readouterr().out
    with Store(store_location) as target, Store(local) as source:
        assert target.result_counts() == source.result_counts() == {first.run_id: 3, "20260102-000000-bbbb": 1}
        assert json.dumps([r.to_dict() for r in target.load_run(first.run_id).results]) == \
            json.dumps([r.to_dict() for r in source.load_run(first.run_id).results])
        back = target.load_run(first.run_id)
        assert back.results[0].samples_ms == first.results[0].samples_ms  # raw samples travel


def test_push_a_run_file_and_refuse_a_clash_or_bad_target(store_location: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    run = make_run(results=(result(),))
    run.to_json(tmp_path / "run.json")
    assert main(["push", str(tmp_path / "run.json"), "--to", store_location]) == 0
    other = replace(run, machine={**run.machine, "cpu_model": "Other CPU"})
    other.to_json(tmp_path / "other.json")
    assert main(["push", str(tmp_path / "other.json"), "--to", store_location]) == 2
    assert "measured on another machine" in capsys.readouterr().err
    assert main(["push", "--to", store_location]) == 2
    assert "name the runs to push" in capsys.readouterr().err
    bad = tmp_path / "dir"
    bad.mkdir()
    assert main(["push", str(tmp_path / "run.json"), "--to", str(bad)]) == 2
    assert "is a directory" in capsys.readouterr().err
