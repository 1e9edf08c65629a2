"""Roofline: the bound, % of peak, and that a case above 100 % of a ceiling is always flagged."""

from __future__ import annotations

from dataclasses import replace

import pytest

from opbench.report.roofline import roofline_column, roofline_table
from opbench.report.tables import detailed_table
from opbench.results import CaseResult
from opbench.studies.calibrate import Calibration, Ceiling, DeviceCalibration
from opbench.studies.roofline import ABOVE, FAR_BELOW, Peaks, peaks_for, roofline, roofline_json

PEAKS = Peaks(gflops=1000.0, gbs=100.0, matmul_dtype="float32")  # 1 TFLOP/s, 100 GB/s


def result(ms: float, flops: int, nbytes: int, backend: str = "cpu", case: str = "c") -> CaseResult:
    return CaseResult(case=case, family="MatMul", backend=backend, dtype="float32", status="ok",
                      samples_ms=(ms, ms, ms), flops=flops, bytes=nbytes)


def test_compute_bound_case() -> None:
    # 1e9 FLOP and 1e6 bytes in 2 ms: the compute limit is 1 ms, the memory limit 0.01 ms -> compute, 50 %
    rf = roofline(result(2.0, 10**9, 10**6), PEAKS)
    assert rf.bound == "compute" and rf.pct == pytest.approx(50.0) and rf.flag == ""
    assert rf.gflops == pytest.approx(500.0) and rf.gbs == pytest.approx(0.5)
    assert rf.text() == "50% C"


def test_memory_bound_case_far_below() -> None:
    # 1e6 FLOP, 1e8 bytes in 20 ms: memory limit 1 ms -> memory, 5 %: far below, marked
    rf = roofline(result(20.0, 10**6, 10**8), PEAKS)
    assert rf.bound == "memory" and rf.pct == pytest.approx(5.0) and rf.flag == FAR_BELOW
    assert rf.text() == "5% M↓"


def test_above_peak_is_flagged_never_silent() -> None:
    # 1e9 bytes in 5 ms = 200 GB/s on a 100 GB/s device: 200 %, and 1 GB cannot come from a cache
    rf = roofline(result(5.0, 0, 10**9), PEAKS)
    assert rf.pct == pytest.approx(200.0) and rf.flag == ABOVE and not rf.cache_resident
    assert rf.text().endswith("!")
    small = roofline(result(0.001, 0, 10**6), PEAKS)
    assert small.flag == ABOVE and small.cache_resident


def test_no_calibration_or_no_time_gives_no_percentage() -> None:
    assert roofline(result(1.0, 10, 10), None).pct is None and roofline(result(1.0, 10, 10), None).text() == "–"
    untimed = CaseResult(case="c", family="MatMul", backend="cpu", dtype="float32", status="oom")
    assert roofline(untimed, PEAKS).pct is None
    # a dtype without a matmul peak: the bound cannot be decided for a case with FLOPs
    assert roofline(result(1.0, 10**6, 10), Peaks(None, 100.0, "float64")).pct is None


def _calibration() -> Calibration:
    def c(rate: float) -> Ceiling:
        return Ceiling(rate, rate, 1.0, 1, 1.0, 5, "")

    cuda = DeviceCalibration("cuda", "torch", "gpu", c(3000.0), {"float32": c(52000.0), "tf32": c(400000.0)})
    return Calibration("f", {}, {"cuda": cuda})


def test_peaks_follow_precision_settings_and_compiled_twins() -> None:
    cal = _calibration()
    assert peaks_for(cal, "cuda", "float32").gflops == 52000.0
    assert peaks_for(cal, "cuda", "float32", {"float32_matmul_precision": "high"}).gflops == 400000.0
    assert peaks_for(cal, "cuda_compile", "float32").gbs == 3000.0
    assert peaks_for(cal, "mlx_gpu", "float32") is None
    # each framework's own switch, as its adapter reads the settings that framework records
    cuda = cal.devices["cuda"]
    gpus = Calibration("f", {}, {"cuda": cuda, "jax_gpu": replace(cuda, backend="jax_gpu", framework="jax"),
                                 "mlx_gpu": replace(cuda, backend="mlx_gpu", framework="mlx")})
    assert peaks_for(gpus, "jax_gpu", "float32", {"jax_default_matmul_precision": "default"}).gflops == 400000.0
    assert peaks_for(gpus, "jax_gpu", "float32", {"jax_default_matmul_precision": "highest"}).gflops == 52000.0
    assert peaks_for(gpus, "mlx_gpu", "float32", {"MLX_ENABLE_TF32": "1"}).gflops == 400000.0
    assert peaks_for(gpus, "mlx_gpu", "float32", {"MLX_ENABLE_TF32": "0"}).gflops == 52000.0
    assert peaks_for(gpus, "cuda", "float32", {"MLX_ENABLE_TF32": "1"}).gflops == 52000.0  # not torch's switch


def test_torch_convolutions_follow_cudnns_own_tf32_switch() -> None:
    """torch's cudnn.allow_tf32 (on by default) puts float32 convolutions on TF32 while matmuls stay strict:
    an H100 Conv1d read 148 % of the strict float32 ceiling before this rule."""
    cal = _calibration()
    torch_defaults = {"float32_matmul_precision": "highest", "cuda_matmul_allow_tf32": False,
                      "cudnn_allow_tf32": True}
    assert peaks_for(cal, "cuda", "float32", torch_defaults, family="Conv1d").gflops == 400000.0
    assert peaks_for(cal, "cuda", "float32", torch_defaults, family="Conv2d").gflops == 400000.0
    assert peaks_for(cal, "cuda", "float32", torch_defaults, family="MatMul").gflops == 52000.0
    assert peaks_for(cal, "cuda", "float32", torch_defaults).gflops == 52000.0
    strict_conv = {**torch_defaults, "cudnn_allow_tf32": False}
    assert peaks_for(cal, "cuda", "float32", strict_conv, family="Conv2d").gflops == 52000.0


def test_tf32_run_without_a_measured_tf32_ceiling_gets_no_compute_percentage() -> None:
    """MLX on CUDA calibrated only with MLX_ENABLE_TF32=0: its TF32 runs must not be held to the strict float32
    ceiling (they would read several hundred % of it)."""
    c = _calibration().devices["cuda"]
    strict_only = replace(c, matmul={"float32": c.matmul["float32"]}, unsupported={"tf32": "MLX_ENABLE_TF32=0"})
    cal = Calibration("f", {}, {"mlx_gpu": strict_only})
    peaks = peaks_for(cal, "mlx_gpu", "float32", {"MLX_ENABLE_TF32": "1"})
    assert peaks.gflops is None and peaks.gbs == 3000.0 and peaks.matmul_dtype == "tf32"
    assert peaks_for(cal, "mlx_gpu", "float32", {"MLX_ENABLE_TF32": "0"}).gflops == 52000.0
    assert roofline(result(1.0, 300 * 10**9, 10**6, backend="mlx_gpu"), peaks).pct is None
    # families that never run on tensor cores keep their float32 ceilings (a Softmax is memory-bound)
    softmax = peaks_for(cal, "mlx_gpu", "float32", {"MLX_ENABLE_TF32": "1"}, family="Softmax")
    assert softmax.gflops == 52000.0 and softmax.matmul_dtype == "float32"
    rf = roofline(result(1.0, 5 * 10**6, 15 * 10**8, backend="mlx_gpu"), softmax)
    assert rf.bound == "memory" and rf.pct == pytest.approx(50.0)


def test_ceilings_are_the_best_any_framework_reached_on_the_same_device() -> None:
    """A framework whose own copy is single-threaded is held to the CPU's ceiling, not to its own; a GPU
    framework without a tf32 figure borrows the one another framework measured on that GPU."""
    cuda = _calibration().devices["cuda"]
    cpu = replace(cuda, backend="cpu", framework="torch", device_kind="cpu", copy=replace(cuda.copy, best_rate=70.0),
                  matmul={"float32": replace(cuda.matmul["float32"], best_rate=1400.0)})
    jax_cpu = replace(cpu, backend="jax_cpu", framework="jax", copy=replace(cuda.copy, best_rate=12.0),
                      matmul={"float32": replace(cuda.matmul["float32"], best_rate=1270.0)})
    mlx_gpu = replace(cuda, backend="mlx_gpu", framework="mlx", matmul={"float32": cuda.matmul["float32"]},
                      unsupported={"tf32": "MLX_ENABLE_TF32=0"})
    cal = Calibration("f", {}, {"cpu": cpu, "jax_cpu": jax_cpu, "cuda": cuda, "mlx_gpu": mlx_gpu})
    p = peaks_for(cal, "jax_cpu", "float32")
    assert (p.gbs, p.gbs_from, p.gflops, p.flops_from) == (70.0, "cpu", 1400.0, "cpu")
    p = peaks_for(cal, "mlx_gpu", "float32", {"MLX_ENABLE_TF32": "1"}, family="Linear")
    assert (p.gflops, p.flops_from, p.matmul_dtype) == (400000.0, "cuda", "tf32")
    assert peaks_for(cal, "mlx_cpu", "float32") is None  # not calibrated itself: no figures borrowed


def test_only_matrix_families_are_held_to_the_tf32_ceiling() -> None:
    cal, tf32 = _calibration(), {"float32_matmul_precision": "high"}
    assert peaks_for(cal, "cuda", "float32", tf32, family="Linear").gflops == 400000.0
    assert peaks_for(cal, "cuda", "float32", tf32, family="Sum").gflops == 52000.0


def test_tables_json_and_sorting() -> None:
    cal = _calibration()
    results = [result(0.04, 10**9, 10**6, "cuda", "mid"), result(1000.0, 10**9, 10**6, "cuda", "low"),
               result(0.1, 0, 10**9, "cuda", "impossible")]
    table = roofline_table(results, cal)
    assert [row[0] for row in table.rows] == ["low", "mid", "impossible"]  # lowest % of peak first
    assert table.rows[0][-1].endswith("↓") and table.rows[-1][-1].endswith("!")
    assert any("SUSPECT TIMING" in n and "impossible" in n for n in table.notes)
    data = roofline_json(results, cal)
    flags = {r["case"]: r["flag"] for r in data["results"]}
    assert flags == {"mid": "", "low": FAR_BELOW, "impossible": ABOVE}
    assert data["peaks"]["cuda/float32"]["gbs"] == 3000.0
    # the optional Detailed-table column leaves the seed's layout alone
    plain = detailed_table(results)
    with_peak = detailed_table(results, peak=roofline_column(cal))
    assert with_peak.headers[:len(plain.headers)] == plain.headers and with_peak.headers[-1] == "cuda % peak"
    assert [r[:len(plain.headers)] for r in with_peak.rows] == plain.rows


def test_a_case_a_few_percent_above_its_ceiling_is_flagged_as_noise_not_as_a_timing_bug() -> None:
    cal = _calibration()  # cuda copy 3000 GB/s: 3 GB in 1 ms is 100 %
    near, far = result(1.0, 0, 309 * 10**7, "cuda", "Concat / near"), result(1.0, 0, 4 * 10**9, "cuda", "Copy / far")
    table = roofline_table([near, far], cal)
    assert [row[-1] for row in table.rows] == ["103% M!", "133% M!"]  # both flagged in the table
    assert any("SUSPECT TIMING: Copy / far" in n for n in table.notes)
    assert not any("SUSPECT TIMING: Concat / near" in n for n in table.notes)
    assert any("within calibration noise" in n and "Concat / near on cuda (103%)" in n for n in table.notes)


def test_roofline_command_on_a_saved_run(tmp_path) -> None:
    import json
    import subprocess
    import sys

    from opbench.results import Run

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    Run("r1", "2026-01-01", "seed", "float32", machine={"cpu_model": "X"},
        results=(result(0.04, 10**9, 10**6, "cuda", "MatMul / mid"), result(0.1, 0, 10**9, "cuda", "Copy / big"))
        ).to_json(run_dir / "run.json")
    cal_file = tmp_path / "cal.json"
    cal_file.write_text(json.dumps(_calibration().to_dict()))
    proc = subprocess.run([sys.executable, "-m", "opbench", "roofline", str(run_dir), "--calibration", str(cal_file),
                           "--json", str(tmp_path / "r.json"), "--format", "md"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "48% C" in proc.stdout and "SUSPECT TIMING: Copy / big" in proc.stdout
    flags = {r["case"]: r["flag"] for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert flags == {"MatMul / mid": "", "Copy / big": ABOVE}


def test_show_roofline_finds_the_run_machines_stored_calibration(tmp_path, monkeypatch) -> None:
    import os
    import subprocess
    import sys

    from opbench.results import Run
    from opbench.studies.calibrate import save_calibration

    env = {**os.environ, "OPBENCH_DATA_DIR": str(tmp_path / "data"), "OPBENCH_STORE": str(tmp_path / "s.sqlite")}
    machine = {"cpu_model": "Some CPU", "logical_cores": 8, "gpus": [{"name": "H100", "memory_gb": 80}]}
    monkeypatch.setenv("OPBENCH_DATA_DIR", env["OPBENCH_DATA_DIR"])
    save_calibration(machine, list(_calibration().devices.values()))
    Run("r1", "2026-01-01", "seed", "float32", machine=machine,
        results=(result(0.04, 10**9, 10**6, "cuda_compile", "MatMul / mid"),)).to_json(tmp_path / "run.json")
    proc = subprocess.run([sys.executable, "-m", "opbench", "show", str(tmp_path / "run.json"), "--roofline",
                           "--format", "md"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Detailed benchmark" in proc.stdout and "48% C" in proc.stdout  # cuda_compile uses cuda's ceilings
