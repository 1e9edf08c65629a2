"""The `numpy` adapter: plain NumPy on the CPU, the baseline many people start from.

The family implementations are shared with CuPy (`backends._xp`, bound here to `numpy`, SciPy's `expit` and
`numpy.add.at`). NumPy is eager and synchronous: every call has finished when it returns, so `force` and
`sync` have nothing to do and there is nothing to compile. Matrix products run in the BLAS NumPy was built with
(OpenBLAS in the wheels), with that library's own thread count (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS,
recorded with the machine; threadpoolctl's report is added to the settings when it is installed); the
elementwise ufuncs are single-threaded. Inputs are copied on the way in, so a case can never modify the arrays
the verifier checks against. bfloat16 is declared unsupported: NumPy has no such dtype.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np

from opbench.backends._base import Availability
from opbench.backends._xp import BFLOAT16_REASON, ArrayNamespace, NumPyLikeBackend

_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _blas() -> dict[str, str]:
    """The BLAS NumPy was built with, as `numpy.show_config` reports it (NumPy >= 1.26), else empty."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]  # type: ignore[func-returns-value]
        return {"blas": str(blas.get("name", "")), "blas_version": str(blas.get("version", ""))}
    except Exception:  # older NumPy prints instead of returning; the BLAS is informative only
        return {}


class NumPyCPU(NumPyLikeBackend):
    name = "numpy"
    framework = "numpy"
    packages = ("numpy",)
    shares_input_memory = False  # `from_numpy` copies (`np.array(copy=True)`)
    unsupported_dtypes: ClassVar[dict[str, str]] = {"bfloat16": BFLOAT16_REASON.format(library="NumPy")}

    def availability(self) -> Availability:
        blas = _blas().get("blas")
        return Availability(True, f"numpy {np.__version__} on the CPU" + (f" ({blas})" if blas else ""))

    def namespace(self) -> ArrayNamespace:
        from scipy.special import expit

        return ArrayNamespace(np, np.add.at, np.maximum.at, expit, im2col_bytes=16 << 20)

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__, **_blas()}

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {name: os.environ.get(name, "") for name in _THREAD_VARIABLES}
        try:
            from threadpoolctl import threadpool_info
        except ImportError:
            return settings
        for pool in threadpool_info():
            settings[f"threads_{pool.get('internal_api')}"] = pool.get("num_threads")
        return settings

    def from_numpy(self, a: np.ndarray, dtype: str | None = None) -> np.ndarray:
        self._check_dtype(dtype)
        return np.array(a, dtype=dtype, order="C", copy=True)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)
