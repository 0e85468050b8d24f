"""Issue 20, bad input accepted silently: each case is now refused with a named error."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import intsim
from intsim import errors
from tests.hostile import models as M
from tests.hostile.conftest import one_line_error

X = {"x": np.random.default_rng(0).random((2, 1, 4, 4), dtype=np.float32)}


def _load(m):
    return intsim.load(m.SerializeToString())


def test_the_base_model_runs():
    assert _load(M.qdq_conv()).run(X)["y"].shape == (2, 2, 4, 4)


# ------------------------------------------------------------------ models onnxruntime refuses at load
def test_quantize_linear_with_int32_zero_point():
    with pytest.raises(errors.InvalidModelError) as e:
        _load(M.qdq_conv(x_zp_dtype=np.int32))
    assert str(e.value) == ("node 'q_x': QuantizeLinear cannot produce INT32 (zero point 'xz'); "
                            "ONNX allows 4-, 8- and 16-bit integers")


def test_dequantize_linear_axis_outside_the_rank():
    with pytest.raises(errors.QuantParamError) as e:
        _load(M.qdq_conv(w_axis=7))
    assert str(e.value) == "node 'dq_w': DequantizeLinear axis 7 is outside [-4, 3] for the 4-D input 'w'"


def test_negative_axis_inside_the_rank_still_loads():
    assert _load(M.qdq_conv(w_axis=-4)).run(X)["y"].shape == (2, 2, 4, 4)


def test_graph_output_declared_int8_but_float():
    with pytest.raises(errors.InvalidModelError) as e:
        _load(M.qdq_conv(y_dtype=onnx.TensorProto.INT8))
    assert str(e.value) == "graph output 'y' is declared INT8 but its node computes float32"


# ------------------------------------------------------------------ feeds
@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_float_feeds_of_another_width_are_refused(dtype):
    with pytest.raises(errors.ShapeError) as e:
        _load(M.qdq_conv()).run({"x": X["x"].astype(dtype)})
    assert str(e.value) == (f"input 'x' has dtype {np.dtype(dtype).name}, the model declares float32 "
                            f"(cast it, e.g. x.astype(np.float32))")


def test_float64_feed_on_the_cli(cli, digits, tmp_path):
    np.savez(tmp_path / "x64.npz", input=np.zeros((2, 1, 8, 8)))
    rc, _, err = cli("run", digits["model"], "--input", tmp_path / "x64.npz", "--output", tmp_path / "o.npz")
    assert rc == 2 and not (tmp_path / "o.npz").exists()
    assert one_line_error(err) == ("input 'input' has dtype float64, the model declares float32 "
                                   "(cast it, e.g. x.astype(np.float32))")


# ------------------------------------------------------------------ a conv without weights
@pytest.mark.parametrize("axis", [None, 0])
def test_zero_output_channel_conv_says_what_is_wrong(axis):
    with pytest.raises(errors.ShapeError) as e:
        _load(M.qdq_conv(m_out=0, w_axis=axis)).run(X)
    assert str(e.value) == ("node 'conv': weight 'w' has shape [0, 1, 3, 3]: a conv needs at least one "
                            "output channel, input channel and kernel tap")


# ------------------------------------------------------------------ quantize
def test_quantize_refuses_an_already_quantized_model(cli, digits):
    out = digits["dir"] / "q.onnx"
    rc, _, err = cli("quantize", digits["model"], "--calib", digits["x2"], "--out", out)
    assert rc == 2 and not out.exists()
    assert err.strip() == ("intsim quantize: the model is already quantized (node "
                           "'ConvBnFusion_BN_B_features.0.1.bias_DequantizeLinear' is DequantizeLinear): "
                           "quantize takes a float model")


# ------------------------------------------------------------------ CLI options
@pytest.mark.parametrize("args,msg", [
    (["--min-exact", "nan"], "--min-exact must be a finite fraction, got nan"),
    (["--min-exact", "inf"], "--min-exact must be a finite fraction, got inf"),
    (["--jobs", "0"], "--jobs must be >= 1, got 0"),
    (["--jobs", "-4"], "--jobs must be >= 1, got -4"),
    (["--max-lsb", "-1"], "--max-lsb must be >= 0, got -1"),
    (["--random", "0"], "--random needs N >= 1, got 0"),
])
def test_verify_options_out_of_range(cli, digits, args, msg):
    rc, stdout, err = cli("verify", digits["model"], *(["--random", "2"] if "--random" not in args else []), *args)
    assert rc == 2 and "PASSED" not in stdout
    assert one_line_error(err) == msg


@pytest.mark.parametrize("kw,msg", [
    ({"jobs": 0}, "jobs must be an integer >= 1, got 0"),
    ({"min_exact": float("nan")}, "min_exact must be a finite fraction, got nan"),
])
def test_verify_library_options_out_of_range(digits, kw, msg):
    with pytest.raises(errors.IntsimError) as e:
        intsim.verify(digits["model"], random=2, **kw)
    assert str(e.value) == msg


@pytest.mark.parametrize("bits", ["-5", "0", "65"])
def test_overflow_acc_bits_out_of_range(cli, digits, bits):
    rc, stdout, err = cli("overflow", digits["model"], "--acc-bits", bits)
    assert rc == 2 and stdout == ""
    assert one_line_error(err) == f"accumulator width {bits} is outside 2..64 bits"
