"""Power-of-two models (issue 3, acceptance 4): models quantized by intsim's own quantizer with
per-tensor power-of-two scales run under the `pow2` target in each rounding mode. With
power-of-two scales onnxruntime's float requant is exact (|acc| < 2**24), so `pow2-rne` must
equal the `ort` target bit for bit; floor / rhu / rhaz differ from it only on ties, where
each mode's rule picks the side."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import intsim
from intsim.quantize import quantize

zoo = pytest.importorskip("models.zoo")


@pytest.fixture(scope="module")
def mobilenet_pow2(tmp_path_factory):
    calib = zoo.sample_inputs("mobilenetv2_s", 16, seed=1)["input"]
    out = tmp_path_factory.mktemp("pow2") / "mnv2_pow2.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize(str(zoo.float_model("mobilenetv2_s")), calib, out=str(out), scale="pow2", granularity="tensor",
                 range_method="msqe")
    return out


def test_every_scale_is_an_exact_power_of_two(mobilenet_pow2):
    g = intsim.import_onnx(mobilenet_pow2)
    kinds = {t.qparams.kind for t in g.tensors.values() if t.qparams is not None}
    assert kinds == {"pow2"}


def test_pow2_rne_equals_ort_and_other_modes_differ_only_by_rounding(mobilenet_pow2):
    x = zoo.sample_inputs("mobilenetv2_s", 4, seed=3)
    ref, ref_taps = intsim.load(mobilenet_pow2, target="ort").run(x, taps=True)
    rne = intsim.load(mobilenet_pow2, target="pow2-rne").run(x)
    for k in ref:
        assert np.array_equal(ref[k], rne[k])
    for mode in ("pow2-floor", "pow2-rhu", "pow2-rhaz"):
        out, taps = intsim.load(mobilenet_pow2, target=mode).run(x, taps=True)
        first = next(n for n, t in taps.items() if t["op"] in ("conv", "matmul"))
        a, b = taps[first]["outputs"], ref_taps[first]["outputs"]
        for name in a:  # the first layer sees the same input: it may differ by at most one LSB
            assert np.abs(a[name].astype(np.int64) - b[name].astype(np.int64)).max() <= 1
        assert all(np.isfinite(v).all() for v in out.values())


def test_snap_pow2_makes_an_affine_model_run_on_pow2():
    path = zoo.quantized_model("digits_cnn", "qdq_s8_pt")
    x = zoo.sample_inputs("digits_cnn", 8)
    with pytest.raises(intsim.IntsimError, match="power of two"):
        intsim.load(path, target="pow2").run(x)
    with pytest.warns(UserWarning, match="snapped"):
        prog = intsim.load(path, target="pow2", snap_pow2=True)
    snapped = prog.run(x)
    g = prog.graph
    assert {t.qparams.kind for t in g.tensors.values() if t.qparams is not None} == {"pow2"}
    assert list(snapped.values())[0].shape == (8, 10)


def test_tflite_quantizes_float_inputs_half_away_from_zero():
    """QuantizeLinear of a float input: ONNX/ort round half to even, TFLite rounds half away."""
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], "q",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.INT8, [4])],
                          [helper.make_tensor("s", TensorProto.FLOAT, [], [0.5]),
                           helper.make_tensor("z", TensorProto.INT8, [], [0])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    x = np.array([0.25, 0.75, -0.25, -1.25], np.float32)  # x / s = 0.5, 1.5, -0.5, -2.5
    assert intsim.load(m, target="ort").run({"x": x})["y"].tolist() == [0, 2, 0, -2]
    assert intsim.load(m, target="tflite").run({"x": x})["y"].tolist() == [1, 2, -1, -3]
