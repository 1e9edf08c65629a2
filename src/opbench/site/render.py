"""Write the site: `index.html` (machines × backends × runs, the regressions and improvements found, the list of
cases, every run) and one page per case and dtype under `cases/` (its history chart and steps). Pages are
self-contained: inline CSS and SVG, no script, no network. Templates are jinja2 with autoescaping on, so
names and labels from the store are text, never markup."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import opbench.machine as machine
from opbench._version import __version__
from opbench.report.plots import format_ms
from opbench.results import Run
from opbench.results.files import atomic_write
from opbench.site.chart import history_svg
from opbench.site.history import Change, histories, machine_key, when


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("opbench.site", "templates"),
                             autoescape=jinja2.select_autoescape(default=True), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["ms"] = format_ms
    env.filters["pct"] = lambda r: f"{r - 1:+.0%}"
    return env


def build_site(runs: Sequence[Run], out: Path, source: str, progress=None) -> list[Path]:
    """Render every page into `out`; the files written. `source` names the store (no credentials)."""
    env = _environment()
    hs = histories(runs)
    measured = sorted((r for r in runs if not r.imported), key=when, reverse=True)
    machines = sorted({machine_key(r.machine) for r in measured})
    backends = sorted({res.backend for r in measured for res in r.results})
    grid = {(m, b): [r for r in measured if machine_key(r.machine) == m and any(x.backend == b for x in r.results)]
            for m in machines for b in backends}
    changes: list[Change] = sorted((c for h in hs for line in h.lines for c in line.changes),
                                   key=lambda c: (when(c.run), c.case), reverse=True)
    common = {"version": __version__, "source": source,
              "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    written = []
    for h in hs:
        page = env.get_template("case.html.j2").render(
            h=h, svg=history_svg(h, machines), changes=[c for line in h.lines for c in line.changes], **common)
        written.append(out / "cases" / f"{h.slug}.html")
        atomic_write(written[-1], page)
        if progress:
            progress(h.case)
    index = env.get_template("index.html.j2").render(
        runs=measured, imported=[r for r in runs if r.imported], machines=machines, backends=backends, grid=grid,
        changes=changes, histories=hs, describe=machine.describe, machine_key=machine_key, **common)
    written.append(out / "index.html")
    atomic_write(written[-1], index)
    return written
