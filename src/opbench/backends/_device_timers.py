"""The `device` timing mode's timers (`opbench.engine.modes`): CUDA-graph replay timed with CUDA events, and
CUPTI kernel time through torch.profiler. They import torch, so they live with the adapters; any GPU adapter
may use `ProfilerTimer` (it records the kernels of every framework in the process, see `engine.modes`)."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

from opbench.engine.modes import (
    GRAPH_TARGET_S,
    MAX_GRAPH_CALLS,
    MAX_PROFILED_CALLS,
    DeviceTimer,
    ModeNotApplicable,
    union_length,
)


class CUDAGraphTimer(DeviceTimer):
    """torch on CUDA: `calls` calls captured in one CUDA graph; a sample replays it twice back to back and times
    the second replay with CUDA events (the first hides the graph launch and the event record's latency)."""

    method = "CUDA-graph replay, CUDA events"

    def __init__(self, op: Callable[..., Any], args: tuple[Any, ...], per_call_s: float) -> None:
        import torch

        self._torch = torch
        self.calls = max(1, min(MAX_GRAPH_CALLS, math.ceil(GRAPH_TARGET_S / max(per_call_s, 1e-7))))
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graphs recommends
            for _ in range(2):
                op(*args)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        self._graph = torch.cuda.CUDAGraph()
        out = None
        with torch.cuda.graph(self._graph):
            for _ in range(self.calls):
                out = op(*args)
        self._out = out
        torch.cuda.synchronize()
        self.method = f"{CUDAGraphTimer.method} ({self.calls} calls per graph)"
        self.calls_per_sample = 2 * self.calls

    def sample(self, n: int) -> tuple[float, Any]:
        torch = self._torch
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        self._graph.replay()
        start.record()
        self._graph.replay()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / self.calls, self._out

    def close(self) -> None:
        self._graph.reset()
        self._out = None


class ProfilerTimer(DeviceTimer):
    """CUPTI through `torch.profiler` (kineto), for any framework in the process: a sample profiles `n` (at most
    `MAX_PROFILED_CALLS`) back-to-back calls (each forced, one sync at the end) and returns the union of the
    device intervals of the kernels, copies and memsets recorded, divided by `n`. Needs a CUDA build of torch
    (imported here)."""

    method = "CUPTI kernel time (torch.profiler)"

    def __init__(self, op: Callable[..., Any], args: tuple[Any, ...], force: Callable[[Any], None],
                 sync: Callable[[], None]) -> None:
        try:
            import torch
            from torch.profiler import ProfilerActivity, profile
        except ImportError:
            raise ModeNotApplicable("no CUPTI profiler (device time of this framework needs a CUDA build of torch "
                                    "for torch.profiler)") from None
        if not torch.cuda.is_available() or ProfilerActivity.CUDA not in torch.profiler.supported_activities():
            raise ModeNotApplicable(f"no CUPTI profiler (torch {torch.__version__} has no CUDA profiling here)")
        self._torch, self._profile, self._activity = torch, profile, ProfilerActivity.CUDA
        self._op, self._args, self._force, self._sync = op, args, force, sync
        self.kernels = 0
        self.sample(1)  # the first session initializes CUPTI (hundreds of ms): not a sample

    def sample(self, n: int) -> tuple[float, Any]:
        op, args, force = self._op, self._args, self._force
        n = max(1, min(n, MAX_PROFILED_CALLS))
        self.calls_per_sample = n
        self._sync()
        prof = self._profile(activities=[self._activity])
        with _stderr_quiet():
            prof.start()
        out = None
        for _ in range(n):
            out = op(*args)
            force(out)
        self._sync()
        with _stderr_quiet():
            prof.stop()
        intervals = device_intervals(prof, self._torch)
        if not intervals:
            raise RuntimeError("the CUPTI profiler recorded no device activity for these calls: its kernel time "
                               "would be zero")
        self.kernels = len(intervals)
        return union_length(intervals) / 1e9 / n, out


def device_intervals(prof: Any, torch: Any) -> list[tuple[int, int]]:
    """(start, end) in ns of every device-side event (kernels, memcpy, memset) of a finished torch profile."""
    cuda = torch.autograd.DeviceType.CUDA
    try:
        events = prof.profiler.kineto_results.events()
        return [(e.start_ns(), e.start_ns() + e.duration_ns()) for e in events if e.device_type() == cuda]
    except AttributeError:  # another torch: the FunctionEvent list (times in µs)
        return [(int(e.time_range.start * 1e3), int(e.time_range.end * 1e3)) for e in prof.events()
                if getattr(e, "device_type", None) == cuda]


@contextlib.contextmanager
def _stderr_quiet() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for a moment: kineto prints a line to stderr at every profiler start
    and stop, which would flood a run's progress display (one profile per sample)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
