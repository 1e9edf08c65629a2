"""mlx_cpu hands its output to the verifier as a read-only view of the evaluated array's own buffer (no copy:
`np.array` copied it at about 0.5 GB/s on the 2-core VM), with the same values as a copy would have."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mlx.core")

from opbench.backends import get_backend


def test_the_cpu_output_is_a_read_only_view_with_the_values_of_a_copy() -> None:
    import mlx.core as mx

    backend = get_backend("mlx_cpu")
    if not backend.availability().available:
        pytest.skip(backend.availability().reason)
    backend.setup()
    x = backend.from_numpy(np.arange(24, dtype=np.float32).reshape(4, 6)) * 2
    strided = x[:, ::2]  # a strided result: the view keeps its strides
    for out in (x, strided):
        view = backend.to_numpy(out)
        assert not view.flags.owndata and not view.flags.writeable
        np.testing.assert_array_equal(view, np.array(out))
    half = backend.to_numpy(mx.array([1.5, -2.0], dtype=mx.bfloat16))  # bfloat16: widened, then viewed
    assert half.dtype == np.float32 and half.tolist() == [1.5, -2.0]
