"""What to measure (`Task`) and what one measurement of it found (`Measurement`): the engine's input and output.

Every study builds tasks and gets measurements back: `opbench run` (a catalog case per backend, in several
worker processes), the dtype study (a case in every dtype, the square matmul under every precision mode), the
size sweep (a scaled case per size) and the calibration (probe ops: copy, read, square matmul). A task is
frozen and picklable, so the parent hands it to a worker process as it is; the worker runs it through
`opbench.engine.execute.run_task` (prepare -> time -> verify) and sends the measurement back.

A `Measurement` holds facts only, in the engine's own words: the status of the verification (or why nothing
was timed), the raw timing, the verdict's numbers, the types seen on the way in and out, what the compiler and
the machine did meanwhile. Each study presents it in its own record (`CaseResult` for a run or a sweep point, a
dtype-study `Cell`, a calibration `Ceiling`); none of them times or verifies anything itself.

Checks (`Task.check`), i.e. how the output is judged:
- `reported` (run, sweep): every data input is handed over in the case's dtype as the adapter converts it by
  default; the output must have the expected dtype; a narrower arithmetic is allowed only where the measuring
  process reports it for this family (`Backend.narrower_arithmetic`), which makes a result `reduced-precision`.
- `inferred` (the dtype study): every data input is converted to exactly `dtype` and the type that arrived is
  recorded; the output's type is recorded rather than required; a result outside the dtype's bounds that a
  narrower arithmetic explains is `reduced-precision` with that arithmetic named (no backend reports silent
  narrowing); a wrong result's largest exact value is recorded (it may not fit in the dtype at all).
- `none` (calibration probes): nothing is compared with a reference (`catalog.probes` says why); the
  measurement is `unverified`, but the engine's forcing checks (every timed call ran) still hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from opbench.catalog import Case
from opbench.catalog.probes import Probe
from opbench.engine.timing import Timing, TimingSettings
from opbench.results import CaseResult
from opbench.results.status import TIMED, Status

Check = Literal["reported", "inferred", "none"]

# Engine statuses (`results.status`). Verified: the verdict's. Not timed: why. Worker failures
# (`opbench.engine.worker`) too.
VERIFIED = TIMED
UNVERIFIED = Status.UNVERIFIED  # a probe: timed, not compared with a reference
FAILED = (Status.UNSUPPORTED, Status.NOT_FORCED, Status.ERROR, Status.OOM, Status.CRASHED, Status.TIMEOUT)

# Where a failure happened (`Measurement.phase`).
PHASES = ("support", "mode", "prepare", "time", "verify", "setup", "worker")


@dataclass(frozen=True)
class Task:
    """One measurement to make: a catalog case or a calibration probe, on one backend, in one dtype.

    `precision_mode` is "" (nothing set: what the process runs with), or a key of the backend's
    `precision_modes()`: an in-process mode is entered around preparation and timing; a mode set by
    environment variables needs a worker started with them (`Engine` starts one), and an in-process
    measurement without them is refused with the reason. `timing` is one unit's settings (one process).
    """

    subject: Case | Probe
    backend: str
    dtype: str = "float32"
    seed: int = 0
    timing: TimingSettings = field(default_factory=TimingSettings)
    precision_mode: str = ""
    check: Check = "reported"
    mode: str = "throughput"  # the timing mode (`opbench.engine.modes`)

    @property
    def name(self) -> str:
        return self.subject.name

    @property
    def is_probe(self) -> bool:
        return isinstance(self.subject, Probe)

    def describe(self) -> str:
        """For progress and failure messages: `measuring MatMul / ... in float16 [highest]`."""
        mode = f" [{self.precision_mode}]" if self.precision_mode else ""
        timing = f" ({self.mode} mode)" if self.mode != "throughput" else ""
        return f"measuring {self.name} in {self.dtype}{mode}{timing}"


@dataclass(frozen=True)
class Measurement:
    """What measuring one task in one process found (see the module docstring)."""

    task: Task
    status: str
    timing: Timing | None = None
    rel_error: float | None = None
    tolerance: float | None = None
    detail: str = ""
    error: str = ""  # why nothing (or nothing trustworthy) was measured: one line
    trace: str = ""  # the exception's own text, for a failure (at most 2000 characters)
    phase: str = ""  # where a failure happened (`PHASES`); "" when the task ran through
    oom: bool = False  # the failure was an allocation failure
    in_dtype: str = ""  # the element type a data input arrived in (check `inferred`)
    out_dtype: str = ""  # the output's element type, as the framework names it
    largest_exact: float | None = None  # the largest |exact result| of a wrong result (check `inferred`)
    precision: str = ""  # what set the float32 matmul precision: the mode's description, or what was in force
    strict: bool = False  # that mode is the framework's full-float32 setting
    how: str = ""  # the timed call in the framework's words (probes)
    compile: dict[str, Any] = field(default_factory=dict)  # what the compiler did (`Backend.compile_counters`)
    conditions: dict[str, Any] = field(default_factory=dict)  # how busy the machine was (`contention`)
    warnings: tuple[str, ...] = ()  # what the framework warned while measuring, one line each
    phases_ms: dict[str, float] = field(default_factory=dict)  # where the wall time went (`engine.phases`)
    method: str = ""  # how the timing mode's number was taken (`Timing.extra["method"]`)

    @property
    def timed(self) -> bool:
        return self.timing is not None and self.timing.n > 0

    @property
    def samples_ms(self) -> tuple[float, ...]:
        return tuple(s * 1e3 for s in self.timing.samples_s) if self.timing is not None else ()

    def rates(self) -> tuple[float, float]:
        """(work per second at the median, at the fastest sample) in units of 1e9: GB/s or GFLOP/s of a probe
        (`Probe.work`), of the case's FLOPs otherwise; nan without samples."""
        if not self.timed:
            return math.nan, math.nan
        assert self.timing is not None
        subject = self.task.subject
        work = subject.work if isinstance(subject, Probe) else float(subject.flops)
        return work / self.timing.median_s / 1e9, work / self.timing.min_s / 1e9

    @classmethod
    def failure(cls, task: Task, status: str, error: str, phase: str, **kw: Any) -> Measurement:
        return cls(task=task, status=status, error=error, phase=phase, **kw)

    def to_case_result(self) -> CaseResult:
        """The measurement as a run's (or a sweep point's) `CaseResult`: exactly what `opbench run` records."""
        subject, task = self.task.subject, self.task
        base: dict[str, Any] = {"case": subject.name, "family": subject.family, "backend": task.backend,
                                "dtype": task.dtype, "flops": subject.flops, "bytes": subject.bytes_moved(task.dtype),
                                "mode": task.mode}
        said: dict[str, Any] = {"warnings": self.warnings} if self.warnings else {}
        if self.phases_ms:
            said["phases_ms"] = dict(self.phases_ms)
        if self.phase == "setup":
            return CaseResult(status=Status.ERROR, error=f"backend setup failed: {self.error}", **said, **base)
        if self.phase == "worker":
            return CaseResult(status=self.status, error=self.error, **said, **base)
        if self.status == Status.UNSUPPORTED:
            return CaseResult(status=Status.UNSUPPORTED, error=self.error, **said, **base)
        if not self.timed or self.status in FAILED:
            return CaseResult(status=self.status, error=self.error, detail=self.trace, **said, **base)
        timing = self.timing
        assert timing is not None
        return CaseResult(status=self.status, samples_ms=self.samples_ms,
                          calls_per_sample=timing.calls_per_sample, first_call_ms=timing.first_call_s * 1e3,
                          warmup_calls=timing.warmup_calls, stop_reason=timing.stop_reason, rel_error=self.rel_error,
                          tolerance=self.tolerance, detail=self.detail, conditions=self.conditions,
                          method=self.method, **said, **base)
