"""The seed article's 85 cases, in its table's order and with its exact names, plus LayerNorm and SDPA.

The shapes come from the seed's Detailed table (they are mlx-benchmark's). LayerNorm and
ScaledDotProductAttention are the two families mlx-benchmark added later; they carry the tag `extra`.
"""

from __future__ import annotations

from opbench.catalog._case import Case, parse_shape

# (family, shapes joined by spaces, axis or None), in the seed table's order.
_SEED_ROWS: list[tuple[str, str, int | None]] = [
    ("Argmax", "64x1024x128", 0), ("Argmax", "64x1024x128", 1), ("Argmax", "64x1024x128", 2),
    ("Argmax", "64x128x1024", 2),
    ("BCE", "1000000 1000000", None), ("BCE", "100000x32 100000x32", None),
    ("BCE", "100000x64x2 100000x64x2", None), ("BCE", "128x100000 128x100000", None),
    ("Concat", "1000000x64 1000000x32", 1), ("Concat", "1000000x64 1000000x128", 1),
    ("Concat", "1000000x64 1000000x64", 0), ("Concat", "64x1000000 64x1000000", 0),
    ("Conv1d", "100x256x3 8x3x3", None), ("Conv1d", "100x256x256 8x3x256", None),
    ("Conv1d", "16x1000x80 128x11x80", None), ("Conv1d", "16x1000x3 128x11x3", None),
    ("Conv2d", "100x256x256x3 8x3x3x3", None), ("Conv2d", "10x256x256x12 8x3x3x12", None),
    ("Conv2d", "1x256x256x128 8x3x3x128", None), ("Conv2d", "100x28x28x3 8x3x3x3", None),
    ("Conv2d", "1000x28x28x3 8x3x3x3", None),
    ("Gather", "64x256 10", None), ("Gather", "64x256 1000", None), ("Gather", "64x256 1000000", None),
    ("Gather", "1024x32 10", None), ("Gather", "1024x32 1000", None), ("Gather", "1024x32 1000000", None),
    ("LeakyReLU", "128x16x1024", None), ("LeakyReLU", "64x128x1024", None),
    ("Linear", "100x1024x32 32x1024 1024", None), ("Linear", "100x1024x64 64x1024 1024", None),
    ("Linear", "100x1024x256 256x1024 1024", None), ("Linear", "100x1024x512 512x1024 1024", None),
    ("Linear", "100x1x51200 51200x1 1", None),
    ("MatMul", "32x1x1000 32x1000x128", None), ("MatMul", "1000x64x256 256x32", None),
    ("MatMul", "1000x64x1024 1000x1024x32", None), ("MatMul", "1000x1024x64 1000x64x256", None),
    ("MatMul", "64x1000000 1000000x32", None), ("MatMul", "1000000x64 64x1024", None),
    ("PReLU", "128x16x1024 1", None), ("PReLU", "64x128x1024 1", None),
    ("ReLU", "128x16x1024", None), ("ReLU", "64x128x1024", None),
    *[(fam, f"{table} {n}", None) for fam in ("Scatter", "ScatterSum", "ScatterMax")
      for table in ("64x16", "1024x32") for n in ("10", "1000", "1000000")],
    ("SeLU", "128x16x1024", None), ("SeLU", "64x128x1024", None),
    ("Sigmoid", "128x16x1024", None), ("Sigmoid", "64x128x1024", None),
    ("Softmax", "64x1000000", -1), ("Softmax", "1000000x64", -1), ("Softmax", "64x16x32x1024", -1),
    ("Softmax", "128x16x32x1024", -1), ("Softmax", "1024x16x32x128", -1), ("Softmax", "1024x64x32x8", -1),
    ("Softplus", "128x16x1024", None), ("Softplus", "64x128x1024", None),
    ("Sort", "64x128x1024", 0), ("Sort", "64x128x1024", 1), ("Sort", "64x128x1024", 2),
    ("Sum", "64x128x128x128", 0), ("Sum", "64x128x128x128", 1), ("Sum", "64x128x128x128", 2),
    ("Sum", "64x128x128x128", 3),
    ("SumAll", "64x128x128x128", None), ("SumAll", "1000000", None), ("SumAll", "1000000x128", None),
    ("SumAll", "128x1000000", None),
]

_EXTRA_ROWS: list[tuple[str, str, int | None]] = [
    ("LayerNorm", "64x128x1024", None), ("LayerNorm", "128x64x1024", None),
    ("ScaledDotProductAttention", "64x8x16x1024 64x8x16x1024 64x8x16x1024", None),
    ("ScaledDotProductAttention", "64x8x16x1024 64x8x64x1024 64x8x64x1024", None),
    ("ScaledDotProductAttention", "64x16x16x1024 64x16x16x1024 64x16x16x1024", None),
    ("ScaledDotProductAttention", "64x16x16x1024 64x16x64x1024 64x16x64x1024", None),
]


def _build(rows: list[tuple[str, str, int | None]], tag: str) -> list[Case]:
    return [Case(fam, tuple(parse_shape(s) for s in shapes.split()), axis, frozenset({tag}))
            for fam, shapes, axis in rows]


SEED_CASES: list[Case] = _build(_SEED_ROWS, "seed")
EXTRA_CASES: list[Case] = _build(_EXTRA_ROWS, "extra")
