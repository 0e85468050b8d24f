"""Inputs the fuzzers once crashed on (committed under tests/fuzz/regressions/): each must now
end in an `intsim.errors` exception or a result, never another exception."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest

from kernels.pool import pool_output_shape
from tests.fuzz import harness as H

CASES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "regressions", "*.onnx")))


@pytest.mark.parametrize("path", CASES, ids=os.path.basename)
def test_regression_case_is_handled(path):
    out = H.run_case(H.model_bytes(path))     # any other exception propagates and fails the test
    assert out == "ok" or out.split(":")[0] in ("load", "run")


def test_maxpool_stride_zero_named():
    """maxpool_stride0.onnx: a MaxPool with strides [0, 0] divided by zero in the output-size
    formula; the geometry is now refused (ValueError in kernels, ShapeError in the step)."""
    path = os.path.join(os.path.dirname(__file__), "regressions", "maxpool_stride0.onnx")
    assert H.run_case(H.model_bytes(path)) == "run:ShapeError"
    for bad in (dict(strides=[0, 1]), dict(kernel=[0, 2]), dict(dilations=[1, 0]), dict(pads=[0, -1, 0, 0]),
                dict(strides=[1])):
        args = dict(spatial=(5, 5), kernel=[2, 2], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], ceil_mode=0)
        args.update(bad)
        with pytest.raises(ValueError, match="pool"):
            pool_output_shape(**args)
    assert pool_output_shape((5, 5), [2, 2], [2, 2], [0, 0, 0, 0], [1, 1], 0) == (2, 2)
    assert np.all(np.array(pool_output_shape((7,), [3], [2], [1, 1], [1], 1)) == [4])
