"""Every study's results survive export -> import: a dtype study (stored as a run), a sweep and a calibration.

The dtype study is the one that broke: its cells carry statuses a run of `opbench run` never has
(`silently-converted`, `n/a`), and the importer knew only the run's vocabulary. Every study now draws from the
one `Status` enumeration, and the importer accepts exactly it. Every file is read by `formats.load_document`,
which names what a wrong file is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opbench.cli import main
from opbench.commands.dtypes import to_run
from opbench.commands.sweep import load_sweep
from opbench.errors import UsageError
from opbench.results import CaseResult, Run, Status
from opbench.results.formats import CALIBRATION, DTYPES, FORMATS, RUN, SWEEP, load_document
from opbench.results.importers import run_from_json_text
from opbench.results.store import Store
from opbench.studies.calibrate import Ceiling, DeviceCalibration, read_calibration, save_calibration
from opbench.studies.dtypes import STATUSES, Cell, Study
from opbench.studies.sweep import SweepPoint


def test_status_is_one_str_valued_vocabulary() -> None:
    assert Status.OK == "ok" and f"{Status.CONVERTED}" == "silently-converted" and str(Status.NOT_APPLICABLE) == "n/a"
    assert f"{Status.OK:<4}|" == "ok  |"
    assert json.dumps({"status": Status.WRONG}) == '{"status": "wrong"}'
    assert Status("n/a") is Status.NOT_APPLICABLE
    assert set(STATUSES) <= set(Status)  # the dtype study's statuses are the enumeration's
    with pytest.raises(UsageError, match=r"^run file: unknown status 'great'; valid choices: ok, "):
        Status.parse("great", "run file")


def _study() -> Study:
    cells = []
    for i, status in enumerate(STATUSES):
        samples = (1.0 + i, 1.5 + i, 1.2 + i) if status in (Status.OK, Status.CONVERTED, Status.WRONG) else ()
        cells.append(Cell(backend="cpu", family="ReLU", case=f"ReLU / dim={4 + i}x4", dtype="float16", status=status,
                          detail=f"why {status}", samples_ms=samples, flops=16, out_dtype="float32"))
    precision = [Cell(backend="cpu", family="MatMul", case="MatMul / dim=32x32 dim=32x32", dtype="float32",
                      status=Status.CONVERTED, samples_ms=(0.5, 0.6, 0.55), rel_error=1e-3, expected_error=1e-6,
                      mode="high", mode_description="bf16x3")]
    return Study(run_id="20260103-120000-dtypes", created="2026-01-03T12:00:00+00:00",
                 machine={"cpu_model": "CPU X", "logical_cores": 2}, settings={"preset": "quick"},
                 backends={"cpu": {"versions": {"torch": "2.13.0"}}}, cells=cells, precision=precision)


def test_a_dtype_study_round_trips_through_export_and_import(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    run = to_run(_study())
    assert {r.status for r in run.results} >= {Status.CONVERTED, Status.NOT_APPLICABLE}
    store, other = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    with Store(store) as s:
        s.save_run(run)
    exported = tmp_path / "study.json"
    assert main(["export", run.run_id, "--store", str(store), "--format", "json", "--out", str(exported)]) == 0
    assert run_from_json_text(exported.read_text(), str(exported)) == run  # the importer's checks accept it
    assert main(["import", str(exported), "--store", str(other)]) == 0
    with Store(other) as s:
        back = s.load_run(run.run_id)
    assert back.results == run.results and back.settings["study"] == "dtypes"
    capsys.readouterr()


def test_a_saved_dtype_study_file_round_trips(tmp_path: Path) -> None:
    study = _study()
    (tmp_path / "dtypes.json").write_text(json.dumps(study.to_dict(), default=str))
    file, fmt, data = load_document(tmp_path, DTYPES)
    assert file == tmp_path / "dtypes.json" and fmt is DTYPES and Study.from_dict(data) == study


def test_the_importer_still_refuses_an_unknown_status() -> None:
    doc = Run(run_id="20260103-120000-x", created="2026-01-03T12:00:00+00:00", preset="quick", dtype="float32",
              results=(CaseResult(case="ReLU / dim=4x4", family="ReLU", backend="cpu", dtype="float32",
                                  status="fine"),)).to_dict()
    with pytest.raises(UsageError, match="unknown status 'fine'; valid choices: ok, reduced-precision, wrong, "
                                         "silently-converted, n/a"):
        run_from_json_text(json.dumps(doc), "x.json")


def test_a_sweep_round_trips_through_its_file(tmp_path: Path) -> None:
    def point(size: int, status: Status, samples: tuple[float, ...] = ()) -> SweepPoint:
        return SweepPoint(size, CaseResult(case=f"MatMul / dim={size}x{size} dim={size}x{size}", family="MatMul",
                                           backend="cpu", dtype="float32", status=status, samples_ms=samples,
                                           flops=2 * size**3, bytes=12 * size**2, unit_sizes=(2, 1) if samples else (),
                                           error="" if samples else f"{status} here"), {"recompiles": 0})

    points = [point(64, Status.OK, (0.1, 0.12, 0.11)), point(128, Status.WRONG, (0.8, 0.9, 0.85)),
              point(256, Status.OOM), point(512, Status.SKIPPED), point(1024, Status.UNSUPPORTED)]
    record = {**SWEEP.header(), "id": "sweep-1", "family": "MatMul", "case_pattern": "MatMul N×N @ N×N",
              "dtype": "float32", "baseline": "cpu", "machine": {}, "points": [p.to_dict() for p in points]}
    (tmp_path / "sweep.json").write_text(json.dumps(record, indent=1, default=str))
    back_record, back = load_sweep(tmp_path)
    assert back == points and back_record["id"] == "sweep-1"
    assert [p.result.status for p in back] == ["ok", "wrong", "oom", "skipped", "unsupported"]


def test_a_calibration_round_trips_through_its_file(tmp_path: Path) -> None:
    info = {"cpu_model": "CPU X", "logical_cores": 2, "gpus": []}
    device = DeviceCalibration("cpu", "torch", "cpu", Ceiling(10.0, 12.0, 1.0, 1 << 20, 2e6, 5, "clone"),
                               {"float32": Ceiling(50.0, 55.0, 2.0, 512, 2 * 512**3, 5, "512")},
                               unsupported={"float16": "no float16 matmul here"}, versions={"torch": "2.13.0"},
                               created="2026-01-03T12:00:00+00:00",
                               read=Ceiling(11.0, 13.0, 1.0, 1 << 20, 1e6, 5, "sum"))
    path = save_calibration(info, [device], tmp_path / "calibration.json")
    back = read_calibration(path)
    assert back.devices == {"cpu": device} and back.machine == info


def test_one_loader_names_what_a_wrong_file_is(tmp_path: Path) -> None:
    assert set(FORMATS) == {"opbench-run", "opbench-dtypes", "opbench-sweep", "opbench-calibration", "opbench-noise"}
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps({**SWEEP.header(), "points": []}))
    with pytest.raises(UsageError, match=r"^this is an opbench sweep file \(opbench-sweep\), not a calibration file"):
        read_calibration(sweep)
    assert load_document(sweep)[1] is SWEEP  # no expectation: any opbench document, by its name
    cases = {"corrupt.json": ("{not json", r"^cannot read calibration .*corrupt\.json: Expecting"),
             "foreign.json": ('{"format": "pyperf", "version": "1.0"}',
                              r"^not an opbench calibration file \(format 'pyperf'; expected format: "),
             "newer.json": (json.dumps({**CALIBRATION.header(), "schema_version": 2}),
                            r"^calibration file has schema version 2; this opbench reads version 1; upgrade opbench"),
             "list.json": ("[1, 2]", r"^not an opbench calibration file \(no 'format' field")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(UsageError, match=message):
            read_calibration(tmp_path / name)
    with pytest.raises(UsageError, match=r"^not an opbench document \(format 'pyperf'\); valid choices: opbench-run"):
        load_document(tmp_path / "foreign.json")
    with pytest.raises(UsageError, match=r"^no run at .*nothing\.json \(write one with"):
        load_document(tmp_path / "nothing.json", RUN)
