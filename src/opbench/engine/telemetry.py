"""What the device was doing while a result was measured: GPU clocks, power, temperature, throttling and energy
(NVML, `opbench.engine.nvml`), the CPU's frequency, and the case's peak memory.

`CaseTelemetry` brackets one result's measurement in the worker. A daemon thread samples every
`SAMPLE_INTERVAL_S`: the GPU through NVML (on GPU backends, when pynvml and a driver are there), the CPU
frequency and this process's resident memory through psutil. The timing engine calls `region` at the start and
end of its samples (`timing.measure`), so clock statistics describe the timed region only (plus one reading at
each end, so a region shorter than the interval still has two), and the NVML total energy counter is read at
both ends: energy per call = energy / calls, kept only when the region lasted `ENERGY_MIN_REGION_S` or more
(the counter's resolution; the engine lengthens regions to that when NVML is present, see
`TimingSettings.min_region_s`) and the mode's region holds only the op's own work (not for `cold`, whose
flushes are inside it, nor for a CUPTI-profiled `device` region, whose profiler start and stop are).

Flags (`gpu_flag`): a result is flagged when a sample inside its region saw a slowing throttle reason
(`nvml.THROTTLE_REASONS`: power cap, thermal, hardware slowdown or power brake), or when its median SM clock was
under `LOW_CLOCK_SHARE` (90 %) of the highest median SM clock this worker process has seen under load (the
clock "seen under load"). Tables mark it `MARK_GPU` and say why under the table (`gpu_warning`).

Peak memory: the framework's own device counter where it has one (`Backend.peak_memory`: torch's
`max_memory_allocated`, `mx.get_peak_memory`, JAX's `peak_bytes_in_use`), reset before the case; on CPU
backends the peak resident memory of the worker (Linux: `VmHWM` after resetting it through
`/proc/self/clear_refs`, which needs no root; elsewhere the largest sampled RSS).

Trade-off: a sampling thread takes the GIL for a few microseconds per sample (NVML calls release it), under
0.1 % of a host-bound loop at a 20 ms interval; samples are coarse (20 ms), so a throttle event shorter than
that between two samples can go unseen (NVML's reasons are sticky for a while, which narrows the gap).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SAMPLE_INTERVAL_S = 0.02
ENERGY_MIN_REGION_S = 0.1
LOW_CLOCK_SHARE = 0.90
MARK_GPU = "°"

_GPU_UNSET: Any = object()
_gpu: Any = _GPU_UNSET  # this process's NVML handle (opened on first use), or None
_load_sm_mhz = 0.0  # the highest median SM clock seen under load in this process


def process_gpu() -> Any:
    """This worker's `nvml.GPU`, opened once, or None."""
    global _gpu
    if _gpu is _GPU_UNSET:
        from opbench.engine.nvml import open_gpu

        _gpu = open_gpu()
    return _gpu


def set_process_gpu(gpu: Any) -> None:
    """Replace this process's GPU handle (tests inject a fake NVML; None switches readings off)."""
    global _gpu, _load_sm_mhz
    _gpu, _load_sm_mhz = gpu, 0.0


def energy_applies(mode: str, method: str) -> bool:
    """Whether a mode's timed region holds only the op's own work, so its energy is the op's."""
    return mode != "cold" and "CUPTI" not in method


def _reset_peak_rss() -> bool:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
        return True
    return False


def _peak_rss() -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def _median(values: Sequence[float]) -> float:
    xs = sorted(values)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


class CaseTelemetry:
    """Samples while one result is measured (module docstring); `conditions()` is what it saw."""

    def __init__(self, backend: Any, gpu: Any = None) -> None:
        self.backend = backend
        self.gpu = gpu
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._in_region = False
        self._gpu_samples: list[dict[str, float]] = []
        self._cpu_mhz: list[float] = []
        self._rss: list[int] = []
        self._energy: list[tuple[float, int]] = []  # (perf_counter, mJ) at region start and end
        self._region: tuple[float, float, int] | None = None  # (start, end, calls)
        self._hwm = False
        self._thread: threading.Thread | None = None
        import psutil

        self._process = psutil.Process()
        self._psutil = psutil

    # --- the bracket ---------------------------------------------------------------------------------------
    def __enter__(self) -> CaseTelemetry:
        with contextlib.suppress(Exception):
            self.backend.reset_peak_memory()
        self._hwm = self.backend.device_kind == "cpu" and _reset_peak_rss()
        self._thread = threading.Thread(target=self._run, daemon=True, name="opbench-telemetry")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def region(self, what: str, calls: int) -> None:
        """The timing engine's bracket of its samples: `start`, then `end` with the calls made in between."""
        now = time.perf_counter()
        self._sample_once(force_gpu=True)
        energy = self.gpu.energy_mj() if self.gpu is not None else None
        with self._lock:
            if what == "start":
                self._in_region = True
                self._region_start = now
                self._energy = [(now, energy)] if energy is not None else []
            else:
                self._in_region = False
                self._region = (getattr(self, "_region_start", now), now, calls)
                if energy is not None and self._energy:
                    self._energy.append((now, energy))

    # --- sampling ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self._sample_once()

    def _sample_once(self, force_gpu: bool = False) -> None:
        with contextlib.suppress(Exception):
            rss = int(self._process.memory_info().rss)
            with self._lock:
                self._rss.append(rss)
        if not (self._in_region or force_gpu):
            return
        with contextlib.suppress(Exception):
            f = self._psutil.cpu_freq()
            if f is not None and f.current:
                with self._lock:
                    self._cpu_mhz.append(float(f.current))
        if self.gpu is not None:
            reading = self.gpu.read()
            if reading:
                with self._lock:
                    self._gpu_samples.append(reading)

    # --- what it saw ---------------------------------------------------------------------------------------
    def conditions(self, mode: str = "throughput", method: str = "") -> dict[str, Any]:
        """The readings as flat `conditions` fields of a result (absent where nothing was read)."""
        global _load_sm_mhz
        out: dict[str, Any] = {}
        peak = None
        with contextlib.suppress(Exception):
            peak = self.backend.peak_memory()
        if peak is not None:
            out["peak_memory_bytes"], out["peak_memory_source"] = int(peak[0]), peak[1]
        rss = _peak_rss() if self._hwm else None
        if rss is None and self._rss:
            rss = max(self._rss)
        if rss is not None:
            out["host_rss_peak_bytes"] = int(rss)
            if peak is None and self.backend.device_kind == "cpu":
                out["peak_memory_bytes"] = int(rss)
                out["peak_memory_source"] = "resident memory (VmHWM)" if self._hwm else "resident memory (psutil)"
        if self._cpu_mhz:
            out["cpu_mhz_min"] = round(min(self._cpu_mhz), 1)
        samples = self._gpu_samples
        if samples:
            sm = [s["sm_mhz"] for s in samples if "sm_mhz" in s]
            mem = [s["mem_mhz"] for s in samples if "mem_mhz" in s]
            power = [s["power_w"] for s in samples if "power_w" in s]
            temp = [s["temp_c"] for s in samples if "temp_c" in s]
            out["gpu_samples"] = len(samples)
            if sm:
                median_sm = _median(sm)
                _load_sm_mhz = max(_load_sm_mhz, median_sm)
                out.update(gpu_sm_mhz=round(median_sm, 1), gpu_sm_mhz_min=round(min(sm), 1),
                           gpu_load_sm_mhz=round(_load_sm_mhz, 1),
                           gpu_clock_low=bool(median_sm < LOW_CLOCK_SHARE * _load_sm_mhz))
            if mem:
                out["gpu_mem_mhz"] = round(_median(mem), 1)
            if power:
                out["gpu_power_w"], out["gpu_power_w_max"] = round(_median(power), 1), round(max(power), 1)
            if temp:
                out["gpu_temp_c_max"] = round(max(temp), 1)
            from opbench.engine.nvml import throttle_names

            mask = 0
            for s in samples:
                mask |= int(s.get("reasons", 0))
            out["gpu_throttle"] = throttle_names(mask)
        if len(self._energy) == 2 and self._region is not None:
            (_, e0), (_, e1) = self._energy
            start, end, calls = self._region
            out["energy_region_s"] = round(end - start, 4)
            if end - start >= ENERGY_MIN_REGION_S and calls > 0 and e1 >= e0 and energy_applies(mode, method):
                out["energy_j_per_call"] = (e1 - e0) / 1e3 / calls
        return out


# ------------------------------------------------------------------------------------------------ reading it


def gpu_flag(conditions: Mapping[str, Any]) -> str:
    """Why a result's GPU readings make it suspect ('' when they do not): throttle reasons seen, or a median
    SM clock under 90 % of the clock seen under load."""
    reasons = [str(r) for r in conditions.get("gpu_throttle") or ()]
    parts = [f"throttled ({', '.join(reasons)})"] if reasons else []
    if conditions.get("gpu_clock_low"):
        parts.append(f"SM clock {conditions.get('gpu_sm_mhz', 0):g} MHz < {LOW_CLOCK_SHARE:.0%} of "
                     f"{conditions.get('gpu_load_sm_mhz', 0):g} MHz seen under load")
    return "; ".join(parts)


def gpu_warning(results: Sequence[Any]) -> str | None:
    """One line when any timed result was flagged (`gpu_flag`): how many, where, and why."""
    flagged = [(r, gpu_flag(r.conditions)) for r in results if r.timed and gpu_flag(r.conditions)]
    if not flagged:
        return None
    per_backend = ", ".join(f"{b} {sum(r.backend == b for r, _ in flagged)}"
                            for b in dict.fromkeys(r.backend for r, _ in flagged))
    reasons = sorted({x for r, _ in flagged for x in r.conditions.get("gpu_throttle") or ()})
    low = sum(bool(r.conditions.get("gpu_clock_low")) for r, _ in flagged)
    why = ", ".join(p for p in (f"throttle reasons {', '.join(reasons)}" if reasons else "",
                                f"{low} below {LOW_CLOCK_SHARE:.0%} of the clock seen under load" if low else "")
                    if p)
    return (f"the GPU was slowed while {len(flagged)} timed results were measured ({per_backend}): {why}; "
            f"they are marked {MARK_GPU}")


def format_bytes(n: float | None) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "–"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


# Merging the conditions of two passes of one result (`passes.combine`): the worse reading wins.
_MERGE_MIN = ("gpu_sm_mhz", "gpu_sm_mhz_min", "cpu_mhz_min")
_MERGE_MAX = ("gpu_load_sm_mhz", "gpu_power_w_max", "gpu_temp_c_max", "host_rss_peak_bytes", "gpu_power_w")


def merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The conditions of two passes as one: the busier pass's CPU readings (`contention.busiest`), then the
    lowest clocks, the highest temperature, power and memory, every throttle reason either saw, a low clock if
    either had one, the mean energy per call, and the counts (GPU samples, verdicts from the device fingerprint)
    summed."""
    from opbench.engine.contention import busiest
    from opbench.engine.verdict_cache import FINGERPRINT_HITS

    out = busiest(a, b)
    for key in _MERGE_MIN:
        values = [c[key] for c in (a, b) if isinstance(c.get(key), (int, float))]
        if values:
            out[key] = min(values)
    for key in _MERGE_MAX:
        values = [c[key] for c in (a, b) if isinstance(c.get(key), (int, float))]
        if values:
            out[key] = max(values)
    peaks = [c for c in (a, b) if isinstance(c.get("peak_memory_bytes"), (int, float))]
    if peaks:
        top = max(peaks, key=lambda c: c["peak_memory_bytes"])
        out["peak_memory_bytes"] = top["peak_memory_bytes"]
        if "peak_memory_source" in top:
            out["peak_memory_source"] = top["peak_memory_source"]
    if "gpu_throttle" in a or "gpu_throttle" in b:
        out["gpu_throttle"] = sorted(set(a.get("gpu_throttle") or ()) | set(b.get("gpu_throttle") or ()))
    if "gpu_clock_low" in a or "gpu_clock_low" in b:
        out["gpu_clock_low"] = bool(a.get("gpu_clock_low") or b.get("gpu_clock_low"))
    energies = [c["energy_j_per_call"] for c in (a, b) if isinstance(c.get("energy_j_per_call"), (int, float))]
    if energies:
        out["energy_j_per_call"] = sum(energies) / len(energies)
    elif "energy_j_per_call" in out:
        del out["energy_j_per_call"]
    for key in ("gpu_samples", FINGERPRINT_HITS):  # counts: summed over passes
        if key in a or key in b:
            out[key] = int(a.get(key, 0)) + int(b.get(key, 0))
    return out
