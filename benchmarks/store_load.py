"""Load test of the PostgreSQL store: many machines' worth of `opbench run`s writing into one database at once.

Starts a private PostgreSQL server (`opbench.testing.postgres.TestServer`: initdb + pg_ctl, so it can be
restarted), then:
  A. WRITERS processes, each a small real `opbench run` (default: cpu backend, 5 families of the quick preset),
     write concurrently into one database while READERS processes list and load runs in a loop; one writer is
     killed with SIGKILL (its process group, worker included) once it has stored a result, and then resumed
     with `opbench run --resume`;
  B. two more writers run while the server is restarted under them: each must end with exit 2 and a one-line
     error naming the lost connection and the resume command, keep its results in run.json, and complete when
     resumed.
Checks, per run: the store holds exactly the (case, backend) results that the run's run.json lists, with the
same raw samples (nothing lost, nothing mixed between runs), and every planned case. Readers must never see
a run's result count go down or a load fail. Prints the figures; exit 1 on any loss.

Usage (from the repository root):  PYTHONPATH=src python benchmarks/store_load.py [--writers 8] [--ops ...]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

READER = """
import sys, time
from opbench.results.store import Store
url, stop = sys.argv[1], sys.argv[2]
seen, reads, problems = {}, 0, 0
import os
while not os.path.exists(stop):
    try:
        with Store(url) as s:
            counts = s.result_counts()
            for run_id in s.run_ids()[:3]:
                n = len(s.load_run(run_id).results)
                problems += n < seen.get(run_id, 0)
                seen[run_id] = max(seen.get(run_id, 0), n)
            reads += 1
    except Exception as exc:  # the server restart in phase B is expected to interrupt readers
        print("reader:", str(exc).splitlines()[0], file=sys.stderr)
        time.sleep(0.5)
    time.sleep(0.05)
print(reads, problems)
"""


def writer(url: str, out: Path, args: argparse.Namespace, resume: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "opbench", "run", "--store", url, "--out", str(out), "--format", "md"]
    cmd += ["--resume", resume] if resume else ["--backends", args.backends, "--ops", args.ops, "--preset",
                                                "quick", "--budget", str(args.budget), "--min-samples", "3"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def results_in(out: Path) -> dict:
    try:
        return json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def wait_for_a_result(out: Path, proc: subprocess.Popen, timeout: float = 300) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if len(results_in(out).get("results", [])) >= 1:
            return True
        time.sleep(0.05)
    return False


def check(url: str, outs: list[Path], planned: int) -> tuple[int, int, int]:
    """(runs, results in the store, lost): lost counts results in a run.json missing or different in the
    store, results of another run, and planned cases never measured."""
    from opbench.results.store import Store

    lost = runs = stored = 0
    with Store(url) as s:
        counts = s.result_counts()
        for out in outs:
            doc = results_in(out)
            run = s.load_run(doc["run_id"])
            runs += 1
            stored += counts.get(run.run_id, 0)
            want = {(r["case"], r["backend"]): r["samples_ms"] for r in doc["results"]}
            have = {(r.case, r.backend): list(r.samples_ms) for r in run.results}
            lost += sum(1 for k, v in want.items() if have.get(k) != v)  # missing or mixed
            lost += len(set(have) - set(want)) + max(0, planned - len(have))
    return runs, stored, lost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--backends", default="cpu")
    parser.add_argument("--ops", default="ReLU,Sum,Softmax,Sigmoid,LeakyReLU")
    parser.add_argument("--budget", type=float, default=0.01)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "opbench-out")) / "store-load")
    args = parser.parse_args()

    from opbench.catalog import preset_cases, select_cases
    from opbench.testing.postgres import TestServer

    planned = len({c.name for c in select_cases(preset_cases("quick"), args.ops.split(","))}) * \
        len(args.backends.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    with TestServer() as server:
        url = server.create_database("load")
        stop = args.out / "stop-readers"
        stop.unlink(missing_ok=True)
        readers = [subprocess.Popen([sys.executable, "-c", READER, url, str(stop)], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True) for _ in range(args.readers)]
        # A: concurrent writers, one SIGKILLed mid-run then resumed
        t0 = time.perf_counter()
        outs = [args.out / f"writer-{i}" for i in range(args.writers)]
        procs = [writer(url, out, args) for out in outs]
        victim = procs[-1]
        killed = wait_for_a_result(outs[-1], victim)
        if killed:
            os.killpg(victim.pid, signal.SIGKILL)
        for p in procs:
            p.wait()
        killed_had = len(results_in(outs[-1]).get("results", []))
        bad = [f"writer {i} exit {p.returncode}: {p.stderr.read().strip().splitlines()[-1:]}"
               for i, p in enumerate(procs) if p is not victim and p.returncode != 0]
        failures += bad
        if killed:
            resumed = writer(url, outs[-1], args, resume=results_in(outs[-1])["run_id"])
            if resumed.wait() != 0:
                failures.append(f"resuming the killed run failed: {resumed.stderr.read().strip()[-300:]}")
        else:
            failures.append("the SIGKILL victim finished before storing a result (make runs longer)")
        seconds_a = time.perf_counter() - t0
        runs_a, results_a, lost_a = check(url, outs, planned)

        # B: the server restarted under two running writers
        t0 = time.perf_counter()
        outs_b = [args.out / f"restart-{i}" for i in range(2)]
        procs_b = [writer(url, out, args) for out in outs_b]
        interrupted = 0
        if all(wait_for_a_result(out, p) for out, p in zip(outs_b, procs_b)):
            server.restart()
        for out, p in zip(outs_b, procs_b):
            p.wait()
            err = p.stderr.read().strip().splitlines()
            if p.returncode == 2:
                interrupted += 1
                line = err[-1] if err else ""
                if not (line.startswith("opbench: error: lost the connection to the store postgresql://postgres:***@")
                        and "results kept in" in line and "resume with: opbench run --resume" in line):
                    failures.append(f"interrupted run's error is not the one-line resume message: {line[:300]}")
                if not results_in(out).get("results"):
                    failures.append("the interrupted run kept no results in run.json")
                resumed = writer(url, out, args, resume=results_in(out)["run_id"])
                if resumed.wait() != 0:
                    failures.append(f"resuming the interrupted run failed: {resumed.stderr.read().strip()[-300:]}")
            elif p.returncode != 0:
                failures.append(f"writer in phase B exit {p.returncode}: {err[-1:]}")
        if interrupted == 0:
            failures.append("the server restart interrupted no writer (make runs longer)")
        seconds_b = time.perf_counter() - t0
        runs_b, results_b, lost_b = check(url, outs_b, planned)

        stop.touch()
        reads = problems = 0
        for r in readers:
            out, _ = r.communicate(timeout=60)
            n, bad_reads = (int(x) for x in out.split())
            reads, problems = reads + n, problems + bad_reads
        password = url.split(":")[2].split("@")[0]
        leaked = [str(f) for out in outs + outs_b for f in out.iterdir() if password in f.read_text()]
    print(f"phase A: {args.writers} concurrent writers + {args.readers} readers, 1 SIGKILLed after "
          f"{killed_had} results and resumed: runs {runs_a}, results {results_a}, {seconds_a:.1f} s, lost {lost_a}")
    print(f"phase B: server restarted under 2 writers, {interrupted} interrupted (exit 2, one line) and resumed: "
          f"runs {runs_b}, results {results_b}, {seconds_b:.1f} s, lost {lost_b}")
    print(f"readers: {reads} store reads, {problems} saw a run lose results; planned {planned} results per run; "
          f"password in run files: {len(leaked)}")
    failures += [f"lost {lost_a + lost_b} results"] if lost_a + lost_b else []
    failures += [f"{problems} reader inconsistencies"] if problems else []
    failures += [f"password found in {leaked}"] if leaked else []
    for f in failures:
        print("FAIL:", f)
    print("lost = 0" if not failures else "FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
