"""opbench's files: one family of versioned JSON documents, and one way to read any of them.

Every document opbench writes opens with `{"format": NAME, "schema_version": N}` (pyperf's versioned results).
The names, their versions and the history of each version live here, next to each other; the module that
writes a format builds its header with `Format.header()`. `load_document(path)` reads any of them: it
dispatches on the format name, so a file of another opbench format, of an unknown format, of a newer version,
or one that is not JSON at all is a one-line `UsageError` (exit 2) that names what the file is and what was
expected, before anything is measured or written. Old files still load: a version is raised only for a change
that an older reader cannot take, and optional fields added later read as empty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opbench.errors import UsageError


@dataclass(frozen=True)
class Format:
    """One document format: its `name`, the `version` this opbench writes and reads, what to call such a file
    in a message (`what`), the file name it has inside a result directory, and how to get one (`hint`)."""

    name: str
    version: int
    what: str
    filename: str
    hint: str
    oldest: int = 0  # the oldest version this opbench still reads (0: only `version`)

    def header(self) -> dict[str, Any]:
        return {"format": self.name, "schema_version": self.version}

    def reads(self, version: Any) -> bool:
        """Whether this opbench reads a document of `version` of this format (`oldest` up to `version`)."""
        if not isinstance(version, int) or isinstance(version, bool):
            return False
        return (self.oldest or self.version) <= version <= self.version


RUN = Format("opbench-run", 1, "run", "run.json", "write one with `opbench run --out DIR` or `opbench export`")
# opbench-run versions:
#   1 - first version: run metadata, per-result raw samples in ms, verdict, relative error, error text. Later
#       optional fields (absent in older files, read as empty): `process_medians_ms`, `unit_sizes` (how many of
#       `samples_ms`, in order, each independent unit -- a worker process -- took), `conditions` (how busy the
#       machine was while the case was timed), `warnings` (what the framework warned), `phases_ms` (where the
#       case's wall time went), `unit_statuses` (each unit's verdict, in order).
#       Statuses: `results.status.Status`, every study's (a dtype study stored as a run has its own).
DTYPES = Format("opbench-dtypes", 1, "dtype study", "dtypes.json",
                "give the --out directory of an `opbench dtypes` run")
# opbench-dtypes versions:
#   1 - first version: cells (the dtype matrix) and precision rows (the matmul under each precision mode).
SWEEP = Format("opbench-sweep", 1, "sweep", "sweep.json", "give the --out directory of an `opbench sweep`")
# opbench-sweep versions:
#   1 - first version: the sweep's settings and machine, one point per size and backend (a run result plus its
#       compile record, roofline and ratio to the baseline).
CALIBRATION = Format("opbench-calibration", 1, "calibration", "calibration.json",
                     "write one with `opbench calibrate --out FILE`")
# opbench-calibration versions:
#   1 - first version: per backend, the copy bandwidth and the matmul peak per dtype; files without the later
#       optional `read` ceiling read as such (memory ceiling = copy).
NOISE = Format("opbench-noise", 2, "noise result", "noise.json", "measure one with `opbench noise`", oldest=1)
# opbench-noise versions:
#   1 - first version: per backend and duration class, the A/A noise floor of this machine and the runs behind it.
#   2 - per backend and duration class also the run-to-run variance component `sigma2_run` (variance of one run's
#       log time about the machine's, `significance.run_variance`), the rows behind it (`run_rows`), its plain
#       method-of-moments value (`sigma2_run_moments`, for information) and the false positives with it
#       (`different_with_run`); `detectable` now includes the component. Version 1 files still load: their
#       component reads as absent (compare then models no run-to-run drift).

FORMATS: dict[str, Format] = {f.name: f for f in (RUN, DTYPES, SWEEP, CALIBRATION, NOISE)}


def check_header(data: Any, expected: Format) -> None:
    """Refuse, with one line, a document that is not `expected` at its version: another opbench format is
    named as such, an unknown one lists the formats this opbench reads."""
    name = _format_name(data)
    if name != expected.name:
        other = FORMATS.get(name) if isinstance(name, str) else None
        if other is not None:
            raise UsageError(f"this is an opbench {other.what} file ({other.name}), not a {expected.what} file "
                             f"({expected.hint})")
        raise UsageError(f"not an opbench {expected.what} file ({_shown(name)}; expected format: {expected.name})")
    version = data.get("schema_version")
    if not expected.reads(version):
        newer = isinstance(version, int) and not isinstance(version, bool) and version > expected.version
        readable = (f"versions {expected.oldest} to {expected.version}" if expected.oldest
                    else f"version {expected.version}")
        raise UsageError(f"{expected.what} file has schema version {version!r}; this opbench reads {readable}"
                         + ("; upgrade opbench" if newer else ""))


def load_document(path: Path | str, *expected: Format) -> tuple[Path, Format, dict[str, Any]]:
    """Read the opbench document at `path` (a directory: the file of the expected format inside it):
    (the file read, its format, its content). Dispatches on the document's format name; with `expected`, any
    other format is refused. Missing, unreadable, non-JSON, foreign or newer files are one-line UsageErrors."""
    path = Path(path)
    what = " or ".join(f.what for f in expected) if expected else "opbench"
    file = path
    if path.is_dir():
        candidates = [path / f.filename for f in (expected or tuple(FORMATS.values()))]
        file = next((c for c in candidates if c.is_file()), candidates[0])
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        hint = "; ".join(f.hint for f in expected)
        raise UsageError(f"no {what} at {file}" + (f" ({hint})" if hint else "")) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read {what} {file}: {str(exc).splitlines()[0]}") from None
    name = _format_name(data)
    fmt = FORMATS.get(name) if isinstance(name, str) else None
    wanted = expected or tuple(FORMATS.values())
    if fmt is None or fmt not in wanted:
        check_header(data, wanted[0] if len(wanted) == 1 else _unknown(name, wanted))
    assert fmt is not None
    check_header(data, fmt)
    return file, fmt, data


def _format_name(data: Any) -> Any:
    """The document's `format` field (None when it has none or is not a JSON object)."""
    return data.get("format") if isinstance(data, dict) else None


def _shown(name: Any) -> str:
    """The format field as a message shows it."""
    return f"format {str(name)[:40]!r}" if name is not None else "no 'format' field"


def _unknown(name: Any, wanted: tuple[Format, ...]) -> Format:
    raise UsageError(f"not an opbench document ({_shown(name)}); valid choices: {', '.join(f.name for f in wanted)}")
