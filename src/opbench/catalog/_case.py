"""The frozen `Case`: one operation at one set of shapes, framework-neutral; and `Family`, what it computes.

A case knows its family (the function it computes), its input shapes and its axis. Everything a backend needs
to run it and everything opbench needs to check it comes from here: seeded NumPy inputs, a float64 reference,
FLOP and byte counts. Nothing here imports a framework.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from opbench.catalog._bfloat16 import BFLOAT16, carrier_dtype, itemsize_dtype, round_to_bfloat16

Shape = tuple[int, ...]
Inputs = tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Family:
    """The semantics of one operation family.

    `check` selects the verifier: `values` (relative error against the reference), `argmax` (tie-aware: the
    chosen index must point at a maximal value), `scatter` (duplicate indices: any one competing row is right).
    `accumulation` is the number of terms summed into one output element; verification widens its float
    tolerance with it. `integer_ok` says whether the family makes sense on integer data. `index_inputs` are the
    positions of index arrays among the inputs: they keep their integer type whatever dtype the data is in.
    """

    name: str
    doc: str
    make_inputs: Callable[[Case, np.random.Generator, np.dtype], Inputs]
    reference: Callable[[Case, Inputs, np.ndarray | None], np.ndarray]
    output_shape: Callable[[Case], Shape]
    input_specs: Callable[[Case, np.dtype], list[tuple[Shape, int]]]
    flops: Callable[[Case], float]
    accumulation: Callable[[Case], int] = lambda case: 1
    check: str = "values"
    output_kind: str = "same"  # "same" as input dtype, "index" (integer), "float" (float even for int input)
    integer_ok: bool = True
    index_inputs: tuple[int, ...] = ()

    def output_dtype(self, dtype: np.dtype) -> np.dtype:
        if self.output_kind == "index":
            return np.dtype(np.int64)
        if self.output_kind == "float" and not np.issubdtype(dtype, np.floating):
            return np.dtype(np.float64)
        return dtype


# Every family by name: the built-in ones (`catalog.families`, which fills this at import) and those of loaded
# user catalogs (`catalog.user`). `Case.spec` looks its family up here.
FAMILIES: dict[str, Family] = {}


def format_shape(shape: Shape) -> str:
    """`(64, 1024, 128)` -> `64x1024x128`, the seed's spelling."""
    return "x".join(str(d) for d in shape)


def parse_shape(text: str) -> Shape:
    """`64x1024x128` -> `(64, 1024, 128)`; raises ValueError on anything else."""
    parts = text.strip().lower().split("x")
    if not text.strip() or any(not p.isdigit() or int(p) <= 0 for p in parts):
        raise ValueError(f"malformed shape {text!r}: expected positive integers joined by 'x', e.g. 64x1024x128")
    return tuple(int(p) for p in parts)


def quick_dim(d: int) -> int:
    """Shrink one dimension for smoke runs: small dims (<= 16) stay, larger ones become ~sqrt(d), at least 16.

    The map is a function of the value alone, so dimensions that must agree (a matmul's inner size, a concat's
    other axes) still agree after scaling, and every case keeps its rank and axis.
    """
    return d if d <= 16 else max(16, round(math.sqrt(d)))


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
