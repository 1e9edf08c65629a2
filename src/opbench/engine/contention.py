"""How busy the machine was while a case was timed: other processes' CPU use, load average, CPU frequency.

`watch()` brackets a measurement. It reads the machine's CPU times and this process's own CPU times (psutil)
before and after; the busy time the machine spent outside this process, divided by the wall time, is how
many cores other processes (and, in a VM, the hypervisor's steal) took on average while the samples were
drawn. The 1-minute load average and the current and maximum CPU frequency are read at the end.

A result is `busy` (`results.model.is_busy`) when other processes took at least `BUSY_OTHER_CORES` cores or
`BUSY_SHARE` of the machine's cores, whichever is more: its samples may be inflated by contention (the seed's
numbers come from an idle laptop), so tables mark it and speedups from it are marked too (`MARK_BUSY`).

Trade-off: CPU times tick at the scheduler's granularity (~10 ms), so a measurement shorter than
`MIN_WALL_S` gets no reading rather than a wrong one; the share counts every other process, including an
idle-priority one that would have yielded the CPU, so it can only overstate contention, never hide it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opbench.results.model import is_busy

MARK_BUSY = "‡"
MIN_WALL_S = 0.05


def _busy_seconds() -> float | None:
    import psutil

    try:
        t = psutil.cpu_times()
    except Exception:
        return None
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)  # guest time is in user


def _own_seconds() -> float | None:
    import psutil

    try:
        t = psutil.Process().cpu_times()
    except Exception:
        return None
    return t.user + t.system + t.children_user + t.children_system


def _frequency() -> dict[str, float]:
    import psutil

    try:
        f = psutil.cpu_freq()
    except Exception:  # psutil raises on some VMs and containers without cpufreq
        return {}
    if f is None or not f.current:
        return {}
    return {"cpu_mhz": round(f.current, 1), **({"cpu_max_mhz": round(f.max, 1)} if f.max else {})}


def _load_average() -> dict[str, float]:
    import psutil

    try:
        return {"load_avg_1m": round(psutil.getloadavg()[0], 2)}
    except Exception:
        return {}


@contextlib.contextmanager
def watch() -> Iterator[dict[str, Any]]:
    """Yield a dict that, after the block, holds `other_cpu_cores` (if the block lasted MIN_WALL_S or more),
    `cpus`, `load_avg_1m`, `cpu_mhz` and `cpu_max_mhz` where this platform reports them."""
    import psutil

    reading: dict[str, Any] = {}
    start, busy0, own0 = time.perf_counter(), _busy_seconds(), _own_seconds()
    try:
        yield reading
    finally:
        wall, busy1, own1 = time.perf_counter() - start, _busy_seconds(), _own_seconds()
        reading["cpus"] = psutil.cpu_count() or 1
        if wall >= MIN_WALL_S and None not in (busy0, busy1, own0, own1):
            others = (busy1 - busy0) - (own1 - own0)  # type: ignore[operator]
            reading["other_cpu_cores"] = round(max(0.0, others / wall), 2)
        reading.update(_load_average())
        reading.update(_frequency())


def busiest(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The conditions of the busier of two passes of one case (the one that distorted it most)."""
    return dict(max((a, b), key=lambda c: c.get("other_cpu_cores", -1.0)))


def busy_warning(results: Sequence[Any]) -> str | None:
    """One line when any result was measured on a busy machine: how many, on which backends, how busy."""
    busy = [r for r in results if r.timed and is_busy(r.conditions)]
    if not busy:
        return None
    per_backend = ", ".join(f"{b} {sum(r.backend == b for r in busy)}" for b in dict.fromkeys(r.backend for r in busy))
    others = max(r.conditions["other_cpu_cores"] for r in busy)
    loads = [r.conditions["load_avg_1m"] for r in busy if "load_avg_1m" in r.conditions]
    load = f", load average up to {max(loads):.1f} on {busy[0].conditions.get('cpus', '?')} CPUs" if loads else ""
    timed = sum(r.timed for r in results)
    return (f"the machine was busy: other processes took up to {others:.1f} cores{load} while {len(busy)} of "
            f"{timed} timed results were measured ({per_backend}); their times and speedups are marked "
            f"{MARK_BUSY} and may be inflated: measure again on an idle machine")
