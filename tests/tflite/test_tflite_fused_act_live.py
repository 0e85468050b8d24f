"""Fused activation clamps at their ties, live against ai-edge-litert on every kernel path
(issue 18): TFLite's kernels quantize the activation's bounds with CalculateActivationRangeQuantized
(z + TfLiteRound(f / s), half away from zero), XNNPACK with xnn_qs8_quantize (lrintf(f / s + z),
half to even, in float32); intsim's targets decide at prepare (targets.activation)."""
from __future__ import annotations

import numpy as np
import pytest

import intsim
from intsim.targets.activation import ACTIVATION_BOUNDS, tflite_range, xnnpack_range

from .flatbuf import binary_options, conv_options, fc_options, pool_options, single_op, table_options

pytest.importorskip("ai_edge_litert")
from models.build_tflite import interpreter  # noqa: E402

PATHS = [("reference", "tflite"), ("builtin", "tflite-builtin"), ("xnnpack", "tflite-xnnpack")]
VALID = 1

# (act, sy, zy): hypothesis's example of issue 18 (RELU_N1_TO_1, 1 / 0.4 = 2.5: hi -125 vs -126),
# both bounds of RELU_N1_TO_1 at ties (-2.5, 2.5 around zy 0), RELU6 with 6 / 0.8 = 7.5 (zy -127:
# -119 vs -120; zy -128: -120 on both), RELU (no tie)
CASES = [(2, np.float32(0.4), -128), (2, np.float32(0.4), 0), (3, np.float32(0.8), -127),
         (3, np.float32(0.8), -128), (1, np.float32(0.4), -128)]


def _i8(rng, shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


def _conv(act, sy, zy, rng, depthwise=False):
    """1x1 CONV_2D with per-channel weights, sx 0.5, zx -128, as issue 18's example (DEPTHWISE_CONV_2D:
    zx 0, so that each channel's outputs take both signs)."""
    c, o, sx, zx = 3, 4 if not depthwise else 3, np.float32(0.5), 0 if depthwise else -128
    wt = rng.integers(-127, 128, (1, 1, 1, o) if depthwise else (o, 1, 1, c)).astype(np.int8)
    sw = rng.uniform(1e-3, 0.05, o).astype(np.float32)
    tensors = [{"name": "x", "shape": [1, 4, 4, c], "type": "int8", "scale": sx, "zero_point": zx},
               {"name": "w", "shape": list(wt.shape), "type": "int8", "data": wt, "scale": sw,
                "zero_point": [0] * o, "quantized_dimension": 3 if depthwise else 0},
               {"name": "bias", "shape": [o], "type": "int32", "data": rng.integers(-2**10, 2**10, o).astype(np.int32),
                "scale": sx * sw, "zero_point": [0] * o},
               {"name": "y", "shape": [1, 4, 4, o], "type": "int8", "scale": sy, "zero_point": zy}]
    opts = conv_options((1, 1), VALID, act, depth_multiplier=1 if depthwise else None)
    return single_op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", tensors, [0], [3], [0, 1, 2], opts), \
        [[_i8(rng, (1, 4, 4, c))] for _ in range(3)]


def _fc(act, sy, zy, rng):
    k, o, sx = 6, 5, np.float32(0.5)
    sw = rng.uniform(1e-3, 0.05, o).astype(np.float32)
    tensors = [{"name": "x", "shape": [8, k], "type": "int8", "scale": sx, "zero_point": -128},
               {"name": "w", "shape": [o, k], "type": "int8", "data": rng.integers(-127, 128, (o, k)).astype(np.int8),
                "scale": sw, "zero_point": 0, "quantized_dimension": 0},
               {"name": "bias", "shape": [o], "type": "int32", "data": rng.integers(-2**10, 2**10, o).astype(np.int32),
                "scale": sx * sw, "zero_point": 0},
               {"name": "y", "shape": [8, o], "type": "int8", "scale": sy, "zero_point": zy}]
    return single_op("FULLY_CONNECTED", tensors, [0], [3], [0, 1, 2], fc_options(act)), \
        [[_i8(rng, (8, k))] for _ in range(3)]


def _binary(op, act, sy, zy, rng):
    s = np.float32(0.25)
    tensors = [{"name": "a", "shape": [1, 4, 4, 4], "type": "int8", "scale": s, "zero_point": 0},
               {"name": "b", "shape": [1, 4, 4, 4], "type": "int8", "scale": s, "zero_point": 0},
               {"name": "y", "shape": [1, 4, 4, 4], "type": "int8", "scale": sy, "zero_point": zy}]
    return single_op(op, tensors, [0, 1], [2], [0, 1], binary_options(op, act), version=2), \
        [[_i8(rng, (1, 4, 4, 4)), _i8(rng, (1, 4, 4, 4))] for _ in range(3)]


def _transpose_conv(act, sy, zy, rng, kernel=2, stride=1):
    """VALID TRANSPOSE_CONV with per-channel weights and bias (version 4), sx 0.5, zx 0; kernel 1,
    stride 2 (SAME) is the negative-padding case the interpreter leaves to its builtin kernel."""
    ci, co, sx, h = 3, 4, np.float32(0.5), 3
    same = kernel < stride
    oh = h * stride if same else (h - 1) * stride + kernel
    sw = rng.uniform(1e-3, 0.05, co).astype(np.float32)
    tensors = [{"name": "output_shape", "shape": [4], "type": "int32", "data": np.array([1, oh, oh, co], np.int32)},
               {"name": "w", "shape": [co, kernel, kernel, ci], "type": "int8",
                "data": rng.integers(-127, 128, (co, kernel, kernel, ci)).astype(np.int8), "scale": sw,
                "zero_point": [0] * co, "quantized_dimension": 0},
               {"name": "x", "shape": [1, h, h, ci], "type": "int8", "scale": sx, "zero_point": 0},
               {"name": "y", "shape": [1, oh, oh, co], "type": "int8", "scale": sy, "zero_point": zy},
               {"name": "bias", "shape": [co], "type": "int32", "data": rng.integers(-2**10, 2**10, co).astype(np.int32),
                "scale": sx * sw, "zero_point": [0] * co}]
    opts = table_options("TransposeConvOptions", Padding=0 if same else VALID, StrideH=stride, StrideW=stride,
                         FusedActivationFunction=act)
    return single_op("TRANSPOSE_CONV", tensors, [2], [3], [0, 1, 2, 4], opts, version=4), \
        [[_i8(rng, (1, h, h, ci))] for _ in range(3)]


def _avgpool(act, sy, zy, rng):
    tensors = [{"name": "x", "shape": [1, 5, 5, 4], "type": "int8", "scale": sy, "zero_point": zy},
               {"name": "y", "shape": [1, 4, 4, 4], "type": "int8", "scale": sy, "zero_point": zy}]
    return single_op("AVERAGE_POOL_2D", tensors, [0], [1], [0], pool_options((2, 2), (1, 1), VALID, act)), \
        [[_i8(rng, (1, 5, 5, 4))] for _ in range(3)]


BUILD = {"CONV_2D": lambda *a: _conv(*a), "DEPTHWISE_CONV_2D": lambda *a: _conv(*a, depthwise=True),
         "FULLY_CONNECTED": _fc, "ADD": lambda *a: _binary("ADD", *a), "MUL": lambda *a: _binary("MUL", *a),
         "SUB": lambda *a: _binary("SUB", *a), "AVERAGE_POOL_2D": _avgpool, "TRANSPOSE_CONV": _transpose_conv,
         "TRANSPOSE_CONV_builtin_fallback": lambda *a: _transpose_conv(*a, kernel=1, stride=2)}
# ops whose tflite-builtin rule is refused (measured to differ): no oracle comparison there
BUILTIN_REFUSED: set = set()


@pytest.mark.parametrize("path", PATHS, ids=[p for p, _ in PATHS])
@pytest.mark.parametrize("op", list(BUILD))
@pytest.mark.parametrize("act,sy,zy", CASES)
def test_fused_activation_clamp_at_ties(path, op, act, sy, zy):
    if path[0] == "builtin" and op in BUILTIN_REFUSED:
        pytest.skip(f"tflite-builtin refuses {op} (test_tflite_ops_live covers the refusal)")
    data, feeds = BUILD[op](act, sy, zy, np.random.default_rng(0))
    it = interpreter(data, path[0])
    it.allocate_tensors()
    prog = intsim.load(data, target=path[1])
    twins = intsim.load(data, target=path[1], kernels="reference")
    seen = []
    for feed in feeds:
        for d, x in zip(it.get_input_details(), feed):
            it.set_tensor(d["index"], x)
        it.invoke()
        want = it.get_tensor(it.get_output_details()[0]["index"])
        feeds_ = dict(zip(prog.graph.inputs, feed))
        got, ref = prog.run(feeds_)[prog.graph.outputs[0]], twins.run(feeds_)[prog.graph.outputs[0]]
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(ref, want)
        seen.append(want)
    # the case reaches the clamp it is about: the output piles up at the finite bounds the
    # target resolved at prepare (and equals the interpreter's above)
    seen = np.concatenate([s.reshape(-1) for s in seen])
    node = next(n for n in prog.graph.nodes if "hi" in n.attrs)
    fmin, fmax = ACTIVATION_BOUNDS[act]
    if np.isfinite(fmax) and node.attrs["hi"] < 127:
        assert seen.max() == node.attrs["hi"] and np.count_nonzero(seen == node.attrs["hi"]) > 1
    if fmin < 0 and node.attrs["lo"] > -128:
        assert seen.min() == node.attrs["lo"] and np.count_nonzero(seen == node.attrs["lo"]) > 1


def test_issue_18_example_bounds_differ_between_rules():
    """The example's clamp: TFLite's rule gives hi -125 (-128 + round(2.5)), XNNPACK's -126
    (rint(-125.5)); RELU6 at 6 / 0.8 = 7.5 with zy -127: -119 and -120."""
    qp = intsim.ir.QParams.make(np.float32(0.4), np.int64(-128))
    t = intsim.ir.IntType(8, True)
    assert tflite_range(ACTIVATION_BOUNDS[2], qp, t) == (-128, -125)
    assert xnnpack_range(ACTIVATION_BOUNDS[2], qp, t) == (-128, -126)
    qp = intsim.ir.QParams.make(np.float32(0.8), np.int64(-127))
    assert tflite_range(ACTIVATION_BOUNDS[3], qp, t) == (-127, -119)
    assert xnnpack_range(ACTIVATION_BOUNDS[3], qp, t) == (-127, -120)
