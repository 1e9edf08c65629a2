"""Timing modes: what a time per call means, and how the engine takes it in each mode.

A time means little without how it was taken, and the methods disagree most where host dispatch dominates
(an MLX Sigmoid on the H200: 0.073 ms with a sync per call, 0.025 ms with one sync per block). So every result
records its mode (part of its identity: tables, compare and resume never mix two modes) and the method that
produced its number:

- `throughput` (default): blocks of back-to-back calls, one device sync per block; time = block / calls.
  What a pipeline of independent ops costs: host dispatch overlaps device work.
- `latency`: every call forced and synchronized on its own, the seed article's and mlx-benchmark's method
  (their tables are reproduced like for like in this mode). Includes one dispatch and one sync per call.
- `device`: device time only, no host dispatch, by the best method the backend has (`Backend.device_timer`):
  CUDA-graph replay timed with CUDA events for torch on CUDA (the second of two back-to-back replays is timed,
  so the graph launch is hidden behind the first); CUPTI kernel time through `torch.profiler` for frameworks
  without a graph capture of their own (MLX, JAX): the union of the device intervals of every kernel, copy and
  memset recorded while `n` back-to-back calls run, divided by `n`. CUPTI's `cuptiActivityEnable`, which
  kineto (torch.profiler) calls, enables a record kind for every context of the process (the per-context
  variant is `cuptiActivityEnableContext`), so kernels that MLX or JAX launch in the same process are recorded
  too; `benchmarks/h200_modes.sh` checks that on the GPU (kernel counts per backend) and checks both methods
  against CUDA events on torch. A profile that records no device activity is an error, never a zero time.
  Trade-off: graph replay removes launch gaps but needs capturable ops; kernel time sums device busy time and
  so ignores gaps between kernels that a real stream would have.
- `cold`: like `latency`, but the caches are flushed before every call, outside the timed region (as triton's
  `do_bench` and nvbench do): on a GPU by writing a buffer larger than its L2, on a CPU by writing a buffer
  larger than its last-level cache (`cpu_flush_bytes`).

A mode that does not apply to a backend gives a result that says why (`n/a: CPU` for `device` on a CPU
backend), never a time taken another way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

MODES: dict[str, str] = {
    "throughput": "back-to-back calls, one sync per block",
    "latency": "one call, forced and synchronized, per sample",
    "device": "device time only (no host dispatch)",
    "cold": "one call per sample, caches flushed before it",
}
DEFAULT_MODE = "throughput"
NOT_APPLICABLE = "n/a"

# A flush writes at least this much (triton's do_bench: 256 MB; larger than any GPU's L2 today).
GPU_FLUSH_BYTES = 256 << 20
CPU_FLUSH_MIN_BYTES = 64 << 20
# A CUDA graph holds about this much device time per replay (it is replayed twice per sample).
GRAPH_TARGET_S = 0.002
MAX_GRAPH_CALLS = 2000
# Calls per profiled sample: kineto's post-processing costs about a microsecond per recorded event, so a
# sample of thousands of tiny calls would cost more in processing than in timing; 256 calls of a kernel each
# still cover far more than CUPTI's timestamp resolution.
MAX_PROFILED_CALLS = 256


class ModeNotApplicable(Exception):
    """This mode cannot be measured on this backend; the message is the short reason (`CPU`)."""


def parse_modes(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """`latency,throughput` -> ('throughput', 'latency'): known modes, deduplicated, in `MODES` order (the
    cheapest first, `cold` last since its flushes disturb the caches); None or empty -> the default."""
    from opbench.errors import UsageError, unknown

    if text is None:
        return (DEFAULT_MODE,)
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n and n.strip()]
    if not names:
        raise UsageError(f"no mode named in {text!r}; valid choices: {', '.join(MODES)}")
    for name in names:
        if name not in MODES:
            raise unknown("mode", name, list(MODES))
    order = list(MODES)
    return tuple(sorted(dict.fromkeys(names), key=order.index))


def not_applicable_error(reason: str) -> str:
    """The error text of a result whose mode does not apply: `n/a: CPU`; the cell shows it as it is."""
    return f"{NOT_APPLICABLE}: {reason}"


def is_not_applicable(error: str) -> bool:
    return error.startswith(f"{NOT_APPLICABLE}:")


def short_reason(error: str) -> str:
    """The cell text of a not-applicable result: `n/a: CPU (device time needs a GPU)` -> `n/a: CPU`."""
    return error.split(" (", 1)[0].split(";", 1)[0]


# ------------------------------------------------------------------------------------------------ CPU caches


def last_level_cache_bytes() -> int | None:
    """The size of one last-level CPU cache (Linux sysfs, readable without root; `sysctl` names on macOS), or
    None where the platform does not say."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    best: tuple[int, int] | None = None
    with contextlib.suppress(OSError, ValueError):
        for index in base.glob("index*"):
            level = int((index / "level").read_text())
            if (index / "type").read_text().strip() == "Instruction":
                continue
            size = _parse_size((index / "size").read_text().strip())
            if size and (best is None or level > best[0]):
                best = (level, size)
    if best:
        return best[1]
    for name in ("SC_LEVEL3_CACHE_SIZE", "SC_LEVEL2_CACHE_SIZE"):
        with contextlib.suppress(ValueError, OSError, AttributeError):
            size = os.sysconf(name)
            if size and size > 0:
                return int(size)
    return None


def _parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text and text[-1].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def cpu_flush_bytes() -> int:
    """Bytes a CPU cache flush writes: four last-level caches, at least `CPU_FLUSH_MIN_BYTES`."""
    llc = last_level_cache_bytes()
    return max(CPU_FLUSH_MIN_BYTES, 4 * llc) if llc else 4 * CPU_FLUSH_MIN_BYTES


class CPUCacheFlush:
    """Evicts the CPU caches by writing (then reading one byte per page of) a buffer larger than the last-level
    cache. Made once per backend; `__call__` is the flush."""

    def __init__(self) -> None:
        import numpy as np

        self.nbytes = cpu_flush_bytes()
        self._buffer = np.zeros(self.nbytes, dtype=np.uint8)
        self._value = 0

    def __call__(self) -> None:
        self._value = (self._value + 1) & 0xFF
        self._buffer.fill(self._value)
        int(self._buffer[:: 4096].sum())

    def describe(self) -> str:
        return f"CPU caches flushed (writing {self.nbytes >> 20} MiB) before each call"


def gpu_flush_bytes(l2_bytes: int) -> int:
    """Bytes a GPU cache flush writes: twice the L2, at least `GPU_FLUSH_BYTES` (triton's `do_bench`)."""
    return max(GPU_FLUSH_BYTES, 2 * int(l2_bytes or 0))


class GPUZeroFlush:
    """The `cold` mode's flush on a GPU, as `triton.testing.do_bench` does it: zero a device buffer of
    `gpu_flush_bytes` (a write larger than the L2). `zero` is the framework's in-place zeroing of that buffer
    (it keeps the buffer alive); made once per mode's timing, `__call__` is the flush."""

    def __init__(self, zero: Callable[[], object], nbytes: int) -> None:
        self._zero = zero
        self.nbytes = nbytes

    def __call__(self) -> None:
        self._zero()

    def describe(self) -> str:
        return f"L2 flushed (zeroing {self.nbytes >> 20} MiB) before each call"


# ------------------------------------------------------------------------------------------------ device time


class DeviceTimer:
    """Per-call device time of `op(*args)`: `sample(n)` runs about `n` calls and returns (seconds per call on
    the device, the last output). `method` names how (recorded with every result)."""

    method: str = ""
    calls_per_sample: int = 0  # calls one sample runs (0: the `n` it was given)

    def sample(self, n: int) -> tuple[float, Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the timer holds (a captured graph and its memory pool)."""


# The timers themselves import a framework, so they live with the adapters: `backends._device_timers`
# (`CUDAGraphTimer` for torch, `ProfilerTimer`, CUPTI through torch.profiler, for any framework).


def union_length(intervals: Sequence[tuple[int, int]]) -> int:
    """Total length covered by `intervals` (overlaps counted once: kernels on concurrent streams)."""
    total, end = 0, None
    for lo, hi in sorted(intervals):
        if end is None or lo > end:
            total += hi - lo
            end = hi
        elif hi > end:
            total += hi - end
            end = hi
    return total
