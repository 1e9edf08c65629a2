"""Importers: published Markdown benchmark tables and opbench's own JSON run files, read back as `Run`s.

Published tables are the seed article's (one M3 Max run: a Detailed and an Average table) and mlx-benchmark's
`detailed_benchmark.md` (one section per device). Each device section becomes one read-only run marked
`imported`, whose results carry the single published number (`published_ms`) and no samples; nothing in it
was verified here, so every result says `imported: not verified`.

Markdown algorithm, written to tolerate the real files' irregularities:
1. A table is a block of consecutive lines starting with `|`. Its first row is the header; a `|---|` row is
   skipped wherever it is. A cell is what lies between two pipes, whitespace-trimmed (padding never matters).
2. Backend columns are the header cells after the first that do not end in `speedup` and look like a name
   (`mlx_gpu`, `cuda`, ...). Speedup columns are derived data and are ignored.
3. Rows whose first cell reads `Family / dim=...` are detailed rows and are kept; rows with a bare family name
   are an Average table's and are dropped, so a table with only those (an Average table) adds nothing.
4. A table's heading is the nearest line above it, after the previous table, that is bold (`**M1 Pro ...**`),
   a `#` heading, or a short line naming hardware (`A100 80GB PCIe (...)`, no bold); `Detailed benchmark:` and
   `Average benchmark:` lines are skipped. No heading since the previous table: the table continues that
   table's section (a Detailed table followed by its Average table). No heading at all before the first
   table: the document's first line of text (the seed article's title, which names the M3 Max).
5. Timing mode: the seed's and mlx-benchmark's tables time each call with a sync (`latency`, see
   `opbench.engine.modes`), so their results are latency-mode results; a table under opbench's own label
   (`Detailed benchmark (...; throughput mode: ...):`) gets the mode it names.
6. Cells: a number is `ok`; `nan` is `unsupported` ("nan in published table"); opbench's own markers `✗` and
   `†` map back to `wrong` and `reduced-precision`; an empty or absent cell (a short row) is no result; any
   other text is an `error` naming the cell. A file where no section has a detailed row, or where every cell
   is unreadable, is rejected.

Versions (`mlx: 0.5.0`, `mlx 0.2.0`, `torch: 2.8.0`) and the machine (`device`, `cores`, `memory`, `host`) are
parsed from the heading where given. Run ids are stable: a hash of the file's content and the section's
position and heading, so importing the same file twice finds the runs already stored.

Trade-off: heading detection is heuristic (a short line naming hardware counts as a heading); it is tuned to
the two real files and tested on them, and a wrong guess only changes a label, never a number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from opbench.errors import UsageError
from opbench.results.ids import check_run_id
from opbench.results.model import CaseResult, Run
from opbench.results.status import Status

IMPORTED_DETAIL = "imported: not verified"
NAN_ERROR = "nan in published table"
PUBLISHED_PRESET = "published"
PUBLISHED_DTYPE = "float32"  # both published sources measure float32 only
MAX_HEADING_CHARS = 200

_HARDWARE = re.compile(
    r"\b(M[1-9]\d?(?:\s+(?:Pro|Max|Ultra))?|Tesla|[VAHBL]\d{2,3}S?|T4|RTX\s?\d{3,4}\w*|GTX\s?\d+|Radeon\w*|"
    r"Xeon|EPYC|Ryzen|Core\s+i\d|Apple|Intel|AMD|NVIDIA|Snapdragon|GPU)\b")
_APPLE_CHIP = re.compile(r"\bM[1-9]\d?(?:\s+(?:Pro|Max|Ultra))?\b")
_GPU_MODEL = re.compile(r"\b(?:Tesla\s+)?(?:[VAHBL]\d{2,3}S?|T4|RTX\s?\d{3,4}\w*|GTX\s?\d+)\b(?:\s+\w+)?")
_TABLE_LABEL = re.compile(r"^\**\s*(detailed|average)(\s+benchmark)?\s*(\(.*\))?\s*:?\s*\**\s*:?$", re.IGNORECASE)
_LABEL_MODE = re.compile(r"\b(throughput|latency|device|cold) mode\b")
# The seed article and mlx-benchmark force and synchronize every call: their tables are latency-mode numbers.
PUBLISHED_MODE = "latency"
_VERSION = {pkg: re.compile(rf"\b{alias}\b\s*[:=]?\s*v?(\d+(?:\.\d+)+)", re.IGNORECASE)
            for pkg, alias in (("mlx", "mlx"), ("torch", "(?:py)?torch"), ("jax", "jax"))}
_APPLE_CORES = re.compile(r"\b\d+E\s*\+\s*\d+P(?:\s*\+\s*\d+\s*GPU)?", re.IGNORECASE)
_CPU_CORES = re.compile(r"\b\d+\s+cores(?:,\s*\d+\s+threads)?", re.IGNORECASE)
_MEMORY = re.compile(r"\b(\d+)\s*(?:GB|Go)\b")
_SEPARATOR = re.compile(r"^[\s|:\-]+$")
_BACKEND_NAME = re.compile(r"^[A-Za-z][\w.+-]{0,39}$")
_CASE_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9_]{0,63}) / (\S.*)$")
_MARKS = {"✗": "wrong", "†": "reduced-precision"}
_IGNORED_MARKS = "~*‡"


@dataclass
class _Section:
    heading: str
    backends: list[str] = field(default_factory=list)
    results: dict[tuple[str, str, str], CaseResult] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- Markdown


def _cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") else body
    return [c.strip() for c in body.split("|")]


def _clean_heading(line: str) -> str:
    text = line.strip().lstrip("#").strip().replace("**", "").replace("__", "")
    return " ".join(text.split())


def _heading_of(lines: list[str]) -> str | None:
    """The nearest heading-like line, scanning `lines` (the text between two tables) from the bottom up."""
    for raw in reversed(lines):
        line = raw.strip()
        if not line or _TABLE_LABEL.match(line):
            continue
        if len(line) > MAX_HEADING_CHARS:
            continue
        if line.startswith(("**", "__", "#")) or _HARDWARE.search(line):
            cleaned = _clean_heading(line)
            if cleaned:
                return cleaned
    return None


def _parse_cell(text: str) -> tuple[str, float | None, str] | None:
    """(status, published ms, error) of one cell, or None for an empty cell (no result)."""
    value = text.strip()
    status = Status.OK
    for mark, marked_status in _MARKS.items():
        if mark in value:
            status = marked_status
            value = value.replace(mark, "")
    value = value.strip(_IGNORED_MARKS + " ")
    if not value:
        return None
    if value.lower() in ("nan", "nan%", "-", "—", "n/a"):
        return "unsupported", None, NAN_ERROR
    if value.lower().startswith("n/a:"):  # opbench's own: the timing mode does not apply (`n/a: CPU`)
        return "unsupported", None, value
    try:
        ms = float(value)
    except ValueError:
        ms = math.nan
    if not math.isfinite(ms) or ms < 0:
        return "error", None, f"unreadable cell {text.strip()[:40]!r} in published table"
    return status, ms, ""


def _table_mode(lines: list[str]) -> str:
    """The timing mode a table's label names (opbench's own `Detailed benchmark (...; latency mode: ...):`),
    else `PUBLISHED_MODE`."""
    for raw in reversed(lines):
        line = raw.strip()
        if _TABLE_LABEL.match(line) and (found := _LABEL_MODE.search(line)):
            return found.group(1)
    return PUBLISHED_MODE


def _read_table(block: list[str], section: _Section, mode: str = PUBLISHED_MODE) -> None:
    """Add a table's detailed rows to `section` (first occurrence of a case, backend and mode wins)."""
    header = _cells(block[0])
    columns = [(i, name) for i, name in enumerate(header) if i > 0 and _BACKEND_NAME.match(name)
               and not name.lower().endswith("speedup")]
    for line in block[1:]:
        if _SEPARATOR.match(line):
            continue
        cells = _cells(line)
        match = _CASE_NAME.match(" ".join(cells[0].split()))
        if not match:
            continue
        case, family = match.group(0), match.group(1)
        for i, backend in columns:
            parsed = _parse_cell(cells[i]) if i < len(cells) else None
            if parsed is None or (case, backend, mode) in section.results:
                continue
            status, ms, error = parsed
            if backend not in section.backends:
                section.backends.append(backend)
            section.results[(case, backend, mode)] = CaseResult(
                case=case, family=family, backend=backend, dtype=PUBLISHED_DTYPE, status=status,
                published_ms=ms, detail=IMPORTED_DETAIL, error=error, mode=mode)


def _sections(text: str) -> list[_Section]:
    lines = text.splitlines()
    blocks: list[tuple[int, int]] = []  # [start, end) of each table
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("|"):
            start = i
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                i += 1
            blocks.append((start, i))
        else:
            i += 1
    title = next((_clean_heading(x) for x in lines if x.strip() and not x.lstrip().startswith("|")), "")
    sections: list[_Section] = []
    previous_end = 0
    for start, end in blocks:
        heading = _heading_of(lines[previous_end:start])
        if heading is None and sections:
            section = sections[-1]
        else:
            if heading is None:
                heading = title if len(title) <= MAX_HEADING_CHARS else ""
            section = _Section(heading or "published table")
            sections.append(section)
        _read_table(lines[start:end], section, _table_mode(lines[previous_end:start]))
        previous_end = end
    return [s for s in sections if s.results]


def _parenthesised(text: str) -> tuple[str, str]:
    """(text before the first '(', the balanced parenthesised content after it)."""
    start = text.find("(")
    if start < 0:
        return text, ""
    depth = 0
    for j in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[j], 0)
        if depth == 0:
            return text[:start], text[start + 1:j]
    return text[:start], text[start + 1:]


def parse_heading(heading: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(machine, versions) from a device heading.

    `M1 Pro (2E+8P+16GPU+16GB) - mlx: 0.5.0` -> ({device: M1 Pro, cores: 2E+8P+16GPU, memory: 16GB}, {mlx: 0.5.0});
    `Tesla V100 PCIe (32Go / Intel Xeon Gold 5120 14 cores, ...)` -> device, host and its cores.
    """
    versions = {pkg: m.group(1) for pkg, rx in _VERSION.items() if (m := rx.search(heading))}
    before, details = _parenthesised(heading)
    device = before
    for rx in _VERSION.values():
        found = rx.search(device)
        if found:
            device = device[:found.start()]
    device = " ".join(device.split()).rstrip(" -:").strip()
    if len(device.split()) > 5 or not device:  # a title, not a device name: take the chip it names
        chip = _APPLE_CHIP.search(heading) or _GPU_MODEL.search(heading)
        device = chip.group(0) if chip else device
    machine: dict[str, Any] = {"device": device or heading}
    if cores := _APPLE_CORES.search(details) or _CPU_CORES.search(details):
        text = cores.group(0)
        machine["cores"] = text.replace(" ", "") if _APPLE_CORES.fullmatch(text) else text
    if _APPLE_CHIP.fullmatch(device) and (memory := _MEMORY.search(details)):
        machine["memory"] = f"{memory.group(1)}GB"
    if " / " in details:
        machine["host"] = details.split(" / ", 1)[1].strip()
    if details.strip():
        machine["details"] = details.strip()
    if versions:
        machine["packages"] = dict(versions)
    machine["published"] = True
    return machine, versions


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:24].strip("-") or "table"


def parse_published_markdown(text: str, source: str = "") -> list[Run]:
    """Every device section of a published Markdown benchmark file, as imported runs (see the module doc)."""
    sections = _sections(text)
    if not sections:
        raise UsageError(f"{source or 'input'}: no published benchmark table found (expected a Markdown table "
                         "with an 'Operation' column and rows like 'Argmax / dim=64x1024x128 axi=0')")
    cells = [r for section in sections for r in section.results.values()]
    if cells and all(r.published_ms is None for r in cells):  # a table, but not one time in it
        unreadable = next((r.error for r in cells if r.status == "error"), "every cell nan")
        raise UsageError(f"{source or 'input'}: no readable time in its tables ({unreadable}); a cell holds a "
                         "time in ms, nan, or opbench's marks")
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    from opbench.backends import framework_of

    runs = []
    for index, section in enumerate(sections):
        machine, versions = parse_heading(section.heading)
        key = hashlib.sha256(f"{digest}:{index}:{section.heading}".encode("utf-8", "surrogatepass")).hexdigest()
        backends = {}
        for b in section.backends:
            pkg = framework_of(b)  # the published backend's framework, as its adapter names it
            backends[b] = {"available": True, "published": True,
                           "versions": {pkg: versions[pkg]} if pkg in versions else {}}
        runs.append(Run(run_id=f"pub-{_slug(machine['device'])}-{key[:8]}", created=created,
                        preset=PUBLISHED_PRESET, dtype=PUBLISHED_DTYPE, machine=machine,
                        settings={"source_sha256": digest, "section": index, "heading": section.heading},
                        backends=backends, results=tuple(section.results.values()), imported=True,
                        source=source, label=section.heading))
    return runs


# -------------------------------------------------------------------------------------------------- JSON


def _check_result(r: CaseResult) -> None:
    for name in ("case", "family", "backend", "dtype", "status", "detail", "error", "stop_reason"):
        if not isinstance(getattr(r, name), str):
            raise UsageError(f"malformed opbench run file: result field {name!r} is not text")
    Status.parse(r.status, "malformed opbench run file")  # every study's statuses: a dtype study's too
    for name in ("calls_per_sample", "warmup_calls", "flops", "bytes"):
        if not isinstance(getattr(r, name), int) or isinstance(getattr(r, name), bool):
            raise UsageError(f"malformed opbench run file: result field {name!r} is not an integer")
    for name in ("first_call_ms", "rel_error", "tolerance", "published_ms"):
        value = getattr(r, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UsageError(f"malformed opbench run file: result field {name!r} is not a number")
        if name == "published_ms" and value is not None and not (math.isfinite(value) and value >= 0):
            raise UsageError(f"malformed opbench run file: result field {name!r} is {value!r}; expected a finite "
                             "time >= 0 in ms")
    for name in ("flops", "bytes", "calls_per_sample", "warmup_calls"):
        if not 0 <= getattr(r, name) < 2**63:
            raise UsageError(f"malformed opbench run file: result field {name!r} is out of range")
    from opbench.engine.modes import MODES

    if r.mode not in MODES:
        raise UsageError(f"malformed opbench run file: {r.case[:60]!r} has timing mode {r.mode[:40]!r}; valid "
                         f"choices: {', '.join(MODES)}")


def check_sample_lists(results: Any, what: str = "malformed opbench run file") -> None:
    """Raw samples of `results` (a run file's results, a sweep's points) must be lists of finite times >= 0
    given as numbers (`CaseResult.from_dict` would turn `true` into 1.0 and keep `Infinity`, which later
    breaks every table and chart); `what` begins the one-line error."""
    for r in results if isinstance(results, list) else ():
        if not isinstance(r, dict):
            continue
        for name in ("samples_ms", "process_medians_ms"):
            values = r.get(name, [])
            if not isinstance(values, list):
                raise UsageError(f"{what}: result field {name!r} is not a list")
            for x in values:
                if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
                    raise UsageError(f"{what}: {name} of {str(r.get('case'))[:60]!r} holds "
                                     f"{json.dumps(x)[:40]}; expected finite times >= 0 in ms")


def run_from_json_text(text: str, source: str = "") -> Run:
    """A run from the JSON that `opbench run` (run.json) and `opbench export --format json` write.

    Beyond `Run.from_dict` (format marker, schema version), checks field types so that a hand-edited or
    foreign file is refused with one line instead of failing later inside a table or the store.
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UsageError(f"{source or 'input'} is not valid JSON: {str(exc).splitlines()[0]}") from None
    check_sample_lists(data.get("results") if isinstance(data, dict) else None)
    run = Run.from_dict(data)  # every malformation is a one-line UsageError there
    for name in ("run_id", "created", "preset", "dtype", "source", "label"):
        if not isinstance(getattr(run, name), str):
            raise UsageError(f"malformed opbench run file: field {name!r} is not text")
    if run.created:  # empty: a run whose time is not known
        try:
            dt.datetime.fromisoformat(run.created.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"malformed opbench run file: created {run.created[:40]!r} is not an ISO 8601 time, "
                             "e.g. 2026-01-01T00:00:00+00:00") from None
    check_run_id(run.run_id, f"malformed opbench run file {source}".rstrip())
    for name in ("machine", "settings", "backends"):
        if not isinstance(getattr(run, name), dict):
            raise UsageError(f"malformed opbench run file: field {name!r} is not an object")
    if not isinstance(run.imported, bool):
        raise UsageError("malformed opbench run file: field 'imported' is not true/false")
    for r in run.results:
        _check_result(r)
    return run


# ------------------------------------------------------------------------------------------------- Files


def read_text(path: str | Path) -> str:
    """A file's text, or a one-line UsageError (missing, a directory, unreadable, not UTF-8 text)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a text file (not UTF-8); expected a JSON run file or a Markdown "
                         "benchmark table") from None
    if "\x00" in text:
        raise UsageError(f"{path} is not a text file (contains NUL bytes)")
    return text


def path_is(path: Path, test: str) -> bool:
    """`path.exists()` / `is_file()` / `is_dir()`, False (not an error) for a name the OS cannot even look up
    (a segment over 255 bytes, a NUL byte): such a reference is then tried as a stored run id."""
    try:
        return bool(getattr(path, test)())
    except (OSError, ValueError):
        return False


def looks_like_json(text: str) -> bool:
    return text.lstrip()[:1] in ("{", "[")


def import_text(text: str, source: str = "") -> list[Run]:
    """Runs from a JSON run file (one) or a published Markdown file (one per device section)."""
    if looks_like_json(text):
        return [run_from_json_text(text, source)]
    return parse_published_markdown(text, source)


def import_file(path: str | Path, label: str | None = None) -> list[Run]:
    """Runs from a file; `label` replaces a single run's label, or prefixes each section's heading."""
    runs = import_text(read_text(path), str(path))
    if label:
        if len(runs) == 1:
            runs = [replace(runs[0], label=label)]
        else:
            runs = [replace(r, label=f"{label}: {r.label}") for r in runs]
    if any(not r.source for r in runs):
        runs = [r if r.source else replace(r, source=str(path)) for r in runs]
    return runs


def select_section(runs: list[Run], selector: str, source: str) -> Run:
    """The one run whose label or device contains `selector` (case-insensitive; an exact label wins)."""
    wanted = selector.strip().lower()
    exact = [r for r in runs if r.label.lower() == wanted or r.machine.get("device", "").lower() == wanted]
    found = exact or [r for r in runs if wanted in r.label.lower()]
    if len(found) == 1:
        return found[0]
    labels = "; ".join(r.label for r in runs)
    what = "matches several sections" if found else "matches no section"
    raise UsageError(f"{selector!r} {what} of {source}; valid choices: {labels}")
