"""Roofline per case: achieved GFLOP/s and GB/s, the bound that limits the case, and % of the calibrated peak.

For a case with F FLOPs and B bytes (the catalog's counts: every input read once, the output written once)
timed at t seconds on a device whose calibrated ceilings are P FLOP/s and W bytes/s, the fastest the case can
possibly run is max(F/P, B/W): it is compute-bound when F/P is the larger term, memory-bound otherwise.
`% of peak` = max(F/P, B/W) / t · 100, the fraction of that limit the case achieves.

Trade-off: B is the *minimum* traffic, so a case that re-reads data (a transpose, a strided reduction) shows a
low % although the hardware may be busy; that is exactly the kind of case worth looking at. Above 100 % means
the case beat a measured ceiling: either the time is wrong (work not finished when the clock stopped) or its
working set was served from a cache faster than the memory the copy calibrated. Such a case is flagged
`above-peak`, never silently shown as a plausible number; `cache_resident` says whether its working set
(B bytes) is small enough (<= `CACHE_RESIDENT_BYTES`) for the cache explanation to be possible at all — above
that, a timing bug is the likely cause. Cases under `FAR_BELOW_PCT` are flagged `far-below`.

The ceilings are the device's, not one framework's: for a result on backend X, each ceiling is the best figure
any calibrated framework reached on X's device (all CPU backends share the CPU, all GPU backends the GPU), in the
result's dtype; compiled variants share their eager twin's device. Trade-off: a framework whose own copy or
matmul is slow (MLX's and XLA's CPU copies run on one thread here) is held to what the hardware demonstrably
does, not to its own weakness, so its cases read as far below peak rather than above it; the price is that
the % no longer says how close a framework gets to its own best. float32 matrix products use the TF32 peak
when the run had TF32 in force.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opbench.backends.arithmetic import narrower_arithmetic
from opbench.results import CaseResult
from opbench.studies.calibrate import Calibration

FAR_BELOW_PCT = 10.0
# Up to this % a case above its ceiling is "at the ceiling": a ceiling is the fastest sample of one calibration
# measurement, and a case's median may beat it by the run-to-run noise of a few %. Still flagged `!`.
AT_CEILING_PCT = 105.0
# Working sets up to this size can be served from a last-level cache (an H100's L2 is 50 MB, server CPUs'
# L3 tens to hundreds of MB), where bandwidth exceeds the DRAM bandwidth the calibration measures.
CACHE_RESIDENT_BYTES = 64 << 20
ABOVE, FAR_BELOW = "above-peak", "far-below"
MARK_ABOVE, MARK_FAR_BELOW = "!", "↓"


@dataclass(frozen=True)
class Peaks:
    gflops: float | None
    gbs: float | None
    matmul_dtype: str
    flops_from: str = ""  # the backend whose calibration set each figure
    gbs_from: str = ""


@dataclass(frozen=True)
class Roofline:
    gflops: float
    gbs: float
    bound: str | None  # "compute", "memory" or None (no calibration)
    pct: float | None
    flag: str = ""
    cache_resident: bool = False

    def text(self) -> str:
        """`73% C`, `4% M↓`, `112% M!`; `–` without a calibration."""
        if self.pct is None or self.bound is None:
            return "–"
        mark = MARK_ABOVE if self.flag == ABOVE else MARK_FAR_BELOW if self.flag == FAR_BELOW else ""
        return f"{self.pct:.0f}% {self.bound[0].upper()}{mark}"

    def to_dict(self) -> dict[str, Any]:
        return {"gflops": _num(self.gflops), "gbs": _num(self.gbs), "bound": self.bound,
                "pct_of_peak": self.pct, "flag": self.flag, "cache_resident": self.cache_resident}


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


# Families whose float32 work can run on TF32 tensor cores (matrix products and convolutions).
CONV_FAMILIES = frozenset({"Conv1d", "Conv2d"})
TF32_FAMILIES = frozenset({"MatMul", "Linear", "ScaledDotProductAttention"}) | CONV_FAMILIES


def tf32_in_force(backend: str, settings: dict[str, Any] | None, family: str | None = None) -> bool:
    """Whether the settings `backend` recorded put float32 work of `family` (default: a matmul) on a narrower
    arithmetic than IEEE float32 -- TF32 tensor cores, or bfloat16 passes -- as its adapter reads them
    (`backends.arithmetic`: torch's allow_tf32 / matmul precision, cudnn's own switch for convolutions, JAX's
    default matmul precision, MLX_ENABLE_TF32 on CUDA). Such work is held to the tf32 ceiling."""
    return narrower_arithmetic(backend, settings, family or "MatMul", "float32") is not None


def peaks_for(calibration: Calibration | None, backend: str, dtype: str,
              settings: dict[str, Any] | None = None, family: str | None = None) -> Peaks | None:
    """The ceilings that apply to `backend` in `dtype` (for a case of `family`, when given), or None without a
    calibration for that backend: the best figures calibrated on its device (see the module docstring).

    A float32 matrix product (a family in `TF32_FAMILIES`, or any when `family` is None) with TF32 in force is
    held to the tf32 ceiling; other families never touch tensor cores. On a device that has TF32 but whose tf32
    ceiling nobody measured (recorded among `unsupported` entries), that compute ceiling is unknown: it is left
    out rather than replaced by the strict float32 one, which TF32 matmuls would exceed several times."""
    device = calibration.device(backend) if calibration else None
    if device is None:
        return None
    peers = [d for d in calibration.devices.values() if d.device_kind == device.device_kind]
    key = dtype
    if dtype == "float32" and (family is None or family in TF32_FAMILIES) and tf32_in_force(backend, settings, family):
        if any("tf32" in d.matmul for d in peers):
            key = "tf32"
        elif any("tf32" in d.unsupported for d in peers):
            key = ""  # a TF32 device without a tf32 figure
    gflops = [(d.peak_gflops(key), d.backend) for d in peers if key and d.peak_gflops(key)]
    gbs = [(d.bandwidth_gbs, d.backend) for d in peers if d.bandwidth_gbs]
    best_flops, best_gbs = max(gflops, default=(None, "")), max(gbs, default=(None, ""))
    return Peaks(best_flops[0], best_gbs[0], key or "tf32", flops_from=best_flops[1], gbs_from=best_gbs[1])


def roofline(result: CaseResult, peaks: Peaks | None) -> Roofline:
    """Achieved rates, bound and % of peak of one result (rules in the module docstring)."""
    if not result.timed or not result.median_ms or result.median_ms <= 0:
        return Roofline(math.nan, math.nan, None, None)
    t = result.median_ms / 1e3
    gflops = result.flops / t / 1e9 if result.flops else math.nan
    gbs = result.bytes / t / 1e9 if result.bytes else math.nan
    if peaks is None or not peaks.gbs or (result.flops and not peaks.gflops):
        return Roofline(gflops, gbs, None, None)
    t_memory = result.bytes / (peaks.gbs * 1e9)
    t_compute = result.flops / (peaks.gflops * 1e9) if result.flops and peaks.gflops else 0.0
    bound = "compute" if t_compute > t_memory else "memory"
    pct = max(t_compute, t_memory) / t * 100.0
    flag = ABOVE if pct > 100.0 else FAR_BELOW if pct < FAR_BELOW_PCT else ""
    return Roofline(gflops, gbs, bound, pct, flag, result.bytes <= CACHE_RESIDENT_BYTES)


def backend_settings(run_backends: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The recorded thread/precision settings per backend of a run (`Run.backends`)."""
    return {name: dict(info.get("settings") or {}) for name, info in run_backends.items() if isinstance(info, dict)}


def rooflines(results: Sequence[CaseResult], calibration: Calibration | None,
              settings: dict[str, dict[str, Any]] | None = None) -> list[Roofline]:
    """One Roofline per result, in order (case names need not be unique, so results are not keyed by name)."""
    settings = settings or {}
    return [roofline(r, peaks_for(calibration, r.backend, r.dtype, settings.get(r.backend), r.family))
            for r in results]


def roofline_json(results: Sequence[CaseResult], calibration: Calibration | None,
                  settings: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The roofline of a run as JSON: the peaks used per backend and one entry per result."""
    settings = settings or {}
    peaks = {}
    for r in results:
        p = peaks_for(calibration, r.backend, r.dtype, settings.get(r.backend), r.family)
        if p is not None:
            peaks[f"{r.backend}/{p.matmul_dtype}"] = {"gflops": p.gflops, "gbs": p.gbs, "matmul_dtype": p.matmul_dtype,
                                                      "gflops_from": p.flops_from, "gbs_from": p.gbs_from}
    return {"format": "opbench-roofline", "calibration": calibration.fingerprint if calibration else None,
            "far_below_pct": FAR_BELOW_PCT, "cache_resident_bytes": CACHE_RESIDENT_BYTES, "peaks": peaks,
            "results": [{"case": r.case, "backend": r.backend, "dtype": r.dtype, "status": r.status, **rf.to_dict()}
                        for r, rf in zip(results, rooflines(results, calibration, settings))]}
