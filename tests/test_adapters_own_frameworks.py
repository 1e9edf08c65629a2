"""Adapters own their framework: nothing outside `opbench/backends/` imports a framework or branches on one.

The walk parses every module of `src/opbench` outside `backends/` and fails, naming file and line, on
- an import of a framework module (`import torch`, `from jax import numpy`, also inside functions, and
  `importlib.import_module("mlx.core")` / `find_spec("torch")` with a literal name);
- a comparison with a backend's `framework` attribute (`be.framework == "mlx"`, `getattr(be, "framework")`);
- a comparison with, or a `startswith`/`endswith` test on, a string that names a framework or one of its
  modules or backends (`"torch"`, `"torch.compile"`, `"jax_gpu"`, `b.startswith("mlx")`);
- a lookup of a framework's own settings key (`settings.get("jax_default_matmul_precision")`,
  `s["cudnn_allow_tf32"]`): the keys any adapter's `settings()` reports are read from the adapters' source,
  and what they mean is the adapter's to say.
A planted module shows that each rule can fail.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "opbench"
FRAMEWORKS = ("torch", "jax", "jaxlib", "mlx", "cupy", "cupyx", "triton", "tensorflow", "numba")
# A string naming a framework, one of its modules, backends or settings keys: `torch`, `torch.compile`,
# `jax_gpu`, `mlx_cpu`, `MLX_ENABLE_TF32`, `jax_default_matmul_precision`.
FRAMEWORK_STRING = re.compile(rf"^({'|'.join(FRAMEWORKS)})([._].*)?$", re.IGNORECASE)
IMPORT_CALLS = ("import_module", "find_spec", "__import__")


def adapter_settings_keys() -> frozenset[str]:
    """Every string key of a dict built in a `settings()` method of an adapter under `backends/`."""
    keys = set()
    for path in (SRC / "backends").glob("*.py"):
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, ast.FunctionDef) and fn.name == "settings":
                keys |= {k.value for d in ast.walk(fn) if isinstance(d, ast.Dict) for k in d.keys
                         if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return frozenset(keys)


SETTINGS_KEYS = adapter_settings_keys()


def _framework_string(s: str) -> bool:
    return bool(FRAMEWORK_STRING.match(s)) or s in SETTINGS_KEYS


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for e in node.elts for s in _strings(e)]
    return []


def _is_framework_attribute(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and node.attr == "framework":
        return True
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
            and len(node.args) >= 2 and _strings(node.args[1]) == ["framework"])


def violations(source: str, where: str) -> list[str]:
    """Every framework import or framework branch in `source` (a module's text), as `where:line: what`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{line}: import {a.name}" for a in node.names if a.name.split(".")[0] in FRAMEWORKS]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in FRAMEWORKS:
                found.append(f"{line}: from {node.module} import ...")
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_is_framework_attribute(o) for o in operands):
                found.append(f"{line}: branch on a backend's framework attribute")
            named = [s for o in operands for s in _strings(o) if _framework_string(s)]
            if named:
                found.append(f"{line}: comparison with {named[0]!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            literal = [s for a in node.args[:1] for s in _strings(a)]
            if name in IMPORT_CALLS and any(s.split(".")[0] in FRAMEWORKS for s in literal):
                found.append(f"{line}: {name}({literal[0]!r})")
            elif name in ("startswith", "endswith", "get") and any(_framework_string(s) for s in literal):
                found.append(f"{line}: .{name}({next(s for s in literal if _framework_string(s))!r})")
        elif isinstance(node, ast.Subscript):
            keys = [s for s in _strings(node.slice) if _framework_string(s)]
            if keys:
                found.append(f"{line}: lookup of {keys[0]!r}")
    return found


def outside_backends() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "backends" not in p.relative_to(SRC).parts)


def test_the_walk_sees_the_whole_tree_and_every_adapters_settings() -> None:
    assert {"float32_matmul_precision", "cudnn_allow_tf32", "MLX_ENABLE_TF32", "jax_default_matmul_precision"} \
        <= SETTINGS_KEYS
    files = {p.relative_to(SRC).as_posix() for p in outside_backends()}
    assert {"engine/execute.py", "studies/calibrate.py", "studies/sweep.py", "studies/roofline.py"} <= files
    assert not any(f.startswith("backends/") for f in files)


def test_no_framework_import_or_branch_outside_the_adapters() -> None:
    found = [v for p in outside_backends() for v in violations(p.read_text(), p.relative_to(SRC).as_posix())]
    assert not found, "framework code outside opbench/backends/:\n" + "\n".join(found)


@pytest.mark.parametrize("planted", [
    "import torch",
    "def f():\n    import mlx.core as mx",
    "from jax import numpy as jnp",
    "import importlib\nimportlib.import_module('cupy')",
    "def f(be):\n    return be.framework == 'jax'",
    "def f(be):\n    if getattr(be, 'framework', '') != 'x':\n        pass",
    "def f(name):\n    return name in ('cuda', 'jax_gpu')",
    "def f(c):\n    return c.get('compiler') == 'torch.compile'",
    "def f(b):\n    return b.startswith('mlx')",
    "def f(s):\n    return s.get('jax_default_matmul_precision')",
    "def f(s):\n    return s['MLX_ENABLE_TF32']",
    "def f(s):\n    return bool(s.get('cudnn_allow_tf32'))",
])
def test_each_rule_fails_on_a_planted_module(planted: str) -> None:
    assert violations(planted, "planted.py"), planted


def test_framework_neutral_code_passes() -> None:
    neutral = ("import numpy as np\n"
               "def f(be, settings, name):\n"
               "    if be.device_kind == 'gpu' and name.endswith('_compile'):\n"
               "        return settings.get('precision'), be.free_memory()\n"
               "    return name == 'cpu'\n")
    assert violations(neutral, "neutral.py") == []
