"""The data model of results: `CaseResult` (one case on one backend) and `Run` (a set of them plus metadata).

The file format (`opbench-run`), its versions and their history: `results.formats.RUN`.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from opbench.analysis.significance import NOISY_DETECTABLE, result_detectable_change
from opbench.errors import UsageError
from opbench.results.formats import RUN, check_header
from opbench.results.status import TIMED

SCHEMA_VERSION = RUN.version
FORMAT_NAME = RUN.name

# Statuses with a time (`results.status`). `wrong` keeps its time but is marked in every table; the rest have none.
TIMED_STATUSES = TIMED
# Other processes took at least this many cores, or this share of the CPUs, while the case was timed: busy
# (`opbench.engine.contention` measures it).
BUSY_OTHER_CORES = 0.5
BUSY_SHARE = 0.10
# Cases faster than this (A's median) are dominated by host-side dispatch on a GPU (`results/h100/FINDINGS.md`).
SHORT_CASE_MS = 0.05


def is_busy(conditions: Mapping[str, Any]) -> bool:
    """Whether other processes took enough CPU during the measurement to distort it (`opbench.engine.contention`)."""
    other = conditions.get("other_cpu_cores")
    if not isinstance(other, (int, float)):
        return False
    return other >= max(BUSY_OTHER_CORES, BUSY_SHARE * float(conditions.get("cpus") or 1))


@dataclass(frozen=True)
class CaseResult:
    """One case on one backend in one dtype. Times are milliseconds per call."""

    case: str
    family: str
    backend: str
    dtype: str
    status: str
    samples_ms: tuple[float, ...] = ()
    calls_per_sample: int = 0
    first_call_ms: float | None = None
    warmup_calls: int = 0
    stop_reason: str = ""
    rel_error: float | None = None
    tolerance: float | None = None
    detail: str = ""
    error: str = ""
    flops: int = 0
    bytes: int = 0
    published_ms: float | None = None  # imported tables: a single published number, no samples
    process_medians_ms: tuple[float, ...] = ()  # one median per worker process (`run --processes N`)
    unit_sizes: tuple[int, ...] = ()  # samples per unit (process), in order; () for one unit or unknown
    # the verdict of each unit (process), in order; () for one unit or a result stored before they were kept
    unit_statuses: tuple[str, ...] = ()
    # load while timed (`opbench.engine.contention`)
    conditions: dict[str, Any] = field(default_factory=dict, hash=False)
    warnings: tuple[str, ...] = ()  # the framework's warnings while the case ran, one line each
    phases_ms: dict[str, float] = field(default_factory=dict, hash=False)  # wall time per phase (`engine.phases`)
    mode: str = "throughput"  # timing mode (`opbench.engine.modes`): part of the result's identity
    method: str = ""  # how this mode's number was taken here (e.g. `CUDA-graph replay, CUDA events`)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The result's identity within a run: (case, backend, dtype, mode)."""
        return self.case, self.backend, self.dtype, self.mode

    @property
    def units_ms(self) -> tuple[tuple[float, ...], ...]:
        """The raw samples split into independent units (one per worker process): by `unit_sizes` when they
        add up to the sample count, else all samples as one unit (results stored before units were recorded)."""
        sizes = self.unit_sizes
        if not self.samples_ms:
            return ()
        if not sizes or sum(sizes) != len(self.samples_ms) or min(sizes) < 1:
            return (self.samples_ms,)
        bounds = np.cumsum((0, *sizes))
        return tuple(self.samples_ms[lo:hi] for lo, hi in itertools.pairwise(bounds))

    @property
    def unit_medians_ms(self) -> tuple[float, ...]:
        """One median per independent unit: from the raw samples of each unit, else the recorded process
        medians (older results), else the median of all samples (one unit); () without samples."""
        units = self.units_ms
        if len(units) >= 2:
            return tuple(float(np.median(u)) for u in units)
        if len(self.process_medians_ms) >= 2:
            return self.process_medians_ms
        return (self.median_ms,) if self.samples_ms else ()

    @property
    def timed(self) -> bool:
        return self.status in TIMED_STATUSES and (bool(self.samples_ms) or self.published_ms is not None)

    @property
    def median_ms(self) -> float:
        if self.samples_ms:
            return float(np.median(self.samples_ms))
        return self.published_ms if self.published_ms is not None else math.nan

    @property
    def iqr_ms(self) -> float:
        if len(self.samples_ms) < 2:
            return math.nan
        q1, q3 = np.percentile(self.samples_ms, [25, 75])
        return float(q3 - q1)

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    @property
    def process_spread(self) -> float:
        """max / min - 1 of the per-process medians; nan with fewer than two processes."""
        m = self.process_medians_ms
        return max(m) / min(m) - 1 if len(m) >= 2 and min(m) > 0 else math.nan

    @property
    def busy(self) -> bool:
        """Timed while other processes took a share of the CPUs that can distort it (`opbench.engine.contention`)."""
        return is_busy(self.conditions)

    @property
    def detectable_change(self) -> float:
        """The smallest slowdown a comparison of this result with a like run would call "slower" nine times in
        ten, from the spread between its units (`significance.result_detectable_change`); nan without two
        samples."""
        return result_detectable_change(self.unit_medians_ms, self.samples_ms)

    @property
    def noisy(self) -> bool:
        """Too spread to resolve a change of `significance.NOISY_DETECTABLE` (10 %): `detectable_change`
        above it (the ~ mark)."""
        return self.timed and self.detectable_change > NOISY_DETECTABLE

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["samples_ms"] = list(self.samples_ms)
        d["process_medians_ms"] = list(self.process_medians_ms)
        d["unit_sizes"] = list(self.unit_sizes)
        d["unit_statuses"] = list(self.unit_statuses)
        d["warnings"] = list(self.warnings)
        if self.samples_ms:
            d["median_ms"], d["iqr_ms"], d["n"], d["noisy"] = self.median_ms, self.iqr_ms, self.n, self.noisy
            # achieved rates at the median (derived, for readers of the JSON; % of peak: `opbench roofline`)
            d["gflops"] = self.flops / self.median_ms / 1e6 if self.flops and self.median_ms > 0 else None
            d["gbs"] = self.bytes / self.median_ms / 1e6 if self.bytes and self.median_ms > 0 else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaseResult:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["samples_ms"] = tuple(float(x) for x in kw.get("samples_ms", ()))
        kw["process_medians_ms"] = tuple(float(x) for x in kw.get("process_medians_ms", ()))
        kw["unit_sizes"] = tuple(int(x) for x in kw.get("unit_sizes", ()))
        kw["unit_statuses"] = tuple(str(x) for x in kw.get("unit_statuses", ()))
        kw["conditions"] = dict(kw.get("conditions") or {})
        kw["warnings"] = tuple(str(x) for x in kw.get("warnings", ()))
        kw["phases_ms"] = {str(k): float(v) for k, v in (kw.get("phases_ms") or {}).items()}
        kw["mode"] = str(kw.get("mode") or "throughput")
        kw["method"] = str(kw.get("method") or "")
        return cls(**kw)


@dataclass(frozen=True)
class Run:
    """A set of results with the metadata needed to interpret and compare them."""

    run_id: str
    created: str
    preset: str
    dtype: str
    machine: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    backends: dict[str, Any] = field(default_factory=dict)
    results: tuple[CaseResult, ...] = ()
    imported: bool = False
    source: str = ""
    label: str = ""

    def to_dict(self, results: bool = True) -> dict[str, Any]:
        """The run as run.json holds it (without `results`: the header and metadata alone)."""
        d = RUN.header()
        d.update({f.name: getattr(self, f.name) for f in fields(self) if f.name != "results"})
        if results:
            d["results"] = [r.to_dict() for r in self.results]
        return d

    def to_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1, default=str) + "\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Run:
        check_header(d, RUN)
        try:
            results = tuple(CaseResult.from_dict(r) for r in d["results"])
            names = {f.name for f in fields(cls)} - {"results"}
            return cls(results=results, **{k: v for k, v in d.items() if k in names})
        except KeyError as exc:
            raise UsageError(f"malformed opbench run file: no {exc} field") from None
        except (AttributeError, TypeError, ValueError) as exc:
            raise UsageError(f"malformed opbench run file: {exc}") from None

    @classmethod
    def from_json(cls, path: Path) -> Run:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise UsageError(f"no such file: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def modes(self) -> list[str]:
        """The timing modes of this run's results, in `opbench.engine.modes.MODES` order."""
        from opbench.engine.modes import MODES

        order = list(MODES)
        present = dict.fromkeys(r.mode for r in self.results)
        return sorted(present, key=lambda m: order.index(m) if m in order else len(order))

    def backend_names(self) -> list[str]:
        from opbench.backends import backend_names

        order = list(backend_names())
        present = dict.fromkeys(r.backend for r in self.results)
        return sorted(present, key=lambda b: order.index(b) if b in order else len(order))
