"""Re-classify stored runs with the current verifier, from their stored relative errors and settings.

For every timed result of each run file given: the narrower arithmetic its backend reported
(`opbench.engine.arithmetic.narrower_arithmetic`, from the run's recorded backend settings), the normwise bounds the
current `verify` applies to that case (recomputed from the regenerated inputs, through the reference cache), and
the verdict they give to the stored relative error. The componentwise check needs the outputs, which runs do not
store, so this is the normwise half of the verdict only; a stored `wrong` from a tie-aware check (Argmax,
Scatter) or a dtype/shape mismatch stays `wrong`.

    PYTHONPATH=src python benchmarks/reclassify.py results/h100/run.json [more run.json ...] [--write]

Prints every changed verdict and a count per (old -> new); with --write, rewrites the files in place (status,
tolerance, and the mode in `detail` for reduced-precision results).
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from opbench.catalog import all_cases
from opbench.engine.arithmetic import narrower_arithmetic
from opbench.engine.reference_cache import expected_for
from opbench.engine.verify import OK, REDUCED, WRONG, normwise_tolerance

TIMED = (OK, REDUCED, WRONG)
KEPT_WRONG = ("Argmax", "Scatter", "ReLU", "Concat", "Gather", "Sort", "ScatterMax")


def reclassify(path: Path, write: bool) -> collections.Counter:
    run = json.loads(path.read_text())
    cases = {c.name: c for c in all_cases()}
    seed = int(run.get("settings", {}).get("seed", 0) or 0)
    changes: collections.Counter = collections.Counter()
    expectations: dict[str, object] = {}
    for r in run["results"]:
        case = cases.get(r["case"])
        if r["status"] not in TIMED or case is None or r.get("rel_error") is None:
            continue
        recorded = (run.get("backends") or {}).get(r["backend"]) or {}
        settings = recorded.get("settings", recorded)  # run files keep {"versions": ..., "settings": ...}
        mode = narrower_arithmetic(r["backend"], settings, case.family, r["dtype"])
        if r["case"] not in expectations:
            expectations[r["case"]] = expected_for(case, case.make_inputs(r["dtype"], seed), r["dtype"], seed)
        exp = expectations[r["case"]]
        strict = normwise_tolerance(exp, r["dtype"])
        err = float(r["rel_error"])
        if r["status"] == WRONG and (case.family in KEPT_WRONG or not err == err or err == float("inf")):
            new, tol, detail = WRONG, r.get("tolerance") or 0.0, r.get("detail", "")
        elif err <= strict:
            new, tol, detail = OK, strict, ""
        elif mode and err <= (loose := normwise_tolerance(exp, r["dtype"], mode)):
            new, tol, detail = REDUCED, loose, mode
        else:
            tol = normwise_tolerance(exp, r["dtype"], mode) if mode else strict
            new, detail = WRONG, f"rel. error {err:.2g} > {tol:.2g}" + (f" even under {mode}" if mode else "")
        if new != r["status"]:
            print(f"{path}: {r['backend']:16s} {r['status']:>17s} -> {new:17s} {err:9.2e} (tol {tol:.2e}) "
                  f"{r['case']}  {detail}")
        changes[(r["status"], new)] += 1
        r["status"], r["tolerance"] = new, tol
        if new != OK or r.get("detail", "").startswith("checked"):
            r["detail"] = detail
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
