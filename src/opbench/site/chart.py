"""One history chart as inline SVG (matplotlib, text kept as text): per-run medians over time, one line per
machine/backend (colour per backend, marker per machine), the interquartile range of each run's samples as an
error bar, published tables as dashed reference lines, and each detected step marked at the run where it
starts. The time axis is logarithmic when the lines span more than a factor of 20."""

from __future__ import annotations

from opbench.report.plots import backend_colour, figure_svg
from opbench.site.history import History, when

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def history_svg(h: History, machines: list[str]) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.2, 3.6), layout="constrained")
    ax = fig.add_subplot()
    values = []
    for line in h.lines:
        xs = [when(p.run) for p in line.points]
        ys = [p.median for p in line.points]
        lows = [p.median - p.quartiles[0] for p in line.points]
        highs = [p.quartiles[1] - p.median for p in line.points]
        values += ys
        ax.errorbar(xs, ys, yerr=[lows, highs], color=backend_colour(line.backend), capsize=2, linewidth=1.3,
                    marker=MARKERS[machines.index(line.machine) % len(MARKERS)], markersize=4,
                    label=f"{line.machine} · {line.backend}")
        for change in line.changes:
            x = when(change.run)
            ax.axvline(x, color=backend_colour(line.backend), linestyle=":", linewidth=1)
            ax.annotate(f"{change.step.ratio - 1:+.0%}", (x, change.step.after), textcoords="offset points",
                        xytext=(3, 4), fontsize=8, color="#d62728" if change.step.kind == "regression"
                        else "#2ca02c")
    for label, backend, ms in h.references:
        ax.axhline(ms, color=backend_colour(backend), linestyle="--", linewidth=0.9, alpha=0.8,
                   label=f"published: {label} · {backend}")
        values.append(ms)
    if values and max(values) / min(values) > 20:
        ax.set_yscale("log")
    ax.set_ylabel("median ms per call (bars: IQR)")
    ax.set_title(f"{h.case} · {h.dtype}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.autofmt_xdate()
    return figure_svg(fig, h.slug)
