import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

from intsim.errors import InvalidModelError
from intsim.quantize.graph import FloatGraph, fold_batchnorm, grouped_weight, layer_patches
from tests.ortutil import run_ort
from tests.quantize import nets


def test_bn_fold_keeps_float_outputs():
    m = nets.conv_net(seed=3)
    x = nets.calib(8, seed=2)
    fg = FloatGraph(m)
    assert fold_batchnorm(fg) == 1
    assert not any(n.op_type == "BatchNormalization" for n in fg.nodes)
    np.testing.assert_allclose(run_ort(fg.to_model(), {"x": x})["y"], run_ort(m, {"x": x})["y"], rtol=1e-5, atol=1e-5)


def test_layers_see_fused_activation():
    fg = FloatGraph(nets.conv_net(act="Clip", depthwise=True, bn=False))
    got = [(l.name, l.kind, l.groups, l.act is not None, l.act_hi) for l in fg.layers()]
    assert got == [("conv1", "conv", 1, True, 6.0), ("dw2", "conv", 6, True, 6.0),
                   ("pw3", "conv", 1, True, np.inf), ("fc", "gemm", 1, False, np.inf)]


def test_garbage_model_raises():
    with pytest.raises(InvalidModelError):
        FloatGraph(b"not an onnx model")


def test_float_model_is_read_within_the_size_limits(tmp_path):
    """The quantizer reads models through loader.load_model: the same limits as intsim.load."""
    from intsim import limits
    from intsim.errors import ResourceLimitError
    path = tmp_path / "m.onnx"
    path.write_bytes(nets.conv_net(seed=3).SerializeToString())
    assert FloatGraph(str(path)).nodes
    with limits.limited(max_bytes=1000), pytest.raises(ResourceLimitError):
        FloatGraph(str(path))


@given(st.integers(1, 3), st.integers(1, 3), st.sampled_from([1, 3]), st.integers(1, 2), st.integers(0, 1),
       st.integers(4, 7), st.integers(1, 2), st.booleans())
@settings(max_examples=40, deadline=None)
def test_im2col_matches_onnxruntime_conv(cpg, opg, k, stride, pad, hw, groups, dilate):
    rng = np.random.default_rng(cpg * 100 + k)
    c, cout = cpg * groups, opg * groups
    w = rng.normal(size=(cout, cpg, k, k)).astype(np.float32)
    x = rng.normal(size=(2, c, hw, hw)).astype(np.float32)
    d = 2 if dilate and k == 3 and hw >= 6 else 1
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c", group=groups, strides=[stride, stride],
                            pads=[pad] * 4, dilations=[d, d])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])],
                          [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    want = run_ort(m, {"x": x})["y"]
    layer = FloatGraph(m).layers()[0]
    p = layer_patches(layer, x, w)
    got = np.einsum("grk,gok->gro", p, grouped_weight(layer, w.astype(np.float64)))   # (G, N*P, opg)
    n, _, oh, ow = want.shape
    got = got.reshape(groups, n, oh, ow, opg).transpose(1, 0, 4, 2, 3).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
