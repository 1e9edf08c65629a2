"""Each unit's verdict is kept with its samples (`CaseResult.unit_statuses`), so a case's verdict history is
derived from what was stored, not parsed back from the `detail` text; results stored before keep loading."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from opbench.engine.passes import DIFFER, _pass_verdicts, combine
from opbench.results import CaseResult, Run, Status
from opbench.results.store import SCHEMA_VERSION, Store


def _pass(status: Status, ms: float, detail: str = "") -> CaseResult:
    return CaseResult(case="MatMul / dim=8x8 dim=8x8", family="MatMul", backend="cpu", dtype="float32",
                      status=status, samples_ms=(ms, ms * 1.01, ms * 0.99), rel_error=1e-7, detail=detail)


def test_combine_keeps_each_units_verdict_in_order() -> None:
    merged = None
    for status, ms in ((Status.OK, 1.0), (Status.WRONG, 1.1), (Status.OK, 0.9)):
        merged = combine(merged, _pass(status, ms, detail=f"own detail of {status}"))
    assert merged.unit_statuses == ("ok", "wrong", "ok") and merged.unit_sizes == (3, 3, 3)
    assert merged.status == Status.WRONG  # the worst pass
    assert merged.detail.startswith(f"{DIFFER}ok in 2, wrong in 1 of 3; own detail of wrong")


def test_the_history_comes_from_the_field_not_from_the_text() -> None:
    """A result whose detail says nothing about passes still has two verdicts: they are read from the field."""
    two = CaseResult(case="c", family="MatMul", backend="cpu", dtype="float32", status=Status.WRONG,
                     samples_ms=(1.0, 1.0, 2.0, 2.0), process_medians_ms=(1.0, 2.0), unit_sizes=(2, 2),
                     unit_statuses=(Status.OK, Status.WRONG), detail="max error 3e-2 at [0, 1]")
    assert _pass_verdicts(two) == (["ok", "wrong"], "max error 3e-2 at [0, 1]")
    third = combine(two, _pass(Status.OK, 1.5))
    assert third.unit_statuses == ("ok", "wrong", "ok")


def test_legacy_results_still_read_their_verdicts_from_the_detail() -> None:
    legacy = CaseResult(case="c", family="MatMul", backend="cpu", dtype="float32", status=Status.WRONG,
                        samples_ms=(1.0,) * 6, process_medians_ms=(1.0, 1.0, 1.0), unit_sizes=(2, 2, 2),
                        detail=f"{DIFFER}ok in 2, wrong in 1 of 3; max error 3e-2")
    assert _pass_verdicts(legacy) == (["ok", "ok", "wrong"], "max error 3e-2")
    assert combine(legacy, _pass(Status.REDUCED, 1.0)).unit_statuses == ("ok", "ok", "wrong", "reduced-precision")


def test_the_store_keeps_unit_statuses_and_old_stores_migrate(tmp_path: Path) -> None:
    merged = combine(combine(None, _pass(Status.OK, 1.0)), _pass(Status.REDUCED, 1.2))
    run = Run(run_id="20260103-120000-units", created="2026-01-03T12:00:00+00:00", preset="quick",
              dtype="float32", results=(merged,))
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.save_run(run)
        assert store.load_run(run.run_id).results[0].unit_statuses == ("ok", "reduced-precision")
    assert Run.from_dict(run.to_dict()).results[0].unit_statuses == ("ok", "reduced-precision")
    # the store as the version before wrote it: no column, the verdicts in the text only
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE results DROP COLUMN unit_statuses")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    db.commit()
    db.close()
    with Store(path) as store:
        old = store.load_run(run.run_id).results[0]
    assert old.unit_statuses == () and _pass_verdicts(old)[0] == ["ok", "reduced-precision"]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
