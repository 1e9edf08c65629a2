"""The frozen `Case`: one operation at one set of shapes, framework-neutral.

A case knows its family (the function it computes), its input shapes and its axis. Everything a backend needs
to run it and everything opbench needs to check it comes from here: seeded NumPy inputs, a float64 reference,
FLOP and byte counts. Nothing here imports a framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from opbench.catalog._bfloat16 import BFLOAT16, carrier_dtype, itemsize_dtype, round_to_bfloat16

if TYPE_CHECKING:
    from opbench.catalog.families import Family

Shape = tuple[int, ...]


def format_shape(shape: Shape) -> str:
    """`(64, 1024, 128)` -> `64x1024x128`, the seed's spelling."""
    return "x".join(str(d) for d in shape)


def parse_shape(text: str) -> Shape:
    """`64x1024x128` -> `(64, 1024, 128)`; raises ValueError on anything else."""
    parts = text.strip().lower().split("x")
    if not text.strip() or any(not p.isdigit() or int(p) <= 0 for p in parts):
        raise ValueError(f"malformed shape {text!r}: expected positive integers joined by 'x', e.g. 64x1024x128")
    return tuple(int(p) for p in parts)


@dataclass(frozen=True)
class Case:
    """One benchmark case: a family applied to inputs of fixed shapes.

    `shapes` are the shapes in the seed's case name (channels-last; conv weights `out x k x in`). `axis` is
    the reduction/concatenation axis where the family has one. The name reproduces the seed's table exactly:
    `Argmax / dim=64x1024x128 axi=0`.
    """

    family: str
    shapes: tuple[Shape, ...]
    axis: int | None = None
    tags: frozenset[str] = field(default_factory=frozenset)

    @property
    def name(self) -> str:
        dims = " ".join(f"dim={format_shape(s)}" for s in self.shapes)
        axis = f" axi={self.axis}" if self.axis is not None else ""
        return f"{self.family} / {dims}{axis}"

    @property
    def spec(self) -> Family:
        from opbench.catalog.families import FAMILIES

        return FAMILIES[self.family]

    def make_inputs(self, dtype: str = "float32", seed: int = 0) -> tuple[np.ndarray, ...]:
        """Seeded, framework-neutral inputs; the same seed gives bit-identical arrays on every machine.

        bfloat16 inputs are float32 arrays whose values are all exact bfloat16 numbers (see `_bfloat16`); index
        inputs keep their integer type.
        """
        rng = np.random.default_rng(_case_seed(self.name, seed))
        inputs = self.spec.make_inputs(self, rng, carrier_dtype(dtype))
        if dtype != BFLOAT16:
            return inputs
        index = self.spec.index_inputs
        return tuple(a if i in index else round_to_bfloat16(a) for i, a in enumerate(inputs))

    def reference(self, inputs: tuple[np.ndarray, ...], rows: np.ndarray | None = None) -> np.ndarray:
        """The float64 NumPy result, computed from the very inputs the backend sees (upcast exactly).

        With `rows`, only those indices of the output's first axis are computed (for huge outputs).
        """
        return self.spec.reference(self, tuple(np.asarray(a) for a in inputs), rows)

    def output_shape(self) -> Shape:
        return self.spec.output_shape(self)

    @property
    def flops(self) -> int:
        return int(self.spec.flops(self))

    def bytes_moved(self, dtype: str = "float32") -> int:
        """Fewest bytes a device must move: every input read once, the output written once."""
        inputs = self.make_input_specs(dtype)
        out_item = np.dtype(self.spec.output_dtype(itemsize_dtype(dtype))).itemsize
        return int(sum(int(np.prod(s)) * it for s, it in inputs) + int(np.prod(self.output_shape())) * out_item)

    def make_input_specs(self, dtype: str = "float32") -> list[tuple[Shape, int]]:
        """(shape, itemsize) of each input, without allocating it."""
        return self.spec.input_specs(self, itemsize_dtype(dtype))

    def scaled(self, scale_dim: callable) -> Case:  # type: ignore[valid-type]
        """The same case with every dimension mapped through `scale_dim` (one value -> one value, so that
        coupled dimensions such as a matmul's inner size stay equal)."""
        shapes = tuple(tuple(scale_dim(d) for d in s) for s in self.shapes)
        return Case(self.family, shapes, self.axis, self.tags)


def _case_seed(name: str, seed: int) -> int:
    """A stable 64-bit seed from the case name (Python's hash() is salted per process)."""
    import hashlib

    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little")
