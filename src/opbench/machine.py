"""Machine and software metadata, collected without root and without importing any framework.

Cores and RAM come from psutil on every OS. The CPU's marketing name, which psutil does not give, is read
per OS: Linux /proc/cpuinfo, macOS sysctl (with the E/P core layout and, from system_profiler, the Apple GPU's
cores), Windows' registry. (py-cpuinfo would give the name everywhere, but it has had no release since 2022,
spawns a subprocess taking about a second, and knows neither the E/P layout nor the GPU cores.) NVIDIA GPUs
(name, memory, driver) come from NVML through `pynvml` when it is importable, else from `nvidia-smi`.
Package versions come from installed distributions' metadata, so no framework is imported. Every probe is
best-effort: a missing tool gives a missing key, never an exception.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from opbench._version import __version__

# Keys that must be equal before two runs may be merged into one (resume, combining backends).
# Comparing runs across machines is allowed; merging them is not.
MERGE_KEYS: tuple[str, ...] = ("cpu_model", "logical_cores", "gpus", "os", "python", "packages")

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                   "NUMEXPR_NUM_THREADS", "OPENBLAS_CORETYPE", "KMP_AFFINITY", "OMP_PROC_BIND", "XLA_FLAGS",
                   "CUDA_VISIBLE_DEVICES", "MLX_METAL_FAST_SYNCH")

# opbench's own array stack; each backend adapter adds its framework's distributions (`Backend.packages`).
CORE_PACKAGES = ("numpy", "scipy", "opbench")


def _run(cmd: list[str], timeout: float = 5.0) -> str:
    if shutil.which(cmd[0]) is None:
        return ""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _linux_cpu() -> dict[str, Any]:
    """The marketing name from /proc/cpuinfo (psutil has no CPU model name)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return {"cpu_model": value.strip()}
    except OSError:
        pass
    return {}


def _cores_and_memory() -> dict[str, Any]:
    """Physical cores and RAM on every OS, from psutil (replaces /proc/meminfo, core-id counting, sysctl
    hw.memsize and Windows' GlobalMemoryStatusEx)."""
    import psutil

    info: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        physical = psutil.cpu_count(logical=False)
        if physical:
            info["physical_cores"] = physical
    with contextlib.suppress(Exception):
        info["ram_gb"] = round(psutil.virtual_memory().total / 1024**3, 1)
    return info


def _mac_cpu() -> dict[str, Any]:
    info: dict[str, Any] = {}
    model = _run(["sysctl", "-n", "machdep.cpu.brand_string"])
    if model:
        info["cpu_model"] = model
    perf = _run(["sysctl", "-n", "hw.perflevel0.physicalcpu"])
    eff = _run(["sysctl", "-n", "hw.perflevel1.physicalcpu"])
    if perf.isdigit() and eff.isdigit():
        info["core_layout"] = f"{eff}E+{perf}P"
    gpu_cores = _run(["system_profiler", "SPDisplaysDataType"], timeout=15)
    for line in gpu_cores.splitlines():
        if "Total Number of Cores" in line:
            info["gpus"] = [{"name": model, "cores": int(line.split(":")[1].strip())}]
    return info


def _windows_cpu() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu_model": platform.processor()}
    try:  # the marketing name ("AMD Ryzen 9 7950X"), readable without admin rights
        import winreg  # type: ignore[import-not-found]

        key = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0")
        info["cpu_model"] = str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip()
    except Exception:
        pass
    return info


def _nvml_gpus() -> list[dict[str, Any]] | None:
    """NVIDIA GPUs through NVML (`pip install nvidia-ml-py`); None when NVML is not usable here."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total
            gpus.append({"name": name.decode() if isinstance(name, bytes) else str(name),
                         "memory_gb": round(memory / 1024**3, 1),
                         "driver": driver.decode() if isinstance(driver, bytes) else str(driver)})
        return gpus
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def nvidia_gpus() -> list[dict[str, Any]]:
    """Name, memory (GB) and driver of each NVIDIA GPU: NVML if available, else nvidia-smi, else none."""
    gpus_nvml = _nvml_gpus()
    if gpus_nvml:
        return gpus_nvml
    out = _run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"])
    gpus = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "memory_gb": round(float(parts[1]) / 1024, 1) if parts[1].replace(
                ".", "").isdigit() else parts[1], "driver": parts[2]})
    return gpus


def packages() -> tuple[str, ...]:
    """The distributions whose versions are recorded: opbench's own, then every registered backend framework's
    (`registry.FRAMEWORK_PACKAGES`, checked against each adapter's `Backend.packages` by a test)."""
    from opbench.registry import FRAMEWORK_PACKAGES

    return tuple(dict.fromkeys((*CORE_PACKAGES, *FRAMEWORK_PACKAGES)))


def package_versions() -> dict[str, str]:
    versions = {}
    for name in packages():
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@functools.cache
def opbench_build() -> dict[str, str]:
    """opbench's version and a digest of its own source: sha256 over every module's relative path and bytes,
    first 12 hex digits. Two runs with the same digest were measured by the same engine code, whether it ran
    from a wheel, a git checkout or a copied tree (no git needed); the version alone does not change with every
    edit. Trade-off: any source change, a docstring included, gives a new digest."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return {"version": __version__, "source_digest": digest.hexdigest()[:12]}


def usable_cores() -> int | None:
    """CPUs this process may run on: the affinity mask, further limited by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return os.cpu_count()
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def thread_settings() -> dict[str, Any]:
    """Thread-related environment variables in force and the CPUs usable (no framework is imported: each
    backend records its own thread count with its results)."""
    return {"env": {k: os.environ[k] for k in THREAD_ENV_VARS if k in os.environ}, "usable_cores": usable_cores()}


def collect() -> dict[str, Any]:
    """Everything opbench records about the machine and its software."""
    system = platform.system()
    info: dict[str, Any] = {"hostname": platform.node(), "os": f"{system} {platform.release()}",
                            "os_version": platform.version(), "arch": platform.machine(),
                            "python": platform.python_version(), "python_impl": sys.implementation.name,
                            "logical_cores": os.cpu_count()}
    if system == "Linux":
        info.update(_linux_cpu())
    elif system == "Darwin":
        info.update(_mac_cpu())
        info["os"] = f"macOS {platform.mac_ver()[0]}"
    elif system == "Windows":
        info.update(_windows_cpu())
    gpus = nvidia_gpus()
    if gpus:
        info["gpus"] = gpus
    info.setdefault("gpus", [])
    info.update(_cores_and_memory())
    info["packages"] = package_versions()
    info["opbench"] = opbench_build()
    threads = thread_settings()
    info["thread_env"] = threads["env"]
    info["usable_cores"] = threads["usable_cores"]
    return info


def merge_conflicts(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The `MERGE_KEYS` on which two machine records differ, as `key: A != B` lines (empty: may merge)."""
    conflicts = []
    for key in MERGE_KEYS:
        if a.get(key) != b.get(key):
            conflicts.append(f"{key}: {_short(a.get(key))} != {_short(b.get(key))}")
    return conflicts


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs between the machine records of two runs being compared: the `MERGE_KEYS` and the opbench
    build that measured them (`not recorded` for runs from before it was recorded). A key only one side
    records (a published table names its device, not its CPU model or Python) is listed once as not recorded,
    never as `value != None`."""
    lines = [line for line in merge_conflicts(a, b) if line.split(":", 1)[0] not in _one_sided(a, b)]
    for side, record, other in (("A", a, b), ("B", b, a)):
        missing = [k for k in MERGE_KEYS if record.get(k) is None and other.get(k) is not None]
        if missing:
            lines.append(f"{side} does not record {', '.join(missing)}")
    build_a, build_b = a.get("opbench"), b.get("opbench")
    if build_a != build_b:
        def show(build: Any) -> str:
            return (f"{build.get('version')} ({build.get('source_digest')})" if isinstance(build, dict)
                    else "not recorded")
        lines.append(f"opbench build: {show(build_a)} != {show(build_b)}")
    return lines


def _one_sided(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    """The `MERGE_KEYS` that exactly one of two machine records lacks (absent or None)."""
    return {k for k in MERGE_KEYS if (a.get(k) is None) != (b.get(k) is None)}


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(info: dict[str, Any]) -> str:
    """One line for humans: `AMD EPYC 9554 (2 cores, 23.5 GB) · Linux 6.1 · Python 3.11.7`.

    An imported published table (`published` set by `results.importers`) reads `published: M1 Pro, 2E+8P+16GPU,
    16GB, mlx 0.5.0`: only what its heading said.
    """
    if info.get("published"):
        packages = info.get("packages") if isinstance(info.get("packages"), dict) else {}
        known = [info.get("device"), info.get("cores"), info.get("memory"), info.get("host"),
                 *(f"{k} {v}" for k, v in packages.items())]
        return "published: " + ", ".join(str(x) for x in known if x)
    gpu = ", ".join(g.get("name", "?") for g in info.get("gpus", []))
    cpu = f"{info.get('cpu_model', '?')} ({info.get('logical_cores', '?')} threads, {info.get('ram_gb', '?')} GB)"
    parts = [cpu, gpu, info.get("os", ""), f"Python {info.get('python', '?')}"]
    return " · ".join(p for p in parts if p)
