"""The Brevitas QCDQ models of the clients zoo (models/clients/manifest.json) under the
"integer" QDQ fusion policy (passes/qdq_policy.py): every Conv/Gemm runs in integers, also a conv
whose int8 input (signed QuantIdentity) differs from its uint8 output (unsigned QuantReLU), a
Gemm behind DQ -> Flatten, and the dynamo exports whose initializers are also graph inputs (read
as the constants the file states, with one warning naming them). The fast kernels equal their
NumPy int64 twins bit for bit, and every element is within 1 LSB of onnxruntime's stored
outputs (onnxruntime runs those layers in float with the float bias; the integer layer adds the
bias rounded to int32 at x_scale*w_scale). The `ort` policy is unchanged: test_zoo_brevitas.py."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import intsim
from intsim.ir import IntType

from .qdq_build import Builder
from .zoo_table import case, compare, integer_layers, model_entries

QCDQ = [e for e in model_entries() if e["manifest"] == "manifest.json" and e["form"] == "QCDQ"]
STORED = "is also a graph input; the integer policy uses its stored value"


def _run(entry, kernels="fast"):
    path, feeds, ref = case(entry)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prog = intsim.load(path, target=entry["target"], fusion="integer", kernels=kernels)
        got = prog.run(feeds)
    return prog, got, ref, [str(w.message) for w in caught if STORED in str(w.message)]


def test_the_qcdq_models_are_there():
    assert len(QCDQ) >= 20
    assert {e["exporter"] for e in QCDQ} == {"torchscript", "dynamo", "qonnx QuantToQCDQ"}


@pytest.mark.parametrize("entry", QCDQ, ids=[e["name"] for e in QCDQ])
def test_every_conv_and_gemm_runs_in_integers_within_one_lsb_of_onnxruntime(entry):
    prog, got, ref, _ = _run(entry)
    ints, floats = integer_layers(prog.graph)
    assert floats == [] and ints >= 3, floats
    _, want, _, _ = _run(entry, kernels="reference")
    for name in got:
        np.testing.assert_array_equal(got[name], want[name])       # fast == NumPy int64 twins
    equal, max_lsb, n = compare(onnx.load(str(case(entry)[0])), got, ref)
    assert n > 0 and max_lsb <= 1.0 + 1e-5, (equal, max_lsb)


def test_a_conv_from_int8_to_uint8_is_one_integer_node():
    """w8a8.qcdq.ts: QuantIdentity (int8) -> Conv -> QuantReLU (uint8); onnxruntime runs it in
    float (equal-types rule), the integer policy accumulates int8 x int8 and requantizes to uint8."""
    entry = next(e for e in QCDQ if e["name"] == "w8a8.qcdq.ts")
    prog, *_ = _run(entry)
    c1 = next(n for n in prog.graph.nodes if n.name == "/c1/Conv")
    x = prog.graph.tensors[c1.inputs[0]].dtype
    assert c1.op == "conv" and x == IntType(8, True) and c1.attrs["out_type"] == IntType(8, False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ort = intsim.load(case(entry)[0])
    assert next(n for n in ort.graph.nodes if n.name == "/c1/Conv").op == "onnx"   # `ort` unchanged


@pytest.mark.parametrize("name", ["w8a8.qcdq.dynamo", "add_unsigned.qcdq.dynamo"])
def test_dynamo_initializers_listed_as_inputs_are_read_as_stored_with_one_warning(name):
    entry = next(e for e in QCDQ if e["name"] == name)
    _, _, _, stored = _run(entry)
    assert len(stored) == 1 and "c1.bias" in stored[0]
    path, feeds, _ = case(entry)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prog = intsim.load(path)                                   # `ort`: onnxruntime does not fold them
    assert not any(STORED in str(w.message) for w in caught)
    assert integer_layers(prog.graph)[1]                           # so their convs stay float there


@pytest.mark.parametrize("name", ["w2a8.qcdq.ts", "w3a8.qcdq.dynamo"])
def test_verify_names_the_cause_of_every_difference_from_onnxruntime(name):
    """The 1-LSB differences are onnxruntime's float Gemm adding the float bias where the
    integer Gemm adds it rounded to int32 ("bias-rounding"), or float rounding: none unexplained."""
    from intsim.targets.registry import get_target
    from intsim.verify.core import verify
    entry = next(e for e in QCDQ if e["name"] == name)
    path, feeds, _ = case(entry)
    target = get_target("ort")
    target.qdq_fusion = "integer"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = verify(str(path), feeds, reference="ort-int8", target=target, max_lsb=1, min_exact=0.0).as_dict()
    assert all(o["max_abs_lsb"] <= 1 for o in d["outputs"].values())
    causes = {}
    for t in d["tensors"]:
        for k, c in t["explanations"].items():
            causes[k] = causes.get(k, 0) + c
    assert causes.get("bias-rounding", 0) >= 1 and "unexplained" not in causes, causes
    assert all(t["max_abs_lsb"] == 0 for t in d["tensors"] if t["op"] == "conv")


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), zx=st.sampled_from([-128, -1, 0, 127]), zy=st.sampled_from([0, 1, 128, 255]),
       ky=st.integers(-3, 2), per_channel=st.booleans())
def test_int8_in_uint8_out_conv_equals_numpy_int64(seed, zx, zy, ky, per_channel):
    """DQ(int8) -> Conv (int8 weights, int32 bias at sx*sw) -> Q(uint8) under the integer policy:
    clamp(rint_even(sum (x - zx) w + b) * sx*sw/sy) + zy, 0, 255) in int64, power-of-two scales
    (the multiplier exact); fast kernels and their NumPy twins alike."""
    rng = np.random.default_rng(seed)
    sx, sy = 2.0 ** -4, 2.0 ** -ky
    sw = 2.0 ** -rng.integers(3, 7, 5 if per_channel else 1).astype(np.float64)
    codes = rng.integers(-128, 128, (2, 3, 6, 7))
    codes[0, 0, 0, :2] = (-128, 127)
    w = rng.integers(-128, 128, (5, 3, 3, 3)).astype(np.int8)
    w[0, 0, 0, :2] = (-128, 127)
    bias = rng.integers(-3000, 3000, 5).astype(np.int32)
    b = Builder()
    xq = b.q("x", sx, np.int8(zx))
    wd = b.dq(b.const("w", w), sw.astype(np.float32) if per_channel else np.float32(sw[0]),
              np.zeros(5, np.int8) if per_channel else np.int8(0), axis=0 if per_channel else None)
    bd = b.dq(b.const("b", bias), (np.float32(sx) * sw.astype(np.float32)) if per_channel else
              np.float32(sx * sw[0]), np.zeros(5, np.int32) if per_channel else np.int32(0),
              axis=0 if per_channel else None)
    conv = b.node("Conv", [b.dq(xq, sx, np.int8(zx)), wd, bd], pads=[1, 1, 1, 1])
    b.node("QuantizeLinear", [conv, b.const("sy", np.float32(sy)), b.const("zy", np.uint8(zy))], ["y"])
    model = b.model([("x", [2, 3, 6, 7])], [("y", [2, 5, 6, 7])], out_types={"y": onnx.TensorProto.UINT8})
    x = ((np.clip(codes, -128, 127) - zx) * sx).astype(np.float32)
    xc = np.clip(np.rint(x / np.float32(sx)) + zx, -128, 127).astype(np.int64) - zx
    xp = np.pad(xc, ((0, 0), (0, 0), (1, 1), (1, 1)))
    acc = np.zeros((2, 5, 6, 7), np.int64)
    for i in range(3):
        for j in range(3):
            acc += np.einsum("nchw,mc->nmhw", xp[:, :, i:i + 6, j:j + 7], w[:, :, i, j].astype(np.int64))
    acc += bias.astype(np.int64)[None, :, None, None]
    want = np.clip(np.rint(acc * (sx * np.broadcast_to(sw, (5,)) / sy)[None, :, None, None]) + zy, 0, 255)
    for kernels in ("fast", "reference"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prog = intsim.load(model.SerializeToString(), fusion="integer", kernels=kernels)
        assert [n.op for n in prog.graph.nodes if n.name.startswith("n_Conv")] == ["conv"]
        np.testing.assert_array_equal(prog.run({"x": x})["y"], want.astype(np.uint8))
