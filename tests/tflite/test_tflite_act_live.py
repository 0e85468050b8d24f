"""TFLite's int8 activations (RELU, RELU6, RELU_N1_TO_1, LEAKY_RELU, LOGISTIC, TANH,
HARD_SWISH) under `tflite`, `tflite-builtin` and `tflite-xnnpack`,
live against the interpreter (ai-edge-litert) on one-op models with hypothesis-drawn scales,
zero points and shapes; every one of the 256 input codes is fed.
The table builders (kernels.tflite_act) equal their one-entry-at-a-time twins."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import intsim
from intsim.targets.rules import TargetRefusal
from kernels import tflite_act as tk
from kernels import xnnpack_unary as xu

from .flatbuf import leaky_relu_options, single_op

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
scales = st.floats(2.0**-10, 0.5, allow_nan=False, allow_infinity=False, width=32)
zps = st.sampled_from([-128, 127, 0]) | st.integers(-128, 127)
KERNEL_PATHS = [("reference", "tflite"), ("builtin", "tflite-builtin"), ("xnnpack", "tflite-xnnpack")]
paths = pytest.mark.parametrize("path", KERNEL_PATHS, ids=[p for p, _ in KERNEL_PATHS])
ALL_CODES = np.arange(-128, 128, dtype=np.int8)


def _model(op, shape, sx, zx, sy, zy, options=None):
    tensors = [{"name": "x", "shape": shape, "type": "int8", "scale": sx, "zero_point": zx},
               {"name": "y", "shape": shape, "type": "int8", "scale": sy, "zero_point": zy}]
    return single_op(op, tensors, [0], [1], [0], options)


def _check(data, shape, path, seed, refused_on_xnnpack=False):
    pytest.importorskip("ai_edge_litert")
    from models.build_tflite import interpreter

    if refused_on_xnnpack and path[0] == "xnnpack":
        with pytest.raises(TargetRefusal, match="target tflite-xnnpack has no rule for"):
            intsim.load(data, target=path[1]).run({"x": np.zeros(shape, np.int8)})
        return
    it = interpreter(data, path[0])
    it.allocate_tensors()
    prog = intsim.load(data, target=path[1])
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    feeds = [np.resize(ALL_CODES, n).reshape(shape), rng.integers(-128, 128, shape).astype(np.int8)]
    for x in feeds:
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        want = it.get_tensor(it.get_output_details()[0]["index"])
        got = prog.run({prog.graph.inputs[0]: x})[prog.graph.outputs[0]]
        np.testing.assert_array_equal(got, want)


shapes = st.lists(st.integers(1, 8), min_size=1, max_size=4).map(lambda s: s + [256 // max(1, s[-1])])


@paths
@SETTINGS
@given(op=st.sampled_from(["RELU", "RELU6", "RELU_N1_TO_1"]), shape=shapes, sx=scales, zx=zps, sy=scales, zy=zps,
       seed=st.integers(0, 2**31 - 1))
def test_relu_family(path, op, shape, sx, zx, sy, zy, seed):
    _check(_model(op, shape, sx, zx, sy, zy), shape, path, seed)


@paths
@SETTINGS
@given(shape=shapes, sx=scales, zx=zps, sy=scales, zy=zps, alpha=st.floats(0.0, 1.0, width=32),
       seed=st.integers(0, 2**31 - 1))
def test_leaky_relu(path, shape, sx, zx, sy, zy, alpha, seed):
    """On the XNNPACK path: its 8-bit multipliers where the delegate takes the scales, else the
    builtin kernel (alpha near 0 and small sx / sy leave XNNPACK's range)."""
    _check(_model("LEAKY_RELU", shape, sx, zx, sy, zy, leaky_relu_options(alpha)), shape, path, seed)


@paths
@SETTINGS
@given(op=st.sampled_from(["LOGISTIC", "TANH"]), shape=shapes, sx=st.floats(2.0**-10, 1.0, width=32), zx=zps,
       seed=st.integers(0, 2**31 - 1))
def test_logistic_and_tanh(path, op, shape, sx, zx, seed):
    sy, zy = (1 / 256, -128) if op == "LOGISTIC" else (1 / 128, 0)
    _check(_model(op, shape, sx, zx, sy, zy), shape, path, seed)


@paths
@SETTINGS
@given(shape=shapes, sx=scales, zx=zps, sy=scales, zy=zps, seed=st.integers(0, 2**31 - 1))
def test_hard_swish(path, shape, sx, zx, sy, zy, seed):
    """Drawn scales TFLite's prepare refuses (output multiplier exponent > 0) are skipped."""
    try:
        tk.hard_swish_params(sx, sy)
    except ValueError:
        return
    _check(_model("HARD_SWISH", shape, sx, zx, sy, zy), shape, path, seed)


def test_ort_refuses_tflite_only_tables():
    data = _model("TANH", [1, 4], 0.05, 0, 1 / 128, 0)
    with pytest.raises(TargetRefusal, match="target ort has no rule for TANH"):
        prog = intsim.load(data, target="ort")
        prog.run({prog.graph.inputs[0]: np.zeros((1, 4), np.int8)})


@SETTINGS
@given(sx=scales, zx=zps, sy=scales, zy=zps, lo=st.integers(-128, 127), alpha=st.floats(0.0, 2.0, width=32),
       mode=st.sampled_from(["double", "single", "cmsis"]))
def test_tables_equal_their_twins(sx, zx, sy, zy, lo, alpha, mode):
    np.testing.assert_array_equal(tk.relu_table(sx, zx, sy, zy, lo, 127, mode=mode),
                                  tk.relu_table_ref(sx, zx, sy, zy, lo, 127, mode=mode))
    np.testing.assert_array_equal(tk.leaky_table(sx, zx, sy, zy, alpha, mode=mode),
                                  tk.leaky_table_ref(sx, zx, sy, zy, alpha, mode=mode))
    try:
        np.testing.assert_array_equal(tk.hard_swish_table(sx, zx, sy, zy), tk.hard_swish_table_ref(sx, zx, sy, zy))
    except ValueError:
        pass
    np.testing.assert_array_equal(xu.lrelu_table(sx, zx, sy, zy, alpha), xu.lrelu_table_ref(sx, zx, sy, zy, alpha))
    np.testing.assert_array_equal(xu.lrelu_table(sx, zx + 128, sy, zy + 128, alpha, np.uint8),
                                  xu.lrelu_table_ref(sx, zx + 128, sy, zy + 128, alpha, np.uint8))
    for kind in ("logistic", "tanh"):
        np.testing.assert_array_equal(tk.float_table(kind, sx, zx, sy, zy), tk.float_table_ref(kind, sx, zx, sy, zy))


@pytest.mark.parametrize("target", ["tflite", "tflite-builtin"])
def test_negative_leaky_alpha_is_a_clear_error(target):
    """A negative LEAKY_RELU alpha gives a negative q31 multiplier, which intsim does not model:
    a QuantParamError naming the node and the alpha, not a bare ValueError from the table builder."""
    data = _model("LEAKY_RELU", [1, 4], 0.05, 0, 0.05, 0, leaky_relu_options(-0.5))
    with pytest.raises(intsim.errors.QuantParamError, match=r"node '.*': LEAKY_RELU alpha -0.5"):
        intsim.load(data, target=target).run({"x": np.zeros((1, 4), np.int8)})
