"""Verification catches planted wrong results and accepts every correct tie/duplicate resolution."""

from __future__ import annotations

import numpy as np

from opbench.catalog import preset_cases
from opbench.verify import OK, REDUCED, WRONG, tolerance, verify


def case_of(family: str):
    return next(c for c in preset_cases("quick") if c.family == family)


def test_correct_float32_result_is_ok_and_planted_error_is_wrong() -> None:
    case = case_of("Softmax")
    inputs = case.make_inputs()
    ref = case.reference(inputs)
    assert verify(case, inputs, ref.astype(np.float32), ref, "float32").status == OK
    wrong_axis = np.exp(inputs[0]) / np.exp(inputs[0]).sum(axis=0, keepdims=True)  # softmax over axis 0
    assert verify(case, inputs, wrong_axis, ref, "float32").status == WRONG
    nan = ref.astype(np.float32)
    nan.flat[0] = np.nan
    assert verify(case, inputs, nan, ref, "float32").status == WRONG


def test_tf32_like_error_is_reduced_precision() -> None:
    case = case_of("MatMul")
    a, b = case.make_inputs()
    ref = case.reference((a, b))

    def tf32(x: np.ndarray) -> np.ndarray:  # keep 10 mantissa bits, as TF32 does
        bits = x.astype(np.float32).view(np.uint32) & np.uint32(0xFFFFE000)
        return bits.view(np.float32)

    out = np.matmul(tf32(a).astype(np.float64), tf32(b).astype(np.float64)).astype(np.float32)
    verdict = verify(case, (a, b), out, ref, "float32")
    assert verdict.status == REDUCED, verdict
    assert 1e-4 < verdict.rel_error < 1e-3


def test_scatter_column_zero_only_is_wrong() -> None:
    case = case_of("Scatter")
    y, idx, upd = case.make_inputs()
    ref = case.reference((y, idx, upd))
    seed_bug = y.copy()
    seed_bug[idx, 0] = upd[:, 0]  # what the torch code behind the seed did
    assert verify(case, (y, idx, upd), seed_bug, ref, "float32").status == WRONG


def test_scatter_accepts_any_competing_duplicate() -> None:
    case = case_of("Scatter")
    y, idx, upd = case.make_inputs()
    ref = case.reference((y, idx, upd))
    first_wins = y.copy()
    first_wins[idx[::-1]] = upd[::-1]
    assert len(set(idx.tolist())) < len(idx)  # the quick case has duplicates
    assert verify(case, (y, idx, upd), first_wins, ref, "float32").status == OK


def test_argmax_is_tie_aware() -> None:
    case = case_of("Argmax")
    x = np.zeros((4, 5, 6), dtype=np.float32)
    x[:, 2, :] = 1.0
    x[:, 4, :] = 1.0  # a tie on every position
    from opbench.catalog import Case

    c = Case("Argmax", ((4, 5, 6),), 1)
    ref = c.reference((x,))
    assert verify(c, (x,), np.full((4, 6), 4, dtype=np.int64), ref, "float32").status == OK
    assert verify(c, (x,), np.full((4, 6), 3, dtype=np.int64), ref, "float32").status == WRONG
    assert case.family == "Argmax"


def test_tolerance_grows_with_accumulation_and_dtype() -> None:
    assert tolerance("float32", 1) < tolerance("float32", 10**6) < 3e-4
    assert tolerance("float16", 1) > tolerance("float32", 1)
    assert tolerance("int32", 10) == 0.0


def test_scatter_rows_torn_between_duplicates_are_wrong_and_named() -> None:
    case = case_of("Scatter")
    y, idx, upd = case.make_inputs()
    ref = case.reference((y, idx, upd))
    r = next(int(v) for v in idx if (idx == v).sum() > 1)
    first, second = np.flatnonzero(idx == r)[:2]
    torn = ref.copy()
    torn[r, 0], torn[r, 1:] = upd[first, 0], upd[second, 1:]  # column 0 from one update, the rest from another
    verdict = verify(case, (y, idx, upd), torn, ref, "float32")
    assert verdict.status == WRONG and "1 torn" in verdict.detail
