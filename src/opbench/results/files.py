"""Run directories: `run.json` (rewritten atomically after every result) plus the rendered tables."""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
from dataclasses import replace
from pathlib import Path

from opbench.results.model import CaseResult, Run


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written file. The file gets the
    usual permissions (0666 minus the umask), not mkstemp's private 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDirectory:
    """Keeps a run's results on disk as they arrive: run.json is rewritten (atomically) after every result.

    Each result is encoded to JSON once, when it arrives, and the file is assembled from those pieces: the
    whole run re-encoded after every result made a run of N results cost O(N^2) encodings (2 ms each on a
    2-core VM: minutes over a seed run of three backends, spent while the worker waited)."""

    def __init__(self, out_dir: Path, run: Run) -> None:
        self.out_dir = out_dir
        self.run = run
        self._encoded: dict[tuple[str, str, str], tuple[CaseResult, str]] = {}

    def add(self, result: CaseResult) -> None:
        """Add `result`, replacing an earlier one of the same case, backend, dtype and mode (a later pass)."""
        key = result.key
        kept = tuple(r for r in self.run.results if r.key != key)
        self.run = replace(self.run, results=(*kept, result))
        self.write()

    def _piece(self, result: CaseResult) -> str:
        key = result.key
        cached = self._encoded.get(key)
        if cached is None or cached[0] is not result:
            cached = (result, textwrap.indent(json.dumps(result.to_dict(), indent=1, default=str), "  "))
            self._encoded[key] = cached
        return cached[1]

    def document(self) -> str:
        """run.json's text: `run.to_dict()` as JSON, the results from their cached encodings."""
        head = json.dumps({**self.run.to_dict(results=False), "results": []}, indent=1, default=str)
        assert head.endswith('"results": []\n}')
        pieces = [self._piece(r) for r in self.run.results]
        return head[: -len("[]\n}")] + ("[\n" + ",\n".join(pieces) + "\n ]" if pieces else "[]") + "\n}\n"

    def write(self) -> None:
        """Rewrite run.json from `run` (atomically)."""
        atomic_write(self.out_dir / "run.json", self.document())
