"""The figures of results/h200/modes/FINDINGS.md, from what benchmarks/h200_modes.sh wrote (CPU only, seconds).

    python3 benchmarks/modes_findings.py DIR > FINDINGS-figures.md      # DIR: $OUT/modes (or results/h200/modes)

Reads every DIR/<backend>/run.json and DIR/check.json (or check.jsonl) and prints Markdown sections with
numbers only; the interpretation is left to the person who writes FINDINGS.md:

1. what was measured: results per backend and mode (timed / n/a / failed), the device-time method of each
   backend, the telemetry seen (SM clock range, throttled results, temperature, power);
2. how far each framework's dispatch is from its device time: per backend, the geometric mean over cases of
   latency/device and throughput/device, split at 50 µs of device time;
3. launch-bound cases: where even back-to-back calls (throughput) take at least twice the device time, the
   host's dispatch, not the GPU, sets the pace; listed per backend, worst first;
4. cold against warm caches: cold/latency per backend (the same synchronized call, caches flushed or not);
5. energy per call of the largest cases (throughput mode, NVML total energy counter over >= 0.1 s);
6. the independent check of the device mode against CUDA events (benchmarks/modes_check.py).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

LONG_MS = 0.050
LAUNCH_BOUND = 2.0
TOP = 8


def _geomean(values: Iterable[float]) -> float:
    xs = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in xs) / len(xs)) if xs else math.nan


def _median(values: list[float]) -> float:
    xs = sorted(values)
    if not xs:
        return math.nan
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def _load(directory: Path) -> list[dict[str, Any]]:
    results = []
    for path in sorted(directory.glob("*/run.json")):
        try:
            results += json.loads(path.read_text())["results"]
        except (OSError, ValueError, KeyError) as exc:
            print(f"<!-- {path}: unreadable ({exc}) -->")
    return results


def _median_ms(r: dict[str, Any]) -> float | None:
    if r.get("status") not in ("ok", "reduced-precision", "wrong") or not r.get("samples_ms"):
        return None
    return _median([float(x) for x in r["samples_ms"]])


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def measured(results: list[dict[str, Any]]) -> list[str]:
    lines = ["## 1. What was measured", "", "| backend | mode | timed | n/a | failed | method(s) |",
             "|---|---|---:|---:|---:|---|"]
    keys = sorted({(r["backend"], r.get("mode", "throughput")) for r in results})
    for backend, mode in keys:
        group = [r for r in results if r["backend"] == backend and r.get("mode", "throughput") == mode]
        timed = [r for r in group if _median_ms(r) is not None]
        na = [r for r in group if str(r.get("error", "")).startswith("n/a:")]
        methods = sorted({r.get("method", "") for r in timed if r.get("method")})
        failed = len(group) - len(timed) - len(na)
        reasons = sorted({str(r.get("error", ""))[:80] for r in group if r not in timed and r not in na})
        why = " · failed: " + "; ".join(reasons[:2]) if failed else ""
        lines.append(f"| {backend} | {mode} | {len(timed)} | {len(na)} | {failed} | "
                     f"{'; '.join(m[:90] for m in methods[:3])}{why} |")
    lines += ["", "Telemetry (NVML, over the timed regions):", ""]
    for backend in sorted({r["backend"] for r in results}):
        group = [r.get("conditions", {}) for r in results if r["backend"] == backend and _median_ms(r) is not None]
        sm = [c["gpu_sm_mhz"] for c in group if "gpu_sm_mhz" in c]
        if not sm:
            lines.append(f"- {backend}: no GPU readings (pynvml missing, or no NVIDIA driver)")
            continue
        throttled = sum(bool(c.get("gpu_throttle")) for c in group)
        low = sum(bool(c.get("gpu_clock_low")) for c in group)
        reasons = sorted({x for c in group for x in c.get("gpu_throttle") or ()})
        temp = max((c["gpu_temp_c_max"] for c in group if "gpu_temp_c_max" in c), default=math.nan)
        power = max((c["gpu_power_w_max"] for c in group if "gpu_power_w_max" in c), default=math.nan)
        lines.append(f"- {backend}: median SM clock {min(sm):.0f}-{max(sm):.0f} MHz over {len(sm)} results; "
                     f"{throttled} sampled while throttled ({', '.join(reasons) or 'no reason'}), {low} below 90 % "
                     f"of the clock seen under load; max {temp:.0f} °C, max {power:.0f} W")
    return lines


def _by_case(results: list[dict[str, Any]], backend: str) -> dict[str, dict[str, dict[str, Any]]]:
    cases: dict[str, dict[str, dict[str, Any]]] = {}
    for r in results:
        if r["backend"] == backend:
            cases.setdefault(r["case"], {})[r.get("mode", "throughput")] = r
    return cases


def dispatch(results: list[dict[str, Any]]) -> list[str]:
    lines = ["", "## 2. Dispatch against device time", "",
             "Geometric mean over cases of mode/device (1.00: the mode costs what the GPU works), cases split at "
             f"{LONG_MS * 1e3:.0f} µs of device time.", "",
             "| backend | cases | latency/device < 50 µs | ≥ 50 µs | throughput/device < 50 µs | ≥ 50 µs | "
             "median device µs |", "|---|---:|---:|---:|---:|---:|---:|"]
    for backend in sorted({r["backend"] for r in results}):
        rows = []
        for modes in _by_case(results, backend).values():
            dev = _median_ms(modes.get("device", {}))
            lat, thr = _median_ms(modes.get("latency", {})), _median_ms(modes.get("throughput", {}))
            if dev and dev > 0:
                rows.append((dev, (lat / dev) if lat else math.nan, (thr / dev) if thr else math.nan))
        if not rows:
            lines.append(f"| {backend} | 0 | – | – | – | – | – |")
            continue
        short, long = [r for r in rows if r[0] < LONG_MS], [r for r in rows if r[0] >= LONG_MS]
        lines.append(f"| {backend} | {len(rows)} | {_fmt(_geomean(r[1] for r in short), 2)} | "
                     f"{_fmt(_geomean(r[1] for r in long), 2)} | {_fmt(_geomean(r[2] for r in short), 2)} | "
                     f"{_fmt(_geomean(r[2] for r in long), 2)} | {_fmt(_median([r[0] * 1e3 for r in rows]), 1)} |")
    return lines


def launch_bound(results: list[dict[str, Any]]) -> list[str]:
    lines = ["", f"## 3. Launch-bound cases (throughput ≥ {LAUNCH_BOUND:g}x device time)", ""]
    for backend in sorted({r["backend"] for r in results}):
        rows = []
        for case, modes in _by_case(results, backend).items():
            dev, thr = _median_ms(modes.get("device", {})), _median_ms(modes.get("throughput", {}))
            lat = _median_ms(modes.get("latency", {}))
            if dev and thr and dev > 0 and thr / dev >= LAUNCH_BOUND:
                rows.append((thr / dev, case, dev, thr, lat))
        rows.sort(reverse=True)
        total = len(_by_case(results, backend))
        lines.append(f"- {backend}: {len(rows)} of {total} cases" + (":" if rows else ""))
        for ratio, case, dev, thr, lat in rows[:TOP]:
            lines.append(f"  - {case}: device {dev * 1e3:.1f} µs, throughput {thr * 1e3:.1f} µs ({ratio:.1f}x), "
                         f"latency {_fmt(lat * 1e3 if lat else None, 1)} µs")
    return lines


def cold(results: list[dict[str, Any]]) -> list[str]:
    lines = ["", "## 4. Cold against warm caches (cold/latency)", ""]
    for backend in sorted({r["backend"] for r in results}):
        ratios = []
        for case, modes in _by_case(results, backend).items():
            c, lat = _median_ms(modes.get("cold", {})), _median_ms(modes.get("latency", {}))
            if c and lat:
                ratios.append((c / lat, case))
        if ratios:
            ratios.sort(reverse=True)
            lines.append(f"- {backend}: geomean {_geomean(r for r, _ in ratios):.3f} over {len(ratios)} cases; "
                         f"largest {', '.join(f'{case} {r:.2f}x' for r, case in ratios[:3])}")
    return lines


def energy(results: list[dict[str, Any]]) -> list[str]:
    lines = ["", "## 5. Energy per call of the largest cases (throughput mode)", "",
             "| backend | case | ms/call | J/call | W (median) | pJ/FLOP | pJ/byte |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for backend in sorted({r["backend"] for r in results}):
        group = [r for r in results if r["backend"] == backend and r.get("mode", "throughput") == "throughput"
                 and "energy_j_per_call" in r.get("conditions", {})]
        group.sort(key=lambda r: -(r.get("flops", 0) + r.get("bytes", 0)))
        for r in group[:3]:
            c, j = r["conditions"], r["conditions"]["energy_j_per_call"]
            pj_flop = j / r["flops"] * 1e12 if r.get("flops") else None
            pj_byte = j / r["bytes"] * 1e12 if r.get("bytes") else None
            lines.append(f"| {backend} | {r['case']} | {_fmt(_median_ms(r))} | {j:.4g} | "
                         f"{_fmt(c.get('gpu_power_w'), 0)} | {_fmt(pj_flop, 2)} | {_fmt(pj_byte, 2)} |")
        if not group:
            lines.append(f"| {backend} | (no energy reading: region < 0.1 s, or no NVML energy counter) | | | | | |")
    return lines


def check(directory: Path) -> list[str]:
    lines = ["", "## 6. The device mode against CUDA events (torch, benchmarks/modes_check.py)", ""]
    path = directory / "check.json"
    rows: list[dict[str, Any]]
    if path.exists():
        data = json.loads(path.read_text())
        rows = data["rows"]
        lines.append(f"{data.get('device', '?')}, torch {data.get('torch', '?')}, {len(rows)} cases, "
                     f"{data.get('wall_s', 0):.0f} s")
    elif (directory / "check.jsonl").exists():
        rows = [json.loads(x) for x in (directory / "check.jsonl").read_text().splitlines() if x.strip()]
        lines.append(f"(check.jsonl only: the check was cut short after {len(rows)} cases)")
    else:
        return [*lines, "no check output"]
    lines += ["", "| method | events ≥ 50 µs: within ±5 % | geomean method/events | range | events < 50 µs: "
              "geomean |", "|---|---:|---:|---:|---:|"]
    for method in ("graph", "cupti"):
        long = [r[f"{method}_ms"] / r["events_ms"] for r in rows if f"{method}_ms" in r and r["events_ms"] >= LONG_MS]
        short = [r[f"{method}_ms"] / r["events_ms"] for r in rows if f"{method}_ms" in r and r["events_ms"] < LONG_MS]
        within = sum(abs(x - 1) <= 0.05 for x in long)
        rng = f"{min(long):.3f}..{max(long):.3f}" if long else "–"
        lines.append(f"| {method} | {within}/{len(long)} | {_fmt(_geomean(long))} | {rng} | {_fmt(_geomean(short))} |")
        misses = [(r["case"], x) for r in rows if f"{method}_ms" in r and r["events_ms"] >= LONG_MS
                  and abs((x := r[f"{method}_ms"] / r["events_ms"]) - 1) > 0.05]
        failed = [r["case"] for r in rows if f"{method}_ms" not in r]
        if misses:
            lines.append(f"|  misses | {', '.join(f'{c} {x:.3f}' for c, x in misses[:6])} | | | |")
        if failed:
            lines.append(f"|  not measured | {len(failed)}: {', '.join(failed[:4])} | | | |")
    lines += device_split(rows)
    return lines


def device_split(rows: list[dict[str, Any]]) -> list[str]:
    """The same check split by device time (graph replay) instead of by events: a case of several small
    launches (Linear 100x1x51200) can take 50 µs under events while its kernels take 10 µs; only where the
    kernels themselves take ≥ 50 µs can events around back-to-back calls be device time. Also how far the two
    device methods (graph replay, CUPTI kernel time) are from each other: independent measurements of one
    thing."""
    both = [r for r in rows if "graph_ms" in r and "cupti_ms" in r]
    long = [r for r in both if r["graph_ms"] >= LONG_MS]
    if not long:
        return []
    lines = ["", f"Split by device time instead ({len(long)} cases whose graph-replay time is ≥ 50 µs):", "",
             "| ratio | within ±5 % | geomean | range | outside ±5 % |", "|---|---:|---:|---:|---|"]
    for name, num, den in (("graph/events", "graph_ms", "events_ms"), ("cupti/events", "cupti_ms", "events_ms"),
                           ("cupti/graph", "cupti_ms", "graph_ms")):
        ratios = [(r["case"], r[num] / r[den]) for r in long]
        outside = [f"{c} {x:.3f}" for c, x in ratios if abs(x - 1) > 0.05]
        values = [x for _, x in ratios]
        lines.append(f"| {name} | {len(values) - len(outside)}/{len(values)} | {_fmt(_geomean(values))} | "
                     f"{min(values):.3f}..{max(values):.3f} | {', '.join(outside) or '–'} |")
    return lines


def _gpu_name(directory: Path) -> str:
    """The GPU the runs of `directory` were measured on (their machine metadata), or "the GPU"."""
    for path in sorted(directory.glob("*/run.json")):
        try:
            gpus = json.loads(path.read_text()).get("machine", {}).get("gpus") or []
        except (OSError, ValueError):
            continue
        if gpus and gpus[0].get("name"):
            return str(gpus[0]["name"])
    return "the GPU"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: modes_findings.py DIR  (the $OUT/modes folder of benchmarks/h200_modes.sh)", file=sys.stderr)
        return 2
    directory = Path(args[0])
    results = _load(directory)
    print(f"# Timing modes on {_gpu_name(directory)}: figures (benchmarks/modes_findings.py)\n")
    settings = directory / "settings.txt"
    if settings.exists():
        print("```\n" + settings.read_text().strip() + "\n```\n")
    for section in (measured(results), dispatch(results), launch_bound(results), cold(results), energy(results),
                    check(directory)):
        print("\n".join(section))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
