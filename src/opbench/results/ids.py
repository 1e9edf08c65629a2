"""Run ids: which are safe to store, and the folder name a run's files get by default.

A run id reaches file paths (`opbench-out/RUN_ID/plots`), so an id read from any file (an imported run.json,
a hand-edited export) is checked before it is stored or used: `../../x` or `/abs/path` would write outside
`opbench-out`. Safe ids are 1-128 characters of letters, digits, `.`, `_`, `+`, `-`, starting with a letter
or digit (every id opbench makes: `20260101-000000-abcd`, `pub-rtx4090-1a2b3c4d`, `sweep-...`, `dtypes-...`).
`folder_name` maps any id, also one stored before this check existed, to such a name.
"""

from __future__ import annotations

import hashlib
import re

from opbench.errors import UsageError

MAX_RUN_ID = 128
_SAFE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._+-]{{0,{MAX_RUN_ID - 1}}}")
RESERVED = ("latest",)


def is_safe_run_id(run_id: str) -> bool:
    return isinstance(run_id, str) and bool(_SAFE.fullmatch(run_id)) and run_id not in RESERVED


def check_run_id(run_id: object, source: str = "") -> str:
    """`run_id` if it is safe to store and to use as a folder name, else a one-line UsageError."""
    if not isinstance(run_id, str) or not is_safe_run_id(run_id):
        shown = repr(run_id)[:60] + ("..." if len(repr(run_id)) > 60 else "")
        where = f"{source}: " if source else ""
        raise UsageError(f"{where}invalid run id {shown}; a run id is 1-{MAX_RUN_ID} letters, digits, '.', '_', "
                         "'+' or '-', starting with a letter or digit (and not 'latest')")
    return run_id


def folder_name(run_id: str) -> str:
    """A file-system-safe folder name for `run_id`: the id itself when safe, else a slug of it plus a hash."""
    if is_safe_run_id(run_id):
        return run_id
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "-", run_id).strip(".-_+")[:40] or "run"
    return f"{slug}-{hashlib.sha256(run_id.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"
