"""Users' own operation families: defined in a Python file (or an installed package), measured like the built-ins.

A catalog is a module that defines one or more `CustomFamily` objects at module level:

    from opbench import CustomFamily

    RMSNORM = CustomFamily(
        name="RMSNorm",
        cases=["64x1024x512 512"],                   # one case per entry: its input shapes
        reference=lambda case, x, w: ...,            # float64 NumPy inputs -> float64 NumPy output
        flops=lambda case: 4 * x_size(case),
        implementations={"torch": torch_rmsnorm},    # framework -> factory(case) -> the function to time
    )

`load_catalog(source)` imports it (a `.py` path, or the name of an `opbench.catalogs` entry point of an installed
package), checks every family (one line naming the file and the problem, `UsageError`, before anything is
measured), and registers them: their `Family` joins `catalog.FAMILIES`, their cases join `catalog.all_cases()`,
and every backend whose `framework` has an implementation supports them (`Backend.builder`). Backends of other
frameworks record `unsupported`.

Worker processes are spawned, so they inherit none of this: `loaded_sources()` is handed to every worker, which
loads the same catalogs before it sets up its backend, and refuses (a setup error) if a file changed on disk in
between (its SHA-256 digest is recorded with the run, so a resume or a comparison can tell, too).

Checks at load time run every family's input generator and reference on each case shrunk with the `quick`
preset's map (`catalog.quick_dim`): cheap, and they catch a reference of the wrong arity, inputs or an output of
the wrong shape, or non-finite reference values. Trade-off: a family whose shapes do not survive that shrinking
(a dimension that must divide another) cannot be loaded at all; such a family cannot run under `--preset quick`
either.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from opbench.catalog._case import Case, Shape, parse_shape, quick_dim
from opbench.catalog.families import FAMILIES, Family, _data, f64
from opbench.errors import UsageError
from opbench.registry import known_frameworks

ENTRY_POINT_GROUP = "opbench.catalogs"

Factory = Callable[[Case], Callable[..., Any]]
CaseSpec = str | Sequence[Shape] | Mapping[str, Any]


@dataclass
class CustomFamily:
    """One operation family of a user's catalog: what it computes, on which shapes, and how each framework runs it.

    - `name`: the family name in every table (`RMSNorm`); case names follow the seed: `RMSNorm / dim=64x512 dim=512`.
    - `cases`: one entry per case, its input shapes: `"64x1024x512 512"` (space-separated), a tuple of shape tuples,
      or `{"shapes": ..., "axis": 1}` for a family with an axis (then `case.axis`).
    - `reference(case, *inputs)`: the float64 NumPy result; it gets the very inputs a backend sees, upcast to
      float64. Every backend's output is checked against it (relative error within the dtype's tolerance).
    - `flops(case)`: floating-point operations of one call (for GFLOP/s); bytes moved are counted from the input
      and output shapes (every input read once, the output written once).
    - `implementations`: framework name (`torch`, `mlx`, `jax`: any subset) -> `factory(case)` returning the
      function that is timed, called with the backend's native arrays. The factory runs in the measuring process
      after the framework is set up, so import the framework inside it: the catalog file itself should import
      none. `@family.implementation("torch")` adds one too. JAX backends `jax.jit` the function, `*_compile`
      backends compile it.
    - `inputs(case, rng, dtype)`: optional generator of the NumPy inputs (default: standard normal arrays of the
      case's shapes in `dtype`, small integers for integer dtypes). Use `rng` only, so runs are reproducible.
    - `output_shape(case)`: optional (default: the first input's shape).
    - `accumulation(case)`: optional number of terms summed into one output element (default 1); it widens the
      float tolerance the way it does for the built-in reductions.
    - `integer_ok`: whether the family makes sense on integer data (`opbench dtypes` skips it otherwise).
    """

    name: str
    cases: Sequence[CaseSpec] = ()
    reference: Callable[..., np.ndarray] | None = None
    flops: Callable[[Case], float] | None = None
    implementations: dict[str, Factory] = field(default_factory=dict)
    inputs: Callable[[Case, np.random.Generator, np.dtype], Sequence[np.ndarray]] | None = None
    output_shape: Callable[[Case], Shape] | None = None
    accumulation: Callable[[Case], int] | None = None
    integer_ok: bool = True
    doc: str = ""

    def implementation(self, framework: str) -> Callable[[Factory], Factory]:
        """Decorator: `@family.implementation("mlx")` on a factory `(case) -> function to time`."""

        def add(factory: Factory) -> Factory:
            self.implementations[framework] = factory
            return factory

        return add


@dataclass(frozen=True)
class LoadedCatalog:
    """A catalog as registered: where it came from, its digest, and what it defines."""

    source: str  # what the user named: a path as given, or an entry point name
    path: str  # the file that was imported (absolute)
    sha256: str
    families: tuple[str, ...]
    cases: tuple[Case, ...]
    implementations: dict[str, dict[str, Factory]]  # family -> framework -> factory

    def record(self) -> dict[str, Any]:
        """What a run stores about the catalog (JSON)."""
        frameworks = {f: sorted(impls) for f, impls in self.implementations.items()}
        return {"source": self.source, "path": self.path, "sha256": self.sha256, "families": list(self.families),
                "implementations": frameworks}


_LOADED: dict[str, LoadedCatalog] = {}  # by absolute path


def loaded_catalogs() -> list[LoadedCatalog]:
    return list(_LOADED.values())


def loaded_sources() -> list[tuple[str, str]]:
    """(path, sha256) of every catalog loaded in this process, for the worker processes to load as well."""
    return [(c.path, c.sha256) for c in _LOADED.values()]


def unload_catalogs() -> None:
    """Forget every loaded catalog (their families leave `catalog.FAMILIES`): for tests and long sessions."""
    for catalog in _LOADED.values():
        for name in catalog.families:
            FAMILIES.pop(name, None)
    _LOADED.clear()


def user_cases() -> list[Case]:
    return [case for c in _LOADED.values() for case in c.cases]


def user_implementation(family: str, framework: str) -> Factory | None:
    """A loaded user catalog's implementation of `family` on `framework` (a factory(case) -> function), or None."""
    for catalog in _LOADED.values():
        factory = catalog.implementations.get(family, {}).get(framework)
        if factory is not None:
            return factory
    return None


def unsupported_reason(backend: str, family: str) -> str:
    """Why `backend` cannot run `family`: for a user family, which frameworks its catalog does implement."""
    catalog = next((c for c in _LOADED.values() if family in c.families), None)
    if catalog is None:
        return f"{backend} has no implementation of {family}"
    frameworks = ", ".join(sorted(catalog.implementations[family]))
    return f"{backend} has no implementation of {family} (catalog {Path(catalog.path).name} implements {frameworks})"


# ------------------------------------------------------------------------------------------------- loading


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resolve_source(source: str) -> Path:
    """A `.py` path, or the name of an installed `opbench.catalogs` entry point -> the file to import."""
    path = Path(source).expanduser()
    if path.suffix == ".py" or path.exists() or "/" in source or "\\" in source:
        if path.is_dir():
            raise UsageError(f"catalog {source}: is a directory; give the .py file that defines the families")
        if not path.is_file():
            raise UsageError(f"catalog {source}: no such file")
        return path.resolve()
    points = {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if source not in points:
        installed = ", ".join(sorted(points)) or "none installed"
        raise UsageError(f"catalog {source!r}: not a .py file and not an installed '{ENTRY_POINT_GROUP}' entry "
                         f"point ({installed})")
    module_name = points[source].value.split(":")[0]
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise UsageError(f"catalog {source!r}: entry point module {module_name!r} cannot be found: {exc}") from None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise UsageError(f"catalog {source!r}: entry point module {module_name!r} has no source file")
    return Path(spec.origin).resolve()


def load_catalog(source: str, expected_sha256: str | None = None) -> LoadedCatalog:
    """Import, check and register the catalog `source` (idempotent for the same file content).

    With `expected_sha256` (a worker, or a resumed run), a file whose content changed is refused.
    """
    path = resolve_source(source)
    digest = file_digest(path)
    where = f"catalog {source}"
    if expected_sha256 and digest != expected_sha256:
        raise UsageError(f"{where}: the file changed since it was recorded (sha256 {digest[:12]} != "
                         f"{expected_sha256[:12]}); results of two definitions would be mixed")
    known = _LOADED.get(str(path))
    if known is not None:
        if known.sha256 != digest:
            raise UsageError(f"{where}: the file changed since this process loaded it; start a new process")
        return known
    module = _import_file(path, digest, where)
    definitions = [v for v in vars(module).values() if isinstance(v, CustomFamily)]
    if not definitions:
        raise UsageError(f"{where}: defines no opbench.CustomFamily at module level")
    frameworks = known_frameworks()
    taken = {f for c in _LOADED.values() for f in c.families}
    families: dict[str, Family] = {}
    cases: list[Case] = []
    implementations: dict[str, dict[str, Factory]] = {}
    for spec in definitions:
        fam_where = f"{where}: family {spec.name!r}" if isinstance(spec.name, str) else where
        family, fam_cases = _check_family(spec, fam_where, frameworks, set(families) | taken)
        families[family.name] = family
        cases.extend(fam_cases)
        implementations[family.name] = dict(spec.implementations)
    FAMILIES.update(families)
    catalog = LoadedCatalog(source, str(path), digest, tuple(families), tuple(cases), implementations)
    _LOADED[str(path)] = catalog
    return catalog


def load_catalogs(sources: Sequence[str]) -> list[LoadedCatalog]:
    return [load_catalog(s) for s in sources]


def load_recorded(records: Sequence[Mapping[str, Any]], what: str) -> list[LoadedCatalog]:
    """Load the catalogs a run recorded (its `settings["catalogs"]`), refusing any whose file changed."""
    loaded = []
    for record in records:
        try:
            loaded.append(load_catalog(str(record["path"]), str(record.get("sha256") or "") or None))
        except UsageError as exc:
            raise UsageError(f"{what} used {exc}") from None
    return loaded


def _import_file(path: Path, digest: str, where: str) -> ModuleType:
    name = f"opbench_user_catalog_{digest[:16]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{where}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise UsageError(f"{where}: syntax error at line {exc.lineno}: {exc.msg}") from None
    except BaseException as exc:
        del sys.modules[name]
        if isinstance(exc, KeyboardInterrupt):
            raise
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        line = f" (line {frames[-1].lineno})" if frames else ""
        raise UsageError(f"{where}: importing it raised {_one_line(exc)}{line}") from None
    return module


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _parse_case(family: str, spec: CaseSpec, where: str) -> Case:
    axis = None
    shapes: Any = spec
    if isinstance(spec, Mapping):
        if "shapes" not in spec:
            raise UsageError(f"{where}: a case given as a mapping needs 'shapes', got {dict(spec)!r}")
        shapes, axis = spec["shapes"], spec.get("axis")
        if axis is not None and (not isinstance(axis, int) or isinstance(axis, bool)):
            raise UsageError(f"{where}: case axis must be an integer, got {axis!r}")
    try:
        if isinstance(shapes, str):
            parsed = tuple(parse_shape(s) for s in shapes.split())
        else:
            parsed = tuple(_shape_tuple(s) for s in shapes)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}: bad case shapes {shapes!r}: {exc}") from None
    if not parsed:
        raise UsageError(f"{where}: a case needs at least one input shape")
    if axis is not None and not -len(parsed[0]) <= axis < len(parsed[0]):  # the first input's, as NumPy counts
        raise UsageError(f"{where}: case axis {axis} is out of range for the first input's "
                         f"{len(parsed[0])} dimensions ({'x'.join(map(str, parsed[0]))}); valid: "
                         f"{-len(parsed[0])} to {len(parsed[0]) - 1}")
    return Case(family, parsed, axis)


def _shape_tuple(s: Any) -> Shape:
    if isinstance(s, str):
        return parse_shape(s)
    dims = tuple(s)
    if not dims or any(not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d <= 0 for d in dims):
        raise ValueError(f"a shape is a non-empty tuple of positive integers, got {s!r}")
    return tuple(int(d) for d in dims)


def _check_family(spec: CustomFamily, where: str, frameworks: list[str], taken: set[str]
                  ) -> tuple[Family, list[Case]]:
    """Check one definition and turn it into the engine's `Family` and its cases (or a one-line UsageError)."""
    name = spec.name
    if not isinstance(name, str) or not name.strip() or "/" in name or name != name.strip():
        raise UsageError(f"{where}: a family name is a non-empty string without '/', got {name!r}")
    if name in FAMILIES and name not in taken:
        raise UsageError(f"{where}: {name} is a built-in family; pick another name")
    if name in taken:
        raise UsageError(f"{where}: another loaded catalog family is already called {name}")
    for attr in ("reference", "flops"):
        if not callable(getattr(spec, attr)):
            raise UsageError(f"{where}: needs a {attr}(case, ...) function, got {getattr(spec, attr)!r}")
    for attr in ("inputs", "output_shape", "accumulation"):
        if getattr(spec, attr) is not None and not callable(getattr(spec, attr)):
            raise UsageError(f"{where}: {attr} must be a function or None, got {getattr(spec, attr)!r}")
    if not isinstance(spec.implementations, Mapping) or not spec.implementations:
        raise UsageError(f"{where}: has no implementations; give implementations={{framework: factory}} with "
                         f"frameworks among {', '.join(frameworks)}")
    for framework, factory in spec.implementations.items():
        if framework not in frameworks:
            raise UsageError(f"{where}: implementation for unknown framework {framework!r}; valid choices: "
                             f"{', '.join(frameworks)}")
        if not callable(factory):
            raise UsageError(f"{where}: the {framework} implementation must be a factory(case) -> function, "
                             f"got {factory!r}")
    if not isinstance(spec.cases, (list, tuple)) or not spec.cases:
        raise UsageError(f"{where}: cases must be a non-empty list (one entry of input shapes per case)")
    family = _engine_family(spec)
    cases = [_parse_case(name, c, where) for c in spec.cases]
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise UsageError(f"{where}: a case is listed twice ({next(n for n in names if names.count(n) > 1)})")
    for case in cases:
        _probe(family, case.scaled(quick_dim), where)
    return family, cases


def _engine_family(spec: CustomFamily) -> Family:
    """The engine's `Family` for a user definition: user callables wrapped to the engine's signatures."""
    reference, flops = spec.reference, spec.flops
    inputs = spec.inputs or (lambda case, rng, dtype: tuple(_data(rng, s, dtype) for s in case.shapes))
    output_shape = spec.output_shape or (lambda case: case.shapes[0])
    accumulation = spec.accumulation or (lambda case: 1)

    def make_inputs(case: Case, rng: np.random.Generator, dtype: np.dtype) -> tuple[np.ndarray, ...]:
        return tuple(np.asarray(a) for a in inputs(case, rng, dtype))

    def ref(case: Case, arrays: tuple[np.ndarray, ...], rows: np.ndarray | None) -> np.ndarray:
        out = np.asarray(reference(case, *(f64(a) for a in arrays)), dtype=np.float64)
        return out if rows is None else out[rows]

    def input_specs(case: Case, dtype: np.dtype) -> list[tuple[Shape, int]]:
        return [(s, np.dtype(dtype).itemsize) for s in case.shapes]

    return Family(name=spec.name, doc=spec.doc or f"user family {spec.name}", make_inputs=make_inputs,
                  reference=ref, output_shape=lambda case: tuple(int(d) for d in output_shape(case)),
                  input_specs=input_specs, flops=lambda case: float(flops(case)),
                  accumulation=lambda case: int(accumulation(case)), integer_ok=bool(spec.integer_ok))


def _probe(family: Family, case: Case, where: str) -> None:
    """Run the generator, reference, flops and output shape on a small case: the user's mistakes surface here."""
    label = f"{where}, case {case.name}"
    try:
        arrays = family.make_inputs(case, np.random.default_rng(0), np.dtype(np.float32))
    except Exception as exc:
        raise UsageError(f"{label} (shrunk): inputs() raised {_one_line(exc)}") from None
    if len(arrays) != len(case.shapes):
        raise UsageError(f"{label} (shrunk): inputs() gave {len(arrays)} arrays for {len(case.shapes)} shapes")
    for i, (a, s) in enumerate(zip(arrays, case.shapes)):
        if tuple(a.shape) != s:
            raise UsageError(f"{label} (shrunk): input {i} has shape {tuple(a.shape)}, the case says {s}")
    try:
        out = family.reference(case, arrays, None)
        expected = family.output_shape(case)
        work = family.flops(case)
        family.accumulation(case)
    except Exception as exc:
        raise UsageError(f"{label} (shrunk): reference/flops/output_shape raised {_one_line(exc)}") from None
    if tuple(out.shape) != expected:
        raise UsageError(f"{label} (shrunk): the reference returned shape {tuple(out.shape)}, output_shape says "
                         f"{expected}")
    if not np.all(np.isfinite(out)):
        raise UsageError(f"{label} (shrunk): the reference returned non-finite values")
    if not np.isfinite(work) or work < 0:
        raise UsageError(f"{label}: flops() must be a finite number >= 0, got {work!r}")
