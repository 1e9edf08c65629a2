"""Every run in a store as histories: per (case, dtype), one line of per-run medians per (machine, backend),
the published tables as reference values, and the steps found in each line (`opbench.analysis.steps`) with the software
change between the run where a step starts and the run before it.

A machine is named by its host name and its CPU or GPU models (`machine_key`): a new GPU in the same host is
a new line, a new framework version on the same machine is a point on the same line (and possibly a step).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from opbench.analysis.steps import Step, detect_steps
from opbench.results import CaseResult, Run


def machine_key(info: dict[str, Any]) -> str:
    gpus = ", ".join(g.get("name", "?") for g in info.get("gpus", []) if isinstance(g, dict))
    host = info.get("hostname") or "?"
    return f"{host} ({gpus or info.get('cpu_model', '?')})"


def when(run: Run) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(run.created)
    except ValueError:
        return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class Point:
    run: Run
    result: CaseResult

    @property
    def median(self) -> float:
        return self.result.median_ms

    @property
    def quartiles(self) -> tuple[float, float]:
        if len(self.result.samples_ms) < 2:
            return self.median, self.median
        q1, q3 = np.percentile(self.result.samples_ms, [25, 75])
        return float(q1), float(q3)


@dataclass(frozen=True)
class Change:
    """A step in one line, located at `run` (the first at the new level), after `previous`."""

    case: str
    dtype: str
    machine: str
    backend: str
    step: Step
    run: Run
    previous: Run
    software: tuple[str, ...]
    slug: str


@dataclass
class Line:
    machine: str
    backend: str
    points: list[Point] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)


@dataclass
class History:
    case: str
    family: str
    dtype: str
    slug: str
    lines: list[Line] = field(default_factory=list)
    references: list[tuple[str, str, float]] = field(default_factory=list)  # (label, backend, ms)


def software_change(before: Run, after: Run, backend: str) -> tuple[str, ...]:
    """What differs in software between two runs: the backend's framework versions, the installed packages, the
    opbench build, Python and the OS."""
    out: list[str] = []

    def diff(label: str, a: Any, b: Any) -> None:
        if a != b:
            out.append(f"{label} {a if a not in (None, '') else '-'} → {b if b not in (None, '') else '-'}")

    va = (before.backends.get(backend) or {}).get("versions") or {}
    vb = (after.backends.get(backend) or {}).get("versions") or {}
    for name in sorted(set(va) | set(vb)):
        diff(name, va.get(name), vb.get(name))
    pa, pb = before.machine.get("packages") or {}, after.machine.get("packages") or {}
    for name in sorted(set(pa) | set(pb)):
        if name not in va and name not in vb and name != "opbench":
            diff(name, pa.get(name), pb.get(name))

    def build(run: Run) -> str:
        b = run.machine.get("opbench") or {}
        return f"{b.get('version', '?')} ({b.get('source_digest', '?')})" if b else "not recorded"

    diff("opbench", build(before), build(after))
    diff("python", before.machine.get("python"), after.machine.get("python"))
    diff("os", before.machine.get("os"), after.machine.get("os"))
    return tuple(out)


def _slugs(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for case, dtype in keys:
        base = re.sub(r"[^a-z0-9]+", "-", f"{case} {dtype}".lower()).strip("-") or "case"
        slug, n = base, 2
        while slug in used:
            slug, n = f"{base}-{n}", n + 1
        used.add(slug)
        found[(case, dtype)] = slug
    return found


def histories(runs: Sequence[Run]) -> list[History]:
    """The histories of every timed result in `runs` (measured runs as points, imported runs as references),
    each line's points in time order, with its steps."""
    measured = sorted((r for r in runs if not r.imported), key=when)
    by_key: dict[tuple[str, str], History] = {}
    for run in measured:
        for res in run.results:
            if not (res.timed and res.samples_ms and res.median_ms > 0):
                continue
            h = by_key.setdefault((res.case, res.dtype), History(res.case, res.family, res.dtype, ""))
            # one line per machine, backend and timing mode: a mode's points never join another's line
            label = res.backend if res.mode == "throughput" else f"{res.backend} [{res.mode}]"
            key = (machine_key(run.machine), label)
            line = next((ln for ln in h.lines if (ln.machine, ln.backend) == key), None)
            if line is None:
                line = Line(*key)
                h.lines.append(line)
            line.points.append(Point(run, res))
    for run in runs:
        if run.imported:
            for res in run.results:
                h = by_key.get((res.case, res.dtype))
                if h is not None and res.timed and res.median_ms > 0:
                    name = run.label or run.source or run.run_id
                    h.references.append((f"{name} ({res.mode} mode)", res.backend, res.median_ms))
    slugs = _slugs(sorted(by_key))
    out = []
    for key in sorted(by_key):
        h = by_key[key]
        h.slug = slugs[key]
        h.lines.sort(key=lambda ln: (ln.machine, ln.backend))
        for line in h.lines:
            for step in detect_steps([p.median for p in line.points]):
                start, previous = line.points[step.index].run, line.points[step.index - 1].run
                line.changes.append(Change(h.case, h.dtype, line.machine, line.backend, step, start, previous,
                                           software_change(previous, start, line.backend.split(" [")[0]), h.slug))
        out.append(h)
    return out
