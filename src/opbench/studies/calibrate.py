"""Calibration: the practical ceilings of each device, measured with that device's own framework.

Two figures per backend, both timed by the core engine (`opbench.engine.timing.measure`, blocked samples); the
ceiling is the fastest sample's rate, the median's is kept beside it (`Ceiling` says why):

- **Memory bandwidth** from a large device-to-device copy: `bytes read + bytes written` (2 x the array size)
  per second. torch copies with `Tensor.copy_` into a preallocated tensor (`clone()` on a CPU would time the
  page faults of a fresh 256 MiB allocation per call, about 3x slower); MLX has no explicit copy op
  (`mx.array(x)` may go through the host), so it streams `x + 0`, and JAX streams `jit(x + 1)` (XLA may elide
  a plain copy): both move the same bytes as a copy, and their allocators reuse cached buffers. The array is
  1 GiB on a GPU and 256 MiB on a CPU (both capped at 1/8 of free memory): larger than the caches.
- **Read bandwidth** from a full sum of the same array: its bytes per second, read only. A copy pays for its
  writes (on a CPU a write also reads the line first, which the 2x count does not see), so read-mostly cases
  (reductions) run above the copy rate; the memory ceiling (`DeviceCalibration.bandwidth_gbs`) is the higher
  of the two, the fastest the device was seen to move bytes.
- **Peak matmul throughput** per dtype (float32, float16, bfloat16 where the backend supports them; for torch
  CUDA and JAX on an NVIDIA GPU also `tf32`, float32 storage on TensorFloat-32 tensor cores; `float32` itself
  is pinned to strict IEEE precision) from a square N x N @ N x N matmul at 2·N³ FLOP. N starts at 512 and
  doubles until one call takes `target_call_s` or N reaches `max_n` (or memory runs short); every N is timed
  and the best one is the peak (a CPU's rate still climbs past the first N that takes 50 ms).
  Trade-off: larger N come closer to the plateau but cost calibration time; stopping at ~50 ms per call
  keeps each dtype to seconds.

These are practical ceilings (what the framework's best kernel achieves), not datasheet numbers; a case can
therefore land near, but should never be far above, 100 % of them. Results are stored per machine in a JSON
file under the user data directory, keyed by a fingerprint of the hardware (`machine_fingerprint`), so that
every later run on the same machine finds them. `OPBENCH_DATA_DIR` overrides the directory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from opbench.backends import Backend
from opbench.engine.timing import TimingSettings, measure
from opbench.errors import UsageError
from opbench.results.model import check_header

FORMAT_NAME = "opbench-calibration"
# Calibration file versions: 1 - first version (per backend: copy bandwidth, matmul peak per dtype); files
# without the later optional `read` ceiling read as such (memory ceiling = copy).
SCHEMA_VERSION = 1

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
    def from_dict(cls, d: dict[str, Any]) -> DeviceCalibration:
        copy = Ceiling(**d["copy"]) if d.get("copy") else None
        matmul = {k: Ceiling(**v) for k, v in d.get("matmul", {}).items()}
        rest = {k: d[k] for k in ("unsupported", "versions", "created") if k in d}
        read = Ceiling(**d["read"]) if d.get("read") else None
        return cls(d["backend"], d["framework"], d["device_kind"], copy, matmul, read=read, **rest)


# ------------------------------------------------------------------------------------------------- storage


def machine_fingerprint(info: dict[str, Any]) -> str:
    """16 hex digits from the hardware keys of `machine.collect()` (GPU names and memory included)."""
    key = {k: info.get(k) for k in FINGERPRINT_KEYS}
    key["gpus"] = [{"name": g.get("name"), "memory_gb": g.get("memory_gb")} for g in info.get("gpus", [])]
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_dir() -> Path:
    """`$OPBENCH_DATA_DIR`, else opbench's per-user data directory as platformdirs defines it
    (`$XDG_DATA_HOME/opbench` or `~/.local/share/opbench`, `~/Library/Application Support/opbench`,
    `%LOCALAPPDATA%\\opbench`)."""
    if os.environ.get("OPBENCH_DATA_DIR"):
        return Path(os.environ["OPBENCH_DATA_DIR"])
    from platformdirs import user_data_path

    return user_data_path("opbench", appauthor=False)


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
        return {"format": FORMAT_NAME, "schema_version": SCHEMA_VERSION, "fingerprint": self.fingerprint,
                "machine": self.machine, "devices": {k: v.to_dict() for k, v in self.devices.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        check_header(d, FORMAT_NAME, SCHEMA_VERSION, "calibration")
        try:
            devices = {k: DeviceCalibration.from_dict(v) for k, v in d["devices"].items()}
            return cls(d["fingerprint"], d.get("machine", {}), devices)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"malformed opbench calibration file: {exc}") from None


def read_calibration(path: Path) -> Calibration:
    """A calibration file (or `calibration.json` in a directory); a missing, unreadable or foreign one is a
    one-line UsageError."""
    from opbench.results.files import read_document

    _, data = read_document(Path(path), "calibration.json", "calibration", FORMAT_NAME, SCHEMA_VERSION,
                            "write one with `opbench calibrate --out FILE`")
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
    for d in devices:  # a re-calibrated dtype replaces its old figure; dtypes measured only before are kept
        before = merged.get(d.backend)
        if before is not None:
            matmul = {**before.matmul, **d.matmul}
            unsupported = {k: v for k, v in {**before.unsupported, **d.unsupported}.items() if k not in matmul}
            d = replace(d, matmul=matmul, unsupported=unsupported)
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
    budget_s: float = 1.0
    dtypes: tuple[str, ...] = MATMUL_DTYPES


def _rate(work: float, timing: Any, unit: float) -> tuple[float, float]:
    return work / timing.median_s / unit, work / timing.min_s / unit


def measure_copy(backend: Backend, nbytes: int, budget_s: float = 1.0) -> Ceiling:
    """Bandwidth of a device-to-device copy of `nbytes` float32 bytes: 2·nbytes per call (read + write)."""
    return _streaming_ceiling(backend, nbytes, _copy_op, 2.0, budget_s)


def measure_read(backend: Backend, nbytes: int, budget_s: float = 1.0) -> Ceiling:
    """Bandwidth of a full float32 sum of `nbytes` bytes: nbytes per call, read only (see the module doc)."""
    return _streaming_ceiling(backend, nbytes, _sum_op, 1.0, budget_s)


def _copy_op(backend: Backend, x: Any) -> tuple[Callable[[Any], Any], str]:
    if backend.framework == "mlx":
        return (lambda a: a + 0), "x + 0 (mlx has no explicit copy)"
    if backend.framework == "torch":
        dst = x.new_empty(x.shape)  # preallocated: a fresh output per call would time page faults on a CPU
        return dst.copy_, "Tensor.copy_ into a preallocated tensor"
    if backend.framework == "jax":
        import jax

        return jax.jit(lambda a: a + 1), "jit(x + 1) (XLA may elide a plain copy)"
    return _generic_copy(backend), "framework copy"


def _sum_op(backend: Backend, x: Any) -> tuple[Callable[[Any], Any], str]:
    if backend.framework == "mlx":
        import mlx.core as mx

        return mx.sum, "mx.sum(x)"
    if backend.framework == "torch":
        import torch

        return torch.sum, "torch.sum(x)"
    if backend.framework == "jax":
        import jax
        import jax.numpy as jnp

        return jax.jit(jnp.sum), "jit(jnp.sum)(x)"
    raise UsageError(f"{backend.name}: no sum operation known for framework {backend.framework}")


def _streaming_ceiling(backend: Backend, nbytes: int, make_op: Callable[[Backend, Any], tuple[Callable, str]],
                       passes: float, budget_s: float) -> Ceiling:
    """Time `op(x)` on a float32 array x of `nbytes` bytes with the engine; `passes` x nbytes are moved per call.
    The array and the op are freed (and the framework's cache released) before returning."""
    n = max(1, nbytes // 4)
    x = backend.from_numpy(np.ones(n, dtype=np.float32))
    backend.sync()
    try:
        op, how = make_op(backend, x)
        timing, last = measure(op, (x,), backend, TimingSettings(budget_s=budget_s, min_samples=5),
                               fresh_outputs=False)  # a copy into one preallocated buffer
        del last, op
    finally:
        del x
        _release(backend)
    work = passes * n * 4
    rate, best = _rate(work, timing, 1e9)
    return Ceiling(rate, best, timing.median_s * 1e3, n * 4, work, timing.n, how)


def _generic_copy(backend: Backend) -> Callable[[Any], Any]:
    copy = getattr(backend, "copy", None)
    if copy is None:
        raise UsageError(f"{backend.name}: no copy operation known for framework {backend.framework}")
    return copy


@contextlib.contextmanager
def _matmul_mode(backend: Backend, dtype: str) -> Iterator[str]:
    """Yield the storage dtype for `dtype`; for torch and JAX, pin the float32 matmul precision (strict or
    TF32) and restore it afterwards."""
    if backend.framework == "jax":
        import jax

        with jax.default_matmul_precision("tensorfloat32" if dtype == "tf32" else "highest"):
            yield "float32" if dtype == "tf32" else dtype
        return
    if backend.framework != "torch":
        yield dtype
        return
    import torch

    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if dtype == "tf32" else "highest")
    try:
        yield "float32" if dtype == "tf32" else dtype
    finally:
        torch.set_float32_matmul_precision(before)


def _matmul_op(backend: Backend) -> Callable[[Any, Any], Any]:
    if backend.framework == "mlx":
        import mlx.core as mx

        return mx.matmul
    if backend.framework == "jax":  # a fresh jit, traced (on its first call) under the precision in force
        import jax

        return jax.jit(lambda a, b: a @ b)
    return lambda a, b: a @ b


def _supports_tf32(backend: Backend) -> bool:
    """TF32 is a CUDA tensor-core mode, reachable from torch CUDA, JAX and MLX on an NVIDIA GPU."""
    if backend.framework == "torch":
        return backend.device_kind == "gpu" and getattr(backend, "device", "") == "cuda"
    return (backend.framework == "jax" and backend.device_kind == "gpu") or _mlx_cuda_tf32(backend) is not None


def _mlx_cuda_tf32(backend: Backend) -> bool | None:
    """For MLX on a CUDA GPU, whether float32 matmuls run on TF32 (`MLX_ENABLE_TF32`, default 1, has no
    in-process switch); None for every other backend (Metal has no TF32)."""
    if backend.framework != "mlx" or backend.device_kind != "gpu" or sys.platform == "darwin":
        return None
    return os.environ.get("MLX_ENABLE_TF32", "1") != "0"


def measure_matmul(backend: Backend, dtype: str, settings: CalibrationSettings, free_bytes: int | None) -> Ceiling:
    """Peak GFLOP/s of a square matmul in `dtype`: every N of the doubling sequence is timed by the engine
    (median), and the best size's rate is the peak (see the module docstring)."""
    from opbench.catalog._case import Case

    tried: list[Ceiling] = []
    with _matmul_mode(backend, dtype) as storage:
        itemsize = 2 if storage in ("float16", "bfloat16") else np.dtype(storage).itemsize
        op = _matmul_op(backend)
        n = settings.min_n
        while True:
            a, b = _square_inputs(backend, n, storage)
            try:
                timing, out = measure(op, (a, b), backend,
                                      TimingSettings(budget_s=settings.budget_s, min_samples=5))
                del out
            finally:
                del a, b
                _release(backend)
            work = float(Case("MatMul", ((n, n), (n, n))).flops)
            rate, best = _rate(work, timing, 1e9)
            how = f"{n}x{n} @ {n}x{n}" + (" (float32 storage, TF32 tensor cores)" if dtype == "tf32" else "")
            tried.append(Ceiling(rate, best, timing.median_s * 1e3, n, work, timing.n, how))
            bigger = 2 * n
            fits = free_bytes is None or 3 * bigger * bigger * itemsize < free_bytes // 4
            if timing.median_s >= settings.target_call_s or bigger > settings.max_n or not fits:
                break
            n = bigger
    peak = max(tried, key=lambda c: c.best_rate)
    sizes = ", ".join(f"{c.size}: {c.best_rate:,.0f}" for c in tried)
    return Ceiling(peak.rate, peak.best_rate, peak.median_ms, peak.size, peak.work, peak.samples,
                   f"{peak.how}; best of N (GFLOP/s) {sizes}")


# Length of the random block the calibration operands are tiled from: about 2^20 values, and prime, so that no
# two rows of an N x N operand start at the same offset (every row differs).
_BLOCK = 1_048_573


def _square_inputs(backend: Backend, n: int, dtype: str) -> tuple[Any, Any]:
    """N x N operands tiled from seeded blocks of standard-normal float32 values, converted to `dtype` by the
    backend itself. Trade-off: no check needs exact inputs here, and drawing 2·N² normal values costs seconds
    per size and dtype at N = 16384 (about 4x the tiling); tiled random data keeps the bit patterns, and so the
    tensor cores' power draw, like random data's, where constant operands could run at higher clocks."""
    rng = np.random.default_rng(0)
    a = np.resize(rng.standard_normal(_BLOCK, dtype=np.float32), (n, n))
    b = np.resize(rng.standard_normal(_BLOCK, dtype=np.float32), (n, n))
    xa, xb = backend.from_numpy(a, dtype), backend.from_numpy(b, dtype)
    backend.sync()
    return xa, xb


def _release(backend: Backend) -> None:
    gc.collect()
    with contextlib.suppress(Exception):
        backend.release()


def calibrate_backend(backend: Backend, settings: CalibrationSettings | None = None,
                      log: Callable[[str], None] = lambda s: None) -> DeviceCalibration:
    """Measure one (already set-up) backend. A dtype the backend cannot run is recorded with its reason."""
    from opbench.studies.sweep import free_memory

    settings = settings or CalibrationSettings()
    free = free_memory(backend)
    default_copy = (1 << 30) if backend.device_kind == "gpu" else (256 << 20)
    nbytes = settings.copy_bytes or default_copy
    if free is not None:
        nbytes = min(nbytes, free // 8)
    log(f"{backend.name}: copy bandwidth ({nbytes / 2**20:.0f} MiB)")
    copy = measure_copy(backend, nbytes, settings.budget_s)
    log(f"{backend.name}: read bandwidth ({nbytes / 2**20:.0f} MiB)")
    try:
        read = measure_read(backend, nbytes, settings.budget_s)
    except Exception as exc:  # a framework without a usable sum keeps the copy as its memory ceiling
        log(f"{backend.name}: read bandwidth not measured: {type(exc).__name__}: {exc}".splitlines()[0])
        read = None
    matmul: dict[str, Ceiling] = {}
    unsupported: dict[str, str] = {}
    mlx_tf32 = _mlx_cuda_tf32(backend)
    for dtype in settings.dtypes:
        if dtype == "tf32" and not _supports_tf32(backend):
            continue
        if dtype in ("float32", "tf32") and mlx_tf32 is not None:
            # MLX on CUDA: MLX_ENABLE_TF32 (read once per process, default 1) decides what float32 runs on
            if (dtype == "tf32") != mlx_tf32:
                unsupported[dtype] = (f"MLX_ENABLE_TF32={'1' if mlx_tf32 else '0'} in this process; run "
                                      f"`MLX_ENABLE_TF32={'0' if mlx_tf32 else '1'} opbench calibrate --backends "
                                      f"{backend.name}` to add the {dtype} peak")
                continue
            log(f"{backend.name}: {dtype} matmul peak")
            try:
                matmul[dtype] = measure_matmul(backend, "float32", settings, free)
            except Exception as exc:
                unsupported[dtype] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                _release(backend)
            continue
        log(f"{backend.name}: {dtype} matmul peak")
        try:
            matmul[dtype] = measure_matmul(backend, dtype, settings, free)
        except Exception as exc:  # a dtype the device or framework lacks: recorded, not fatal
            unsupported[dtype] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            _release(backend)
    return DeviceCalibration(backend.name, backend.framework, backend.device_kind, copy, matmul, unsupported,
                             backend.versions(), dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                             read)
