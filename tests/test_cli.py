"""CLI contract: `info` and `run` work on a quantized model; bad input exits 2 with one line
that names the problem (op, node, opset for an unsupported op), never a traceback."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

from tests.ortutil import const, run_ort


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "intsim", *args], capture_output=True, text=True, timeout=300)


def _qlinear_matmul_model():
    g = helper.make_graph(
        [helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"], name="qmm")],
        "g", [helper.make_tensor_value_info("a", TensorProto.INT8, [None, 6])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [None, 3])],
        [const("as", np.float32(0.05)), const("az", np.int8(3)),
         const("b", np.random.default_rng(0).integers(-128, 128, (6, 3)).astype(np.int8)),
         const("bs", np.float32(0.02)), const("bz", np.int8(0)), const("ys", np.float32(0.1)),
         const("yz", np.int8(-5))])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_run_and_info(tmp_path):
    m = _qlinear_matmul_model()
    p = tmp_path / "m.onnx"
    onnx.save(m, p)
    a = np.random.default_rng(1).integers(-128, 128, (4, 6)).astype(np.int8)
    np.savez(tmp_path / "in.npz", a=a)
    r = _cli("run", str(p), "--input", str(tmp_path / "in.npz"), "--output", str(tmp_path / "out.npz"))
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "out.npz")["y"]
    np.testing.assert_array_equal(got, run_ort(m, {"a": a})["y"])
    r = _cli("info", str(p))
    assert r.returncode == 0, r.stderr
    assert "matmul" in r.stdout and "qmm" in r.stdout


def test_unsupported_op_names_op_node_and_opset(tmp_path):
    g = helper.make_graph([helper.make_node("FancyOp", ["x"], ["y"], name="weird_node", domain="acme.ops")],
                          "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme.ops", 3)])
    p = tmp_path / "u.onnx"
    onnx.save(m, p)
    r = _cli("info", str(p))
    assert r.returncode == 2
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in r.stderr
    assert "FancyOp" in err and "weird_node" in err and "opset 3" in err


def test_truncated_and_corrupt_files_exit_2(tmp_path):
    data = _qlinear_matmul_model().SerializeToString()
    for name, blob in [("trunc.onnx", data[: len(data) // 2]), ("junk.onnx", b"\x00\xff" * 100),
                       ("empty.onnx", b"")]:
        p = tmp_path / name
        p.write_bytes(blob)
        r = _cli("info", str(p))
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "intsim: error:" in r.stderr
    r = _cli("info", str(tmp_path / "missing.onnx"))
    assert r.returncode == 2 and "does not exist" in r.stderr
