"""End to end: every model the quantizer writes runs through onnxruntime (integer path on)
and through intsim's `ort` target with bit-identical outputs."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import intsim
from intsim.errors import IntsimError, QuantParamError
from intsim.quantize import pipeline, pow2, quantize
from tests.ortutil import run_ort
from tests.quantize import nets

CONFIGS = [
    dict(),
    dict(granularity="tensor", scale="pow2", symmetric=True, range_method="msqe"),
    dict(weight_bits=4, scale="pow2", granularity="tensor", range_method="mse-output", cle=True, adaround=True,
         adaround_steps=100),
    dict(weight_bits=3, learn_scales=True, lsq_steps=30, bias_correction=True, range_method="percentile:99"),
    dict(weight_bits=2, scale="pow2", range_method="msqe", bias_correction=True),
    dict(act_bits=16, granularity="tensor"),
    dict(act_bits=16, scale="pow2", symmetric=True),
]


def _inits(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.mark.parametrize("cfg", CONFIGS, ids=[str(i) for i in range(len(CONFIGS))])
@pytest.mark.parametrize("depthwise,act", [(False, "Relu"), (True, "Clip")])
def test_quantized_model_bit_identical_in_ort_and_intsim(cfg, depthwise, act):
    m = nets.conv_net(seed=len(str(cfg)), depthwise=depthwise, act=act)
    res = quantize(m, nets.calib(48), **cfg)
    x = nets.calib(16, seed=9)
    want = run_ort(res.model, {"x": x})["y"]
    got = intsim.load(res.model.SerializeToString(), target="ort").run({"x": x})["y"]
    assert np.array_equal(got, want)
    ref = run_ort(m, {"x": x})["y"]
    assert np.corrcoef(want.ravel(), ref.ravel())[0, 1] > 0.5     # still the same function, roughly


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("gran", ["tensor", "channel"])
def test_written_scales_and_integers(bits, gran):
    res = quantize(nets.conv_net(depthwise=True), nets.calib(32), weight_bits=bits, scale="pow2", granularity=gran)
    inits = _inits(res.model)
    dq = [n for n in res.model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    for n in dq:
        assert pow2.is_pow2(inits[n.input[1]]), n.name            # every scale, weights/bias/acts
    lim = 2 ** (bits - 1)
    for name, arr in inits.items():
        if name.endswith("_quantized") and arr.dtype == np.int8:
            assert arr.min() >= -lim and arr.max() <= lim - 1, name
            if gran == "channel":
                assert inits[name.replace("_quantized", "_scale")].shape == (arr.shape[0],)


def test_bias_scale_is_product_of_input_and_weight_scales():
    res = quantize(nets.conv_net(), nets.calib(32))
    inits = _inits(res.model)
    nodes = {o: n for n in res.model.graph.node for o in n.output}
    for conv in (n for n in res.model.graph.node if n.op_type in ("Conv", "Gemm")):
        a_scale = inits[nodes[conv.input[0]].input[1]]
        w_scale = inits[nodes[conv.input[1]].input[1]]
        b = nodes[conv.input[2]]
        assert inits[b.input[0]].dtype == np.int32
        assert np.array_equal(inits[b.input[1]], (np.float32(a_scale) * w_scale).astype(np.float32))


def test_relu_removed_when_quantizer_implies_it():
    res = quantize(nets.conv_net(), nets.calib(32))
    assert not any(n.op_type == "Relu" for n in res.model.graph.node)
    res = quantize(nets.conv_net(act="Clip", depthwise=True), nets.calib(32), scale="pow2")
    kept = [n for n in res.model.graph.node if n.op_type == "Clip"]
    assert kept and all(k.input[0].endswith("_dq") for k in kept)   # DQ -> Clip -> Q, same params


def test_act_is_implied():
    t = pipeline.ranges.act_type(8)
    assert pipeline.act_is_implied(0.0, np.inf, 0.1, -128, t)
    assert not pipeline.act_is_implied(0.0, np.inf, 0.1, -127, t)
    assert pipeline.act_is_implied(0.0, 6.0, np.float32(6 / 255), -128, t)
    assert not pipeline.act_is_implied(0.0, 6.0, 2.0 ** -5, -128, t)    # 255/32 = 7.97 > 6


def test_qonnx_format_writes_quant_nodes():
    res = quantize(nets.conv_net(), nets.calib(32), fmt="qonnx", weight_bits=4, scale="pow2")
    quants = [n for n in res.model.graph.node if n.op_type == "Quant"]
    assert quants and all(n.domain == "qonnx.custom_op.general" for n in quants)
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in res.model.graph.node)
    inits = _inits(res.model)
    for n in quants:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attrs == {"signed": 1, "narrow": 0, "rounding_mode": b"ROUND"}
        assert pow2.is_pow2(inits[n.input[1]])
        if n.input[0] == "w1_float":          # weights: Quant(q*s) gives back the 4-bit integers
            q = np.rint(inits["w1_float"] / inits[n.input[1]])
            assert np.array_equal(q, np.clip(q, -8, 7)) and float(inits[n.input[3]]) == 4.0


def test_qonnx_and_qdq_agree_in_fake_quant():
    """The QONNX model, with Quant evaluated by its spec, equals the unfused QDQ model."""
    m = nets.conv_net()
    a = quantize(m, nets.calib(32), weight_bits=4, scale="pow2", granularity="tensor")
    b = quantize(m, nets.calib(32), weight_bits=4, scale="pow2", granularity="tensor", fmt="qonnx")
    x = nets.calib(8, seed=3)
    want = run_ort(a.model, {"x": x}, optimized=False)["y"]
    got = _run_qonnx_as_qdq(b.model, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _run_qonnx_as_qdq(model, feeds):
    """Quant(x, s, z, b) with signed=1, narrow=0, ROUND == DQ(clip(Q(x))) at int8/int16 storage,
    clamped to b bits: rewrite into standard ops and run in onnxruntime, unoptimized."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = _inits(m)
    nodes = []
    for n in m.graph.node:
        if n.op_type != "Quant":
            nodes.append(n)
            continue
        bits = int(inits[n.input[3]])
        if bits > 16:    # int32 bias: zp 0, no reachable clamp: rint(x / s) * s
            d, r = n.output[0] + "_div", n.output[0] + "_round"
            nodes += [onnx.helper.make_node("Div", [n.input[0], n.input[1]], [d]),
                      onnx.helper.make_node("Round", [d], [r]),
                      onnx.helper.make_node("Mul", [r, n.input[1]], [n.output[0]])]
            continue
        zp_name = n.input[2] + ("_i8" if bits <= 8 else "_i16")
        dt = np.int8 if bits <= 8 else np.int16
        m.graph.initializer.append(numpy_helper.from_array(inits[n.input[2]].astype(dt), zp_name))
        clip_lo, clip_hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        q = n.output[0] + "_q"
        nodes.append(onnx.helper.make_node("QuantizeLinear", [n.input[0], n.input[1], zp_name], [q]))
        if bits < 8:   # narrower than storage: clamp the integers too
            lo, hi = q + "_lo", q + "_hi"
            m.graph.initializer.extend([numpy_helper.from_array(np.array(clip_lo, dt), lo),
                                        numpy_helper.from_array(np.array(clip_hi, dt), hi)])
            nodes.append(onnx.helper.make_node("Clip", [q, lo, hi], [q + "_c"]))
            q = q + "_c"
        nodes.append(onnx.helper.make_node("DequantizeLinear", [q, n.input[1], zp_name], [n.output[0]]))
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    del m.opset_import[1:]
    return run_ort(m, feeds, optimized=False)["y"]


def test_bad_options_and_inputs_raise():
    m = nets.conv_net()
    with pytest.raises(QuantParamError):
        quantize(m, nets.calib(8), weight_bits=9)
    with pytest.raises(QuantParamError):
        quantize(m, nets.calib(8), act_bits=4)
    with pytest.raises(QuantParamError):
        quantize(m, nets.calib(8), scale="log")
    with pytest.raises(IntsimError):
        quantize(m, {"other": nets.calib(8), "more": nets.calib(8)})
    with pytest.raises(TypeError):
        quantize(m, nets.calib(8), no_such_option=1)
