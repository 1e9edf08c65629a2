"""Busy-machine telemetry: what `contention.watch` records, when a result counts as busy, and how tables,
notes and the worker's warnings show it."""

from __future__ import annotations

import re
import time

import pytest

from opbench.catalog import Case
from opbench.engine.contention import MARK_BUSY, busy_warning, watch
from opbench.engine.passes import combine
from opbench.engine.runner import Plan, run_plan
from opbench.engine.timing import TimingSettings
from opbench.report.tables import average_table, detailed_table, to_markdown
from opbench.results import CaseResult
from opbench.results.model import is_busy
from opbench.testing.fakes import register_fakes

FAST = TimingSettings(budget_s=0.02, min_samples=3, block_s=0.002)


def result(backend: str, ms: float, other_cores: float | None, case: str = "ReLU / dim=8") -> CaseResult:
    conditions = {"cpus": 8, "load_avg_1m": 3.0} | ({} if other_cores is None else {"other_cpu_cores": other_cores})
    return CaseResult(case=case, family=case.split(" / ")[0], backend=backend, dtype="float32", status="ok",
                      samples_ms=(ms, ms, ms), conditions=conditions)


def test_watch_reads_cpu_count_and_other_processes_share_over_a_long_enough_block() -> None:
    with watch() as reading:
        time.sleep(0.1)
    assert reading["cpus"] >= 1 and reading["other_cpu_cores"] >= 0
    with watch() as short:
        pass
    assert "other_cpu_cores" not in short  # too short to read honestly: no reading rather than a wrong one


@pytest.mark.parametrize(("other", "cpus", "busy"), [(0.0, 2, False), (0.49, 2, False), (0.5, 2, True),
                                                      (0.6, 16, False), (1.6, 16, True), (None, 2, False)])
def test_busy_needs_half_a_core_or_a_tenth_of_the_machine(other: float | None, cpus: int, busy: bool) -> None:
    conditions = {"cpus": cpus} | ({} if other is None else {"other_cpu_cores": other})
    assert is_busy(conditions) is busy


def test_a_busy_cell_and_every_speedup_from_it_are_marked_and_the_notes_warn() -> None:
    results = [result("mlx_cpu", 1.0, 0.0), result("cpu", 75.0, 3.5),
               result("mlx_cpu", 2.0, 0.0, "ReLU / dim=16"), result("cpu", 2.0, 0.1, "ReLU / dim=16")]
    table = detailed_table(results, [("mlx_cpu", "cpu")])
    busy_row, clean_row = table.rows
    assert busy_row[1] == "1.00" and busy_row[2] == f"75.00{MARK_BUSY}" and busy_row[3] == f"+7400%{MARK_BUSY}"
    assert MARK_BUSY not in "".join(clean_row)
    assert table.notes[0].startswith("warning: the machine was busy") and "1 of 4 timed results" in table.notes[0]
    assert "cpu 1" in table.notes[0] and "up to 3.5 cores" in table.notes[0]
    average = average_table(results, [("mlx_cpu", "cpu")])
    assert average.rows[0][2].endswith(MARK_BUSY) and average.rows[0][3].endswith(MARK_BUSY)
    assert f"{MARK_BUSY} measured on a busy machine" in table.caption and table.caption in to_markdown(table)


def test_no_warning_on_an_idle_machine() -> None:
    assert busy_warning([result("cpu", 1.0, 0.1), result("cpu", 1.0, None)]) is None


def test_combined_passes_keep_the_busiest_conditions() -> None:
    merged = combine(combine(None, result("cpu", 1.0, 0.1)), result("cpu", 1.0, 2.0))
    assert merged.conditions["other_cpu_cores"] == 2.0 and merged.busy


def test_a_worker_records_conditions_and_captures_the_framework_warnings_into_the_result() -> None:
    register_fakes()
    cases = (Case("ReLU", ((8, 8),)), Case("Sum", ((64, 64),), axis=0))
    relu, total = run_plan(Plan(cases, ("fake_warning",), timing=FAST))
    assert relu.status == total.status == "ok"
    assert relu.warnings == () and total.warnings == ("UserWarning: planted: this op is in beta",)
    assert "cpus" in relu.conditions and "cpus" in total.conditions
    round_trip = CaseResult.from_dict(total.to_dict())
    assert round_trip.warnings == total.warnings and round_trip.conditions == total.conditions
    assert not re.search("planted", relu.detail + relu.error)
