"""Pictures of the dtype study (matplotlib, Agg backend: no display needed).

- `heatmap`: the support matrix, one colour per status, the cell code written in each cell.
- `speed_precision_scatter`: the square matmul per backend, dtype and precision mode, time per call on x and
  relative error on y (both log scales). Exact results (error 0) are drawn on a floor line below the smallest
  non-zero error, labelled "error 0", so integer matmuls stay visible on a log axis.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

from opbench.engine.verify import OK, WRONG
from opbench.report.dtypes import SHORT_DTYPE, code
from opbench.studies.dtypes import CONVERTED, CRASHED, DEFAULT_MODE, ERROR, NA, TIMEOUT, UNSUPPORTED, Cell

STATUS_COLOURS = {OK: "#4caf50", CONVERTED: "#ffb300", UNSUPPORTED: "#9e9e9e", WRONG: "#e53935", NA: "#eeeeee",
                  ERROR: "#8e24aa", CRASHED: "#212121", TIMEOUT: "#5d4037"}
WIDENED_COLOUR = "#c5e1a5"
DTYPE_COLOURS = {"float16": "#1f77b4", "bfloat16": "#17becf", "float32": "#2ca02c", "float64": "#9467bd",
                 "int32": "#d62728", "int64": "#8c564b"}
BACKEND_MARKERS = "osD^v<>Ph*"


def _pyplot():
    from opbench.report.mpl import pyplot

    return pyplot()


def heatmap(cells: Sequence[Cell], path: Path, title: str = "dtype support") -> Path:
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    plt = _pyplot()
    columns = list(dict.fromkeys((c.backend, c.dtype) for c in cells))
    cases = list(dict.fromkeys((c.family, c.case) for c in cells))
    per_family = len({f for f, _ in cases}) == len(cases)
    rows = [f for f, _ in cases] if per_family else [n for _, n in cases]
    index = {((c.family if per_family else c.case), c.backend, c.dtype): c for c in cells}
    image = [[(1.0, 1.0, 1.0)] * len(columns) for _ in rows]
    fig, ax = plt.subplots(figsize=(3.5 + 0.5 * len(columns), 1.6 + 0.32 * len(rows)))
    for i, r in enumerate(rows):
        for j, (b, d) in enumerate(columns):
            c = index.get((r, b, d))
            if c is None:
                continue
            colour = WIDENED_COLOUR if c.status == CONVERTED and c.widened else STATUS_COLOURS.get(c.status, "#ffffff")
            image[i][j] = to_rgb(colour)
            dark = c.status in (ERROR, CRASHED, TIMEOUT)
            ax.text(j, i, code(c), ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.imshow(image, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(columns)), [SHORT_DTYPE.get(d, d) for _, d in columns], fontsize=7)
    backends = list(dict.fromkeys(b for b, _ in columns))
    for b in backends:  # one backend label over its group of dtype columns, a dark line between groups
        span = [j for j, (bb, _) in enumerate(columns) if bb == b]
        ax.text((span[0] + span[-1]) / 2, -0.6, b, ha="center", va="bottom", fontsize=8, fontweight="bold")
        if span[0] > 0:
            ax.axvline(span[0] - 0.5, color="black", linewidth=1.5)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xticks([x - 0.5 for x in range(1, len(columns))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(rows))], minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    legend = [Patch(color=STATUS_COLOURS[s], label=s) for s in (OK, CONVERTED, UNSUPPORTED, WRONG, NA)]
    legend.insert(2, Patch(color=WIDENED_COLOUR, label="converted to a wider type (C+)"))
    ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.set_title("\n".join(textwrap.wrap(title, 90)), fontsize=9, pad=18)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def speed_precision_scatter(cells: Sequence[Cell], path: Path) -> Path | None:
    """None when no cell has both a time and an error."""
    plt = _pyplot()
    points = [c for c in cells if c.median_ms is not None and c.rel_error is not None and math.isfinite(c.rel_error)]
    if not points:
        return None
    nonzero = [c.rel_error for c in points if c.rel_error > 0]
    floor = min(nonzero) / 10 if nonzero else 1e-17
    backends = list(dict.fromkeys(c.backend for c in points))
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for c in points:
        y = c.rel_error if c.rel_error > 0 else floor
        marker = BACKEND_MARKERS[backends.index(c.backend) % len(BACKEND_MARKERS)]
        ax.scatter(c.median_ms, y, marker=marker, s=45, color=DTYPE_COLOURS.get(c.dtype, "#333333"),
                   edgecolors="black" if c.mode != DEFAULT_MODE else "none", linewidths=0.8)
        label = SHORT_DTYPE.get(c.dtype, c.dtype) + ("" if c.mode == DEFAULT_MODE else f" [{c.mode}]")
        ax.annotate(label, (c.median_ms, y), textcoords="offset points", xytext=(5, 3), fontsize=6)
    ax.axhline(floor, color="#bbbbbb", linewidth=0.8, linestyle=":")
    ax.text(min(c.median_ms for c in points), floor, " error 0 (identical to the reference)", fontsize=6,
            va="bottom", color="#777777")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("median time per call (ms)")
    ax.set_ylabel("relative error vs float64")
    for i, b in enumerate(backends):
        ax.scatter([], [], marker=BACKEND_MARKERS[i % len(BACKEND_MARKERS)], color="#777777", label=b)
    for d, colour in DTYPE_COLOURS.items():
        if any(c.dtype == d for c in points):
            ax.scatter([], [], marker="s", color=colour, label=d)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"matmul: speed vs precision ({points[0].case}); outlined: non-default precision mode", fontsize=8)
    ax.grid(True, which="major", linewidth=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
