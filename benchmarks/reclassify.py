"""Re-classify stored runs with the current verifier, from their stored relative errors and settings.

For every timed result of each run file given: the narrower arithmetic its backend reported
(`opbench.backends.arithmetic.narrower_arithmetic`, from the run's recorded backend settings), the normwise bounds the
current `verify` applies to that case (recomputed from the regenerated inputs, through the reference cache), and
the verdict they give to the stored relative error. The componentwise check needs the outputs, which runs do not
store, so this is the normwise half of the verdict only; a stored `wrong` from a tie-aware check (Argmax,
Scatter) or a dtype/shape mismatch stays `wrong`.

    PYTHONPATH=src python benchmarks/reclassify.py results/h100/run.json [more run.json ...] [--write]

Prints every changed verdict and a count per (old -> new); with --write, rewrites the files in place (status,
tolerance, and in `detail` the mode of a reduced-precision result or the reason of a new `wrong`; an older
verifier's "checked N sampled rows" stays, since the stored error is of those rows).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

from opbench.backends.arithmetic import narrower_arithmetic
from opbench.catalog import all_cases
from opbench.engine.reference_cache import expected_for
from opbench.engine.verify import OK, REDUCED, WRONG, normwise_tolerance

TIMED = (OK, REDUCED, WRONG)
KEPT_WRONG = ("Argmax", "Scatter", "ReLU", "Concat", "Gather", "Sort", "ScatterMax")
bounds: dict[tuple[str, str, int, str | None], float] = {}  # normwise bounds, shared by the files of one call


def reclassify(path: Path, write: bool) -> collections.Counter:
    run = json.loads(path.read_text())
    cases = {c.name: c for c in all_cases()}
    seed = int(run.get("settings", {}).get("seed", 0) or 0)
    changes: collections.Counter = collections.Counter()
    current: tuple[str, object] = ("", None)  # one case's expectation in memory at a time

    def bound(case_name: str, dtype: str, mode: str | None) -> float:
        nonlocal current
        key = (case_name, dtype, seed, mode)
        if key not in bounds:
            if current[0] != case_name:
                t0 = time.perf_counter()
                case = cases[case_name]
                current = (case_name, None)
                current = (case_name, expected_for(case, case.make_inputs(dtype, seed), dtype, seed))
                print(f"  {path}: expectation of {case_name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            bounds[key] = normwise_tolerance(current[1], dtype, mode)
        return bounds[key]

    for r in sorted(run["results"], key=lambda r: r["case"]):  # by case: each expectation is computed once
        case = cases.get(r["case"])
        if r["status"] not in TIMED or case is None or r.get("rel_error") is None:
            continue
        recorded = (run.get("backends") or {}).get(r["backend"]) or {}
        settings = recorded.get("settings", recorded)  # run files keep {"versions": ..., "settings": ...}
        mode = narrower_arithmetic(r["backend"], settings, case.family, r["dtype"])
        strict = bound(r["case"], r["dtype"], None)
        err = float(r["rel_error"])
        if r["status"] == WRONG and (case.family in KEPT_WRONG or err != err or err == float("inf")):
            new, tol, detail = WRONG, r.get("tolerance") or 0.0, r.get("detail", "")
        elif err <= strict:
            new, tol, detail = OK, strict, ""
        elif mode and err <= (loose := bound(r["case"], r["dtype"], mode)):
            new, tol, detail = REDUCED, loose, mode
        else:
            tol = bound(r["case"], r["dtype"], mode) if mode else strict
            new, detail = WRONG, f"rel. error {err:.2g} > {tol:.2g}" + (f" even under {mode}" if mode else "")
        if new != r["status"]:
            print(f"{path}: {r['backend']:16s} {r['status']:>17s} -> {new:17s} {err:9.2e} (tol {tol:.2e}) "
                  f"{r['case']}  {detail}")
        changes[(r["status"], new)] += 1
        if new == REDUCED:
            r["detail"] = detail  # the mode, which the tables' legend names
        elif new == WRONG and (r["status"] != WRONG or not r.get("detail")):
            r["detail"] = f"{detail} (re-classified from the stored error by benchmarks/reclassify.py)"
        elif new == OK and r["status"] != OK and not r.get("detail", "").startswith("checked"):
            r["detail"] = ""  # keep an older verifier's "checked N sampled rows": the stored error is theirs
        r["status"], r["tolerance"] = new, tol
    if write:
        path.write_text(json.dumps(run, indent=1, default=str) + "\n")
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--write", action="store_true", help="rewrite the run files with the new verdicts")
    args = parser.parse_args()
    total: collections.Counter = collections.Counter()
    for path in args.runs:
        counts = reclassify(path, args.write)
        total.update(counts)
        print(f"{path}: " + ", ".join(f"{a} -> {b}: {n}" for (a, b), n in sorted(counts.items())))
    print("all: " + ", ".join(f"{a} -> {b}: {n}" for (a, b), n in sorted(total.items())))


if __name__ == "__main__":
    main()
