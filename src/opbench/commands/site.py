"""`opbench site STORE --out DIR`: a static, self-contained web site of everything in a store (SQLite file or
PostgreSQL URL): machines × backends × runs, each case's history with its steps, the regressions and
improvements with the software change that came with them (`opbench.site`)."""

from __future__ import annotations

import argparse

from opbench.commands import console, options, progress
from opbench.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("site", help="write a static web site of every run in a store, with regression detection")
    p.add_argument("store", metavar="STORE", nargs="?", type=options.store_location,
                   help="an SQLite file or a postgresql://user@host/db URL (default $OPBENCH_STORE, else the "
                        "user data directory's store)")
    p.add_argument("--out", type=options.output_dir, required=True, help="directory to write (index.html, cases/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from opbench.results.store import open_store
    from opbench.site.history import histories
    from opbench.site.render import build_site

    with open_store(args.store, create=False) as store:
        runs = [store.load_run(i) for i in store.run_ids()]
        source = store.location
    if not runs:
        raise UsageError(f"the store {source} holds no runs; nothing to publish")
    bar, advance = progress(len(histories(runs)), "site")
    try:
        with bar:
            written = build_site(runs, args.out, source, advance)
    except OSError as exc:
        raise UsageError(f"cannot write the site into {args.out}: {exc.strerror or exc}") from None
    console(stderr=True).print(f"site: {args.out / 'index.html'} ({len(written)} pages, {len(runs)} runs)",
                               markup=False)
    return 0
