"""What verification costs in an `opbench run`: seconds spent verifying per backend, and its reference part.

    PYTHONPATH=src python benchmarks/verify_cost.py run --label after --out results/verify-cost/after.json \
        [--backends cpu,mlx_cpu,jax_cpu] [--ops CASES] [-- extra `opbench run` options]
    PYTHONPATH=/tmp/before/src python benchmarks/verify_cost.py run --label before --out .../before.json ...
    python benchmarks/verify_cost.py compare results/verify-cost/before.json results/verify-cost/after.json

`run` runs the real suite (`python -m opbench run`, worker processes and all) with the opbench found on
PYTHONPATH, so the same script measures any version of the code. It cannot ask the code for phase times (older
versions record none), so it times the verifier from outside: a `sitecustomize.py` put first on the workers'
PYTHONPATH wraps, in every process, the functions that the module measuring one case (`engine.execute`, before it
`engine.runner`, before that `runner`) calls to verify one output:
- the reference part: `expected_for` (the expectation, through the reference cache) where the runner has it,
  else `Case.reference` (older runners compute a float64 reference of sampled rows);
- the check: the runner's `verify` (comparison of the output with that reference);
and the runner's `measure` to learn which backend a process measures. Each call appends one JSON line
(backend, case, part, wall seconds, CPU seconds of the process) to a log; `run` sums them per backend and
writes them with the suite's wall time and the load average before and after. The reference cache is pointed
at an empty directory (a cold cache: the first run on a machine), unless `--warm DIR` names one to reuse.
Trade-off: the wrappers add one clock read and one small file append per verified output (microseconds), and
the wall time of a loaded shared machine is noisy: the CPU seconds of
the verifier (time.process_time around each call: all threads of the worker, which does nothing else
meanwhile) are the figure that survives other people's load; wall seconds and the suite's wall are context.

`compare` prints the per-backend figures of two such files side by side.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SITECUSTOMIZE = textwrap.dedent('''
    """Installed by benchmarks/verify_cost.py: times the runner's verification calls in every process."""
    import functools
    import json
    import os
    import time

    _LOG = os.environ.get("OPBENCH_VERIFY_COST_LOG")


    def _install():
        import importlib

        runner = None  # the module whose functions measure and verify one case: it has moved over time
        for name in ("opbench.engine.execute", "opbench.engine.runner", "opbench.runner"):
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            if hasattr(module, "verify") and hasattr(module, "measure"):
                runner = module
                break
        from opbench.catalog import Case

        state = {"backend": "?"}

        def write(part, case, seconds, cpu):
            with open(_LOG, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), "backend": state["backend"], "case": case,
                                    "part": part, "s": seconds, "cpu_s": cpu}) + "\\n")

        def timed(fn, part, case_of):
            @functools.wraps(fn)
            def call(*args, **kwargs):
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    return fn(*args, **kwargs)
                finally:
                    write(part, case_of(args, kwargs), time.perf_counter() - t0, time.process_time() - c0)
            return call

        real_measure = runner.measure

        @functools.wraps(real_measure)
        def measure(op, args, backend, *rest, **kwargs):
            state["backend"] = getattr(backend, "name", "?")
            return real_measure(op, args, backend, *rest, **kwargs)

        runner.measure = measure
        runner.verify = timed(runner.verify, "check", lambda a, k: getattr(a[0], "name", "?"))
        if hasattr(runner, "expected_for"):
            runner.expected_for = timed(runner.expected_for, "reference", lambda a, k: getattr(a[0], "name", "?"))
        else:
            Case.reference = timed(Case.reference, "reference", lambda a, k: getattr(a[0], "name", "?"))


    if _LOG:
        _install()
''')


def _summarize(log: Path) -> dict[str, dict]:
    """Per backend: wall and CPU seconds of the reference part and of the check, summed over the log."""
    zero = {"reference_s": 0.0, "check_s": 0.0, "reference_cpu_s": 0.0, "check_cpu_s": 0.0}
    per: dict[str, dict] = collections.defaultdict(lambda: {**zero, "calls": 0})
    cases: dict[str, dict[str, dict[str, float]]] = collections.defaultdict(dict)
    for line in log.read_text().splitlines() if log.exists() else []:
        rec = json.loads(line)
        b = per[rec["backend"]]
        entry = cases[rec["backend"]].setdefault(rec["case"], dict(zero))
        for target in (b, entry):
            target[f"{rec['part']}_s"] += rec["s"]
            target[f"{rec['part']}_cpu_s"] += rec["cpu_s"]
        b["calls"] += rec["part"] == "check"
    for b, v in per.items():
        v["verify_s"] = v["reference_s"] + v["check_s"]
        v["verify_cpu_s"] = v["reference_cpu_s"] + v["check_cpu_s"]
        v["cases"] = cases[b]
    return dict(per)


def run(args: argparse.Namespace, extra: list[str]) -> None:
    import opbench

    work = Path(tempfile.mkdtemp(prefix="verify-cost-"))
    (work / "site").mkdir()
    (work / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = work / "calls.jsonl"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(work / "site"), *filter(None, [env.get("PYTHONPATH")])])
    env["OPBENCH_VERIFY_COST_LOG"] = str(log)
    env["OPBENCH_REFERENCE_CACHE"] = str(args.warm or work / "references")
    command = [sys.executable, "-m", "opbench", "run", "--backends", args.backends, "--out", str(work / "out"),
               "--store", str(work / "store.sqlite"), "--format", "md", *(["--ops", args.ops] if args.ops else []),
               *extra]
    print("$ " + " ".join(command), file=sys.stderr)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    if done.returncode != 0:
        sys.exit(f"opbench run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    run_doc = json.loads((work / "out" / "run.json").read_text())
    statuses = collections.Counter((r["backend"], r["status"]) for r in run_doc["results"])
    figures = {
        "label": args.label, "opbench": str(Path(opbench.__file__).parent), "version": opbench.__version__,
        "command": " ".join(command[1:]), "reference_cache": "warm" if args.warm else "cold (empty)",
        "suite_wall_s": wall, "loadavg_before": load_before, "loadavg_after": load_after,
        "cpus": os.cpu_count(), "backends": _summarize(log),
        "statuses": {f"{b} {s}": n for (b, s), n in sorted(statuses.items())},
        "cases": len({r["case"] for r in run_doc["results"]}),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    print(table([figures]))


def table(docs: list[dict]) -> str:
    """Per backend and document: verification seconds (reference + check), the suite's wall."""
    lines = ["| run | backend | outputs verified | verify s (wall) | reference s | check s | verify CPU s | "
             "reference CPU s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for d in docs:
        rows = sorted(d["backends"].items())
        rows.append(("**all**", {k: sum(v[k] for _, v in rows) for k in
                                 ("calls", "verify_s", "reference_s", "check_s", "verify_cpu_s", "reference_cpu_s")}))
        for b, v in rows:
            lines.append(f"| {d['label']} | {b} | {v['calls']} | {v['verify_s']:.2f} | {v['reference_s']:.2f} | "
                         f"{v['check_s']:.2f} | {v['verify_cpu_s']:.2f} | {v['reference_cpu_s']:.2f} |")
    lines.append("")
    lines += [f"- {d['label']}: suite wall {d['suite_wall_s']:.1f} s for {d['cases']} cases (load average "
              f"{d['loadavg_before'][0]:.1f} before, {d['loadavg_after'][0]:.1f} after, {d['cpus']} CPUs); "
              f"reference cache {d['reference_cache']}; `{d['command']}`" for d in docs]
    return "\n".join(lines)


def compare(paths: list[Path]) -> None:
    docs = [json.loads(p.read_text()) for p in paths]
    print(table(docs))
    if len(docs) == 2:
        a, b = docs
        print()
        print("Over the cases both verified on that backend (a case one side could not finish is left out):\n")
        print(f"| backend | cases | {a['label']} verify CPU s | {b['label']} verify CPU s | ratio | {a['label']} "
              f"verify wall s | {b['label']} verify wall s | ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        totals = {k: [0.0, 0.0] for k in ("cpu", "wall")}
        for backend in sorted(set(a["backends"]) | set(b["backends"])):
            ca = a["backends"].get(backend, {}).get("cases", {})
            cb = b["backends"].get(backend, {}).get("cases", {})
            common = sorted(set(ca) & set(cb))
            cells = []
            for kind, parts in (("cpu", ("reference_cpu_s", "check_cpu_s")), ("wall", ("reference_s", "check_s"))):
                va = sum(ca[c][p] for c in common for p in parts)
                vb = sum(cb[c][p] for c in common for p in parts)
                totals[kind][0] += va
                totals[kind][1] += vb
                cells += [f"{va:.2f}", f"{vb:.2f}", f"{vb / va:.2f}" if va else "–"]
            print(f"| {backend} | {len(common)} | " + " | ".join(cells) + " |")
        (ca_, cb_), (wa, wb) = totals["cpu"], totals["wall"]
        print(f"| **all** | | {ca_:.2f} | {cb_:.2f} | {cb_ / ca_:.2f} | {wa:.2f} | {wb:.2f} | {wb / wa:.2f} |")
        print(f"\nSuite wall: {a['label']} {a['suite_wall_s']:.1f} s, {b['label']} {b['suite_wall_s']:.1f} s "
              f"({b['suite_wall_s'] / a['suite_wall_s']:.2f}x; {a['statuses']} vs {b['statuses']})")


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the suite with the verifier timed")
    r.add_argument("--label", required=True)
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--backends", default="cpu,mlx_cpu,jax_cpu")
    r.add_argument("--ops", help="families or exact case names (default: the whole preset)")
    r.add_argument("--warm", type=Path, help="reuse this reference cache directory instead of an empty one")
    c = sub.add_parser("compare", help="print two (or more) result files side by side")
    c.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args, extra)
    else:
        compare(args.files)


if __name__ == "__main__":
    main()
