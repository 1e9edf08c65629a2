"""Timing modes (throughput, latency, device, cold), telemetry (a fake NVML) and peak memory, on CPU backends."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from opbench.backends import get_backend
from opbench.backends._device_timers import device_intervals
from opbench.catalog import Case
from opbench.cli import main
from opbench.engine import telemetry
from opbench.engine.modes import (
    MODES,
    CPUCacheFlush,
    ModeNotApplicable,
    last_level_cache_bytes,
    parse_modes,
    union_length,
)
from opbench.engine.nvml import open_gpu
from opbench.engine.runner import Plan, measure_case
from opbench.engine.timing import TimingSettings
from opbench.errors import UsageError
from opbench.report.tables import by_mode, detailed_table, modes_table
from opbench.results import CaseResult, Run
from opbench.results.store import Store
from opbench.testing.fakes import NumpyFake, register_fakes

FAST = TimingSettings(budget_s=0.02, min_samples=5, min_warmup_s=0.0)
ALL = tuple(MODES)
CASE = Case("ReLU", ((16, 32),))


def measure_case_modes(backend: object, case: Case, timing: TimingSettings, modes: tuple[str, ...] = ("throughput",)
                       ) -> list[CaseResult]:
    """The case in each mode, one after another on one backend (what a worker pass does)."""
    return [measure_case(backend, case, timing=timing, mode=m) for m in modes]


@pytest.fixture(scope="module", autouse=True)
def fakes() -> None:
    register_fakes()


@pytest.mark.parametrize("name", ["cpu", "mlx_cpu", "jax_cpu"])
def test_every_mode_on_a_cpu_backend(name: str) -> None:
    """throughput and latency are both measured, device is n/a with its reason, cold flushes the caches."""
    backend = get_backend(name)
    if not backend.availability().available:
        pytest.skip(f"{name} is not available here")
    backend.setup()
    results = {r.mode: r for r in measure_case_modes(backend, CASE, timing=FAST, modes=ALL)}
    assert list(results) == list(ALL)
    for mode in ("throughput", "latency", "cold"):
        r = results[mode]
        assert r.status == "ok" and r.timed and r.n >= FAST.min_samples and r.mode == mode, (mode, r.error)
    assert results["latency"].calls_per_sample == 1 and results["cold"].calls_per_sample == 1
    assert "one sync per block" in results["throughput"].method
    assert results["latency"].method == "wall clock, one call and a sync per sample"
    assert "CPU caches flushed (writing" in results["cold"].method
    device = results["device"]
    assert device.status == "unsupported" and not device.timed and device.error.startswith("n/a: CPU")
    assert device.samples_ms == ()
    # peak memory on a CPU backend: the worker's resident memory
    peak = results["throughput"].conditions
    assert peak["peak_memory_bytes"] > 1 << 20 and peak["peak_memory_source"].startswith("resident memory")
    assert "includes the cache-flush buffer" in results["cold"].conditions["peak_memory_source"]


def test_parse_modes_orders_and_refuses() -> None:
    assert parse_modes(None) == ("throughput",)
    assert parse_modes("cold, latency,latency") == ("latency", "cold")
    with pytest.raises(UsageError, match="unknown mode 'warm'; valid choices: throughput, latency, device, cold"):
        parse_modes("latency,warm")
    with pytest.raises(UsageError, match="no mode named"):
        parse_modes(" , ")


def test_union_of_device_intervals_counts_overlaps_once() -> None:
    assert union_length([(0, 10), (5, 20), (30, 40), (35, 36)]) == 30
    assert union_length([]) == 0

    class Event:
        def __init__(self, start: int, duration: int, device: Any) -> None:
            self._start, self._duration, self._device = start, duration, device

        def start_ns(self) -> int:
            return self._start

        def duration_ns(self) -> int:
            return self._duration

        def device_type(self) -> Any:
            return self._device

    cuda, cpu = object(), object()
    torch = types.SimpleNamespace(autograd=types.SimpleNamespace(DeviceType=types.SimpleNamespace(CUDA=cuda)))
    prof = types.SimpleNamespace(profiler=types.SimpleNamespace(kineto_results=types.SimpleNamespace(
        events=lambda: [Event(100, 50, cuda), Event(0, 1000, cpu), Event(120, 60, cuda)])))
    assert device_intervals(prof, torch) == [(100, 150), (120, 180)]


def test_cpu_flush_writes_more_than_the_last_level_cache() -> None:
    flush = CPUCacheFlush()
    llc = last_level_cache_bytes()
    assert flush.nbytes >= (4 * llc if llc else 64 << 20)
    flush()
    flush()
    assert int(flush._buffer[0]) == 2 and int(flush._buffer[-1]) == 2  # every byte written each time


# ---------------------------------------------------------------------------------------------- telemetry


class FakeNVML(types.ModuleType):
    """pynvml's calls that opbench makes, on a GPU drawing `watts` with a power-cap throttle reason."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0

    def __init__(self, watts: float = 300.0, sm_mhz: list[int] | None = None, reasons: int = 0x4) -> None:
        super().__init__("pynvml")
        self.watts, self.reasons = watts, reasons
        self.sm = list(sm_mhz or [1980])
        self.t0 = time.perf_counter()

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"gpu{index}"

    def nvmlDeviceGetClockInfo(self, handle: str, kind: int) -> int:
        if kind == self.NVML_CLOCK_MEM:
            return 2619
        return self.sm[0] if len(self.sm) == 1 else self.sm.pop(0)

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        return int(self.watts * 1000)

    def nvmlDeviceGetTemperature(self, handle: str, sensor: int) -> int:
        return 61

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: str) -> int:
        return self.reasons

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        return int(self.watts * (time.perf_counter() - self.t0) * 1000)


class FakeGPU(NumpyFake):
    """NumPy computing, reported as a GPU backend (its telemetry goes through NVML)."""

    name = "fake_gpu"
    device_kind = "gpu"


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNVML:
    module = FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", module)
    telemetry.set_process_gpu(open_gpu())
    yield module
    telemetry.set_process_gpu(None)


def test_nvml_telemetry_on_a_gpu_backend(fake_nvml: FakeNVML) -> None:
    results = {r.mode: r for r in measure_case_modes(FakeGPU(), CASE, timing=FAST, modes=ALL)}
    r = results["throughput"]
    assert r.status == "ok", r.error
    c = r.conditions
    assert c["gpu_sm_mhz"] == 1980 and c["gpu_mem_mhz"] == 2619 and c["gpu_power_w"] == 300
    assert c["gpu_temp_c_max"] == 61 and c["gpu_throttle"] == ["sw_power_cap"] and c["gpu_samples"] >= 2
    # the region was lengthened to the energy counter's 0.1 s (the budget alone is 0.02 s)
    assert c["energy_region_s"] >= telemetry.ENERGY_MIN_REGION_S
    calls = r.calls_per_sample * r.n  # energy over the region / the calls made in it (300 W drawn)
    assert c["energy_j_per_call"] == pytest.approx(300 * c["energy_region_s"] / calls, rel=0.05)
    assert "throttled (sw_power_cap)" in telemetry.gpu_flag(c)
    table = detailed_table([r])
    assert table.rows[0][1].endswith(telemetry.MARK_GPU) and any("GPU was slowed" in n for n in table.notes)
    # a GPU backend without a CUDA torch has no CUPTI profiler and no L2 flush: n/a with the reason, no time
    assert results["device"].error.startswith("n/a: no CUPTI profiler") and not results["device"].timed
    assert results["cold"].error == "n/a: no L2 flush for fake_gpu"


def test_only_a_cases_first_unit_lengthens_its_region_for_energy(fake_nvml: FakeNVML) -> None:
    """Units after the first do not lengthen their region: 3 units x the counter's 0.1 s made a GPU case's
    samples 0.3 s where its whole budget was 0.2 s; the first unit's energy stands for the case. A later unit
    gives up (at most half of) its share for what the first unit's lengthening cost: 0.06 s over 3 units, the
    first unit's 0.02 s share lengthened to 0.1 s, leaves 0.01 s to each later unit."""
    plan = Plan((CASE,), ("fake_gpu",), timing=replace(FAST, budget_s=0.06), processes=3)
    first, later = plan.unit_timing("fake_gpu", 0), plan.unit_timing("fake_gpu", 2)
    assert first.energy_region and not later.energy_region and later.budget_s == first.budget_s == 0.02
    assert later.energy_offset_s == 0.01
    assert later.without_energy_offset(lengthened=True).budget_s == 0.01
    assert later.without_energy_offset(lengthened=False).budget_s == 0.02  # no NVML: the even share stands
    assert plan.unit_of({}, "fake_gpu", CASE, "throughput") == 0
    a = measure_case(FakeGPU(), CASE, timing=first)
    b = measure_case(FakeGPU(), CASE, timing=later)
    assert a.conditions["energy_region_s"] >= telemetry.ENERGY_MIN_REGION_S and "energy_j_per_call" in a.conditions
    assert b.conditions["energy_region_s"] < telemetry.ENERGY_MIN_REGION_S
    assert "energy_j_per_call" not in b.conditions
    assert plan.unit_of({("fake_gpu", CASE.name, "throughput"): a}, "fake_gpu", CASE, "throughput") == 1
    assert telemetry.merge(a.conditions, b.conditions)["energy_j_per_call"] == a.conditions["energy_j_per_call"]


def test_clock_below_ninety_percent_of_the_load_clock_is_flagged(fake_nvml: FakeNVML) -> None:
    fake_nvml.reasons = 0
    fake_nvml.sm = [1980]
    first = measure_case_modes(FakeGPU(), CASE, timing=FAST)[0]
    assert not telemetry.gpu_flag(first.conditions) and first.conditions["gpu_throttle"] == []
    fake_nvml.sm = [1500]
    slow = measure_case_modes(FakeGPU(), CASE, timing=FAST)[0]
    assert slow.conditions["gpu_clock_low"] and slow.conditions["gpu_load_sm_mhz"] == 1980
    assert "SM clock 1500 MHz < 90% of 1980 MHz" in telemetry.gpu_flag(slow.conditions)


def test_no_energy_for_a_region_shorter_than_the_counter_allows(fake_nvml: FakeNVML) -> None:
    probe = telemetry.CaseTelemetry(FakeGPU(), telemetry.process_gpu())
    with probe:
        probe.region("start", 0)
        probe.region("end", 1000)
    c = probe.conditions()
    assert c["energy_region_s"] < telemetry.ENERGY_MIN_REGION_S and "energy_j_per_call" not in c


def test_without_pynvml_there_are_no_gpu_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert open_gpu() is None
    telemetry.set_process_gpu(None)
    r = measure_case_modes(FakeGPU(), CASE, timing=FAST)[0]
    assert r.status == "ok" and not any(k.startswith("gpu_") for k in r.conditions)


def test_merging_two_passes_keeps_the_worse_readings() -> None:
    a = {"other_cpu_cores": 0.1, "gpu_sm_mhz": 1900, "gpu_throttle": ["sw_power_cap"], "peak_memory_bytes": 10,
         "energy_j_per_call": 1.0, "gpu_clock_low": False}
    b = {"other_cpu_cores": 0.9, "gpu_sm_mhz": 1700, "gpu_throttle": ["hw_thermal"], "peak_memory_bytes": 30,
         "energy_j_per_call": 3.0, "gpu_clock_low": True}
    m = telemetry.merge(a, b)
    assert m["other_cpu_cores"] == 0.9 and m["gpu_sm_mhz"] == 1700 and m["peak_memory_bytes"] == 30
    assert m["gpu_throttle"] == ["hw_thermal", "sw_power_cap"] and m["gpu_clock_low"] is True
    assert m["energy_j_per_call"] == 2.0


# ------------------------------------------------------------------------------- run, store, show, compare


def test_run_in_several_modes_records_them_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store, out = tmp_path / "s.sqlite", tmp_path / "out"
    args = ["run", "--backends", "fake_numpy", "--ops", "ReLU", "--preset", "quick", "--budget", "0.02",
            "--min-samples", "3", "--processes", "1", "--mode", "latency,throughput,device", "--store", str(store),
            "--out", str(out), "--format", "md"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    for mode in ("throughput", "latency", "device"):
        assert f"; {mode} mode: {MODES[mode]})" in printed  # every table's title names its mode
    assert "n/a: CPU" in printed
    with Store(store) as s:
        run = s.load_run("latest")
    assert run.settings["modes"] == ["throughput", "latency", "device"] and run.modes() == list(run.settings["modes"])
    keys = [r.key for r in run.results]
    assert len(keys) == len(set(keys)) and {r.mode for r in run.results} == {"throughput", "latency", "device"}
    on_disk = Run.from_json(out / "run.json")
    assert sorted(r.key for r in on_disk.results) == sorted(keys)
    assert all(r.method for r in on_disk.results if r.timed)
    detailed = (out / "detailed.md").read_text()
    assert detailed.count("## Detailed benchmark") == 3
    db = sqlite3.connect(store)
    assert {m for (m,) in db.execute("SELECT mode FROM results")} == {"throughput", "latency", "device"}
    db.close()
    # show --modes: one column per mode; --mode picks modes; a mode the run lacks is refused in one line
    assert main(["show", "latest", "--store", str(store), "--modes", "--format", "md"]) == 0
    shown = capsys.readouterr().out
    header = next(line for line in shown.splitlines() if line.startswith("| Operation"))
    assert "fake_numpy throughput" in header and "fake_numpy latency" in header and "fake_numpy device" in header
    assert main(["show", "latest", "--store", str(store), "--mode", "latency", "--format", "md"]) == 0
    shown = capsys.readouterr().out
    assert "latency mode" in shown and "throughput mode" not in shown
    assert main(["show", "latest", "--store", str(store), "--mode", "cold"]) == 2
    err = capsys.readouterr().err
    assert "has no result in mode cold" in err and len(err.strip().splitlines()) == 1
    # resume adds a mode without measuring the others again
    assert main(["run", "--resume", run.run_id, "--store", str(store), "--out", str(out), "--mode",
                 "throughput,latency,device,cold", "--format", "md"]) == 0
    capsys.readouterr()
    with Store(store) as s:
        resumed = s.load_run(run.run_id)
    before = {r.key: r.samples_ms for r in run.results}
    assert {r.mode for r in resumed.results} == set(MODES)
    assert all(before[r.key] == r.samples_ms for r in resumed.results if r.key in before)


def test_bad_mode_is_one_line_exit_2(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--backends", "fake_numpy", "--mode", "fast", "--store", str(tmp_path / "s.sqlite")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "unknown mode 'fast'; valid choices: throughput, latency, device, cold" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "s.sqlite").exists()


def _result(mode: str, ms: float, backend: str = "cpu", case: str = "ReLU / dim=4") -> CaseResult:
    return CaseResult(case=case, family="ReLU", backend=backend, dtype="float32", status="ok",
                      samples_ms=tuple(ms * (1 + 0.001 * i) for i in range(20)), mode=mode)


def _run(run_id: str, *results: CaseResult) -> Run:
    return Run(run_id=run_id, created="2026-01-01T00:00:00+00:00", preset="quick", dtype="float32",
               results=results)


def test_compare_pairs_only_like_with_like() -> None:
    from opbench.analysis.compare import compare_runs

    a = _run("a", _result("throughput", 1.0), _result("latency", 3.0))
    b = _run("b", _result("throughput", 1.0), _result("latency", 6.0), _result("cold", 9.0))
    rows = {r.backend: r for r in compare_runs(a, b).rows}
    assert set(rows) == {"cpu [throughput]", "cpu [latency]"}
    assert rows["cpu [latency]"].ratio == pytest.approx(2.0, rel=0.01)
    assert rows["cpu [throughput]"].ratio == pytest.approx(1.0, rel=0.01)
    assert any("only B measured mode cold" in n for n in compare_runs(a, b).notes)
    with pytest.raises(UsageError, match="share no timing mode"):
        compare_runs(_run("a", _result("throughput", 1.0)), _run("c", _result("cold", 2.0)))
    across = compare_runs(_run("a", _result("throughput", 1.0)), _run("c", _result("cold", 2.0)), across_modes=True)
    assert across.rows[0].backend == "cpu [throughput vs cold]" and "across timing modes" in across.notes[0]


def test_tables_split_by_mode_and_refuse_a_mix() -> None:
    results = [_result("latency", 3.0), _result("throughput", 1.0),
               CaseResult(case="ReLU / dim=4", family="ReLU", backend="cpu", dtype="float32", status="unsupported",
                          error="n/a: CPU (no device apart from the host)", mode="device")]
    assert list(by_mode(results)) == ["throughput", "latency", "device"]
    with pytest.raises(ValueError, match="several timing modes"):
        detailed_table(results)
    assert detailed_table(by_mode(results)["device"]).rows[0][1] == "n/a: CPU"
    table = modes_table(results)
    assert table.headers[1:] == ["cpu throughput", "cpu latency", "cpu device"]
    assert table.rows[0][1:] == ["1.010", "3.029", "n/a: CPU"]


def test_published_tables_are_latency_mode_and_opbench_labels_round_trip(tmp_path: Path) -> None:
    from opbench.results.importers import parse_published_markdown

    published = parse_published_markdown("**M3 Max**\n\n| Operation | cpu |\n|--|--|\n| ReLU / dim=4 | 2.0 |\n")[0]
    assert published.modes() == ["latency"]
    text = "# mine\n\n" + "\n".join(
        f"{t.title}:\n\n" + "\n".join("| " + " | ".join(row) + " |" for row in [t.headers, ["--"] * len(t.headers),
                                                                                  *t.rows])
        for t in (detailed_table([_result(m, 1.0)]) for m in ("throughput", "cold")))
    mine = parse_published_markdown(text)[0]
    assert mine.modes() == ["throughput", "cold"]


def test_old_run_files_and_stores_read_as_throughput(tmp_path: Path) -> None:
    data = _run("r", _result("throughput", 1.0)).to_dict()
    for r in data["results"]:
        del r["mode"], r["method"]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    assert Run.from_json(path).results[0].mode == "throughput"


def test_device_timer_default_on_a_gpu_backend_without_cuda_is_not_applicable() -> None:
    import numpy as np

    with pytest.raises(ModeNotApplicable, match="no CUPTI profiler"):
        FakeGPU().device_timer(lambda x: x, (np.zeros(1),), 1e-6)
