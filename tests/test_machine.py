"""Machine metadata: collected without frameworks, GPUs from NVML or nvidia-smi, merge keys in one place."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from opbench import machine


def test_collect_has_the_essentials_and_imports_no_framework() -> None:
    code = ("import sys, json; from opbench import machine; info = machine.collect(); "
            "print(json.dumps([sorted(info), [m for m in ('torch', 'mlx', 'jax') if m in sys.modules]]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    keys, frameworks = __import__("json").loads(out)
    assert frameworks == []
    for key in ("cpu_model", "logical_cores", "ram_gb", "gpus", "os", "python", "packages", "thread_env",
                "usable_cores"):
        assert key in keys, key
    info = machine.collect()
    assert info["packages"]["opbench"] and info["packages"]["numpy"]
    assert 1 <= info["usable_cores"] <= info["logical_cores"]


def test_thread_env_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert machine.collect()["thread_env"]["OMP_NUM_THREADS"] == "3"


@pytest.mark.skipif(sys.platform == "win32", reason="shell script as a fake nvidia-smi")
def test_nvidia_smi_is_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 81559, 550.54.15'\necho 'NVIDIA A100, 40960, 550.54.15'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # NVML not importable: nvidia-smi is used
    assert machine.nvidia_gpus() == [{"name": "NVIDIA H100 80GB HBM3", "memory_gb": 79.6, "driver": "550.54.15"},
                                     {"name": "NVIDIA A100", "memory_gb": 40.0, "driver": "550.54.15"}]
    info = machine.collect()
    assert [g["name"] for g in info["gpus"]] == ["NVIDIA H100 80GB HBM3", "NVIDIA A100"]
    assert "NVIDIA H100 80GB HBM3" in machine.describe(info)


def test_nvml_is_preferred(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None, nvmlShutdown=lambda: None, nvmlSystemGetDriverVersion=lambda: b"560.1",
        nvmlDeviceGetCount=lambda: 1, nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: "NVIDIA GeForce RTX 4090",
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=24 * 1024**3))
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert machine.nvidia_gpus() == [{"name": "NVIDIA GeForce RTX 4090", "memory_gb": 24.0, "driver": "560.1"}]


def test_merge_conflicts_name_the_differing_keys() -> None:
    a = machine.collect()
    assert machine.merge_conflicts(a, dict(a)) == []
    b = {**a, "cpu_model": "Apple M3 Max", "hostname": "other"}  # hostname is not a merge key
    conflicts = machine.merge_conflicts(a, b)
    assert len(conflicts) == 1 and conflicts[0].startswith("cpu_model:") and "Apple M3 Max" in conflicts[0]
    assert set(machine.MERGE_KEYS) >= {"cpu_model", "gpus", "packages"}


def test_the_opbench_build_is_recorded_and_follows_the_source(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The digest covers opbench's own modules: the same tree gives the same digest, an edited copy another."""
    build = machine.collect()["opbench"]
    assert build["version"] and re.fullmatch(r"[0-9a-f]{12}", build["source_digest"])
    assert machine.opbench_build() == build
    copy = tmp_path / "opbench"
    shutil.copytree(Path(machine.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(machine, "__file__", str(copy / "machine.py"))
    machine.opbench_build.cache_clear()
    try:
        assert machine.opbench_build() == build
        (copy / "engine" / "timing.py").write_text((copy / "engine" / "timing.py").read_text() + "\n# edited\n")
        machine.opbench_build.cache_clear()
        assert machine.opbench_build()["source_digest"] != build["source_digest"]
    finally:
        machine.opbench_build.cache_clear()


def test_differences_name_the_build_and_the_merge_keys() -> None:
    a = machine.collect()
    assert machine.differences(a, dict(a)) == []
    b = {**a, "opbench": {"version": "0.1.0", "source_digest": "0123456789ab"}, "gpus": [{"name": "other GPU"}]}
    lines = machine.differences(a, b)
    assert len(lines) == 2 and lines[0].startswith("gpus:") and "other GPU" in lines[0]
    build = a["opbench"]
    assert lines[1] == f"opbench build: {build['version']} ({build['source_digest']}) != 0.1.0 (0123456789ab)"
    old = {k: v for k, v in a.items() if k != "opbench"}  # a run from before the build was recorded
    assert machine.differences(old, a)[-1].startswith("opbench build: not recorded != ")
