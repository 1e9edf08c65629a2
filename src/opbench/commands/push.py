"""`opbench push RUN... --to URL`: copy runs from this store (or run files) into another store, e.g. the team's
PostgreSQL database; what the target already holds is not written again (`opbench.results.sync`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from opbench.commands import add_store
from opbench.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="copy runs into another store (e.g. a shared PostgreSQL database)")
    p.add_argument("runs", metavar="RUN", nargs="*",
                   help="stored run ids, unique prefixes or 'latest'; or run.json files / run directories")
    p.add_argument("--all", action="store_true", help="every run in the source store")
    p.add_argument("--to", required=True, metavar="PATH|URL",
                   help="the target store: a postgresql://user@host/db URL or an SQLite file")
    add_store(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from opbench.results.dialects import dialect_for
    from opbench.results.resolve import load_run
    from opbench.results.store import default_store_location, open_store
    from opbench.results.sync import push_run

    if not args.runs and not args.all:
        raise UsageError("name the runs to push (ids, prefixes, 'latest', run files) or pass --all")
    if args.runs and args.all:
        raise UsageError(f"--all pushes every run of the source store; drop it or the runs named ({args.runs[0]} ...)")
    if args.all:
        with open_store(args.store, create=False) as source:
            runs = [source.load_run(i) for i in source.run_ids()[::-1]]
    else:
        runs = [load_run(ref, store=args.store) for ref in args.runs]  # all resolved before anything is written
    source = dialect_for(args.store if args.store is not None else default_store_location()).location
    if dialect_for(args.to).location == source and not all(Path(ref).exists() for ref in args.runs or ["-"]):
        raise UsageError(f"--to {source} is the source store itself")
    with open_store(args.to) as target:
        for r in runs:
            print(push_run(r, target).describe())
        print(f"{len(runs)} runs pushed to {target.location}")
    return 0
