"""The catalog: the seed's 85 names, shapes that agree, references that match their row-sampled versions."""

from __future__ import annotations

import re

import numpy as np
import pytest

from opbench.catalog import FAMILIES, all_cases, parse_shape, preset_cases, select_cases
from opbench.data import SEED_TABLES
from opbench.errors import UsageError

SEED = SEED_TABLES
SEED_ROW = re.compile(r"^\| ([A-Za-z0-9]+ / [^|]+?) \|")


def seed_names() -> list[str]:
    text = SEED.read_text() if SEED.exists() else ""
    return [m.group(1).strip() for line in text.splitlines() if (m := SEED_ROW.match(line))]


def test_catalog_matches_the_seed_names_in_order() -> None:
    names = seed_names()
    assert len(names) == 85
    assert [c.name for c in all_cases() if "seed" in c.tags] == names


def test_catalog_has_the_extra_families() -> None:
    extra = [c.name for c in all_cases() if "extra" in c.tags]
    assert "LayerNorm / dim=64x128x1024" in extra
    assert "ScaledDotProductAttention / dim=64x16x16x1024 dim=64x16x64x1024 dim=64x16x64x1024" in extra
    assert len(extra) == 6
    assert len({c.family for c in all_cases()}) == len(FAMILIES) == 23


def test_inputs_are_seeded_and_reproducible() -> None:
    case = preset_cases("quick")[0]
    a, b = case.make_inputs(seed=3), case.make_inputs(seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(case.make_inputs(seed=4)[0], a[0])


@pytest.mark.parametrize("case", preset_cases("quick"), ids=lambda c: c.name)
def test_reference_shape_and_rows(case) -> None:
    inputs = case.make_inputs()
    ref = case.reference(inputs)
    assert ref.shape == case.output_shape()
    assert ref.dtype in (np.float64, np.int64)
    assert case.flops >= 0 and case.bytes_moved() > 0
    if case.family in ("MatMul", "Linear", "Conv1d", "Conv2d") and ref.ndim:  # rows locate a failed product check
        rows = np.array([0, ref.shape[0] - 1])
        np.testing.assert_allclose(case.reference(inputs, rows), ref[rows])


def test_flop_counts_of_known_cases() -> None:
    by_name = {c.name: c for c in all_cases()}
    assert by_name["MatMul / dim=1000000x64 dim=64x1024"].flops == 2 * 1_000_000 * 64 * 1024
    assert by_name["Conv2d / dim=100x28x28x3 dim=8x3x3x3"].flops == 2 * 100 * 26 * 26 * 8 * 27
    assert by_name["ReLU / dim=64x128x1024"].bytes_moved() == 2 * 4 * 64 * 128 * 1024


def test_semantics_honour_axis_and_whole_rows() -> None:
    case = next(c for c in preset_cases("quick") if c.family == "Softmax")
    x = case.make_inputs()[0]
    ref = case.reference((x,))
    np.testing.assert_allclose(ref.sum(axis=case.axis), 1.0, rtol=1e-12)
    scatter = next(c for c in preset_cases("quick") if c.family == "Scatter")
    y, idx, upd = scatter.make_inputs()
    out = scatter.reference((y, idx, upd))
    last = {int(r): j for j, r in enumerate(idx)}
    for r, j in last.items():
        np.testing.assert_array_equal(out[r], upd[j])  # every column, not column 0 only


def test_bad_shapes_and_ops_are_usage_errors() -> None:
    with pytest.raises(ValueError, match="malformed shape"):
        parse_shape("64xx2")
    with pytest.raises(UsageError, match="valid choices"):
        select_cases(all_cases(), ["NoSuchOp"])


def test_quick_preset_names_are_unique_and_cover_every_family() -> None:
    quick = preset_cases("quick")
    assert len({c.name for c in quick}) == len(quick)
    assert {c.family for c in quick} == set(FAMILIES)
