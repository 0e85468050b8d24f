"""The TFLite zoo's tf2onnx copies (models/tflite/*.onnx, int8) under the `ort` target equal
onnxruntime's optimized session bit for bit on the stored inputs: tf2onnx's QDQ graphs are
fused exactly where onnxruntime fuses them (issue 17: pools/adds onnxruntime leaves unfused
stay float in intsim too). The 16x8 copies carry an int64-bias DequantizeLinear, which
onnxruntime refuses to load, so they have no onnxruntime oracle."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import intsim
from models.build_tflite import HERE, NAMES
from tests.ortutil import session

INT8 = [n for n in NAMES if "16x8" not in n]


@pytest.mark.parametrize("name", INT8)
def test_tf2onnx_copy_under_ort_equals_onnxruntime(name):
    path = HERE / f"{name}.onnx"
    s = session(path)
    feed_name = s.get_inputs()[0].name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # float-island notes
        prog = intsim.load(path, target="ort")
    for x in np.load(HERE / f"{name}.npz")["input"]:
        want = s.run(None, {feed_name: x})
        got = prog.run({feed_name: x})
        assert len(got) == len(want)
        for g, w in zip(got.values(), want):
            assert g.dtype == w.dtype and np.array_equal(g, w), (name, float(np.mean(g == w)))
