"""The target seam (issue 16): every built-in target either implements each integer IR op or
refuses it by name; the rules it implements compute what their formulas say."""
from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest
from onnx import TensorProto, helper

import intsim
from intsim.importer.tflite_model import import_tflite
from intsim.targets import BUILTIN, TargetRefusal, get_target, load_target_file
from intsim.targets.rules import INTEGER_OPS, RawAverage, SameQuant, TfliteSoftmax

from .test_targets import EXAMPLES

MS = "com.microsoft"
U8 = TensorProto.UINT8


def _c(name, dtype, value):
    v = np.asarray(value)
    return helper.make_tensor(name, dtype, list(v.shape), v.reshape(-1).tolist())


def _model(nodes, inputs, out, inits, out_type=U8, out_shape=(None,) * 4):
    g = helper.make_graph(nodes, "one", inputs, [helper.make_tensor_value_info(out, out_type, out_shape)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])


def _q(prefix, s, z, dtype=U8):
    return [_c(f"{prefix}_s", TensorProto.FLOAT, np.float32(s)), _c(f"{prefix}_z", dtype, np.array(z))]


def _u8(name, shape):
    return helper.make_tensor_value_info(name, U8, shape)


def op_model(op, sa=0.5, sb=0.25, sy=0.5, za=128, zb=120, zy=128):
    """(ONNX op type, model, feeds) of one node lowering to IR op `op`."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 3, 5, 5), dtype=np.uint8)
    y = rng.integers(0, 256, (2, 3, 5, 5), dtype=np.uint8)
    qa, qb, qy = _q("a", sa, za), _q("b", sb, zb), _q("y", sy, zy)
    if op in ("add", "mul"):
        t = {"add": "QLinearAdd", "mul": "QLinearMul"}[op]
        n = helper.make_node(t, ["x", "a_s", "a_z", "w", "b_s", "b_z", "y_s", "y_z"], ["y"], name="n0", domain=MS)
        return t, _model([n], [_u8("x", x.shape), _u8("w", y.shape)], "y", qa + qb + qy), {"x": x, "w": y}
    if op == "concat":
        n = helper.make_node("QLinearConcat", ["y_s", "y_z", "x", "a_s", "a_z", "w", "b_s", "b_z"], ["y"],
                             name="n0", domain=MS, axis=1)
        return "QLinearConcat", _model([n], [_u8("x", x.shape), _u8("w", y.shape)], "y", qa + qb + qy), \
            {"x": x, "w": y}
    one = {"avgpool": ("QLinearAveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
           "global_avgpool": ("QLinearGlobalAveragePool", {}), "lut": ("QLinearSigmoid", {}),
           "softmax": ("QLinearSoftmax", {"opset": 13, "axis": -1})}
    if op in one:
        t, attrs = one[op]
        n = helper.make_node(t, ["x", "a_s", "a_z", "y_s", "y_z"], ["y"], name="n0", domain=MS, **attrs)
        return t, _model([n], [_u8("x", x.shape)], "y", qa + qy), {"x": x}
    if op == "quantize":
        n = helper.make_node("QuantizeLinear", ["f", "y_s", "y_z"], ["y"], name="n0")
        f = helper.make_tensor_value_info("f", TensorProto.FLOAT, [4])
        return "QuantizeLinear", _model([n], [f], "y", qy, out_shape=[4]), {"f": np.array([0.25, -0.75, 3.0, 9.5], np.float32)}
    if op == "dynamic_quantize":
        n = helper.make_node("DynamicQuantizeLinear", ["f"], ["y", "ys", "yz"], name="n0")
        f = helper.make_tensor_value_info("f", TensorProto.FLOAT, [4])
        g = helper.make_graph([n], "one", [f], [helper.make_tensor_value_info("y", U8, [4])])
        return "DynamicQuantizeLinear", helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), \
            {"f": np.array([0.25, -0.75, 3.0, 9.5], np.float32)}
    w = [_c("w", TensorProto.INT8, rng.integers(-8, 8, (4, 3, 3, 3) if op == "conv" else (5, 4)).astype(np.int8)),
         _c("w_s", TensorProto.FLOAT, np.float32(0.125)), _c("w_z", TensorProto.INT8, np.array(0))]
    if op == "conv":
        n = helper.make_node("QLinearConv", ["x", "a_s", "a_z", "w", "w_s", "w_z", "y_s", "y_z"], ["y"], name="n0")
        return "QLinearConv", _model([n], [_u8("x", x.shape)], "y", qa + w + qy), {"x": x}
    n = helper.make_node("QLinearMatMul", ["x", "a_s", "a_z", "w", "w_s", "w_z", "y_s", "y_z"], ["y"], name="n0")
    return "QLinearMatMul", _model([n], [_u8("x", [2, 5])], "y", qa + w + qy, out_shape=[2, 4]), {"x": x[0, 0, :2]}


def tflite_op_model(op):
    """(TFLite builtin, flatbuffer bytes, feeds, IR node name) of one TFLite operator lowering to
    IR op `op` (the ops only TFLite models hold)."""
    from tests.tflite.flatbuf import single_op, table_options

    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (1, 4, 5, 3)).astype(np.int8)
    q = {"type": "int8", "scale": 0.05, "zero_point": -3}
    if op == "prelu":
        tensors = [{"name": "x", "shape": [1, 4, 5, 3], **q},
                   {"name": "alpha", "shape": [3], "type": "int8", "data": np.array([-5, 20, 127], np.int8),
                    "scale": 0.01, "zero_point": 2},
                   {"name": "y", "shape": [1, 4, 5, 3], "type": "int8", "scale": 0.04, "zero_point": 5}]
        return "PRELU", single_op("PRELU", tensors, [0], [2], [0, 1]), {"x": x}, "y::prelu"
    if op == "reduce_sum":
        from tests.tflite.flatbuf import reducer_options

        tensors = [{"name": "x", "shape": [1, 4, 5, 3], **q},
                   {"name": "axes", "shape": [1], "type": "int32", "data": np.array([3], np.int32)},
                   {"name": "y", "shape": [1, 4, 5, 1], "type": "int8", "scale": 0.1, "zero_point": 1}]
        return "SUM", single_op("SUM", tensors, [0], [2], [0, 1], reducer_options(True)), {"x": x}, "y::sum"
    if op == "transpose_conv":
        tensors = [{"name": "output_shape", "shape": [4], "type": "int32", "data": np.array([1, 8, 10, 2], np.int32)},
                   {"name": "w", "shape": [2, 3, 3, 3], "type": "int8", "data": rng.integers(-127, 128, (2, 3, 3, 3)),
                    "scale": [0.01, 0.02], "zero_point": [0, 0], "quantized_dimension": 0},
                   {"name": "x", "shape": [1, 4, 5, 3], **q},
                   {"name": "y", "shape": [1, 8, 10, 2], "type": "int8", "scale": 0.1, "zero_point": 1}]
        return "TRANSPOSE_CONV", single_op("TRANSPOSE_CONV", tensors, [2], [3], [0, 1, 2],
                                           table_options("TransposeConvOptions", Padding=0, StrideH=2, StrideW=2),
                                           version=3), {"x": x}, "y::transpose_conv"
    tensors = [{"name": "x", "shape": [1, 4, 5, 3], **q},
               {"name": "size", "shape": [2], "type": "int32", "data": np.array([7, 3], np.int32)},
               {"name": "y", "shape": [1, 7, 3, 3], **q}]
    return "RESIZE_BILINEAR", single_op("RESIZE_BILINEAR", tensors, [0], [2], [0, 1],
                                        table_options("ResizeBilinearOptions", AlignCorners=False,
                                                      HalfPixelCenters=True), version=3), {"x": x}, "y::resize"


# IR ops that only the TFLite reader emits
TFLITE_ONLY = ("prelu", "resize_bilinear", "transpose_conv", "reduce_sum")


@pytest.mark.parametrize("target", sorted(BUILTIN))
@pytest.mark.parametrize("op", INTEGER_OPS)
def test_every_target_implements_or_refuses_each_integer_op_by_name(target, op):
    t = get_target(target)
    keeps = isinstance(t.rules.get(op), (SameQuant, RawAverage))     # rules that move codes only
    if op in TFLITE_ONLY:
        source_op, model, feeds, node = tflite_op_model(op)
        g = import_tflite(model) if op == "reduce_sum" else intsim.load(model, target="tflite").graph
    else:
        kw = dict(sa=0.5, sb=0.5, zb=128) if keeps else {}
        if isinstance(t.rules.get(op), TfliteSoftmax):
            kw = dict(sy=1 / 256, zy=0)     # the only output quantization TFLite's SOFTMAX takes
        (source_op, model, feeds), node = op_model(op, **kw), "n0"
        g = intsim.import_onnx(model)
    assert op in {n.op for n in g.nodes}
    if op in t.rules:
        out = intsim.load(model, target=t).run(feeds)
        assert out["y"].size > 0
    else:
        with pytest.raises(TargetRefusal, match=re.escape(f"target {target} has no rule for {source_op} at node "
                                                          f"'{node}'")):
            intsim.load(model, target=t).run(feeds)


def test_a_toml_target_without_ops_refuses_add_by_name(tmp_path):
    p = tmp_path / "bare.toml"
    p.write_text('name = "bare"\n')
    _, model, feeds = op_model("add")
    with pytest.raises(TargetRefusal, match=r"target bare has no rule for QLinearAdd at node 'n0'"):
        intsim.load(model, target=load_target_file(p)).run(feeds)


@pytest.mark.parametrize("example,builtin", [("tflite.toml", "tflite"), ("tflite-single.toml", "tflite-single"),
                                             ("cmsis-nn.toml", "cmsis-nn"), ("pow2-rhu.toml", "pow2-rhu")])
@pytest.mark.parametrize("op", ["add", "mul", "avgpool", "global_avgpool", "quantize"])
def test_example_toml_targets_reproduce_their_builtin_on_every_op(example, builtin, op):
    scales = dict(sa=0.5, sb=0.25, sy=0.5) if builtin.startswith("pow2") else dict(sa=0.3, sb=0.2, sy=0.45)
    if op == "avgpool" and not builtin.startswith("pow2"):
        scales = dict(sa=0.3, sy=0.3, za=128, zy=128)     # TFLite pools keep the quantization
    _, model, feeds = op_model(op, **scales)
    user = load_target_file(EXAMPLES / example)
    a = intsim.load(model, target=user).run(feeds)["y"]
    b = intsim.load(model, target=builtin).run(feeds)["y"]
    assert np.array_equal(a, b)


# ----------------------------------------------------------------------------- rules vs formulas

def _mbqm(x, real, mode="double"):
    """TFLite MultiplyByQuantizedMultiplier written with Python ints (double rounding)."""
    frac, shift = math.frexp(real)
    m = int(math.floor(frac * 2**31 + 0.5))
    if m == 2**31:
        m, shift = m // 2, shift + 1
    if shift < -31:
        m, shift = 0, 0
    left, right = max(shift, 0), max(-shift, 0)
    v = x * (1 << left)
    ab = v * m
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    hi = int((ab + nudge) / (1 << 31)) if ab + nudge >= 0 else -int(-(ab + nudge) // (1 << 31))
    mask = (1 << right) - 1
    rem, thr = hi & mask, (mask >> 1) + (hi < 0)
    return (hi >> right) + (rem > thr)


def test_tflite_add_follows_tflites_fixed_point_formula():
    sa, sb, sy, za, zb, zy = 0.3, 0.2, 0.45, 128, 120, 131
    _, model, feeds = op_model("add", sa=sa, sb=sb, sy=sy, za=za, zb=zb, zy=zy)
    got = intsim.load(model, target="tflite").run(feeds)["y"].astype(np.int64)
    f32 = lambda v: float(np.float32(v))  # noqa: E731
    twice = 2 * max(f32(sa), f32(sb))
    ra, rb, ry = f32(sa) / twice, f32(sb) / twice, twice / f32((1 << 20) * np.float32(sy))
    want = []
    for a, b in zip(feeds["x"].reshape(-1).tolist(), feeds["w"].reshape(-1).tolist()):
        s = _mbqm((a - za) << 20, ra) + _mbqm((b - zb) << 20, rb)
        want.append(min(max(_mbqm(s, ry) + zy, 0), 255))
    assert got.reshape(-1).tolist() == want


def test_tflite_average_pool_averages_codes_half_away_from_zero():
    _, model, feeds = op_model("avgpool", sa=0.3, sy=0.3, za=128, zy=128)
    got = intsim.load(model, target="tflite").run(feeds)["y"].astype(np.int64)
    x = feeds["x"].astype(np.int64)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    valid = np.pad(np.ones(x.shape[2:], np.int64), 1)
    for i in range(5):
        for j in range(5):
            s = xp[:, :, i:i + 3, j:j + 3].sum(axis=(2, 3))
            n = int(valid[i:i + 3, j:j + 3].sum())
            want = np.array([int((v + n // 2) / n) if v > 0 else -int((-v + n // 2) / n) for v in s.reshape(-1)])
            assert np.array_equal(got[:, :, i, j].reshape(-1), want)


def test_tflite_refuses_a_pool_that_changes_quantization_by_name():
    _, model, feeds = op_model("avgpool", sa=0.3, sy=0.5)
    with pytest.raises(TargetRefusal, match=r"target tflite has no rule for QLinearAveragePool at node 'n0': "
                                            r"input and output quantization differ"):
        intsim.load(model, target="tflite").run(feeds)


@pytest.mark.parametrize("target,rounding", [("pow2-floor", "floor"), ("pow2-rhu", "rhu"), ("pow2-rne", "rne"),
                                             ("pow2-rhaz", "rhaz")])
def test_pow2_global_pool_divides_exactly_in_the_targets_rounding(target, rounding):
    _, model, feeds = op_model("global_avgpool", sa=0.25, sy=0.5, za=128, zy=100)
    got = intsim.load(model, target=target).run(feeds)["y"].reshape(-1).tolist()
    sums = (feeds["x"].astype(np.int64) - 128).reshape(6, 25).sum(1)
    want = []
    for s in sums.tolist():
        f = Fraction(s, 50)             # * 0.25 / 0.5 / 25
        fl = math.floor(f)
        tie = f - fl == Fraction(1, 2)
        up = {"floor": False, "rhu": f - fl >= Fraction(1, 2), "rne": f - fl > Fraction(1, 2) or (tie and fl % 2),
              "rhaz": f - fl > Fraction(1, 2) or (tie and f > 0)}[rounding]
        want.append(min(max(fl + int(up) + 100, 0), 255))
    assert got == want


def test_pow2_add_rounds_after_the_output_zero_point_like_ort():
    """With power-of-two scales, pow2-rne equals onnxruntime's float QLinearAdd bit for bit."""
    _, model, feeds = op_model("add", sa=0.125, sb=0.0625, sy=0.125, za=64, zb=48, zy=73)
    a = intsim.load(model, target="pow2-rne").run(feeds)["y"]
    b = intsim.load(model, target="ort").run(feeds)["y"]
    assert np.array_equal(a, b)


def test_pow2_add_refuses_a_scale_ratio_that_is_not_a_power_of_two():
    _, model, feeds = op_model("add", sa=0.3, sb=0.25, sy=0.5)
    with pytest.raises(intsim.IntsimError, match=r"node 'n0': add of 'x' and 'w': scale ratio .* not a power of two"):
        intsim.load(model, target="pow2").run(feeds)


def test_tflite_refuses_a_concat_that_changes_quantization_by_name():
    _, model, feeds = op_model("concat")
    with pytest.raises(TargetRefusal, match=r"target tflite has no rule for QLinearConcat at node 'n0': "
                                            r"input quantization \(scale 0.25, zp 120\) differs"):
        intsim.load(model, target="tflite").run(feeds)
