"""The size sweep: one family, a list of sizes, several backends — the seed's "time improvements by matrix size".

Which case is measured at size N (`sweep_case`):

- `MatMul`: the square product N x N @ N x N (2·N³ FLOP), the seed's own experiment.
- Any other family: the family's first case in the catalog (or the case named with `template`), with the
  first dimension of its first input set to N. Other inputs of the same rank whose first dimension equals the
  first input's are set to N too, because they are coupled to it (BCE's targets, Concat's second operand, SDPA's
  keys and values); everything else (weights, index counts, the reduction axis) stays as in the seed. So
  `Softmax / dim=64x1000000 axi=-1` swept over 16:128:16 measures 16x1000000, 32x1000000, ...

Per size and backend the case goes through `runner.measure_case` (inputs, timing engine, verification with row
sampling for large outputs), so a sweep point is an ordinary `CaseResult` plus its size.

Bounding the sweep (`budget_s`, per size and backend):
- the timing engine gets `budget_s` as its case budget (warm-up at most half of it, samples until it is spent
  or the median is stable), so a point costs about 1.5-2 x `budget_s` plus one first call and verification;
- before a point is measured, its per-call time is predicted from the largest point already measured on that
  backend, scaled by the work ratio (FLOPs, or bytes for families without FLOPs); if the fewest calls the
  engine needs (first call + one warm-up + `min_samples`) would take longer than `budget_s`, the point and
  every larger size on that backend are `skipped`, with the prediction as the reason;
- memory is estimated up front from the input and output bytes (`memory_need`) and compared with free memory
  (`free_memory`); a point that cannot fit is `skipped` with both figures. A real out-of-memory is recorded as
  `oom` and ends that backend's sweep (larger sizes are `skipped`).

Compiled backends: torch.compile keys its cache by code object, and a sweep calls the same op at a new shape
for every size; after `recompile_limit` (8) shapes dynamo silently runs the op eagerly. The torch adapter
resets dynamo before each case, so each point compiles exactly once; the sweep checks this rather than trusts
it: it reads `torch._dynamo.utils.counters` around every point, records the graphs compiled, and turns a point
whose frames fell back to eager into an `error` with no time. `mx.compile` and `jax.jit` retrace per new shape
without a limit and never fall back to eager; that is recorded as such.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from opbench.backends import Backend
from opbench.catalog import FAMILIES, Case, all_cases
from opbench.engine.runner import measure_case
from opbench.engine.timing import TimingSettings
from opbench.errors import UsageError, unknown
from opbench.results import CaseResult

MEMORY_HEADROOM = 0.9  # use at most this fraction of free memory
ENGINE_MIN_EXTRA_CALLS = 2  # the first call and at least one warm-up call, before min_samples samples


# ---------------------------------------------------------------------------------------------- what to run


MAX_SWEEP_POINTS = 10_000
MAX_SWEEP_SIZE = 1 << 24


def parse_sizes(text: str) -> list[int]:
    """`512:8192:512` (start:stop:step, stop included) or `512,1024,4096` -> sorted distinct positive ints."""
    text = text.strip()
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if start <= 0 or step <= 0 or stop < start or (stop - start) // step >= MAX_SWEEP_POINTS:
                raise ValueError
            sizes = list(range(start, stop + 1, step))
        else:
            sizes = [int(p) for p in text.split(",") if p.strip()]
            if not sizes or min(sizes) <= 0 or len(sizes) > MAX_SWEEP_POINTS:
                raise ValueError
        if max(sizes) > MAX_SWEEP_SIZE:
            raise ValueError
    except ValueError:
        raise UsageError(f"malformed --sizes {text[:80]!r}; write START:STOP:STEP (e.g. 512:8192:512) or a comma "
                         f"list of positive integers (e.g. 512,1024,2048): at most {MAX_SWEEP_POINTS} sizes, each "
                         f"at most {MAX_SWEEP_SIZE}") from None
    return sorted(set(sizes))


def resolve_family(name: str) -> str:
    """Case-insensitive family name (`matmul` -> `MatMul`)."""
    by_lower = {f.lower(): f for f in FAMILIES}
    if name.lower() not in by_lower:
        raise unknown("family", name, sorted(FAMILIES))
    return by_lower[name.lower()]


def template_case(family: str, name: str | None = None) -> Case | None:
    """The catalog case a non-MatMul sweep scales: `name` if given, else the family's first case."""
    cases = [c for c in all_cases() if c.family == family]
    if name is None:
        return None if family == "MatMul" else cases[0]
    for c in cases:
        if c.name == name:
            return c
    raise unknown(f"{family} case", name, [c.name for c in cases])


def sweep_case(family: str, n: int, template: Case | None = None) -> Case:
    """The case measured at size `n` (rules in the module docstring)."""
    if template is None:
        if family != "MatMul":
            template = template_case(family)
        else:
            return Case("MatMul", ((n, n), (n, n)), None, frozenset({"sweep"}))
    assert template is not None
    first = template.shapes[0]
    shapes = tuple((n, *s[1:]) if i == 0 or (len(s) == len(first) and s[0] == first[0]) else s
                   for i, s in enumerate(template.shapes))
    return Case(template.family, shapes, template.axis, frozenset({"sweep"}))


def work(case: Case, dtype: str) -> float:
    """What a case's time scales with: its FLOPs, or its bytes for families without FLOPs (copies, gathers)."""
    return float(case.flops or case.bytes_moved(dtype))


# ------------------------------------------------------------------------------------------------ memory


def host_free_memory() -> int | None:
    """Available host memory in bytes (Linux MemAvailable, else sysconf), None when unknown."""
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return None


def free_memory(backend: Backend) -> int | None:
    """Free memory where `backend` keeps its arrays: device memory for GPUs, host memory otherwise."""
    if backend.device_kind != "gpu":
        return host_free_memory()
    with contextlib.suppress(Exception):
        if backend.framework == "torch" and getattr(backend, "device", "") == "cuda":
            import torch

            return int(torch.cuda.mem_get_info()[0])
        if backend.framework == "torch" and getattr(backend, "device", "") == "mps":
            import torch

            return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
        if backend.framework == "mlx":
            import mlx.core as mx

            total = int(mx.device_info().get("memory_size", 0))
            return total - int(mx.get_active_memory()) if total else None
        if backend.framework == "jax":
            import jax

            stats = jax.devices()[0].memory_stats() or {}
            if "bytes_limit" in stats:
                return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return None


@dataclass(frozen=True)
class MemoryNeed:
    device: int  # bytes on the GPU (0 for CPU backends)
    host: int  # bytes in host memory


def memory_need(case: Case, dtype: str, backend: Backend) -> MemoryNeed:
    """Estimate of the peak memory of one point.

    Device: inputs + output. Host: the NumPy inputs, plus their float64 upcast for the reference (2 x the
    float32 bytes), plus for CPU backends the framework's own copy of the inputs and its output. Row sampling
    keeps the reference's output small, so it is not counted. An estimate errs on the high side by design: a
    wrong skip costs one point, a wrong guess the other way can take the machine down.
    """
    inputs = sum(int(np.prod(s, dtype=np.int64)) * it for s, it in case.make_input_specs(dtype))
    io = case.bytes_moved(dtype)
    output = io - inputs
    reference = sum(int(np.prod(s, dtype=np.int64)) * 8 for s, _ in case.make_input_specs(dtype))
    if backend.device_kind == "gpu":
        return MemoryNeed(device=io, host=inputs + reference)
    return MemoryNeed(device=0, host=2 * inputs + output + reference)


def memory_problem(need: MemoryNeed, device_free: int | None, host_free: int | None) -> str | None:
    """Why a point cannot fit, or None."""
    gib = 2**30
    if need.device and device_free is not None and need.device > MEMORY_HEADROOM * device_free:
        return (f"needs ~{need.device / gib:.1f} GiB of device memory (inputs + output), "
                f"{device_free / gib:.1f} GiB free")
    if host_free is not None and need.host > MEMORY_HEADROOM * host_free:
        return (f"needs ~{need.host / gib:.1f} GiB of host memory (inputs, reference, output), "
                f"{host_free / gib:.1f} GiB free")
    return None


# ---------------------------------------------------------------------------------------- compile tracking


def _dynamo_counters() -> Any:
    from torch._dynamo.utils import counters

    return counters


def dynamo_fell_back(counters: dict[str, dict[str, int]]) -> bool:
    """True when dynamo gave up on a frame (recompile limit hit, or a frame it could not compile): the op then
    ran eagerly, and its time is not a compiled time."""
    frames = counters.get("frames", {})
    limit_hit = any("recompile limit" in k.lower() for k in counters.get("unimplemented", {}))
    return limit_hit or frames.get("total", 0) > frames.get("ok", 0)


def compile_info(backend: Backend, before: Callable[[], Any] | None = None) -> dict[str, Any]:
    """What the compiler did for one point (see the module docstring)."""
    if backend.framework == "torch":
        c = _dynamo_counters()
        frames = dict(c.get("frames", {}))
        return {"compiler": "torch.compile", "graphs": int(c.get("stats", {}).get("unique_graphs", 0)),
                "frames_total": int(frames.get("total", 0)), "frames_ok": int(frames.get("ok", 0)),
                "fell_back_to_eager": dynamo_fell_back({k: dict(v) for k, v in c.items()})}
    if backend.framework == "mlx":
        return {"compiler": "mx.compile", "fell_back_to_eager": False,
                "note": "retraces once per new input shape; no recompile limit, no eager fallback"}
    if backend.framework == "jax":
        return {"compiler": "jax.jit", "fell_back_to_eager": False,
                "note": "recompiles once per new input shape; no recompile limit, no eager fallback"}
    return {"compiler": backend.framework, "fell_back_to_eager": False}


# ------------------------------------------------------------------------------------------------ the sweep


@dataclass(frozen=True)
class SweepPoint:
    size: int
    result: CaseResult
    compile: dict[str, Any] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return self.result.backend

    @property
    def median_s(self) -> float:
        return self.result.median_ms / 1e3 if self.result.timed else math.nan

    @property
    def gflops(self) -> float:
        return self.result.flops / self.median_s / 1e9 if self.result.timed and self.result.flops else math.nan

    @property
    def gbs(self) -> float:
        return self.result.bytes / self.median_s / 1e9 if self.result.timed else math.nan

    def to_dict(self) -> dict[str, Any]:
        d = {"size": self.size, **self.result.to_dict(), "compile": self.compile}
        d["gflops"] = None if math.isnan(self.gflops) else self.gflops
        d["gbs"] = None if math.isnan(self.gbs) else self.gbs
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepPoint:
        return cls(int(d["size"]), CaseResult.from_dict(d), dict(d.get("compile") or {}))


def ratios(points: Sequence[SweepPoint], baseline: str) -> dict[tuple[int, str], float]:
    """The seed's "improvement": t_baseline / t_backend at the same size (> 1: faster than the baseline).
    NaN where either time is missing."""
    base = {p.size: p.median_s for p in points if p.backend == baseline}
    return {(p.size, p.backend): (base.get(p.size, math.nan) / p.median_s
                                  if p.result.timed and not math.isnan(base.get(p.size, math.nan)) else math.nan)
            for p in points}


@dataclass(frozen=True)
class SweepSettings:
    budget_s: float = 2.0
    min_samples: int = 5
    dtype: str = "float32"
    seed: int = 0


def _skipped(case: Case, backend: Backend, dtype: str, reason: str) -> CaseResult:
    return CaseResult(case=case.name, family=case.family, backend=backend.name, dtype=dtype, status="skipped",
                      error=reason, flops=case.flops, bytes=case.bytes_moved(dtype))


def run_sweep(family: str, sizes: Sequence[int], backends: Sequence[Backend], settings: SweepSettings,
              template: Case | None = None, on_point: Callable[[SweepPoint], None] = lambda p: None,
              device_free: Callable[[Backend], int | None] = free_memory,
              host_free: Callable[[], int | None] = host_free_memory,
              done: Sequence[SweepPoint] = ()) -> list[SweepPoint]:
    """Measure every size on every (already set-up) backend, smallest size first, all backends per size.

    `on_point` is called after each point (the caller saves it at once). The free-memory probes are
    parameters so that tests can plant small limits. `done` are points of a resumed sweep: they are not
    measured again, but they feed the budget prediction and the stops as if they had just been measured.
    """
    timing = TimingSettings(budget_s=settings.budget_s, min_samples=settings.min_samples)
    stopped: dict[str, str] = {}
    largest: dict[str, tuple[float, float, int]] = {}  # backend -> (work, seconds per call, size)
    measured = {(p.size, p.backend): p for p in done}
    points: list[SweepPoint] = []
    for n in sorted(sizes):
        case = sweep_case(family, n, template)
        for backend in backends:
            if (n, backend.name) in measured:
                _replay(measured[(n, backend.name)], work(case, settings.dtype), stopped, largest)
                continue
            point = _one_point(case, n, backend, settings, timing, stopped, largest, device_free, host_free)
            points.append(point)
            on_point(point)
    return points


def _replay(point: SweepPoint, w: float, stopped: dict[str, str], largest: dict[str, tuple[float, float, int]]) -> None:
    """Update the budget and stop bookkeeping with a point measured before (a resumed sweep)."""
    res = point.result
    if res.timed:
        largest[res.backend] = (w, res.median_ms / 1e3, point.size)
    elif res.status in ("skipped", "oom"):
        stopped[res.backend] = f"not measured: size {point.size} was already {res.status}"


def _one_point(case: Case, n: int, backend: Backend, settings: SweepSettings, timing: TimingSettings,
               stopped: dict[str, str], largest: dict[str, tuple[float, float, int]],
               device_free: Callable[[Backend], int | None], host_free: Callable[[], int | None]) -> SweepPoint:
    dtype, name = settings.dtype, backend.name
    if name in stopped:
        return SweepPoint(n, _skipped(case, backend, dtype, stopped[name]))
    w = work(case, dtype)
    if name in largest:
        w0, t0, n0 = largest[name]
        predicted = t0 * w / w0
        calls = settings.min_samples + ENGINE_MIN_EXTRA_CALLS
        if predicted * calls > settings.budget_s:
            reason = (f"over budget: predicted {predicted:.3g} s per call from size {n0}, so the engine's "
                      f"{calls} calls would take {predicted * calls:.3g} s > --budget {settings.budget_s:g} s")
            stopped[name] = f"not measured: size {n} was already over budget"
            return SweepPoint(n, _skipped(case, backend, dtype, reason))
    problem = memory_problem(memory_need(case, dtype, backend), device_free(backend), host_free())
    if problem:
        stopped[name] = f"not measured: size {n} already did not fit in memory"
        return SweepPoint(n, _skipped(case, backend, dtype, f"does not fit in memory: {problem}"))
    track = backend.compiled and backend.framework == "torch"
    if track:
        _dynamo_counters().clear()
    result = measure_case(backend, case, dtype, settings.seed, timing)
    info = compile_info(backend) if backend.compiled else {}
    if info.get("fell_back_to_eager"):
        result = replace(result, status="error", samples_ms=(), error="torch.compile fell back to eager "
                         f"(dynamo counters: {info}); the time would not be a compiled time and is discarded")
    if result.status == "oom":
        stopped[name] = f"not measured: size {n} already ran out of memory"
    if result.timed:
        largest[name] = (w, result.median_ms / 1e3, n)
    return SweepPoint(n, result, info)
