"""A held cuda_compile worker imports dynamo and inductor before its pass (`TorchCUDACompile.preload`), so their
import is not paid inside the first case's transfer phase; preloading touches no device, so it runs anywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torch")

PROBE = """
import sys
from opbench.backends import get_backend
get_backend("cuda_compile").preload()
print("torch._inductor.compile_fx" in sys.modules, "torch._dynamo" in sys.modules)
"""


def test_preload_imports_dynamo_and_inductor() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split() == ["True", "True"], out.stderr[-2000:]
