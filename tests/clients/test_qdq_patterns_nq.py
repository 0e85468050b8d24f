"""Regression tests, one per pattern the NNCF / Quark zoo (tests/clients/test_zoo_nq.py) showed,
each a small graph with that pattern, against onnxruntime 1.32's optimized session (int8 QDQ
allowed) or, for the NPU arithmetic, a plain-Python integer computation:

- a Relu/Clip that onnxruntime keeps before the Q (Quark A8W8: int8 zero point 0) leaves the
  conv float (FusedConv); one it removes (zero point = the type's minimum, a Clip covering the
  range) fuses;
- a float bias of a conv that stays float (NNCF: uint8 in, int8 out) is quantized to int32 and
  dequantized first (WeightBiasQuantization);
- 16-bit activations (Quark A16W8): conv/gemm float, MaxPool on int16 codes;
- Gemm alpha/beta, transA/transB in QDQ form and in QGemm;
- a bias with its own power-of-two scale (Quark XINT8): float under `ort`, shifted onto the
  accumulator under `pow2`, refused by name by a target without the rule.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import TensorProto as T, helper, numpy_helper as nh

import intsim
from intsim.targets.rules import TargetRefusal
from tests.ortutil import optimized_op_types, run_ort

RNG = np.random.default_rng(17)
NP = {T.UINT8: np.uint8, T.INT8: np.int8, T.INT16: np.int16, T.UINT16: np.uint16, T.INT32: np.int32}


def _model(nodes, inits, x_shape, y_name, y_type, y_shape, opset=17, domains=()):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", T.FLOAT, x_shape)],
                          [helper.make_tensor_value_info(y_name, y_type, y_shape)],
                          [nh.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)] +
                          [helper.make_opsetid(d, 1) for d in domains])
    m.ir_version = 8
    return m


def _conv(qt, xs, xz, ys, yz, act=None, clip=None, bias=None, bias_q=None, w_scale=0.01, out_qt=None):
    """x -> Q/DQ (qt) -> Conv 3x3 (int8 weights [, bias]) [-> Relu/Clip] -> Q (out_qt or qt)."""
    out_qt = out_qt or qt
    inits = {"xs": np.float32(xs), "xz": np.asarray(xz, NP[qt]), "w": RNG.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8),
             "ws": np.float32(w_scale), "wz": np.int8(0), "ys": np.float32(ys), "yz": np.asarray(yz, NP[out_qt])}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"])]
    ins = ["xd", "wd"]
    if bias is not None:
        inits["b"] = bias
        ins.append("b")
    if bias_q is not None:       # (int values, own scale)
        inits.update(bq=bias_q[0], bs=np.float32(bias_q[1]), bz=np.zeros((), bias_q[0].dtype))
        nodes.append(helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"]))
        ins.append("bd")
    nodes.append(helper.make_node("Conv", ins, ["c"], pads=[1, 1, 1, 1], name="conv"))
    last = "c"
    if act == "Relu":
        nodes.append(helper.make_node("Relu", ["c"], ["r"], name="act"))
        last = "r"
    elif act == "Clip":
        inits.update(lo=np.float32(clip[0]), hi=np.float32(clip[1]))
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["r"], name="act"))
        last = "r"
    nodes.append(helper.make_node("QuantizeLinear", [last, "ys", "yz"], ["y"]))
    return _model(nodes, inits, ["N", 3, 6, 6], "y", out_qt, ["N", 4, 6, 6], opset=21)


def _x(shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def _run(m, x, target="ort", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = intsim.load(m, target=target, **kw)
    return prog, prog.run({"x": x})


def _integer_convs(prog):
    return [n.name for n in prog.graph.nodes if n.op in ("conv", "matmul")]


@pytest.mark.parametrize("qt,zp,act,clip,fused", [
    (T.UINT8, 0, "Relu", None, True), (T.INT8, -128, "Relu", None, True),
    (T.INT8, 0, "Relu", None, False), (T.UINT8, 5, "Relu", None, False),
    (T.INT8, 0, "Clip", (-1.0, 1.0), False), (T.INT8, 0, "Clip", (-100.0, 100.0), True),
    (T.UINT8, 0, "Clip", (0.0, 6.0), False), (T.UINT8, 0, "Clip", (0.0, 12.75), True)])
def test_activation_onnxruntime_keeps_leaves_the_conv_float(qt, zp, act, clip, fused):
    m = _conv(qt, 0.02, 0, 0.05, zp, act=act, clip=clip)
    x = _x((2, 3, 6, 6))
    assert ("QLinearConv" in optimized_op_types(m)) == fused      # what onnxruntime 1.32 does
    prog, out = _run(m, x)
    assert bool(_integer_convs(prog)) == fused
    if not fused:
        reason = next(n for n in prog.graph.nodes if n.name == "conv").attrs["float_reason"]
        assert "keeps its" in reason and "'act'" in reason, reason
    assert np.array_equal(out["y"], run_ort(m, {"x": x})["y"])
    # the integer datapath the format means: the activation is the clamp stage
    prog_i, _ = _run(m, x, fusion="integer")
    assert _integer_convs(prog_i) == ["conv"]


def test_float_bias_of_an_unfused_conv_is_quantized_first():
    """NNCF: uint8 input, int8 output, float bias: onnxruntime fuses nothing but still rounds the
    bias to int32 at x_scale*w_scale (WeightBiasQuantization) before its float Conv."""
    bias = (RNG.standard_normal(4) * 0.3).astype(np.float32)
    m = _conv(T.UINT8, 0.02, 128, 0.05, 0, bias=bias, out_qt=T.INT8)
    x = _x((8, 3, 6, 6), 2.0)
    assert "QLinearConv" not in optimized_op_types(m)
    prog, out = _run(m, x)
    conv = next(n for n in prog.graph.nodes if n.name == "conv")
    assert conv.op == "onnx" and conv.inputs[2].endswith("__dequantized_int32")
    assert np.array_equal(out["y"], run_ort(m, {"x": x})["y"])


@pytest.mark.parametrize("tail", ["none", "relu"])
def test_float_bias_stays_float_without_a_quantize_after(tail):
    """WeightBiasQuantization needs a no-branch path (through Relu/Clip) to a QuantizeLinear: a
    DQ -> Conv(float bias) with a float output keeps its float bias in onnxruntime."""
    bias = (RNG.standard_normal(4) * 0.3).astype(np.float32)
    m = _conv(T.UINT8, 0.02, 128, 0.05, 0, bias=bias, act="Relu" if tail == "relu" else None)
    g = m.graph
    q = next(n for n in g.node if n.output[0] == "y")
    g.node.remove(q)
    last = next(n for n in g.node if n.output[0] == q.input[0])
    last.output[0] = "y"
    g.output[0].type.tensor_type.elem_type = T.FLOAT
    x = _x((3, 3, 6, 6), 2.0)
    prog, out = _run(m, x)
    conv = next(n for n in prog.graph.nodes if n.name == "conv")
    assert conv.op == "onnx" and conv.inputs[2] == "b"
    assert np.array_equal(out["y"], run_ort(m, {"x": x})["y"])


def test_int16_conv_stays_float_under_ort_and_equals_onnxruntime():
    m = _conv(T.INT16, 2.0 ** -12, 0, 2.0 ** -9, 0)
    x = _x((4, 3, 6, 6))
    prog, out = _run(m, x)
    assert not _integer_convs(prog) and "QLinearConv" not in optimized_op_types(m)
    assert "int16 activations" in next(n for n in prog.graph.nodes if n.name == "conv").attrs["float_reason"]
    assert np.array_equal(out["y"], run_ort(m, {"x": x})["y"])
    assert _integer_convs(_run(m, x, fusion="integer")[0]) == ["conv"]


@pytest.mark.parametrize("qt", [T.INT16, T.UINT16])
def test_int16_maxpool_runs_on_codes_and_equals_onnxruntime(qt):
    """Quark A16W8: DQ -> MaxPool -> Q with one 16-bit quantization: an integer max pool."""
    zp = 0 if qt == T.INT16 else 30000
    inits = {"s": np.float32(0.0007), "z": np.asarray(zp, NP[qt])}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("MaxPool", ["xd"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("QuantizeLinear", ["p", "s", "z"], ["y"])]
    m = _model(nodes, inits, [3, 5, 8, 8], "y", qt, [3, 5, 4, 4], opset=21)
    x = _x((3, 5, 8, 8), 20.0)      # saturates at both ends too
    prog, out = _run(m, x)
    pool = next(n for n in prog.graph.nodes if n.name == "pool")
    assert pool.attrs.get("op_type") == "MaxPool" and prog.graph.tensors[pool.inputs[0]].dtype.bits == 16
    assert np.array_equal(out["y"], run_ort(m, {"x": x})["y"])


def _gemm(alpha=1.0, beta=1.0, ta=0, tb=0, bias=True, qt=T.UINT8):
    M, K, N = 5, 16, 8
    inits = {"xs": np.float32(0.02), "xz": np.asarray(3, NP[qt]),
             "w": RNG.integers(-127, 128, (N, K) if tb else (K, N)).astype(np.int8), "ws": np.float32(0.01),
             "wz": np.int8(0), "ys": np.float32(0.05), "yz": np.asarray(5, NP[qt]),
             "b": RNG.integers(-500, 500, N).astype(np.int32), "bs": np.float32(0.0002)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"]),
             helper.make_node("DequantizeLinear", ["b", "bs"], ["bd"]),
             helper.make_node("Gemm", ["xd", "wd"] + (["bd"] if bias else []), ["c"], name="gemm",
                              alpha=alpha, beta=beta, transA=ta, transB=tb),
             helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["y"])]
    return _model(nodes, inits, [K, M] if ta else [M, K], "y", qt, [M, N]), (K, M) if ta else (M, K)


@pytest.mark.parametrize("kw", [dict(alpha=0.37, bias=False), dict(alpha=3.1, bias=False, tb=1),
                                dict(alpha=0.37, bias=False, ta=1, tb=1, qt=T.INT8), dict(ta=1), dict(tb=1),
                                dict(alpha=0.5), dict(beta=0.5), dict(alpha=1.7, ta=1, tb=1)])
def test_qdq_gemm_alpha_beta_trans_as_onnxruntime(kw):
    """onnxruntime fuses alpha into QGemm only without a bias (with a bias and alpha or beta
    other than 1 the Gemm stays float); transA/transB fuse."""
    m, shape = _gemm(**kw)
    x = _x(shape, 3.0)
    prog, out = _run(m, x)
    assert bool(_integer_convs(prog)) == ("QGemm" in optimized_op_types(m))
    assert np.array_equal(out["y"], run_ort(m, {"x": x})["y"])


@pytest.mark.parametrize("alpha,bias,ta,tb", [(0.37, False, 0, 0), (2.0, False, 1, 1), (0.37, True, 0, 1), (1.0, True, 1, 0)])
def test_qdq_gemm_float_output_alpha_as_onnxruntime(alpha, bias, ta, tb):
    """DQ -> Gemm with no Q after it: onnxruntime makes it a QGemm with a float output, scaled by
    f32(f32(alpha * x_scale) * w_scale), when there is no bias or alpha is 1; with a bias and
    alpha other than 1 the Gemm stays float."""
    m, shape = _gemm(alpha=alpha, bias=bias, ta=ta, tb=tb)
    g = m.graph
    q = next(n for n in g.node if n.output[0] == "y")
    g.node.remove(q)
    next(n for n in g.node if n.name == "gemm").output[0] = "y"
    g.output[0].type.tensor_type.elem_type = T.FLOAT
    x = _x(shape, 3.0)
    prog, out = _run(m, x)
    assert bool(_integer_convs(prog)) == ("QGemm" in optimized_op_types(m)) == (not bias or alpha == 1.0)
    assert np.array_equal(out["y"], run_ort(m, {"x": x})["y"])


@pytest.mark.parametrize("alpha,ta,tb", [(0.37, 1, 1), (2.5, 0, 1), (1.0, 1, 0)])
def test_qgemm_qoperator_alpha_and_transposes(alpha, ta, tb):
    """com.microsoft QGemm: output scale f32(f32(alpha*a_scale)*b_scale)/y_scale, the int32 bias
    inside the sum (contrib_ops/cpu/quantization/qgemm.cc)."""
    M, K, N = 6, 20, 7
    inits = {"xs": np.float32(0.03), "xz": np.uint8(120), "w": RNG.integers(-127, 128, (N, K) if tb else (K, N)).astype(np.int8),
             "ws": np.float32(0.01), "wz": np.int8(0), "b": RNG.integers(-900, 900, N).astype(np.int32),
             "ys": np.float32(0.07), "yz": np.uint8(128)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("QGemm", ["xq", "xs", "xz", "w", "ws", "wz", "b", "ys", "yz"], ["yq"], domain="com.microsoft",
                              name="qgemm", alpha=alpha, transA=ta, transB=tb),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    m = _model(nodes, inits, [K, M] if ta else [M, K], "y", T.FLOAT, [M, N], domains=("com.microsoft",))
    x = _x((K, M) if ta else (M, K), 3.0)
    prog, out = _run(m, x)
    assert _integer_convs(prog) == ["qgemm"]
    assert np.array_equal(out["y"], run_ort(m, {"x": x})["y"])


def _pow2_conv(bias_exp):
    """int8 QDQ conv, all scales powers of two (x 2^-5, w 2^-7, y 2^-4), int8 bias at 2^-bias_exp."""
    b = RNG.integers(-128, 128, 4).astype(np.int8)
    return _conv(T.INT8, 2.0 ** -5, 0, 2.0 ** -4, 0, act="Relu", bias_q=(b, 2.0 ** -bias_exp), w_scale=2.0 ** -7), b


def _round_shift(v: int, s: int, rounding: str) -> int:
    """round(v / 2**s) in plain Python ints (s >= 1): floor, half up, half to even, half away from zero."""
    q, r, half = v >> s, v - ((v >> s) << s), 1 << (s - 1)
    tie_up = {"floor": False, "rhu": True, "rne": q % 2 == 1, "rhaz": q >= 0}[rounding]
    return q + (rounding != "floor" and (r > half or (r == half and tie_up)))


def _npu_reference(m, x, b, bias_exp, rounding):
    """Plain Python ints: acc = sum (x_q * w) + bias moved to the 2^-12 grid (<< or a rounded >>);
    y = clamp(round(acc / 2^8), 0, 127), both roundings the target's."""
    w = nh.to_array(next(i for i in m.graph.initializer if i.name == "w")).astype(np.int64)
    xq = np.clip(np.rint(x / np.float32(2.0 ** -5)), -128, 127).astype(np.int64)
    xp = np.pad(xq, ((0, 0), (0, 0), (1, 1), (1, 1)))
    k = 12 - bias_exp
    y = np.zeros((x.shape[0], 4, 6, 6), np.int64)
    for n in range(x.shape[0]):
        for c in range(4):
            bb = int(b[c]) << k if k >= 0 else _round_shift(int(b[c]), -k, rounding)
            for i in range(6):
                for j in range(6):
                    acc = int((xp[n, :, i:i + 3, j:j + 3] * w[c]).sum()) + bb
                    y[n, c, i, j] = min(127, max(0, _round_shift(acc, 8, rounding)))
    return y


@pytest.mark.parametrize("bias_exp,target", [(8, "pow2"), (15, "pow2"), (15, "pow2-floor"), (16, "pow2-rne"),
                                             (16, "pow2-rhaz"), (9, "pow2-rne")])
def test_bias_with_own_pow2_scale(bias_exp, target):
    """Quark XINT8: int8 bias at 2^-bias_exp while the accumulator is at 2^-12. `ort`: no fusion
    (onnxruntime fuses an int32 bias at x_scale*w_scale only), bit for bit as its session;
    `pow2*`: bias << (12 - e) (or a right shift in the target's rounding), then the target's shift."""
    m, b = _pow2_conv(bias_exp)
    x = _x((2, 3, 6, 6), 2.0)
    prog, out = _run(m, x)
    assert not _integer_convs(prog) and "int8, not int32" in next(
        n for n in prog.graph.nodes if n.name == "conv").attrs["float_reason"]
    assert np.array_equal(out["y"], run_ort(m, {"x": x})["y"])
    prog, out = _run(m, x, target=target)
    assert _integer_convs(prog) == ["conv"]
    want = _npu_reference(m, x, b, bias_exp, "rhu" if target == "pow2" else target.split("-")[1])
    assert np.array_equal(out["y"].astype(np.int64), want)


def test_bias_with_own_scale_is_refused_by_name_without_a_rule():
    m, _ = _pow2_conv(8)
    with pytest.raises(TargetRefusal, match=r"target tflite has no rule for .* at node 'conv': a bias with its own scale"):
        intsim.load(m, target="tflite", fusion="integer").run({"x": _x((1, 3, 6, 6))})
