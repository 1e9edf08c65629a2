"""Tables in the seed's layout; the seed's own Detailed numbers reproduce its Average table."""

from __future__ import annotations

import math
import re

from opbench.data import SEED_TABLES
from opbench.report.tables import average_table, detailed_table, format_speedup, speedup, to_markdown
from opbench.results import CaseResult

SEED = SEED_TABLES
BACKENDS = ["mlx_gpu", "mlx_gpu_compile", "mlx_cpu", "mps", "cpu"]


def parse_seed() -> tuple[list[CaseResult], dict[str, list[str]]]:
    lines = SEED.read_text().splitlines()
    split = lines.index("Average benchmark:")
    results, averages = [], {}
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not re.match(r"^[A-Za-z0-9]+( / |$)", cells[0]) or len(cells) != 9 or cells[0] == "Operation":
            continue
        if i < split:
            for b, v in zip(BACKENDS, cells[1:6]):
                results.append(CaseResult(case=cells[0], family=cells[0].split(" / ")[0], backend=b, dtype="float32",
                                          status="ok" if v != "nan" else "unsupported",
                                          published_ms=None if v == "nan" else float(v)))
        else:
            averages[cells[0]] = cells[1:]
    return results, averages


def test_seed_detailed_values_reproduce_its_average_table() -> None:
    results, published = parse_seed()
    table = average_table(results)
    assert table.headers[1:6] == BACKENDS
    assert table.headers[6:] == ["mlx_gpu_compile/mlx_gpu speedup", "mlx_gpu/mps speedup", "mlx_gpu/mlx_cpu speedup"]
    assert [r[0] for r in table.rows] == list(published)
    for row in table.rows:
        want = published[row[0]]
        for got, exp in zip(row[1:6], want[:5]):
            if exp == "nan":
                assert got == "nan"
            else:  # the seed averaged unrounded times: within rounding of the 2-decimal inputs
                assert abs(float(got) - float(exp)) <= 0.011, (row[0], got, exp)
        means = dict(zip(BACKENDS, row[1:6]))
        pairs = [("mlx_gpu_compile", "mlx_gpu"), ("mlx_gpu", "mps"), ("mlx_gpu", "mlx_cpu")]
        for (a, b), got, exp in zip(pairs, row[6:], want[5:]):
            if exp == "nan%":
                assert got == "nan%"
                continue
            # the seed's speedup must lie within what its 2-decimal means allow (each off by up to 0.005 + 0.005)
            ta, tb = float(means[a]), float(means[b])
            lo, hi = speedup(ta + 0.01, max(tb - 0.01, 1e-9)), speedup(max(ta - 0.01, 1e-9), tb + 0.01)
            assert lo - 1 <= int(exp.rstrip("%")) <= hi + 1, (row[0], a, b, got, exp)


def test_speedup_formula_and_format() -> None:
    assert format_speedup(speedup(1.54, 1.68)) == "+9%"  # the seed's first row: compile vs mlx_gpu
    assert format_speedup(speedup(1.68, 0.74)) == "-55%"  # truncated toward zero like the seed's int()
    assert format_speedup(speedup(4.64, 4.60)) == "0%"
    assert format_speedup(math.nan) == "nan%"


def test_marks_and_notes() -> None:
    rs = [CaseResult("A / dim=1", "A", "cpu", "float32", "ok", samples_ms=(1.0, 1.0)),
          CaseResult("A / dim=1", "A", "mlx_cpu", "float32", "wrong", samples_ms=(2.0, 2.0), rel_error=0.9,
                     tolerance=1e-5),
          CaseResult("A / dim=2", "A", "cpu", "float32", "reduced-precision", samples_ms=(1.0, 1.2, 3.0),
                     rel_error=3e-4, tolerance=1e-5),
          CaseResult("A / dim=2", "A", "mlx_cpu", "float32", "error", error="boom")]
    md = to_markdown(detailed_table(rs))
    assert "2.00✗" in md and "nan" in md and "boom" in md and "1.20†~" in md
    avg = average_table(rs)
    assert avg.headers[1:3] == ["mlx_cpu", "cpu"]  # the seed's column order
    assert avg.rows[0][1] == "2.00✗*"  # the wrong value is marked and the partial average flagged
    assert avg.rows[0][2] == "1.10†"
