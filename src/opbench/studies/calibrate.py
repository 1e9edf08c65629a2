"""Calibration: the practical ceilings of each device, measured with that device's own framework.

Two figures per backend, both timed by the core engine (`opbench.engine.timing.measure`, blocked samples); the
ceiling is the fastest sample's rate, the median's is kept beside it (`Ceiling` says why):

- **Memory bandwidth** from a large device-to-device copy: `bytes read + bytes written` (2 x the array size)
  per second. The adapters' copies: torch copies with `Tensor.copy_` into a preallocated tensor (`clone()` on
  a CPU would time the page faults of a fresh 256 MiB allocation per call, about 3x slower); MLX has no
  explicit copy op (`mx.array(x)` may go through the host), so it streams `x + 0`, and JAX streams
  `jit(x + 1)` (XLA may elide a plain copy): both move the same bytes as a copy, and their allocators reuse
  cached buffers. The array is 1 GiB on a GPU and 256 MiB on a CPU (both capped at 1/8 of free memory):
  larger than the caches.
- **Read bandwidth** from a full sum of the same array: its bytes per second, read only. A copy pays for its
  writes (on a CPU a write also reads the line first, which the 2x count does not see), so read-mostly cases
  (reductions) run above the copy rate; the memory ceiling (`DeviceCalibration.bandwidth_gbs`) is the higher
  of the two, the fastest the device was seen to move bytes.
- **Peak matmul throughput** per dtype (float32, float16, bfloat16 where the backend supports them; on an
  NVIDIA GPU also `tf32`, float32 storage on TensorFloat-32 tensor cores; `float32` itself and every other
  dtype are pinned to strict IEEE precision) from a square N x N @ N x N matmul at 2·N³ FLOP. N starts at 512
  and doubles until one call takes `target_call_s` or N reaches `max_n` (or memory runs short); every N is
  timed and the best one is the peak (a CPU's rate still climbs past the first N that takes 50 ms).
  Trade-off: larger N come closer to the plateau but cost calibration time; stopping at ~50 ms per call
  keeps each dtype to seconds.

How: every figure is one task of the engine (`opbench.engine`), measured in the backend's worker process like
any case; the ops are the adapter's calibration probes (`Backend.probe_builder`: its copy, its SumAll and
MatMul builders unless it declares its own), on inputs from `catalog.probes`, and the precision mode of each
matmul dtype is the adapter's too (`Backend.matmul_mode`). A mode read once at start-up gets a worker of its
own: MLX on a CUDA GPU measures float32 under MLX_ENABLE_TF32=0 and tf32 under MLX_ENABLE_TF32=1 in one
calibration. A probe an adapter lacks is recorded as not measured, with the reason.

These are practical ceilings (what the framework's best kernel achieves), not datasheet numbers; a case can
therefore land near, but should never be far above, 100 % of them. Results are stored per machine in a JSON
file under the user data directory, keyed by a fingerprint of the hardware (`machine_fingerprint`), so that
every later run on the same machine finds them. `OPBENCH_DATA_DIR` overrides the directory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import opbench.defaults as defaults
from opbench.backends import Backend, get_backend
from opbench.catalog.probes import Probe
from opbench.engine.engine import Engine
from opbench.engine.execute import free_memory
from opbench.engine.task import Measurement, Task
from opbench.engine.timing import TimingSettings
from opbench.errors import UsageError
from opbench.paths import data_dir
from opbench.results.formats import CALIBRATION, check_header, load_document

MATMUL_DTYPES = ("float32", "tf32", "float16", "bfloat16")
# The hardware that identifies a machine; software versions are recorded but do not change the key.
FINGERPRINT_KEYS = ("cpu_model", "logical_cores", "physical_cores", "ram_gb", "arch", "gpus")


@dataclass(frozen=True)
class Ceiling:
    """One measured ceiling (GB/s or GFLOP/s) and how it was obtained.

    `rate` is at the median time, `best_rate` at the fastest sample (a block of calls). The ceiling used for
    % of peak is `best_rate`: interference from other processes only ever slows a measurement down, so on a
    shared machine the median understates the hardware and would make honest cases look above 100 %.
    """

    rate: float
    best_rate: float
    median_ms: float
    size: int
    work: float
    samples: int
    how: str

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> Ceiling:
        """A ceiling read from a file: its rates and time finite and positive, its counts whole and positive
        (a ValueError naming the field otherwise: a NaN or negative rate would become a bogus % of peak)."""
        if not isinstance(d, dict):
            raise ValueError(f"{where} is not an object")
        for name in ("rate", "best_rate", "median_ms", "work"):
            value = d.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{where}.{name} is {value!r}; expected a finite number > 0")
        for name in ("size", "samples"):
            value = d.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{where}.{name} is {value!r}; expected an integer >= 1")
        return cls(float(d["rate"]), float(d["best_rate"]), float(d["median_ms"]), d["size"], float(d["work"]),
                   d["samples"], str(d.get("how", "")))


@dataclass(frozen=True)
class DeviceCalibration:
    backend: str
    framework: str
    device_kind: str
    copy: Ceiling | None
    matmul: dict[str, Ceiling] = field(default_factory=dict)
    unsupported: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    read: Ceiling | None = None

    @property
    def bandwidth_gbs(self) -> float | None:
        """The memory ceiling: the fastest sample's rate (see `Ceiling`) of the copy or the read, whichever is
        higher."""
        rates = [c.best_rate for c in (self.copy, self.read) if c is not None]
        return max(rates) if rates else None

    def peak_gflops(self, dtype: str) -> float | None:
        """The matmul ceiling in `dtype`: the fastest sample's rate (see `Ceiling`)."""
        c = self.matmul.get(dtype)
        return c.best_rate if c else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "device") -> DeviceCalibration:
        """A device's calibration read from a file (a ValueError naming what is malformed)."""
        if not isinstance(d, dict):
            raise ValueError(f"{where} is not an object")
        if not isinstance(d.get("matmul", {}), dict):
            raise ValueError(f"{where}.matmul is not an object of dtypes")
        copy = Ceiling.from_dict(d["copy"], f"{where}.copy") if d.get("copy") else None
        matmul = {k: Ceiling.from_dict(v, f"{where}.matmul.{k}") for k, v in d.get("matmul", {}).items()}
        rest = {k: d[k] for k in ("unsupported", "versions", "created") if k in d}
        read = Ceiling.from_dict(d["read"], f"{where}.read") if d.get("read") else None
        return cls(d["backend"], d["framework"], d["device_kind"], copy, matmul, read=read, **rest)


# ------------------------------------------------------------------------------------------------- storage


def machine_fingerprint(info: dict[str, Any]) -> str:
    """16 hex digits from the hardware keys of `machine.collect()` (GPU names and memory included)."""
    key = {k: info.get(k) for k in FINGERPRINT_KEYS}
    key["gpus"] = [{"name": g.get("name"), "memory_gb": g.get("memory_gb")} for g in info.get("gpus", [])]
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def calibration_path(info: dict[str, Any]) -> Path:
    return data_dir() / "calibration" / f"{machine_fingerprint(info)}.json"


@dataclass(frozen=True)
class Calibration:
    """Every calibrated backend of one machine."""

    fingerprint: str
    machine: dict[str, Any]
    devices: dict[str, DeviceCalibration]

    def device(self, backend: str) -> DeviceCalibration | None:
        """The calibration for `backend`; compiled variants (`cuda_compile`) use their eager twin's."""
        if backend in self.devices:
            return self.devices[backend]
        return self.devices.get(backend.removesuffix("_compile"))

    def to_dict(self) -> dict[str, Any]:
        return {**CALIBRATION.header(), "fingerprint": self.fingerprint,
                "machine": self.machine, "devices": {k: v.to_dict() for k, v in self.devices.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        check_header(d, CALIBRATION)
        try:
            if not isinstance(d.get("devices"), dict):
                raise ValueError("'devices' is missing or not an object of backends")
            devices = {k: DeviceCalibration.from_dict(v, f"devices.{k}") for k, v in d["devices"].items()}
            return cls(d["fingerprint"], d.get("machine", {}), devices)
        except KeyError as exc:
            raise UsageError(f"malformed opbench calibration file: no {exc} field") from None
        except (TypeError, ValueError) as exc:
            raise UsageError(f"malformed opbench calibration file: {exc}") from None


def read_calibration(path: Path) -> Calibration:
    """A calibration file (or `calibration.json` in a directory); a missing, unreadable or foreign one is a
    one-line UsageError."""
    _, _, data = load_document(Path(path), CALIBRATION)
    return Calibration.from_dict(data)


def load_calibration(info: dict[str, Any], path: Path | None = None) -> Calibration | None:
    """The stored calibration of the machine described by `info` (or the file `path`); None if there is none."""
    path = path or calibration_path(info)
    return read_calibration(path) if Path(path).is_file() else None


def save_calibration(info: dict[str, Any], devices: list[DeviceCalibration], path: Path | None = None) -> Path:
    """Merge `devices` into the machine's calibration file (a re-calibrated backend replaces its old entry)."""
    from opbench.results.files import atomic_write

    path = path or calibration_path(info)
    old = load_calibration(info, path)
    merged = dict(old.devices) if old else {}
    for d in devices:  # a re-calibrated figure replaces its old one; figures measured only before are kept
        before = merged.get(d.backend)
        if before is not None:
            matmul = {**before.matmul, **d.matmul}
            copy, read = d.copy or before.copy, d.read or before.read
            measured = {*matmul, *(["copy"] if copy else []), *(["read"] if read else [])}
            unsupported = {k: v for k, v in {**before.unsupported, **d.unsupported}.items() if k not in measured}
            d = replace(d, copy=copy, read=read, matmul=matmul, unsupported=unsupported)
        merged[d.backend] = d
    cal = Calibration(machine_fingerprint(info), info, merged)
    atomic_write(Path(path), json.dumps(cal.to_dict(), indent=1, default=str) + "\n")
    return Path(path)


# ----------------------------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class CalibrationSettings:
    copy_bytes: int | None = None  # default: 1 GiB on a GPU, 256 MiB on a CPU
    target_call_s: float = 0.05
    max_n: int = 16384
    min_n: int = 512
    budget_s: float = defaults.CALIBRATION_BUDGET_S
    dtypes: tuple[str, ...] = MATMUL_DTYPES


def calibrate_backend(backend: str | Backend, settings: CalibrationSettings | None = None,
                      log: Callable[[str], None] = lambda s: None) -> DeviceCalibration:
    """Measure one backend through the engine: a backend named is measured in its worker processes, a set-up
    `Backend` object in this process (tests, debugging), but for precision modes that need a process of their
    own. A probe or dtype the backend cannot run is recorded with its reason."""
    be = backend if isinstance(backend, Backend) else get_backend(backend)  # the adapter only, no framework
    settings = settings or CalibrationSettings()
    with Engine(in_process={be.name: be} if isinstance(backend, Backend) else None) as engine:
        free = engine.ask(be.name, free_memory, "reading free memory")
        default_copy = (1 << 30) if be.device_kind == "gpu" else (256 << 20)
        nbytes = settings.copy_bytes or default_copy
        if free is not None:
            nbytes = min(nbytes, free // 8)
        unsupported: dict[str, str] = {}
        streaming: dict[str, Ceiling | None] = {}
        for op in ("copy", "read"):
            log(f"{be.name}: {op} bandwidth ({nbytes / 2**20:.0f} MiB)")
            m = engine.run(Task(Probe(op, max(1, nbytes // 4)), be.name, "float32",
                                timing=TimingSettings(budget_s=settings.budget_s, min_samples=5), check="none"))
            streaming[op] = _ceiling(m, m.how) if m.timed else None
            if not m.timed:  # a framework without the op keeps the other as its memory ceiling
                unsupported[op] = m.error
                log(f"{be.name}: {op} bandwidth not measured: {m.error}")
        matmul: dict[str, Ceiling] = {}
        for dtype in settings.dtypes:
            tf32 = dtype == "tf32"
            mode = be.matmul_mode("TF32" if tf32 else "float32")  # every dtype but tf32 pinned to IEEE float32
            if mode is None:
                if not tf32:  # a device without TF32 has no tf32 figure to miss
                    unsupported[dtype] = f"{be.name} has no precision mode that keeps float32 matmuls IEEE"
                continue
            log(f"{be.name}: {dtype} matmul peak")
            peak, why = measure_matmul(engine, be.name, dtype, mode, settings, free)
            if peak is not None:
                matmul[dtype] = peak
            else:
                unsupported[dtype] = why
        versions = dict(engine.info(be.name).get("versions", {}))
    return DeviceCalibration(be.name, be.framework, be.device_kind, streaming["copy"], matmul, unsupported,
                             versions, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                             streaming["read"])


def _ceiling(m: Measurement, how: str) -> Ceiling:
    """A timed probe's ceiling: `size` is N for a matmul, the array's bytes for a copy or a read."""
    probe = m.task.subject
    assert isinstance(probe, Probe) and m.timing is not None
    rate, best = m.rates()
    size = probe.size if probe.op == "matmul" else 4 * probe.size
    return Ceiling(rate, best, m.timing.median_s * 1e3, size, probe.work, m.timing.n, how)


def measure_matmul(engine: Engine, backend: str, dtype: str, mode: str, settings: CalibrationSettings,
                   free_bytes: int | None) -> tuple[Ceiling | None, str]:
    """Peak GFLOP/s of a square matmul in `dtype` (`tf32`: float32 storage under the TF32 `mode`): every N of
    the doubling sequence is a task timed by the engine, and the best size's rate is the peak (see the module
    docstring). Returns (peak, "") or, when not even the first N could be measured, (None, why). A failure at
    a larger N (memory, time-out) ends the sequence; the sizes measured before it still count, and `how` says
    where it stopped."""
    storage = "float32" if dtype == "tf32" else dtype
    itemsize = 2 if storage in ("float16", "bfloat16") else np.dtype(storage).itemsize
    tried: list[Ceiling] = []
    stopped = ""
    n = settings.min_n
    while True:
        m = engine.run(Task(Probe("matmul", n), backend, storage, timing=TimingSettings(budget_s=settings.budget_s,
                                                                                        min_samples=5),
                            precision_mode=mode, check="none"))
        if not m.timed:
            stopped = f"N = {n}: {m.error}"
            break
        assert m.timing is not None
        how = f"{n}x{n} @ {n}x{n}" + (" (float32 storage, TF32 tensor cores)" if dtype == "tf32" else "")
        tried.append(_ceiling(m, how))
        bigger = 2 * n
        fits = free_bytes is None or 3 * bigger * bigger * itemsize < free_bytes // 4
        if m.timing.median_s >= settings.target_call_s or bigger > settings.max_n or not fits:
            break
        n = bigger
    if not tried:
        return None, stopped
    peak = max(tried, key=lambda c: c.best_rate)
    sizes = ", ".join(f"{c.size}: {c.best_rate:,.0f}" for c in tried)
    return Ceiling(peak.rate, peak.best_rate, peak.median_ms, peak.size, peak.work, peak.samples,
                   f"{peak.how}; best of N (GFLOP/s) {sizes}" + (f"; stopped at {stopped}" if stopped else "")), ""
