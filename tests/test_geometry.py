"""auto_pad as explicit pads: a conv over the explicitly padded input equals the ONNX reference
evaluator's conv with auto_pad (onnxruntime refuses dilation with SAME_*)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from intsim.geometry import auto_pads
from onnx.reference import ReferenceEvaluator

from tests.ortutil import float_model


@pytest.mark.parametrize("mode", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("size,k,s,d", [(7, 3, 2, 1), (8, 3, 2, 1), (5, 4, 1, 1), (9, 3, 3, 2), (1, 1, 1, 1)])
def test_auto_pads_reproduce_the_reference_conv(mode, size, k, s, d):
    w = np.ones((1, 1, k, k), np.float32)
    m = float_model([helper.make_node("Conv", ["x", "w"], ["y"], auto_pad=mode, strides=[s, s], dilations=[d, d])],
                    [("x", [1, 1, size, size])], [("y", None)], {"w": w})
    if mode == "VALID" and (k - 1) * d + 1 > size:
        pytest.skip("kernel larger than the input")
    x = np.random.default_rng(0).normal(0, 1, (1, 1, size, size)).astype(np.float32)
    want = ReferenceEvaluator(m).run(None, {"x": x})[0]
    p = auto_pads(mode, (size, size), (k, k), (s, s), (d, d))
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])))
    oh = (xp.shape[2] - (k - 1) * d - 1) // s + 1
    got = np.zeros((oh, oh), np.float64)
    for i in range(k):
        for j in range(k):
            got += xp[0, 0, i * d:i * d + s * (oh - 1) + 1:s, j * d:j * d + s * (oh - 1) + 1:s]
    assert want.shape[2:] == got.shape
    np.testing.assert_allclose(want[0, 0], got, rtol=1e-5, atol=1e-5)  # float conv sums, compared in float
