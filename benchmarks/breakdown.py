"""Where a run's wall time went, per backend: the phases every result records (`opbench.engine.phases`).

    python benchmarks/breakdown.py RUN_JSON_OR_DIR            # a run directory or its run.json
    python benchmarks/breakdown.py RUN_ID --store PATH|URL    # a stored run (id, prefix or 'latest')
    python benchmarks/breakdown.py ... --json out.json        # the figures as JSON too

Prints one row per backend: the backend's wall time (worker start to stop of every pass, storing included,
as `opbench run` recorded it; else the sum of its cases' round trips), the seconds in each phase summed
over cases and passes, what the cases' round trips do not account for (`parent`: storing each result and
rewriting run.json between cases), and the share of the wall time spent measuring (first calls plus timed
samples), and how many case-passes took their verdict from the device fingerprint of an output verified
before (`engine.verdict_cache`: no copy to the host, no hash). A run made before phases were recorded has
none: it is said so, not guessed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from opbench.engine.phases import MEASURING, PHASES, WALL
from opbench.engine.verdict_cache import FINGERPRINT_HITS
from opbench.results import Run


def load(ref: str, store: str | None) -> Run:
    path = Path(ref)
    if path.exists():
        return Run.from_json(path / "run.json" if path.is_dir() else path)
    from opbench.results.store import open_store

    with open_store(store, create=False) as db:
        return db.load_run(db.resolve(ref))


def breakdown(run: Run) -> list[dict]:
    """One dict per backend: wall_s, cases, passes, each phase in seconds, parent_s, measuring_share."""
    rows = []
    for backend in run.backend_names():
        results = [r for r in run.results if r.backend == backend]
        with_phases = [r for r in results if r.phases_ms]
        if not with_phases:
            rows.append({"backend": backend, "cases": len(results), "phases": False})
            continue
        phase_s = {p: sum(r.phases_ms.get(p, 0.0) for r in with_phases) / 1e3 for p in PHASES}
        round_trips = sum(r.phases_ms.get(WALL, 0.0) for r in with_phases) / 1e3
        meta = run.backends.get(backend, {})
        wall = float(meta.get("wall_s") or round_trips)
        inside = sum(phase_s[p] for p in PHASES)
        measuring = sum(phase_s[p] for p in MEASURING)
        rows.append({"backend": backend, "cases": len(results), "phases": True, "passes": meta.get("passes"),
                     "wall_s": wall, **{f"{p}_s": phase_s[p] for p in PHASES},
                     "pipe_s": max(0.0, round_trips - inside), "parent_s": max(0.0, wall - round_trips),
                     "measuring_s": measuring, "measuring_share": measuring / wall if wall > 0 else 0.0,
                     "fingerprint_verdicts": sum(int(r.conditions.get(FINGERPRINT_HITS, 0)) for r in results)})
    return rows


def render(rows: list[dict]) -> str:
    from tabulate import tabulate

    columns = ["wall", *PHASES, "pipe", "parent"]
    table = []
    for row in rows:
        if not row["phases"]:
            table.append([row["backend"], row["cases"], "", "(no phases recorded: a run made before they were)"])
            continue
        table.append([row["backend"], row["cases"], row.get("passes") or "",
                      *(f"{row[f'{c}_s']:.1f}" for c in columns), f"{100 * row['measuring_share']:.0f} %",
                      row.get("fingerprint_verdicts", 0)])
    headers = ["backend", "cases", "passes", *(f"{c} s" for c in columns), "measuring", "fingerprint verdicts"]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run.json, a run directory, or a stored run id / prefix / 'latest'")
    parser.add_argument("--store", help="the store of a run id (default: opbench's own)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    from opbench.errors import UsageError

    try:
        run = load(args.run, args.store)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = breakdown(run)
    print(f"run {run.run_id}: wall time per backend, in seconds summed over cases and passes; measuring = "
          f"{' + '.join(MEASURING)}")
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps({"run_id": run.run_id, "backends": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
