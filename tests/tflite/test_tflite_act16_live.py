"""TFLite's int16 activations (RELU, RELU6, LEAKY_RELU, LOGISTIC, TANH; zero points 0, as
TFLite's int16 quantization is symmetric) under `tflite`, `tflite-builtin` and `tflite-xnnpack`,
live against the interpreter (ai-edge-litert) on one-op models with hypothesis-drawn scales and
shapes; every one of the 65536 input codes is fed. A power-of-two LOGISTIC / TANH input scale
takes gemmlowp's fixed-point kernel on the optimized paths;
int16 RELU_N1_TO_1 and HARD_SWISH (which the interpreter fails to invoke) are refused by the
reader. The table builders equal their one-entry-at-a-time twins."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import intsim
from intsim.errors import UnsupportedOpError
from kernels import tflite_act as tk
from kernels import tflite_act16 as tk16

from .flatbuf import leaky_relu_options, single_op
from .test_tflite_act_live import paths

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
scales = st.floats(2.0**-16, 2.0**-4, allow_nan=False, allow_infinity=False, width=32)
shapes = st.lists(st.integers(1, 6), min_size=1, max_size=3).map(lambda s: s + [65536 // max(1, s[-1])])


def _model(op, shape, sx, sy, options=None):
    tensors = [{"name": "x", "shape": shape, "type": "int16", "scale": sx, "zero_point": 0},
               {"name": "y", "shape": shape, "type": "int16", "scale": sy, "zero_point": 0}]
    return single_op(op, tensors, [0], [1], [0], options)


def check_codes(data, shape, path, seed, dtype=np.int16):
    """The one-op model (input "x", output "y" of `dtype` codes) under path's target equals the
    interpreter on every code of the type (repeated to `shape`) and on random codes."""
    pytest.importorskip("ai_edge_litert")
    from models.build_tflite import interpreter

    it = interpreter(data, path[0])
    it.allocate_tensors()
    prog = intsim.load(data, target=path[1])
    n = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    codes = np.arange(info.min, info.max + 1).astype(dtype)
    feeds = [np.resize(codes, n).reshape(shape), rng.integers(info.min, info.max + 1, shape).astype(dtype)]
    for x in feeds:
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        want = it.get_tensor(it.get_output_details()[0]["index"])
        np.testing.assert_array_equal(prog.run({"x": x})["y"], want)


@paths
@SETTINGS
@given(op=st.sampled_from(["RELU", "RELU6"]), shape=shapes, sx=scales, sy=scales, seed=st.integers(0, 2**31 - 1))
def test_relu_family_int16(path, op, shape, sx, sy, seed):
    check_codes(_model(op, shape, sx, sy), shape, path, seed)


@paths
@SETTINGS
@given(shape=shapes, sx=scales, sy=scales, alpha=st.floats(0.0, 1.0, width=32), seed=st.integers(0, 2**31 - 1))
def test_leaky_relu_int16(path, shape, sx, sy, alpha, seed):
    """XNNPACK does not take int16: the builtin kernel runs, equal to the reference."""
    check_codes(_model("LEAKY_RELU", shape, sx, sy, leaky_relu_options(alpha)), shape, path, seed)


@paths
@SETTINGS
@given(op=st.sampled_from(["LOGISTIC", "TANH"]), shape=shapes, sx=st.floats(2.0**-22, 4.0, width=32),
       seed=st.integers(0, 2**31 - 1))
def test_logistic_and_tanh_int16(path, op, shape, sx, seed):
    if tk16.pot_shift(op.lower(), sx) is not None:
        return      # the power-of-two case: test_power_of_two_scale
    check_codes(_model(op, shape, sx, 2.0**-15), shape, path, seed)


@paths
@pytest.mark.parametrize("op, sx", [("LOGISTIC", 2.0**-12), ("TANH", 2.0**-12), ("TANH", 2.0**-11),
                                    ("LOGISTIC", 2.0**-12 * 1.0004)])
def test_power_of_two_scale(path, op, sx):
    """CheckedLog2's power-of-two test (within 1e-3 of an integer log2) picks the kernel: the
    reference function on the reference path, gemmlowp's fixed point on the optimized ones."""
    check_codes(_model(op, [4, 16384], sx, 2.0**-15), [4, 16384], path, 0)


@pytest.mark.parametrize("op", ["RELU_N1_TO_1", "HARD_SWISH"])
def test_int16_ops_the_interpreter_cannot_run_are_refused(op):
    with pytest.raises(UnsupportedOpError, match=f"{op}.*is int16: TFLite's .* fails to invoke it on int16"):
        intsim.load(_model(op, [1, 8], 0.001, 0.001), target="tflite")


def test_prepare_failures_are_quant_param_errors():
    """An output scale other than 2**-15 fails TFLite's prepare: refused, never computed."""
    from intsim.errors import QuantParamError

    with pytest.raises(QuantParamError, match="output scale 2\\*\\*-15"):
        intsim.load(_model("LOGISTIC", [1, 8], 0.001, 0.001), target="tflite").run({"x": np.zeros((1, 8), np.int16)})


@settings(max_examples=10, deadline=None)
@given(kind=st.sampled_from(["logistic", "tanh"]), sx=st.floats(2.0**-22, 5.0, width=32))
def test_table16_equals_twin(kind, sx):
    np.testing.assert_array_equal(tk16.table16(kind, sx), tk16.table16_ref(kind, sx))


@pytest.mark.parametrize("kind, sx", [("logistic", 2.0**-12), ("tanh", 2.0**-12), ("tanh", 2.0**-11)])
def test_gemmlowp_tables_equal_twins(kind, sx):
    """gemmlowp's int16 logistic / tanh over all 65536 codes (edge codes -32768, 32767 included)."""
    np.testing.assert_array_equal(tk16.optimized_table16(kind, sx), tk16.optimized_table16_ref(kind, sx))


@settings(max_examples=4, deadline=None)
@given(sx=scales, sy=scales, lo=st.sampled_from([-32768, 0, 5]), hi=st.sampled_from([32767, 100]),
       alpha=st.floats(0.0, 2.0, width=32))
def test_int16_relu_tables_equal_twins(sx, sy, lo, hi, alpha):
    np.testing.assert_array_equal(tk.relu_table(sx, 0, sy, 0, lo, hi, np.int16),
                                  tk.relu_table_ref(sx, 0, sy, 0, lo, hi, np.int16))
    np.testing.assert_array_equal(tk.leaky_table(sx, 0, sy, 0, alpha, np.int16),
                                  tk.leaky_table_ref(sx, 0, sy, 0, alpha, np.int16))




@paths
@SETTINGS
@given(shape=shapes, sx=scales, sy=scales, seed=st.integers(0, 2**31 - 1))
def test_requantize_int16(path, shape, sx, sy, seed):
    """QUANTIZE int16 -> int16 with another scale (the converter's requantize before a
    CONCATENATION of differently scaled inputs)."""
    check_codes(_model("QUANTIZE", shape, sx, sy), shape, path, seed)


@settings(max_examples=4, deadline=None)
@given(sx=scales, sy=scales)
def test_requantize_table_equals_twin(sx, sy):
    np.testing.assert_array_equal(tk.requantize_table(sx, 0, sy, 0), tk.requantize_table_ref(sx, 0, sy, 0))
