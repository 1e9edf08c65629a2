"""Turn what a user typed (a run file path, later a stored run id) into a `Run`."""

from __future__ import annotations

from pathlib import Path

from opbench.errors import UsageError
from opbench.results.model import Run


def load_run(ref: str) -> Run:
    """A run from a JSON file written by `opbench run` (run.json, or its directory)."""
    path = Path(ref)
    if path.is_dir():
        path = path / "run.json"
    if path.is_file():
        return Run.from_json(path)
    raise UsageError(f"unknown run {ref!r}: not a run file or run directory")
