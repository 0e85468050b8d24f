"""A compute node left as a float island is never silent: run, verify and overflow warn naming
the node and the reason, and an empty overflow layer list says why (exit 0)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

import intsim
from intsim.cli import main

from .qdq_build import Builder


def _int8_bias_conv():
    """Quark XINT8 style: an int8 bias with its own scale; onnxruntime fuses int32 biases only."""
    b = Builder()
    w = np.random.default_rng(0).integers(-5, 6, (2, 3, 3, 3)).astype(np.int8)
    x = b.dq(b.q("x", 0.125, np.int8(0)), 0.125, np.int8(0))
    bd = b.dq(b.const("bias", np.array([3, -1], np.int8)), 0.25, np.int8(0))
    c = b.node("Conv", [x, b.dq(b.const("w", w), 0.25, np.int8(0)), bd], name="qconv")
    b.node("QuantizeLinear", [c, b.const("ys", np.float32(0.5)), b.const("yz", np.int8(0))], ["y"])
    return b.model([("x", [1, 3, 6, 6])], [("y", [1, 2, 4, 4])], out_types={"y": onnx.TensorProto.INT8})


REASON = r"float islands.*'qconv' \(Conv\): its bias 'bias' is int8, not int32"
X = {"x": np.random.default_rng(1).normal(0, 1, (1, 3, 6, 6)).astype(np.float32)}


def test_run_and_verify_warn():
    m = _int8_bias_conv()
    with pytest.warns(UserWarning, match=REASON):
        intsim.load(m).run(X)
    with pytest.warns(UserWarning, match=REASON):
        intsim.verify(m, X, reference="ort-int8")


@pytest.mark.parametrize("with_input", [False, True])
def test_overflow_says_why_its_layer_list_is_empty(tmp_path, capsys, with_input):
    path = tmp_path / "m.onnx"
    onnx.save(_int8_bias_conv(), path)
    args = ["overflow", str(path), "--json", "-"]
    if with_input:
        np.savez(tmp_path / "in.npz", **X)
        args += ["--input", str(tmp_path / "in.npz")]
    with pytest.warns(UserWarning, match=REASON):
        assert main(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["layers"] == []
    assert rep["reason"].startswith("no integer conv/matmul layers: 1 compute node(s) run as float islands")
    assert rep["float_islands"] == [{"node": "qconv", "op_type": "Conv",
                                     "reason": "its bias 'bias' is int8, not int32 (onnxruntime fuses an int32 "
                                               "bias only)"}]


def test_overflow_text_prints_the_reason(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(_int8_bias_conv(), path)
    with pytest.warns(UserWarning):
        assert main(["overflow", str(path)]) == 0
    assert "no integer conv/matmul layers" in capsys.readouterr().out


def test_info_gives_the_reason():
    from intsim.info import describe, layers
    from intsim.pipeline import import_onnx
    g = import_onnx(_int8_bias_conv())
    assert [r["float_reason"] for r in layers(g) if "float_reason" in r] == [
        "its bias 'bias' is int8, not int32 (onnxruntime fuses an int32 bias only)"]
    assert describe(g).splitlines()[-1].startswith("1 compute node(s) run as float islands")
