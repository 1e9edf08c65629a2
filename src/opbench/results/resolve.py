"""Turn what a user typed (a run file or directory path, or a stored run id) into a `Run`."""

from __future__ import annotations

from pathlib import Path

from opbench.errors import UsageError
from opbench.results.importers import path_is, read_text, run_from_json_text
from opbench.results.model import Run
from opbench.results.store import Store, open_store


def load_run(ref: str, store: Store | str | Path | None = None) -> Run:
    """A run from a JSON file written by `opbench run` (run.json or its directory), else from the store.

    A path that exists wins; otherwise `ref` is a stored run id, an unambiguous prefix of one, or `latest`,
    looked up in `store` (a `Store`, a store path, or None for `$OPBENCH_STORE` / the default store).
    """
    path = Path(ref)
    if path_is(path, "is_dir"):
        path = path / "run.json"
        if not path_is(path, "is_file"):
            raise UsageError(f"{ref} is a directory without a run.json")
    if path_is(path, "is_file"):  # validated: a hand-edited or foreign file is a one-line error, not a later traceback
        return run_from_json_text(read_text(path), str(path))
    if isinstance(store, Store):
        return store.load_run(ref)
    try:
        opened = open_store(store, create=False)
    except UsageError as exc:
        raise UsageError(f"unknown run {ref!r}: not a run file or run directory, and {exc}") from None
    with opened:
        return opened.load_run(ref)
