"""intsim dump (issue 4, acceptance 4): golden vectors read back; one conv layer recomputed
from the dumped integers alone with the kernels' int64 references gives the dumped
accumulators and output; hex files and the C header hold the same values."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from kernels.conv import ConvGeom, conv2d_acc_ref
from kernels.gemm import gemm_acc_ref
from kernels.requant import requant_float_ref

zoo = pytest.importorskip("models.zoo")


@pytest.fixture(scope="module")
def dumped(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden")
    path = zoo.quantized_model("digits_cnn", "qdq_s8_pt")
    np.savez(out / "x.npz", **zoo.sample_inputs("digits_cnn", 3, seed=5))
    r = subprocess.run([sys.executable, "-m", "intsim", "dump", str(path), "--input", str(out / "x.npz"),
                        "--out", str(out / "d")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    d = out / "d"
    return d, json.loads((d / "manifest.json").read_text()), np.load(d / "layers.npz")


def _arr(npz, layer, role):
    return npz[layer["arrays"][role]["npz_key"]]


def test_conv_layer_recomputed_from_dumped_integers(dumped):
    _, man, npz = dumped
    convs = [l for l in man["layers"] if l["op"] == "conv"]
    assert len(convs) >= 2
    for layer in convs:
        x, w, b = _arr(npz, layer, "input"), _arr(npz, layer, "weights"), _arr(npz, layer, "bias")
        rq = layer["requant"]
        geom = ConvGeom(**layer["geometry"])
        acc = np.empty(_arr(npz, layer, "acc").shape, np.int64)
        conv2d_acc_ref(x, w, rq["input_zero_point"], np.broadcast_to(np.array(rq["weight_zero_point"]), (w.shape[0],)),
                       b.astype(np.int64), geom, acc)
        np.testing.assert_array_equal(acc, _arr(npz, layer, "acc"))
        y = _arr(npz, layer, "output")
        got = np.empty(y.shape, y.dtype).reshape(y.shape[0], y.shape[1], -1)
        requant_float_ref(acc.reshape(got.shape), np.array(rq["multiplier"], np.float32), rq["zero_point"],
                          rq["lo"], rq["hi"], got)
        np.testing.assert_array_equal(got.reshape(y.shape), y)
        np.testing.assert_array_equal(_arr(npz, layer, "requant_multiplier"), np.array(rq["multiplier"], np.float32))


def test_gemm_layer_recomputed(dumped):
    _, man, npz = dumped
    layer = next(l for l in man["layers"] if l["op"] == "matmul")
    x, w, b = _arr(npz, layer, "input"), _arr(npz, layer, "weights"), _arr(npz, layer, "bias")
    if layer["transB"]:
        w = w.T
    rq = layer["requant"]
    acc = np.empty((x.shape[0], w.shape[1]), np.int64)
    gemm_acc_ref(x.reshape(x.shape[0], -1), w, rq["input_zero_point"],
                 np.broadcast_to(np.array(rq["weight_zero_point"]), (w.shape[1],)), b.astype(np.int64), acc)
    np.testing.assert_array_equal(acc, _arr(npz, layer, "acc"))


def _read_hex(path, bits, signed):
    v = np.array([int(line, 16) for line in path.read_text().split()], np.int64)
    return np.where(v >= 1 << (bits - 1), v - (1 << bits), v) if signed else v


def test_hex_and_c_header_hold_the_npz_values(dumped):
    d, man, npz = dumped
    header = (d / "golden.h").read_text()
    for layer in man["layers"]:
        for role, info in layer["arrays"].items():
            a = npz[info["npz_key"]]
            assert list(a.shape) == info["shape"] and str(a.dtype) == info["dtype"]
            lines = (d / info["hex"]).read_text().split()
            assert len(lines) == a.size and all(len(s) == (info["bits"] + 3) // 4 for s in lines)
            if a.dtype.kind in "iu":
                np.testing.assert_array_equal(_read_hex(d / info["hex"], info["bits"], a.dtype.kind == "i"),
                                              a.reshape(-1).astype(np.int64))
            else:
                np.testing.assert_array_equal(_read_hex(d / info["hex"], 32, False).astype(np.uint32).view(np.float32),
                                              a.reshape(-1))
            m = re.search(r"static const \w+ " + re.escape(info["c_symbol"]) + r"\[(\d+)\] = \{([^}]*)\}", header)
            assert m and int(m.group(1)) == a.size
            if a.dtype.kind in "iu":
                vals = [int(v.rstrip("LL")) for v in m.group(2).replace("\n", " ").split(",")]
                assert vals == a.reshape(-1).tolist()


def test_hex_two_complement_edges():
    from intsim.dump import hex_lines
    assert hex_lines(np.array([-128, -1, 0, 127], np.int8), 8) == "80\nff\n00\n7f\n"
    assert hex_lines(np.array([0, 255], np.uint8), 8) == "00\nff\n"
    assert hex_lines(np.array([-2**31, 2**31 - 1], np.int32), 32) == "80000000\n7fffffff\n"
    assert hex_lines(np.array([-8, 7], np.int8), 4) == "8\n7\n"
