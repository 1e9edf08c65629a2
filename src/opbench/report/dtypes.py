"""Tables of the dtype study: the support matrix, its error matrix, the matmul precision table and the
speed-vs-precision table, as `report.tables.Table`s (rendered to Markdown or rich by the shared renderers).

The matrix has one row per family (per case with `--all`) and one column per backend x dtype; each cell is a
short code (`CODES`, explained by `LEGEND`). What a code cannot say goes into the notes: the framework's error
text for `U` (one note per backend and message, listing the families), and the detail of every `C` and `W`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from opbench.engine.verify import OK, WRONG
from opbench.report.tables import Table
from opbench.studies.dtypes import CONVERTED, CRASHED, DEFAULT_MODE, ERROR, NA, TIMEOUT, UNSUPPORTED, Cell

CODES = {OK: "ok", CONVERTED: "C", UNSUPPORTED: "U", WRONG: "W", NA: "-", ERROR: "E", CRASHED: "X",
         TIMEOUT: "T"}
WIDENED_CODE = "C+"
SHORT_DTYPE = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64", "int32": "i32",
               "int64": "i64"}
LEGEND = ("ok: runs, output type and error as expected · C: silently converted (output in another type, or error "
          "only a narrower type explains, e.g. float64 with float32-level error) · C+: output in a wider type "
          "(e.g. int32 sum returned as int64; nothing lost) · U: unsupported (the framework refuses; its message "
          "is in the notes) · W: wrong result · -: not applicable (the op is not defined on integers) · "
          "X: the process crashed (segfault, abort, out-of-memory kill) · T: no result within the time limit · "
          "E: opbench could not measure it")


def code(cell: Cell) -> str:
    if cell.status == CONVERTED and cell.widened:
        return WIDENED_CODE
    return CODES.get(cell.status, "?")


def format_error(err: float | None) -> str:
    if err is None:
        return ""
    if not math.isfinite(err):
        return str(err)
    return "0" if err == 0 else f"{err:.1e}"


def format_ms(ms: float | None) -> str:
    if ms is None:
        return ""
    return f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def _columns(cells: Sequence[Cell]) -> list[tuple[str, str]]:
    backends = list(dict.fromkeys(c.backend for c in cells))
    dtypes = list(dict.fromkeys(c.dtype for c in cells))
    return [(b, d) for b in backends for d in dtypes]


def _rows(cells: Sequence[Cell]) -> tuple[list[str], bool]:
    """Row keys: family names, or case names when some family has more than one case (`--all`)."""
    cases = list(dict.fromkeys((c.family, c.case) for c in cells))
    per_family = len({f for f, _ in cases}) == len(cases)
    return ([f for f, _ in cases] if per_family else [n for _, n in cases]), per_family


def _grid(cells: Sequence[Cell], text, title: str, notes: list[str]) -> Table:
    columns = _columns(cells)
    rows, per_family = _rows(cells)
    index = {((c.family if per_family else c.case), c.backend, c.dtype): c for c in cells}
    headers = ["Family" if per_family else "Case", *(f"{b} {SHORT_DTYPE.get(d, d)}" for b, d in columns)]
    body = [[r, *(text(index[(r, b, d)]) if (r, b, d) in index else "" for b, d in columns)] for r in rows]
    return Table(title, headers, body, notes)


def matrix_table(cells: Sequence[Cell]) -> Table:
    """Status codes, rows families, columns backend x dtype; notes hold error texts and conversion details."""
    return _grid(cells, code, "dtype support (status)", matrix_notes(cells))


def error_table(cells: Sequence[Cell]) -> Table:
    """The same grid with the relative error against float64 in every cell that ran ('-' where nothing ran)."""
    def text(c: Cell) -> str:
        return format_error(c.rel_error) if c.rel_error is not None else code(c)

    return _grid(cells, text, "relative error ‖out−ref‖/‖ref‖ against float64 (codes where nothing ran)", [])


def matrix_notes(cells: Sequence[Cell]) -> list[str]:
    notes: list[str] = []
    unsupported: dict[tuple[str, str], list[str]] = {}
    for c in cells:
        if c.status == UNSUPPORTED:
            unsupported.setdefault((c.backend, c.error), []).append(f"{c.family} {c.dtype}")
    for (backend, error), where in unsupported.items():
        notes.append(f"U {backend} ({', '.join(where)}): {error}")
    for c in cells:
        if c.status in (CONVERTED, WRONG, ERROR, CRASHED, TIMEOUT):
            text = c.detail or c.error
            notes.append(f"{code(c)} {c.backend} {c.family} {c.dtype}: {text}")
    return notes


def precision_table(cells: Sequence[Cell]) -> Table:
    """Matmul relative error per backend and dtype: the framework's default setting and its strict setting side
    by side, then every other mode it has (float32 only: the modes change nothing else)."""
    rows = []
    for backend, dtype in dict.fromkeys((c.backend, c.dtype) for c in cells):
        group = [c for c in cells if c.backend == backend and c.dtype == dtype]
        default = next((c for c in group if c.mode == DEFAULT_MODE), None)
        strict = next((c for c in group if c.strict), None)
        others = [c for c in group if c.mode != DEFAULT_MODE and not c.strict]

        def err(c: Cell | None) -> str:
            if c is None:
                return ""
            return format_error(c.rel_error) if c.rel_error is not None else code(c)

        expected = next((c.expected_error for c in group if c.expected_error is not None), None)
        rows.append([backend, dtype, err(default), err(strict), strict.mode if strict else "no switch",
                     "; ".join(f"{c.mode}: {err(c)}" for c in others), format_error(expected)])
    notes = list(dict.fromkeys(f"{c.backend} {c.mode}: {c.mode_description}" for c in cells
                               if c.mode_description and (c.mode != DEFAULT_MODE or c.dtype == "float32")))
    return Table("matmul precision: relative error, default vs strict",
                 ["Backend", "dtype", "default (as-is)", "strict", "strict setting", "other modes", "expected ≤"], rows,
                 notes)


def speed_precision_table(cells: Sequence[Cell]) -> Table:
    """Per backend, dtype and mode: median time, GFLOP/s, relative error and status of the square matmul."""
    rows = []
    for c in cells:
        gf = c.gflops
        rows.append([c.backend, c.dtype, c.mode, format_ms(c.median_ms), f"{gf:.1f}" if gf else "",
                     format_error(c.rel_error), format_error(c.expected_error), code(c)])
    case = cells[0].case if cells else "MatMul"
    notes = [f"{c.backend} {c.dtype} {c.mode}: {c.error or c.detail}" for c in cells
             if c.status not in (OK,) and (c.error or c.detail)]
    return Table(f"matmul speed vs precision ({case})",
                 ["Backend", "dtype", "mode", "median ms", "GFLOP/s", "rel. error", "expected ≤", "status"], rows,
                 notes)
