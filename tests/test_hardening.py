"""Issue 8: hostile models and inputs end in an `intsim.errors` exception naming the problem,
checked before anything large is allocated; the CLI reports them (and bugs) on one line.

Each test builds one specific malformed model (from the committed models or a 1-node graph)
and asserts the exact error class; the random mixes of these mutations are in tests/fuzz/."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import intsim
from intsim import errors, limits
from tests.fuzz import harness as H
from tests.fuzz import structural as S
from tests.ortutil import const, run_ort

QDQ = os.path.join(H.ROOT, "models", "digits_cnn.qdq_s8_pt.onnx")
QOP = os.path.join(H.ROOT, "models", "digits_cnn.qop_u8.onnx")
PC = os.path.join(H.ROOT, "models", "digits_dsconv.qdq_u8_pc.onnx")


def _load(path):
    return onnx.load(path)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _feeds(batch=2):
    return {"input": _rng(1).standard_normal((batch, 1, 8, 8)).astype(np.float32)}


def _expect(model, err, feeds=None):
    """Load and run; the first intsim error must be `err` (load or run)."""
    with pytest.raises(err) as info:
        intsim.load(model.SerializeToString() if isinstance(model, onnx.ModelProto) else model).run(
            feeds if feeds is not None else _feeds())
    return str(info.value)


def _qmatmul(a_zp=3, b_zp=0, y_zp=-5, a_scale=0.05, b_scale=0.02, y_scale=0.1, b_shape=(6, 3),
             zp_type=np.int8):
    g = helper.make_graph(
        [helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"], name="qmm")],
        "g", [helper.make_tensor_value_info("a", TensorProto.INT8, [None, b_shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [None, b_shape[1]])],
        [const("as", np.float32(a_scale)), const("az", zp_type(a_zp)),
         const("b", _rng(0).integers(-128, 128, b_shape).astype(np.int8)),
         const("bs", np.asarray(b_scale, np.float32)), const("bz", np.asarray(b_zp, np.int8)),
         const("ys", np.float32(y_scale)), const("yz", np.int8(y_zp))])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


# ----------------------------------------------------------------------------- file level
def test_truncated_files_are_invalid_models():
    data = H.model_bytes(QDQ)
    for cut in (0, 1, 7, len(data) // 3, len(data) - 1):
        assert H.run_case(H.truncate(data, cut)).startswith("load:"), cut


def test_not_a_model(tmp_path):
    p = tmp_path / "x.onnx"
    p.write_bytes(b"\xff" * 100)
    with pytest.raises(errors.InvalidModelError):
        intsim.load(str(p))
    with pytest.raises(errors.InvalidModelError):
        intsim.load(str(tmp_path / "missing.onnx"))


def test_invalid_utf8_name():
    m = _load(QDQ)
    data = m.SerializeToString()
    name = m.graph.node[0].name.encode()
    bad = data.replace(name, b"\xe1\x80" + name[2:], 1)
    with pytest.raises(errors.InvalidModelError, match="UTF-8"):
        intsim.load(bad)


# ------------------------------------------------------------------------- graph structure
@pytest.mark.parametrize("kind", ["cycle", "self_loop", "dangling_input", "duplicate_output", "empty_graph",
                                  "output_not_produced", "nested_subgraph"])
def test_structure_errors(kind):
    for seed in range(3):
        m = S.MUTATORS[kind](_load(QDQ), _rng(seed))
        _expect(m, errors.IntsimError)


def test_cycle_is_named():
    m = S.mutate_self_loop(_load(QOP), _rng(0))
    _expect(m, errors.InvalidModelError)


@pytest.mark.parametrize("version", [0, 10000])
def test_opset_out_of_range(version):
    m = _load(QDQ)
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = version
    _expect(m, errors.IntsimError)


def test_unknown_attribute():
    m = _load(QOP)
    m.graph.node[1].attribute.append(helper.make_attribute("no_such_attribute", 7))
    _expect(m, errors.InvalidModelError)


# ---------------------------------------------------------------------------- initializers
def test_wrong_initializer_sizes():
    m = _load(QDQ)
    w = next(i for i in m.graph.initializer if S.is_weight(i))
    w.raw_data = w.raw_data[:-1]
    assert "raw data" in _expect(m, errors.InvalidModelError)
    m = _load(QDQ)
    w = next(i for i in m.graph.initializer if S.is_weight(i))
    w.dims[0] += 1
    _expect(m, errors.InvalidModelError)


@pytest.mark.parametrize("delta", [-1, 1, 3])
def test_int4_data_of_the_wrong_length(delta):
    w = np.array([1, -2, 3, -4, 5, -6, 7], np.int8)  # 7 values: 4 packed bytes
    t = helper.make_tensor("w", TensorProto.INT4, [7], w.tolist())
    assert len(t.raw_data) in (0, 4)
    packed = bytes((int(w[i]) & 15) | ((int(w[i + 1]) & 15) << 4 if i + 1 < 7 else 0) for i in range(0, 7, 2))
    t = onnx.TensorProto(name="w", data_type=TensorProto.INT4, dims=[7], raw_data=(packed + b"\x11\x22\x33")[:4 + delta])
    g = helper.make_graph([helper.make_node("DequantizeLinear", ["w", "s"], ["y"])], "g", [],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [7])],
                          [t, const("s", np.float32(0.5))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    with pytest.raises(errors.InvalidModelError, match="raw data"):
        intsim.load(m)


def test_int4_right_length_runs_exactly():
    w = np.array([1, -2, 3, -4, 5, -6, -8], np.int8)
    packed = bytes((int(w[i]) & 15) | ((int(w[i + 1]) & 15) << 4 if i + 1 < 7 else 0) for i in range(0, 7, 2))
    t = onnx.TensorProto(name="w", data_type=TensorProto.INT4, dims=[7], raw_data=packed)
    g = helper.make_graph([helper.make_node("DequantizeLinear", ["w", "s"], ["y"])], "g", [],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [7])],
                          [t, const("s", np.float32(0.5))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    out = intsim.load(m).run({})["y"]
    np.testing.assert_array_equal(out, w.astype(np.float32) * np.float32(0.5))


@pytest.mark.parametrize("dims", [[1 << 40], [1 << 20, 1 << 20], [-3, 4]])
def test_gigantic_or_negative_initializer_dims(dims):
    m = _load(QDQ)
    w = next(i for i in m.graph.initializer if S.is_weight(i))
    del w.dims[:]
    w.dims.extend(dims)
    _expect(m, (errors.ResourceLimitError, errors.ShapeError))


def test_limits_from_environment(monkeypatch):
    monkeypatch.setenv("INTSIM_MAX_ELEMENTS", "4000")
    with pytest.raises(errors.ResourceLimitError, match="INTSIM_MAX_ELEMENTS"):
        intsim.load(QDQ)     # the 32x16x3x3 weight has 4608 elements
    monkeypatch.setenv("INTSIM_MAX_ELEMENTS", "6000")
    intsim.load(QDQ)
    monkeypatch.setenv("INTSIM_MAX_BYTES", "1000")
    with pytest.raises(errors.ResourceLimitError):
        intsim.load(QDQ)
    monkeypatch.setenv("INTSIM_MAX_BYTES", "nonsense")
    with pytest.raises(errors.ResourceLimitError):
        limits.current()


def test_limits_context_applies_to_run():
    with limits.limited(max_elements=10_000):
        prog = intsim.load(QDQ)
    prog.run(_feeds(2))
    with pytest.raises(errors.ResourceLimitError):
        prog.run(_feeds(64))   # conv accumulator 64x16x8x8 = 65536 elements


@pytest.mark.parametrize("kind", ["huge_expand", "huge_constant_of_shape", "huge_resize", "huge_tile"])
def test_huge_float_islands_refused_before_running(kind):
    m = S.MUTATORS[kind](_load(QDQ), _rng(0))
    _expect(m, errors.ResourceLimitError)


def test_huge_reshape_is_a_shape_error():
    _expect(S.mutate_huge_reshape(_load(QDQ), _rng(0)), errors.ShapeError)


@pytest.mark.parametrize("loc", ["../outside.bin", "/etc/passwd", "missing.bin", "sub/../../x.bin"])
def test_external_data_outside_or_missing(tmp_path, loc):
    (tmp_path / "outside.bin").write_bytes(b"\0" * 10_000)
    d = tmp_path / "m"
    d.mkdir()
    m = _load(QDQ)
    w = next(i for i in m.graph.initializer if S.is_weight(i))
    n = len(w.raw_data)
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", loc), ("offset", "0"), ("length", str(n))):
        e = w.external_data.add()
        e.key, e.value = k, v
    onnx.save(m, str(d / "m.onnx"))
    with pytest.raises(errors.InvalidModelError):
        intsim.load(str(d / "m.onnx"))
    with pytest.raises(errors.InvalidModelError):
        intsim.load(m)   # no folder to resolve against


def test_external_data_too_short(tmp_path):
    m = _load(QDQ)
    w = next(i for i in m.graph.initializer if S.is_weight(i))
    n = len(w.raw_data)
    (tmp_path / "w.bin").write_bytes(w.raw_data[: n // 2])
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", str(n))):
        e = w.external_data.add()
        e.key, e.value = k, v
    onnx.save(m, str(tmp_path / "m.onnx"))
    with pytest.raises(errors.InvalidModelError, match="holds"):
        intsim.load(str(tmp_path / "m.onnx"))


# ------------------------------------------------------------------- quantization params
@pytest.mark.parametrize("value", [0.0, -0.0, float("nan"), float("inf"), -float("inf"), -1.0])
@pytest.mark.parametrize("path", [QDQ, QOP, PC])
def test_bad_constant_scales(path, value):
    m = _load(path)
    for s in [i for i in m.graph.initializer if S.is_scale(i)][:4]:
        mm = onnx.ModelProto()
        mm.CopyFrom(m)
        t = next(i for i in mm.graph.initializer if i.name == s.name)
        arr = numpy_helper.to_array(t).copy()
        arr.reshape(-1)[0] = value
        t.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), t.name))
        _expect(mm, errors.QuantParamError)


@pytest.mark.parametrize("value", [0.0, float("nan"), float("inf"), -1.0])
def test_bad_scale_fed_at_run_time(value):
    m = _qmatmul()
    s = next(i for i in m.graph.initializer if i.name == "bs")
    m.graph.initializer.remove(s)
    m.graph.input.append(helper.make_tensor_value_info("bs", TensorProto.FLOAT, []))
    prog = intsim.load(m)
    a = _rng(2).integers(-128, 128, (4, 6)).astype(np.int8)
    ok = prog.run({"a": a, "bs": np.float32(0.02)})["y"]
    np.testing.assert_array_equal(ok, run_ort(_qmatmul(), {"a": a})["y"])
    with pytest.raises(errors.QuantParamError, match="bs"):
        prog.run({"a": a, "bs": np.float32(value)})


def test_multiplier_overflow_is_refused():
    _expect(_qmatmul(a_scale=3e38, b_scale=3e38, y_scale=1e-30), errors.QuantParamError,
            {"a": np.zeros((1, 6), np.int8)})


@pytest.mark.parametrize("zp", [300, -129])
def test_zero_point_out_of_range(zp):
    with pytest.raises(errors.IntsimError):
        intsim.load(_qmatmul(a_zp=zp, zp_type=np.int16)).run({"a": np.zeros((1, 6), np.int8)})


def test_zero_point_wrong_dtype():
    m = _load(QDQ)
    z = next(i for i in m.graph.initializer if S.is_zp(i))
    z.CopyFrom(numpy_helper.from_array(np.float32(0.5), z.name))
    _expect(m, errors.IntsimError)


def test_per_channel_length_mismatch():
    _expect(_qmatmul(b_scale=[0.02, 0.03]), errors.QuantParamError, {"a": np.zeros((1, 6), np.int8)})
    m = _load(PC)
    s = next(i for i in m.graph.initializer if S.is_scale(i) and len(i.dims) == 1)
    s.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(s)[:-1].copy(), s.name))
    _expect(m, errors.QuantParamError)


# ----------------------------------------------------------------------------- run time
def test_wrong_feeds():
    prog = intsim.load(QDQ)
    with pytest.raises(errors.ShapeError, match="missing"):
        prog.run({})
    with pytest.raises(errors.ShapeError, match="unknown"):
        prog.run({**_feeds(), "other": np.zeros(1)})
    with pytest.raises(errors.ShapeError, match="shape"):
        prog.run({"input": np.zeros((1, 1, 9, 8), np.float32)})
    with pytest.raises(errors.ShapeError):
        prog.run({"input": np.zeros((1, 1, 8, 8), np.int32)})
    with pytest.raises(errors.ShapeError):
        prog.run({"input": np.array([["a"] * 8] * 8).reshape(1, 1, 8, 8)})
    with pytest.raises(errors.ShapeError):
        prog.run([np.zeros((1, 1, 8, 8), np.float32)])
    q = intsim.load(_qmatmul())
    with pytest.raises(errors.ShapeError, match="outside"):
        q.run({"a": np.full((1, 6), 200, np.int32)})
    with pytest.raises(errors.ShapeError):
        q.run({"a": np.zeros((1, 5), np.int8)})


def test_nan_and_inf_inputs_to_quantize_match_onnxruntime():
    """QuantizeLinear of +-inf saturates; NaN is not an error (its code is what ORT gives)."""
    x = np.array([[0.5, np.inf, -np.inf, 1e30, -1e30, 0.0]], np.float32)
    g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 6])],
                          [const("s", np.float32(0.1)), const("z", np.int8(3))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    got = intsim.load(m).run({"x": x})["y"]
    np.testing.assert_array_equal(got, run_ort(m, {"x": x})["y"])
    y = intsim.load(m).run({"x": np.full((1, 6), np.nan, np.float32)})["y"]
    assert y.dtype == np.int8 and y.shape == (1, 6)


@pytest.mark.parametrize("attr,value", [("group", 3), ("group", 0), ("strides", [0, 1]), ("dilations", [1, -1]),
                                        ("pads", [-1, 0, 0, 0]), ("pads", [1 << 40, 0, 0, 0])])
def test_bad_conv_attributes(attr, value):
    m = _load(QOP)
    n = m.graph.node[2]
    for a in list(n.attribute):
        if a.name == attr:
            n.attribute.remove(a)
    n.attribute.append(helper.make_attribute(attr, value))
    _expect(m, errors.IntsimError)


# -------------------------------------------------------------------------------- the CLI
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "intsim", *args], capture_output=True, text=True, timeout=300)


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(H.model_bytes(QDQ)[:1000])
    np.savez(tmp_path / "in.npz", input=_feeds(1)["input"])
    r = _cli("run", str(bad), "--input", str(tmp_path / "in.npz"), "--output", str(tmp_path / "o.npz"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    r = _cli("--debug", "run", str(bad), "--input", str(tmp_path / "in.npz"), "--output", str(tmp_path / "o.npz"))
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_cli_bug_is_one_line_with_hint(tmp_path):
    """An unexpected exception (a bug) still ends with one line, exit 2, and a hint to use --debug."""
    code = ("import sys, intsim.cli as c, intsim.cli.info as c_info\n"
            "def boom(args): raise RuntimeError('boom\\nsecond line')\n"
            "c_info.cmd_info = boom\n"
            "sys.exit(c.main(sys.argv[1:]))\n")
    r = subprocess.run([sys.executable, "-c", code, "info", QDQ], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--debug" in r.stderr, r.stderr
