"""Run directories: `run.json` (rewritten atomically as results arrive) plus the rendered tables."""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
import time
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
    """Keeps a run's results on disk as they arrive: run.json is rewritten (atomically) as results come, at most
    once per `min_interval_s`, and always by `write` (the runner calls it after each pass and before it ends,
    interrupted or not).

    Each result is encoded to JSON once, when it arrives, and the file is assembled from those pieces: the
    whole run re-encoded after every result made a run of N results cost O(N^2) encodings (2 ms each on a
    2-core VM: minutes over a seed run of three backends, spent while the worker waited). Even assembled from
    pieces, rewriting the growing file after every result cost 8.9 ms per result (231 results of a quick run,
    2-core VM), while the worker waited for its next case; the store (`results.store`) takes each result in a
    transaction of its own as it arrives, so it is the record that is never behind, and run.json, the file
    mirror, may trail it by `min_interval_s` only if the process is killed outright (SIGKILL, power loss).
    Trade-off: a `kill -9` can leave run.json up to a second of results short of the store; `opbench show` and
    `run --resume` read the store."""

    def __init__(self, out_dir: Path, run: Run, min_interval_s: float = 1.0) -> None:
        self.out_dir = out_dir
        self.run = run
        self.min_interval_s = min_interval_s
        self._encoded: dict[tuple[str, str, str], tuple[CaseResult, str]] = {}
        self._written_at: float | None = None
        self.unwritten = 0  # results added since the last write

    def add(self, result: CaseResult) -> None:
        """Add `result`, replacing an earlier one of the same case, backend, dtype and mode (a later pass);
        rewrite run.json if `min_interval_s` has passed since the last write."""
        key = result.key
        kept = tuple(r for r in self.run.results if r.key != key)
        self.run = replace(self.run, results=(*kept, result))
        self.unwritten += 1
        if self._written_at is None or time.monotonic() - self._written_at >= self.min_interval_s:
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
        """Rewrite run.json from `run` (atomically), now."""
        atomic_write(self.out_dir / "run.json", self.document())
        self._written_at, self.unwritten = time.monotonic(), 0

    def flush(self) -> None:
        """Write run.json if results arrived since the last write."""
        if self.unwritten:
            self.write()
