"""Turn what a user typed (a run file or directory path, a stored run id, or a published table) into a `Run`."""

from __future__ import annotations

from pathlib import Path

from opbench.errors import UsageError
from opbench.results.importers import (
    looks_like_json,
    parse_published_markdown,
    path_is,
    read_text,
    run_from_json_text,
    select_section,
)
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


def load_run_or_table(ref: str, store: Store | str | Path | None = None) -> Run:
    """A run from what a user typed: a published Markdown file (`FILE` with one section, or `FILE#SECTION`,
    e.g. `detailed_benchmark.md#RTX4090`), a JSON run file or run directory, or a stored run id."""
    path_text, sep, selector = ref.rpartition("#") if "#" in ref and not path_is(Path(ref), "exists") else (ref, "", "")
    path = Path(path_text)
    if path_is(path, "is_file"):
        text = read_text(path)
        if looks_like_json(text):
            if sep:
                raise UsageError(f"{path_text} is a JSON run file: it has no sections to pick with '#'")
            return run_from_json_text(text, path_text)
        runs = parse_published_markdown(text, path_text)
        if sep:
            return select_section(runs, selector, path_text)
        if len(runs) == 1:
            return runs[0]
        raise UsageError(f"{path_text} has {len(runs)} sections; pick one as FILE#SECTION, or import it with "
                         f"`opbench import` and use a run id; valid choices: {'; '.join(r.label for r in runs)}")
    if sep and not path_text:
        raise UsageError(f"malformed run reference {ref!r}; write FILE#SECTION")
    return load_run(ref, store=store)
