"""The size sweep: one family, a list of sizes, several backends — the seed's "time improvements by matrix size".

Which case is measured at size N (`sweep_case`):

- `MatMul`: the square product N x N @ N x N (2·N³ FLOP), the seed's own experiment.
- Any other family: the family's first case in the catalog (or the case named with `template`), with the
  first dimension of its first input set to N. Other inputs of the same rank whose first dimension equals the
  first input's are set to N too, because they are coupled to it (BCE's targets, Concat's second operand, SDPA's
  keys and values); everything else (weights, index counts, the reduction axis) stays as in the seed. So
  `Softmax / dim=64x1000000 axi=-1` swept over 16:128:16 measures 16x1000000, 32x1000000, ...

Per size and backend the case is a `Task` for the engine (`opbench.engine.Engine`): it is measured in the
backend's worker process like every case of `opbench run` (inputs, timing engine, verification), so a sweep
point is an ordinary `CaseResult` plus its size and what the compiler did. Each backend keeps one worker for
the whole sweep; nothing here sets up a framework, times or verifies anything itself.

Bounding the sweep (`budget_s`, per size and backend):
- the timing engine gets `budget_s` as its case budget (warm-up at most half of it, samples until it is spent
  or the median is stable), so a point costs about 1.5-2 x `budget_s` plus one first call and verification;
- before a point is measured, its per-call time is predicted from the largest point already measured on that
  backend, scaled by the work ratio (FLOPs, or bytes for families without FLOPs); if the fewest calls the
  engine needs (first call + one warm-up + `min_samples`) would take longer than `budget_s`, the point and
  every larger size on that backend are `skipped`, with the prediction as the reason;
- memory is estimated up front from the input and output bytes (`memory_need`) and compared with free memory
  (host memory, and on a GPU what the backend's own process reads: `Backend.free_memory`); a point that
  cannot fit is `skipped` with both figures. A real out-of-memory is recorded as
  `oom` and ends that backend's sweep (larger sizes are `skipped`).

Compiled backends: a sweep calls the same op at a new shape for every size, and a compiler with a recompile
limit (torch.compile's dynamo, after 8 shapes) silently runs the op eagerly past it. The engine checks this
rather than trusts it: it reads the compiler's counters around every case (`Backend.compile_counters`), each
point records them, and a point whose compiler fell back to eager is an `error` with no time. `mx.compile`
and `jax.jit` retrace per new shape without a limit and never fall back to eager; that is recorded as such.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import opbench.defaults as defaults
from opbench.backends import Backend, get_backend
from opbench.backends._base import host_free_memory
from opbench.catalog import FAMILIES, Case, all_cases
from opbench.engine.engine import Engine
from opbench.engine.execute import free_memory
from opbench.engine.task import Task
from opbench.engine.timing import TimingSettings
from opbench.errors import UsageError, unknown
from opbench.results import CaseResult
from opbench.results.status import Status

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


@dataclass(frozen=True)
class MemoryNeed:
    device: int  # bytes on the GPU (0 for CPU backends)
    host: int  # bytes in host memory


def memory_need(case: Case, dtype: str, backend: Backend | str) -> MemoryNeed:
    """Estimate of the peak memory of one point on `backend` (an adapter, or its `device_kind`).

    Device: inputs + output. Host: the NumPy inputs, plus their float64 upcast for the reference (2 x the
    float32 bytes), plus for CPU backends the framework's own copy of the inputs and its output. Row sampling
    keeps the reference's output small, so it is not counted. An estimate errs on the high side by design: a
    wrong skip costs one point, a wrong guess the other way can take the machine down.
    """
    inputs = sum(int(np.prod(s, dtype=np.int64)) * it for s, it in case.make_input_specs(dtype))
    io = case.bytes_moved(dtype)
    output = io - inputs
    reference = sum(int(np.prod(s, dtype=np.int64)) * 8 for s, _ in case.make_input_specs(dtype))
    if (backend if isinstance(backend, str) else backend.device_kind) == "gpu":
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
    budget_s: float = defaults.SWEEP_BUDGET_S
    min_samples: int = defaults.SWEEP_MIN_SAMPLES
    dtype: str = defaults.DTYPE
    seed: int = defaults.SEED


def _skipped(case: Case, backend: str, dtype: str, reason: str) -> CaseResult:
    return CaseResult(case=case.name, family=case.family, backend=backend, dtype=dtype, status=Status.SKIPPED,
                      error=reason, flops=case.flops, bytes=case.bytes_moved(dtype))


def run_sweep(family: str, sizes: Sequence[int], backends: Sequence[str | Backend], settings: SweepSettings,
              template: Case | None = None, on_point: Callable[[SweepPoint], None] = lambda p: None,
              device_free: Callable[[str], int | None] | None = None,
              host_free: Callable[[], int | None] = host_free_memory,
              done: Sequence[SweepPoint] = (),
              on_info: Callable[[str, dict[str, Any]], None] = lambda name, info: None) -> list[SweepPoint]:
    """Measure every size on every backend, smallest size first, all backends per size, through the engine:
    a backend given by name is measured in its worker process, an (already set-up) `Backend` object in this
    process (tests, debugging).

    `on_point` is called after each point (the caller saves it at once); `on_info(name, info)` once per backend
    with the versions and settings its measuring process reports, before that backend's first point. The
    free-memory probes are parameters so that tests can plant small limits (`device_free(name)`, by default
    asked of the backend's own process). `done` are points of a resumed sweep: they are not measured again,
    but they feed the budget prediction and the stops as if they had just been measured.
    """
    timing = TimingSettings(budget_s=settings.budget_s, min_samples=settings.min_samples)
    adapters = {b.name: b for b in backends if isinstance(b, Backend)}
    names = [b.name if isinstance(b, Backend) else b for b in backends]
    kinds = {n: (adapters.get(n) or get_backend(n)).device_kind for n in names}  # the adapter only, no framework
    stopped: dict[str, str] = {}
    largest: dict[str, tuple[float, float, int]] = {}  # backend -> (work, seconds per call, size)
    measured = {(p.size, p.backend): p for p in done}
    points: list[SweepPoint] = []
    with Engine(in_process=adapters, on_info=on_info) as engine:
        free = device_free or (lambda name: engine.ask(name, free_memory, "reading free memory"))
        for n in sorted(sizes):
            case = sweep_case(family, n, template)
            for name in names:
                if (n, name) in measured:
                    _replay(measured[(n, name)], work(case, settings.dtype), stopped, largest)
                    continue
                point = _one_point(engine, case, n, name, kinds[name], settings, timing, stopped, largest, free,
                                   host_free)
                points.append(point)
                on_point(point)
    return points


def _replay(point: SweepPoint, w: float, stopped: dict[str, str], largest: dict[str, tuple[float, float, int]]) -> None:
    """Update the budget and stop bookkeeping with a point measured before (a resumed sweep)."""
    res = point.result
    if res.timed:
        largest[res.backend] = (w, res.median_ms / 1e3, point.size)
    elif res.status in (Status.SKIPPED, Status.OOM):
        stopped[res.backend] = f"not measured: size {point.size} was already {res.status}"


def _one_point(engine: Engine, case: Case, n: int, name: str, device_kind: str, settings: SweepSettings,
               timing: TimingSettings, stopped: dict[str, str], largest: dict[str, tuple[float, float, int]],
               device_free: Callable[[str], int | None], host_free: Callable[[], int | None]) -> SweepPoint:
    dtype = settings.dtype
    if name in stopped:
        return SweepPoint(n, _skipped(case, name, dtype, stopped[name]))
    w = work(case, dtype)
    if name in largest:
        w0, t0, n0 = largest[name]
        predicted = t0 * w / w0
        calls = settings.min_samples + ENGINE_MIN_EXTRA_CALLS
        if predicted * calls > settings.budget_s:
            reason = (f"over budget: predicted {predicted:.3g} s per call from size {n0}, so the engine's "
                      f"{calls} calls would take {predicted * calls:.3g} s > --budget {settings.budget_s:g} s")
            stopped[name] = f"not measured: size {n} was already over budget"
            return SweepPoint(n, _skipped(case, name, dtype, reason))
    need = memory_need(case, dtype, device_kind)
    problem = memory_problem(need, device_free(name) if need.device else None, host_free())
    if problem:
        stopped[name] = f"not measured: size {n} already did not fit in memory"
        return SweepPoint(n, _skipped(case, name, dtype, f"does not fit in memory: {problem}"))
    measurement = engine.run(Task(case, name, dtype, settings.seed, timing))
    result = measurement.to_case_result()
    if result.status == Status.OOM:
        stopped[name] = f"not measured: size {n} already ran out of memory"
    if result.timed:
        largest[name] = (w, result.median_ms / 1e3, n)
    return SweepPoint(n, result, dict(measurement.compile))
