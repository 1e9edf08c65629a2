"""Which BLAS a framework's wheel brings: the library behind its CPU matrix products, named without importing it.

A CPU matrix product is as fast as the BLAS under it, and the wheels differ: on Linux, `mlx[cpu]` vendors the
reference (netlib) BLAS, single-threaded and unblocked, where NumPy vendors OpenBLAS and torch links MKL or
OpenBLAS in. On the 2-core VM of `results/cpu-suite/` a 1000000x64 @ 64x1024 float32 product takes mlx_cpu
52 s (2.5 GFLOP/s). A table that does not say so reads as "MLX is slow on CPUs" rather than "this wheel's
BLAS is". `vendored_blas` reads the distribution's file list (`importlib.metadata`), where auditwheel and
delocate put the shared libraries a wheel bundles (`<dist>.libs/`, `.dylibs/`), and names the first BLAS it
finds. Trade-off: a BLAS linked statically, or found on the system at load time, is not in the list (this
reports nothing then, rather than guessing); reading `/proc/self/maps` after import would see those, but
only on Linux and only in the process that loaded the framework.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
from pathlib import PurePosixPath

# Library file-name stems, most specific first (libopenblas before libblas), what to call them, and a note.
BLAS_LIBRARIES: tuple[tuple[str, str, str], ...] = (
    ("libscipy_openblas", "OpenBLAS", ""),
    ("libopenblas", "OpenBLAS", ""),
    ("libmkl_rt", "Intel MKL", ""),
    ("libmkl_core", "Intel MKL", ""),
    ("libblis", "BLIS", ""),
    ("libflexiblas", "FlexiBLAS", ""),
    ("libarmpl", "Arm Performance Libraries", ""),
    ("libnvpl_blas", "NVIDIA NVPL BLAS", ""),
    ("libcblas", "netlib reference CBLAS", "single-threaded"),
    ("libblas", "netlib reference BLAS", "single-threaded"),
)
_SHARED_LIBRARY = re.compile(r"\.(so(\.\d+)*|dylib|dll)$")
_VERSION = re.compile(r"\.so\.(\d+(?:\.\d+)*)$")


@functools.cache  # the installed files do not change within a process; availability and versions both ask
def vendored_blas(*distributions: str) -> str:
    """The BLAS bundled by the first of `distributions` that is installed and bundles one, as a name with the
    library's file version where it has one ("netlib reference BLAS 3.10.0, single-threaded"); "" if none."""
    for distribution in distributions:
        try:
            files = importlib.metadata.files(distribution) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for file in files:
            name = PurePosixPath(str(file)).name
            if not _SHARED_LIBRARY.search(name):
                continue
            for stem, label, note in BLAS_LIBRARIES:
                if name.startswith(stem):
                    version = _VERSION.search(name)
                    return ", ".join(filter(None, (f"{label} {version.group(1)}" if version else label, note)))
    return ""
