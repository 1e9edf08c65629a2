"""Re-render `detailed.md` and `average.md` of run directories from their `run.json`, as `opbench run` writes them.

    PYTHONPATH=src python benchmarks/render_tables.py results/h100 results/h100-rerun [--pairs A/B,...] [--geomean]

For committed results whose verdicts were re-classified (`benchmarks/reclassify.py --write`) or whose table
layout changed: the tables are rebuilt by the same `report.tables.write_run_tables` a run uses, so they match what a
fresh run would print. Nothing is measured.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from opbench.report.tables import parse_pairs, write_run_tables
from opbench.results.resolve import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="run directories (each holds a run.json)")
    parser.add_argument("--pairs", help="speedup columns as A/B pairs (default: the tables' own choice)")
    parser.add_argument("--geomean", action="store_true", help="geometric means in the Average table")
    args = parser.parse_args()
    for directory in args.dirs:
        run = load_run(str(directory / "run.json"))
        write_run_tables(directory, run.results, parse_pairs(args.pairs), args.geomean)
        print(f"{directory}: detailed.md, average.md ({len(run.results)} results)")


if __name__ == "__main__":
    main()
