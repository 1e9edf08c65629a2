"""`_native.vendored_blas`: the BLAS a framework's wheel bundles, named from its file list without importing it."""

from __future__ import annotations

import importlib.metadata

import pytest

from opbench.backends import _native


def _files(monkeypatch: pytest.MonkeyPatch, listing: dict[str, list[str]]) -> None:
    def files(distribution: str) -> list[str]:
        if distribution not in listing:
            raise importlib.metadata.PackageNotFoundError(distribution)
        return listing[distribution]

    monkeypatch.setattr(_native.importlib.metadata, "files", files)
    _native.vendored_blas.cache_clear()  # it caches per process; these listings are made up


@pytest.mark.parametrize(("listing", "expected"), [
    (["mlx_cpu.libs/libgfortran-f7379c93.so.5.0.0", "mlx_cpu.libs/libblas-bd8a282c.so.3.10.0"],
     "netlib reference BLAS 3.10.0, single-threaded"),
    (["numpy.libs/libscipy_openblas64_-32a4b2a6.so"], "OpenBLAS"),
    (["x.libs/libopenblasp-r0-2f7c42d4.3.21.so", "x.libs/libblas.so.3"], "OpenBLAS"),
    (["x/.dylibs/libmkl_rt.2.dylib"], "Intel MKL"),
    (["x/include/cublas_utils.h", "x/libblas_notes.txt", "x/core.so"], ""),
], ids=["mlx-linux", "numpy", "openblas-first", "mkl-dylib", "headers-only"])
def test_the_bundled_blas_is_named_from_the_file_list(listing: list[str], expected: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _files(monkeypatch, {"fw": listing})
    assert _native.vendored_blas("fw") == expected


def test_the_first_installed_distribution_that_bundles_one_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    _files(monkeypatch, {"plain": ["plain/core.so"], "cpu": ["cpu.libs/libblas-1.so.3.9"]})
    assert _native.vendored_blas("missing", "plain", "cpu") == "netlib reference BLAS 3.9, single-threaded"
    assert _native.vendored_blas("missing") == ""


def test_mlx_cpu_reports_its_wheels_blas_when_installed() -> None:
    from opbench.backends import get_backend

    _native.vendored_blas.cache_clear()  # nothing made up left over from the tests above

    be = get_backend("mlx_cpu")
    if not be.availability().available:
        pytest.skip("mlx is not installed")
    blas = _native.vendored_blas("mlx-cpu", "mlx")
    if not blas:
        pytest.skip("this MLX wheel bundles no BLAS (macOS: Accelerate)")
    assert be.versions()["blas"] == blas and blas in be.availability().reason
