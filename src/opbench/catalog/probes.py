"""Calibration probes: ops whose work per call is known exactly, timed to find a device's practical ceilings.

A `Probe` is measured like a catalog case (the same engine: prepare, time, one measurement), but it is not a
case of the seed: its inputs are chosen for speed of generation rather than for verification, and nothing
checks its output against a float64 reference (a copy, a sum of ones and a product of tiled blocks are not
where a framework goes wrong; what matters is that every timed call ran, which the engine's forcing checks
still enforce). The adapter provides the op (`Backend.probe_builder`).

- `copy`: a device-to-device copy of a float32 array of `size` elements: 2 x its bytes per call (read + write).
- `read`: a full float32 sum of the same array: its bytes per call, read only.
- `matmul`: a square `size` x `size` @ `size` x `size` product: 2·size³ FLOP per call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opbench.catalog._case import Case

PROBE_OPS = ("copy", "read", "matmul")
# Length of the random block the matmul operands are tiled from: about 2^20 values, and prime, so that no two
# rows of an N x N operand start at the same offset (every row differs).
_BLOCK = 1_048_573


@dataclass(frozen=True)
class Probe:
    op: str
    size: int  # elements of the array (copy, read) or N of the square matmul

    def __post_init__(self) -> None:
        if self.op not in PROBE_OPS:
            raise ValueError(f"unknown probe {self.op!r}; valid choices: {', '.join(PROBE_OPS)}")

    @property
    def family(self) -> str:
        return f"probe:{self.op}"

    @property
    def name(self) -> str:
        return f"{self.family} / {self.size}" if self.op != "matmul" else f"{self.family} / {self.size}x{self.size}"

    @property
    def flops(self) -> int:
        return Case("MatMul", ((self.size, self.size), (self.size, self.size))).flops if self.op == "matmul" else 0

    def bytes_moved(self, dtype: str) -> int:
        """Bytes each call moves: read + write for the copy (of float32), read only for the sum; a matmul's
        operands and output once."""
        if self.op == "copy":
            return 2 * 4 * self.size
        if self.op == "read":
            return 4 * self.size
        return Case("MatMul", ((self.size, self.size), (self.size, self.size))).bytes_moved(dtype)

    @property
    def work(self) -> float:
        """What a rate is taken of: bytes per call (copy, read) or FLOPs per call (matmul)."""
        return float(self.flops if self.op == "matmul" else self.bytes_moved("float32"))

    def make_inputs(self, dtype: str = "float32", seed: int = 0) -> tuple[np.ndarray, ...]:
        """float32 host arrays; the backend converts them to `dtype`. A copy or a sum reads ones; the matmul's
        N x N operands are tiled from seeded blocks of standard-normal values. Trade-off: no check needs
        exact inputs here, and drawing 2·N² normal values costs seconds per size and dtype at N = 16384
        (about 4x the tiling); tiled random data keeps the bit patterns, and so the tensor cores' power draw,
        like random data's, where constant operands could run at higher clocks."""
        if self.op != "matmul":
            return (np.ones(self.size, dtype=np.float32),)
        rng = np.random.default_rng(seed)
        n = self.size
        return tuple(np.resize(rng.standard_normal(_BLOCK, dtype=np.float32), (n, n)) for _ in range(2))
