"""Sweep plots (matplotlib, Agg): the seed's improvement-vs-size line, time vs size, GFLOP/s and GB/s vs size.

Each function writes one PNG and returns its path. Only timed points are drawn; a backend with no timed point
is left out of the legend. Calibrated ceilings are drawn as dashed horizontal lines in the backend's colour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opbench.studies.calibrate import Calibration
from opbench.studies.roofline import peaks_for
from opbench.studies.sweep import SweepPoint, ratios


def _plt():  # -> matplotlib.pyplot, with the file-only backend
    from opbench.report.mpl import pyplot

    return pyplot()


def _series(points: Sequence[SweepPoint], value) -> dict[str, tuple[list[int], list[float]]]:
    out: dict[str, tuple[list[int], list[float]]] = {}
    for p in points:
        v = value(p)
        if p.result.timed and v is not None and not math.isnan(v):
            xs, ys = out.setdefault(p.backend, ([], []))
            xs.append(p.size)
            ys.append(v)
    return out


def _colors(points: Sequence[SweepPoint]) -> dict[str, str]:
    names = list(dict.fromkeys(p.backend for p in points))
    return {b: f"C{i % 10}" for i, b in enumerate(names)}


def _finish(fig, ax, title: str, xlabel: str, ylabel: str, path: Path) -> Path:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # under the axes: inside, it hid the points it explains
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _plt().close(fig)
    return path


def improvement_plot(points: Sequence[SweepPoint], baseline: str, xlabel: str, title: str, path: Path) -> Path:
    """The seed's "Time improvements by matrix size": t_baseline / t_backend for every other backend."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    r = ratios(points, baseline)
    colors = _colors(points)
    for backend, (xs, ys) in _series(points, lambda p: r[(p.size, p.backend)]).items():
        if backend != baseline:
            ax.plot(xs, ys, marker="o", color=colors[backend], label=f"{backend} vs {baseline}")
    ax.axhline(1.0, color="gray", lw=0.8, ls=":")
    values = [v for b, (_, ys) in _series(points, lambda p: r[(p.size, p.backend)]).items() if b != baseline
              for v in ys if v > 0]
    if values and max(values) / min(values) > 20:  # speed-ups spanning orders of magnitude: log scale
        ax.set_yscale("log")
    return _finish(fig, ax, title, xlabel, f"speed-up over {baseline} (×, t_{baseline} / t_backend)", path)


def time_plot(points: Sequence[SweepPoint], xlabel: str, title: str, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = _colors(points)
    for backend, (xs, ys) in _series(points, lambda p: p.result.median_ms).items():
        ax.plot(xs, ys, marker="o", color=colors[backend], label=backend)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    return _finish(fig, ax, title, xlabel + " (log scale)", "median time per call (ms, log scale)", path)


def rate_plot(points: Sequence[SweepPoint], calibration: Calibration | None, dtype: str, xlabel: str, title: str,
              path: Path, kind: str = "gflops", settings: dict[str, dict[str, Any]] | None = None) -> Path:
    """GFLOP/s (`kind="gflops"`, ceiling: the calibrated matmul peak that applies, TF32 or not, per the recorded
    `settings` of each backend) or GB/s (`"gbs"`, ceiling: the memory bandwidth, copy or read) against size.
    A ceiling shared by several backends (a compiled twin) is drawn once."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = _colors(points)
    family = points[0].result.family if points else None
    ceilings: dict[tuple[float, str], list[str]] = {}
    for backend, (xs, ys) in _series(points, lambda p: p.gflops if kind == "gflops" else p.gbs).items():
        ax.plot(xs, ys, marker="o", color=colors[backend], label=backend)
        peaks = peaks_for(calibration, backend, dtype, (settings or {}).get(backend), family)
        ceiling = (peaks.gflops if kind == "gflops" else peaks.gbs) if peaks else None
        if ceiling:
            what = f"{peaks.matmul_dtype} matmul peak" if kind == "gflops" else "memory bandwidth"
            ceilings.setdefault((ceiling, what), []).append(backend)
    unit = "GFLOP/s" if kind == "gflops" else "GB/s"
    for (ceiling, what), backends in ceilings.items():
        ax.axhline(ceiling, color=colors[backends[0]], ls="--", lw=1,
                   label=f"{', '.join(backends)} calibrated {what}: {ceiling:,.0f} {unit}")
    ylabel = "achieved GFLOP/s" if kind == "gflops" else "achieved GB/s (bytes read + written)"
    ax.set_xscale("log", base=2)
    values = [v for _, ys in _series(points, lambda p: p.gflops if kind == "gflops" else p.gbs).values()
              for v in ys if v > 0] + [c for c, _ in ceilings]
    if values and max(values) / min(values) > 100:  # a CPU beside a GPU: on a linear axis it lies flat on zero
        ax.set_yscale("log")
        ylabel += " (log scale)"
    else:
        ax.set_ylim(bottom=0)
    return _finish(fig, ax, title, xlabel + " (log scale)", ylabel, path)


def sweep_plots(points: Sequence[SweepPoint], baseline: str, calibration: Calibration | None, dtype: str,
                subject: str, xlabel: str, out_dir: Path, settings: dict[str, dict[str, Any]] | None = None
                ) -> list[Path]:
    """All four plots into `out_dir`: improvement.png, time.png, gflops.png, gbs.png (`settings`: each backend's
    recorded precision settings, which pick its ceiling)."""
    return [
        improvement_plot(points, baseline, xlabel, f"{subject}: speed-up over {baseline} by size",
                         out_dir / "improvement.png"),
        time_plot(points, xlabel, f"{subject}: time by size", out_dir / "time.png"),
        rate_plot(points, calibration, dtype, xlabel, f"{subject}: GFLOP/s by size", out_dir / "gflops.png",
                  settings=settings),
        rate_plot(points, calibration, dtype, xlabel, f"{subject}: GB/s by size", out_dir / "gbs.png", "gbs", settings),
    ]
