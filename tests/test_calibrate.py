"""Calibration: positive, plausible ceilings from a real backend; per-machine storage; one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from opbench.errors import UsageError
from opbench.studies.calibrate import (
    CalibrationSettings,
    DeviceCalibration,
    calibrate_backend,
    calibration_path,
    load_calibration,
    machine_fingerprint,
    read_calibration,
    save_calibration,
)

SMALL = CalibrationSettings(copy_bytes=8 << 20, target_call_s=0.002, max_n=256, min_n=64, budget_s=0.05,
                            dtypes=("float32", "float16"))


@pytest.fixture(params=["cpu", "mlx_cpu"])
def cpu_backend(request):
    from opbench.backends import get_backend

    be = get_backend(request.param)
    if not be.availability().available:
        pytest.skip(be.availability().reason)
    be.setup()
    return be


def test_calibration_is_positive_and_plausible(cpu_backend) -> None:
    cal = calibrate_backend(cpu_backend, SMALL)
    assert cal.backend == cpu_backend.name and cal.device_kind == "cpu"
    # a CPU copies between 0.05 GB/s and 2 TB/s, and multiplies float32 at 0.01 GFLOP/s to 100 TFLOP/s
    assert cal.copy is not None and 0.05 < cal.copy.rate < 2000 and cal.copy.best_rate >= cal.copy.rate
    assert cal.copy.work == 2 * cal.copy.size  # bytes read + bytes written
    assert cal.read is not None and 0.05 < cal.read.rate < 2000 and cal.read.work == cal.read.size  # read only
    assert cal.bandwidth_gbs == max(cal.copy.best_rate, cal.read.best_rate)
    fp32 = cal.matmul["float32"]
    assert 0.01 < fp32.rate < 1e5 and fp32.best_rate >= fp32.rate
    assert 64 <= fp32.size <= 256 and fp32.work == 2 * fp32.size**3
    assert "tf32" not in cal.matmul  # TF32 only exists on torch CUDA
    assert set(cal.matmul) | set(cal.unsupported) == {"float32", "float16"}


def _device(backend: str, gbs: float, gflops: float) -> DeviceCalibration:
    from opbench.studies.calibrate import Ceiling

    return DeviceCalibration(backend, "torch", "cpu", Ceiling(gbs, gbs, 1.0, 1 << 20, 2e6, 5, "clone"),
                             {"float32": Ceiling(gflops, gflops, 1.0, 512, 2 * 512**3, 5, "512")})


def test_stored_per_machine_and_merged(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPBENCH_DATA_DIR", str(tmp_path))
    info = {"cpu_model": "X", "logical_cores": 2, "gpus": [], "hostname": "a", "packages": {"torch": "1"}}
    assert load_calibration(info) is None
    path = save_calibration(info, [_device("cpu", 10.0, 50.0)])
    assert path == calibration_path(info) and path.parent.parent == tmp_path
    save_calibration(info, [_device("mlx_cpu", 5.0, 3.0)])
    cal = load_calibration(info)
    assert cal is not None and set(cal.devices) == {"cpu", "mlx_cpu"}
    assert cal.device("cpu").bandwidth_gbs == 10.0 and cal.device("cpu").peak_gflops("float32") == 50.0
    assert cal.device("cuda_compile") is None
    # the key is the hardware: another hostname or package version is the same machine, another CPU is not
    same = {**info, "hostname": "b", "packages": {"torch": "2"}}
    assert machine_fingerprint(same) == machine_fingerprint(info)
    assert machine_fingerprint({**info, "cpu_model": "Y"}) != machine_fingerprint(info)


def test_recalibration_merges_dtypes(tmp_path, monkeypatch) -> None:
    from dataclasses import replace

    monkeypatch.setenv("OPBENCH_DATA_DIR", str(tmp_path))
    info = {"cpu_model": "X"}
    first = _device("mlx_gpu", 3000.0, 100000.0)  # e.g. measured with MLX_ENABLE_TF32=1: a tf32 figure
    first = replace(first, matmul={"tf32": first.matmul["float32"]}, unsupported={"float32": "needs a new process"})
    save_calibration(info, [first])
    save_calibration(info, [_device("mlx_gpu", 3100.0, 50000.0)])  # then MLX_ENABLE_TF32=0: float32
    dev = load_calibration(info).device("mlx_gpu")
    assert dev.peak_gflops("tf32") == 100000.0 and dev.peak_gflops("float32") == 50000.0
    assert dev.bandwidth_gbs == 3100.0 and dev.unsupported == {}


def test_each_backend_is_stored_as_soon_as_it_is_measured(tmp_path, monkeypatch) -> None:
    """A calibration cut off in its second backend (a timeout, a crash) keeps the first one, in the store and
    in --out."""
    from opbench.commands import calibrate as command

    def measure(backend: str, settings, log):  # the command hands each backend's name to the engine
        if backend == "mlx_cpu":
            raise KeyboardInterrupt  # as a timeout's signal would end it
        return _device(backend, 3000.0, 52000.0)

    monkeypatch.setenv("OPBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(command, "available_backends", lambda names: (["cpu", "mlx_cpu"], {
        n: {"available": True, "reason": ""} for n in ("cpu", "mlx_cpu")}))
    monkeypatch.setattr(command, "calibrate_backend", measure)
    out = tmp_path / "out.json"
    args = command.argparse.Namespace(backends="cpu,mlx_cpu", budget=1.0, max_n=512, target_ms=50.0, copy_mib=None,
                                      out=out, format="md")
    with pytest.raises(KeyboardInterrupt):
        command.run(args)
    assert set(read_calibration(out).devices) == {"cpu"}
    from opbench import machine

    assert set(load_calibration(machine.collect()).devices) == {"cpu"}


def test_memory_ceiling_is_the_faster_of_copy_and_read_and_old_files_still_load(tmp_path, monkeypatch) -> None:
    from dataclasses import replace

    from opbench.studies.calibrate import Ceiling

    dev = _device("cpu", 25.0, 400.0)
    assert dev.read is None and dev.bandwidth_gbs == 25.0  # a file from before the read ceiling
    with_read = replace(dev, read=Ceiling(31.0, 32.0, 8.0, 1 << 28, float(1 << 28), 9, "torch.sum(x)"))
    assert with_read.bandwidth_gbs == 32.0
    monkeypatch.setenv("OPBENCH_DATA_DIR", str(tmp_path))
    save_calibration({"cpu_model": "X"}, [with_read])
    assert load_calibration({"cpu_model": "X"}).device("cpu").read.best_rate == 32.0


def test_compiled_backends_use_their_eager_twin(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPBENCH_DATA_DIR", str(tmp_path))
    info = {"cpu_model": "X"}
    save_calibration(info, [_device("cuda", 3000.0, 52000.0)])
    assert load_calibration(info).device("cuda_compile").bandwidth_gbs == 3000.0


@pytest.mark.parametrize("text", ["{not json", json.dumps({"format": "other"}),
                                  json.dumps({"format": "opbench-calibration", "schema_version": 99}),
                                  json.dumps({"format": "opbench-calibration", "schema_version": 1})])
def test_corrupt_calibration_is_a_usage_error(tmp_path, text: str) -> None:
    p = tmp_path / "c.json"
    p.write_text(text)
    with pytest.raises(UsageError):
        read_calibration(p)


def test_a_directory_or_a_missing_calibration_is_a_usage_error(tmp_path) -> None:
    """A directory gave an IsADirectoryError traceback (`--calibration DIR`); it now names what it looked for."""
    with pytest.raises(UsageError, match=r"no calibration at .*calibration\.json \(write one with"):
        read_calibration(tmp_path)
    with pytest.raises(UsageError, match="no calibration at"):
        read_calibration(tmp_path / "missing.json")
    save_calibration({"cpu_model": "X"}, [_device("cpu", 30.0, 300.0)], tmp_path / "calibration.json")
    assert set(read_calibration(tmp_path).devices) == {"cpu"}


@pytest.mark.parametrize("args, needle", [
    (["calibrate", "--backends", "nope"], "valid choices"),
    (["calibrate", "--budget", "0"], "out of range; expected a finite number (0, 86400]"),
    (["sweep", "matmull"], "valid choices"),
    (["sweep", "matmul", "--sizes", "512:x:2"], "START:STOP:STEP"),
    (["sweep", "matmul", "--backends", "cpu", "--baseline", "cuda"], "not among the swept backends"),
    (["sweep", "softmax", "--case", "Softmax / dim=1x2"], "valid choices"),
    (["roofline", "/no/such/run"], "unknown run"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str, tmp_path) -> None:
    env_store = {"OPBENCH_STORE": str(tmp_path / "s.sqlite"), "OPBENCH_DATA_DIR": str(tmp_path)}
    import os

    proc = subprocess.run([sys.executable, "-m", "opbench", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env_store})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert needle in proc.stderr


def _numpy_adapter():
    """A framework-free adapter with MatMul and SumAll builders but no copy probe (as a new adapter starts)."""
    from typing import ClassVar

    import numpy as np

    from opbench.backends import Backend, Prepared

    class NumpyProbes(Backend):
        name = "numpy_probes_test"
        framework = "numpy"
        builders: ClassVar = {"MatMul": lambda be, case, args: Prepared(np.matmul, args),
                    "SumAll": lambda be, case, args: Prepared(np.sum, args)}

        def from_numpy(self, a, dtype=None):
            return np.array(a, dtype=dtype if dtype not in (None, "bfloat16") else a.dtype, copy=True)

        def to_numpy(self, x):
            return np.asarray(x)

    return NumpyProbes()


def test_an_adapter_without_a_copy_probe_gets_read_and_matmul_from_its_builders() -> None:
    """The probe defaults a new adapter relies on: copy is not measured (with the reason), the read ceiling is
    its SumAll builder and the matmul peak its MatMul builder; the memory ceiling is then the read's."""
    be = _numpy_adapter()
    cal = calibrate_backend(be, replace_settings(dtypes=("float32",)))
    assert cal.copy is None and "declares no copy probe" in cal.unsupported["copy"]
    assert cal.read is not None and cal.read.rate > 0 and cal.bandwidth_gbs == cal.read.best_rate
    assert cal.matmul["float32"].rate > 0 and "float32" not in cal.unsupported
    assert "tf32" not in cal.unsupported  # a device without TF32 has no tf32 figure to miss


def replace_settings(**kw) -> CalibrationSettings:
    from dataclasses import replace

    return replace(SMALL, **kw)


def test_a_named_backend_is_calibrated_in_its_worker_process() -> None:
    """The command's path: the backend by name, measured in a worker (the versions are the worker's report)."""
    from opbench.backends import get_backend

    if not get_backend("cpu").availability().available:
        pytest.skip("torch is not installed")
    cal = calibrate_backend("cpu", replace_settings(dtypes=("float32",)))
    assert cal.copy is not None and cal.copy.how == "Tensor.copy_ into a preallocated tensor"
    assert cal.read is not None and cal.read.how == "torch.sum(x)"
    assert cal.matmul["float32"].rate > 0 and cal.versions.get("torch")
