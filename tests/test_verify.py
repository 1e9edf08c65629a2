"""Verification: planted wrong results are `wrong`, correct tie/duplicate resolutions and reported narrower
arithmetic are accepted, and every verdict says where it failed."""

from __future__ import annotations

import numpy as np
import pytest

from opbench.backends.arithmetic import narrower_arithmetic
from opbench.catalog import Case, preset_cases
from opbench.catalog.families import _conv_nd
from opbench.engine.verify import OK, REDUCED, WRONG, Arithmetic, expected, normwise_tolerance, tolerance, verify


def case_of(family: str, index: int = 0) -> Case:
    return [c for c in preset_cases("quick") if c.family == family][index]


def tf32(x: np.ndarray) -> np.ndarray:
    """Round to TF32's 10 mantissa bits (nearest), as tensor cores do with float32 operands."""
    bits = (x.astype(np.float32).view(np.uint32) + np.uint32(0x1000)) & np.uint32(0xFFFFE000)
    return bits.view(np.float32)


def test_correct_float32_result_is_ok_and_planted_error_is_wrong() -> None:
    case = case_of("Softmax")
    inputs = case.make_inputs()
    ref = case.reference(inputs)
    assert verify(case, inputs, ref.astype(np.float32), "float32").status == OK
    wrong_axis = np.exp(inputs[0]) / np.exp(inputs[0]).sum(axis=0, keepdims=True)  # softmax over axis 0
    assert verify(case, inputs, wrong_axis.astype(np.float32), "float32").status == WRONG
    nan = ref.astype(np.float32)
    nan.flat[5] = np.nan
    verdict = verify(case, inputs, nan, "float32")
    first = str(tuple(int(i) for i in np.unravel_index(5, nan.shape)))
    assert verdict.status == WRONG and "1 elements" in verdict.detail and first in verdict.detail, verdict


@pytest.mark.parametrize("family", ["MatMul", "Linear", "Conv1d", "Conv2d"])
def test_tf32_error_is_wrong_without_a_mode_and_reduced_with_one(family: str) -> None:
    case = case_of(family)
    inputs = case.make_inputs()
    rounded = tuple(tf32(a) if i < 2 else a for i, a in enumerate(inputs))
    if family == "MatMul":
        out = np.matmul(*(r.astype(np.float64) for r in rounded))
    elif family == "Linear":
        out = rounded[0].astype(np.float64) @ rounded[1] + inputs[2]
    else:
        out = _conv_nd(rounded[0].astype(np.float64), rounded[1].astype(np.float64))
    out = out.astype(np.float32)
    strict = verify(case, inputs, out, "float32")
    assert strict.status == WRONG and "beyond" in strict.detail
    verdict = verify(case, inputs, out, "float32", mode="TF32 (cudnn.allow_tf32)")
    assert verdict.status == REDUCED and verdict.detail == "TF32 (cudnn.allow_tf32)", verdict
    assert 1e-4 < verdict.rel_error < verdict.tolerance < 1e-2


def test_a_mode_does_not_excuse_a_real_bug() -> None:
    case = case_of("Linear")
    x, w, b = case.make_inputs()
    no_bias = (x.astype(np.float64) @ w).astype(np.float32)
    verdict = verify(case, (x, w, b), no_bias, "float32", mode="TF32 (torch.backends.cuda.matmul.allow_tf32)")
    assert verdict.status == WRONG and "even under TF32" in verdict.detail


def test_one_wrong_element_of_a_product_is_found_and_located() -> None:
    case = Case("MatMul", ((64, 32), (32, 48)))
    a, b = case.make_inputs()
    out = (a.astype(np.float64) @ b).astype(np.float32)
    assert verify(case, (a, b), out, "float32").status == OK
    out[17, 5] += 0.05 * abs(out[17, 5]) + 1e-3
    verdict = verify(case, (a, b), out, "float32")
    assert verdict.status == WRONG and "(17,)" in verdict.detail


def test_float16_result_in_a_float32_case_is_wrong() -> None:
    case = case_of("ReLU")
    (x,) = case.make_inputs()
    verdict = verify(case, (x,), np.maximum(x, 0).astype(np.float16), "float32")
    assert verdict.status == WRONG and "float16 result in a float32 case" in verdict.detail
    assert verify(case, (x,), np.maximum(x, 0), "float32", out_dtype="float16").status == WRONG


def test_scatter_column_zero_only_is_wrong() -> None:
    case = case_of("Scatter")
    y, idx, upd = case.make_inputs()
    seed_bug = y.copy()
    seed_bug[idx, 0] = upd[:, 0]  # what the torch code behind the seed did
    assert verify(case, (y, idx, upd), seed_bug, "float32").status == WRONG


def test_scatter_accepts_any_competing_duplicate() -> None:
    case = case_of("Scatter")
    y, idx, upd = case.make_inputs()
    first_wins = y.copy()
    first_wins[idx[::-1]] = upd[::-1]
    assert len(set(idx.tolist())) < len(idx)  # the quick case has duplicates
    assert verify(case, (y, idx, upd), first_wins, "float32").status == OK


def test_argmax_is_tie_aware() -> None:
    x = np.zeros((4, 5, 6), dtype=np.float32)
    x[:, 2, :] = 1.0
    x[:, 4, :] = 1.0  # a tie on every position
    c = Case("Argmax", ((4, 5, 6),), 1)
    assert verify(c, (x,), np.full((4, 6), 4, dtype=np.int64), "float32").status == OK
    verdict = verify(c, (x,), np.full((4, 6), 3, dtype=np.int64), "float32")
    assert verdict.status == WRONG and "the first at (0, 0)" in verdict.detail


def test_tolerance_grows_with_accumulation_and_dtype() -> None:
    assert tolerance("float32", 1) < tolerance("float32", 10**6) < 3e-4
    assert tolerance("float16", 1) > tolerance("float32", 1)
    assert tolerance("int32", 10) < 1e-14


def test_tf32_bound_is_wider_than_float32_and_names_its_mode() -> None:
    case = case_of("MatMul", 4)
    exp = expected(case, case.make_inputs())
    strict, loose = normwise_tolerance(exp, "float32"), normwise_tolerance(exp, "float32", "TF32 (x)")
    assert 1e-7 < strict < 1e-5 < 1e-4 < loose < 1e-2
    assert Arithmetic.of("float32", "TF32 (x)").u_dot == 2.0**-11
    with pytest.raises(ValueError):
        Arithmetic.of("float32", "FP8 (x)")


def test_modes_come_only_from_reported_settings() -> None:
    cuda = {"cuda_matmul_allow_tf32": False, "cudnn_allow_tf32": True, "float32_matmul_precision": "highest"}
    assert narrower_arithmetic("cuda", cuda, "Conv2d", "float32") == "TF32 (torch.backends.cudnn.allow_tf32)"
    assert narrower_arithmetic("cuda", cuda, "MatMul", "float32") is None
    assert narrower_arithmetic("cuda", cuda, "Conv2d", "float64") is None
    assert narrower_arithmetic("cuda", cuda, "Sum", "float32") is None
    assert narrower_arithmetic("cpu", {"float32_matmul_precision": "highest"}, "MatMul", "float32") is None
    jax = {"jax_default_matmul_precision": "default", "compute_capability": "9.0"}
    assert narrower_arithmetic("jax_gpu", jax, "Linear", "float32").startswith("TF32 (jax_default")
    assert narrower_arithmetic("jax_gpu", {**jax, "jax_default_matmul_precision": "highest"}, "Linear",
                               "float32") is None
    assert narrower_arithmetic("jax_cpu", jax, "Linear", "float32") is None
    assert narrower_arithmetic("mlx_gpu", {"MLX_ENABLE_TF32": "1"}, "MatMul", "float32").startswith("TF32")
    assert narrower_arithmetic("mlx_gpu", {"MLX_ENABLE_TF32": "0"}, "MatMul", "float32") is None
    assert narrower_arithmetic("mlx_gpu", {"MLX_ENABLE_TF32": "1", "mlx_gpu_platform": "metal"}, "MatMul",
                               "float32") is None
    assert narrower_arithmetic("mlx_cpu", {"MLX_ENABLE_TF32": "1"}, "MatMul", "float32") is None
    # H200: the planted-slowdown backend cuda_x10 ran cuDNN's TF32 convolutions but was judged by float32's bound
    assert narrower_arithmetic("cuda_x10", cuda, "Conv2d", "float32") == "TF32 (torch.backends.cudnn.allow_tf32)"
    assert narrower_arithmetic("mlx_gpu_x11", {"MLX_ENABLE_TF32": "1"}, "MatMul", "float32").startswith("TF32")


def test_scatter_rows_torn_between_duplicates_are_wrong_and_named() -> None:
    case = case_of("Scatter")
    y, idx, upd = case.make_inputs()
    ref = case.reference((y, idx, upd))
    r = next(int(v) for v in idx if (idx == v).sum() > 1)
    first, second = np.flatnonzero(idx == r)[:2]
    torn = ref.astype(np.float32)
    torn[r, 0], torn[r, 1:] = upd[first, 0], upd[second, 1:]  # column 0 from one update, the rest from another
    verdict = verify(case, (y, idx, upd), torn, "float32")
    assert verdict.status == WRONG and "1 torn" in verdict.detail
