"""16-bit element-wise Add and Mul (int16/uint16 QDQ: DQ -> Add/Mul [-> Relu] -> Q) as integer
steps under the "integer" fusion policy, by the target's own add/mul rule (targets/rules.py):
`ort` -> OrtArith (MLAS's QLinearAdd/QLinearMul float formulas on 16-bit codes, kernels.eltwise),
`pow2` -> AccRequant (an exact int64 sum and one shift). Under the "onnxruntime" policy the add
stays float, as onnxruntime runs it (no 16-bit QLinearAdd).

AMD Quark's A16W8 / A16W16 / U16W8 residual add (models/clients/nq_rescnn.quark_*.onnx): every
Add/Mul of those models is an integer step under the integer policy, its output equals the NumPy
twin of the same arithmetic on its input codes, and `intsim verify` names the cause of every
element where it differs from onnxruntime's float add (float-rounding: the exact sum lies
within float32 error of a .5 boundary)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import intsim
from kernels import eltwise as ek
from intsim.targets.registry import get_target
from intsim.verify.core import verify

ROOT = Path(__file__).resolve().parents[2] / "models" / "clients"
QUARK16 = ["nq_rescnn.quark_a16w8.onnx", "nq_rescnn.quark_a16w16.onnx", "nq_rescnn.quark_u16w8.onnx"]
ELEM = {np.dtype(np.int16): TensorProto.INT16, np.dtype(np.uint16): TensorProto.UINT16,
        np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8}


def _feeds(name):
    return {"input": np.load(ROOT / name.replace(".onnx", ".npz"))["input/input"]}


def _acc(name):
    return intsim.Accumulator(bits=48, overflow="exact") if "a16w16" in name else None


def _load(name, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # float-island notes
        return intsim.load(ROOT / name, accumulator=_acc(name), **kw)


def _scalar(prog, name):
    return np.asarray(prog.graph.constants[name]).reshape(-1)[0]


@pytest.mark.parametrize("name", QUARK16)
def test_quark_16bit_add_is_an_integer_step_equal_to_its_numpy_twin(name):
    model = onnx.load(ROOT / name)
    eltwise = {n.name for n in model.graph.node if n.op_type in ("Add", "Mul")}
    assert eltwise
    prog = _load(name, fusion="integer")
    steps = {n.name: n for n in prog.graph.nodes if n.name in eltwise}
    assert {k: n.op for k, n in steps.items()} == {k: ("add" if k.endswith("Add") else "mul") for k in eltwise}
    out, taps = prog.run(_feeds(name), taps=True)
    ref = _load(name, fusion="integer", kernels="reference").run(_feeds(name))
    for k in out:
        assert np.array_equal(out[k], ref[k])
    producer = prog.graph.producers()
    value = lambda t: taps[producer[t].name]["outputs"][t]  # noqa: E731
    for node in steps.values():
        a, b, y = value(node.inputs[0]), value(node.inputs[3]), value(node.outputs[0])
        assert {a.dtype, b.dtype, y.dtype} <= {np.dtype(np.int16), np.dtype(np.uint16)}
        sa, za, sb, zb, sy, zy = (_scalar(prog, node.inputs[i]) for i in (1, 2, 4, 5, 6, 7))
        want = np.empty(y.shape, y.dtype)
        twin = ek.qlinear_add_ref if node.op == "add" else ek.qlinear_mul_ref
        twin(np.ascontiguousarray(np.broadcast_to(a, y.shape)), sa, za,
             np.ascontiguousarray(np.broadcast_to(b, y.shape)), sb, zb, sy, zy,
             node.attrs["lo"], node.attrs["hi"], want)
        assert np.array_equal(y, want)


@pytest.mark.parametrize("name", QUARK16)
def test_quark_16bit_add_stays_float_under_the_onnxruntime_policy(name):
    """onnxruntime 1.32 has no 16-bit QLinearAdd: `ort` keeps DQ -> Add -> Q float and equals
    its stored outputs bit for bit (tests/clients/test_zoo_nq.py checks every output)."""
    prog = _load(name)
    adds = [n for n in prog.graph.nodes if n.name == "/Add"]
    assert [n.op for n in adds] == ["onnx"]
    d = {k.split("/", 1)[1]: v for k, v in np.load(ROOT / name.replace(".onnx", ".npz")).items()}
    out = prog.run(_feeds(name))
    assert all(np.array_equal(out[k], d[k]) for k in out)


@pytest.mark.parametrize("name", QUARK16)
def test_verify_names_every_difference_of_the_integer_add_from_onnxruntime(name):
    """Run alone on onnxruntime's own input codes, the integer add differs from onnxruntime's
    float DQ -> Add -> Q only where the exact sum is within float32 error of a .5 boundary
    ("float-rounding"); in the whole-model view its other differences come from its inputs."""
    target = get_target("ort")
    target.qdq_fusion = "integer"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = verify(str(ROOT / name), _feeds(name), reference="ort-int8", target=target, accumulator=_acc(name),
                   max_lsb=1, min_exact=0.0).as_dict()
    add = next(t for t in d["tensors"] if t["node"] == "/Add")
    assert add["op"] == "add"
    iso = add["isolated"]
    assert iso["max_abs_lsb"] <= 1 and set(iso["explanations"]) <= {"float-rounding"}, iso
    assert set(add["explanations"]) <= {"float-rounding", "propagated"}, add["explanations"]


# ------------------------------------------------------------- one-node graphs, broadcasting

SHAPES = [((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (1, 3, 1, 1)), ((2, 3, 4, 5), (5,)), ((2, 3, 4, 5), ()),
          ((1, 3, 1, 1), (2, 3, 4, 5)), ((3, 1), (1, 7)), ((), (4, 6))]


def _graph(op, ta, tb, ty, shape_a, shape_b, q):
    """DQ(a: ta) op DQ(b: tb) -> Q(ty); q = (sa, za, sb, zb, sy, zy); integer graph inputs."""
    sa, za, sb, zb, sy, zy = q
    inits = [numpy_helper.from_array(np.array(v, dt), n) for n, v, dt in
             (("sa", sa, np.float32), ("za", za, ta), ("sb", sb, np.float32), ("zb", zb, tb),
              ("sy", sy, np.float32), ("zy", zy, ty))]
    nodes = [helper.make_node("DequantizeLinear", ["a", "sa", "za"], ["fa"], name="dqa"),
             helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["fb"], name="dqb"),
             helper.make_node(op, ["fa", "fb"], ["f"], name="op"),
             helper.make_node("QuantizeLinear", ["f", "sy", "zy"], ["y"], name="q")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", ELEM[np.dtype(ta)], list(shape_a)),
                                       helper.make_tensor_value_info("b", ELEM[np.dtype(tb)], list(shape_b))],
                          [helper.make_tensor_value_info("y", ELEM[np.dtype(ty)],
                                                         list(np.broadcast_shapes(shape_a, shape_b)))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    return m.SerializeToString()


def _codes(data, shape, dtype):
    info = np.iinfo(dtype)
    ends = np.array([info.min, info.max, 0 if info.min < 0 else info.min], np.int64)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(info.min, int(info.max) + 1, size=shape, dtype=np.int64)
    mask = rng.random(shape) < data.draw(st.sampled_from([0.0, 0.3, 1.0]))
    return np.where(mask, rng.choice(ends, size=shape), x).astype(dtype)


def _zp(data, dtype):
    info = np.iinfo(dtype)
    return data.draw(st.sampled_from([int(info.min), int(info.max)]) | st.integers(int(info.min), int(info.max)))


WIDE = [np.int16, np.uint16]
TYPES = WIDE + [np.int8, np.uint8]


@settings(max_examples=40, deadline=None)
@given(data=st.data(), op=st.sampled_from(["Add", "Mul"]), shapes=st.sampled_from(SHAPES),
       ta=st.sampled_from(WIDE), tb=st.sampled_from(TYPES), ty=st.sampled_from(WIDE),
       e=st.tuples(st.integers(-12, 2), st.integers(-12, 2), st.integers(-12, 2)))
def test_pow2_16bit_add_mul_equal_an_int64_shift_datapath(data, op, shapes, ta, tb, ty, e):
    """`pow2` (AccRequant, rhu): acc = (a - za)*2^ka + (b - zb)*2^kb at the finer input scale
    (add) or (a - za)*(b - zb) (mul); real = 2^-n; y = clamp((acc + zy*2^n + 2^(n-1)) >> n)
    (n > 0), acc*2^-n + zy (n <= 0), in NumPy int64, broadcast; fast and reference kernels."""
    sa, sb, sy = (2.0 ** k for k in e)
    za, zb, zy = _zp(data, ta), _zp(data, tb), _zp(data, ty)
    a, b = _codes(data, shapes[0], ta), _codes(data, shapes[1], tb)
    model = _graph(op, ta, tb, ty, shapes[0], shapes[1], (sa, za, sb, zb, sy, zy))
    progs = [intsim.load(model, target="pow2", kernels=k) for k in ("fast", "reference")]
    assert [n.op for n in progs[0].graph.nodes] == [op.lower()]
    got = [p.run({"a": a, "b": b})["y"] for p in progs]
    ai = np.broadcast_to(a.astype(np.int64) - za, np.broadcast_shapes(a.shape, b.shape))
    bi = np.broadcast_to(b.astype(np.int64) - zb, ai.shape)
    if op == "Add":
        fine = min(e[0], e[1])
        acc, n = (ai << (e[0] - fine)) + (bi << (e[1] - fine)), e[2] - fine
    else:
        acc, n = ai * bi, e[2] - e[0] - e[1]
    y = (acc + (np.int64(zy) << n) + (np.int64(1) << (n - 1))) >> n if n > 0 else (acc << -n) + zy
    info = np.iinfo(ty)
    want = np.clip(y, info.min, info.max).astype(ty)
    assert got[0].dtype == want.dtype and np.array_equal(got[0], want) and np.array_equal(got[1], want)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), op=st.sampled_from(["Add", "Mul"]), shapes=st.sampled_from(SHAPES),
       ta=st.sampled_from(WIDE), tb=st.sampled_from(TYPES), ty=st.sampled_from(WIDE),
       s=st.tuples(*[st.floats(2.0 ** -12, 4.0, width=32)] * 3))
def test_ort_integer_policy_16bit_add_mul_fast_equals_numpy_twin(data, op, shapes, ta, tb, ty, s):
    """`ort` under fusion="integer" (OrtArith on 16-bit codes, broadcasting and onnxruntime's
    operand order included): the fast kernels equal the NumPy twins, and with A of the output's
    shape (no operand swap) the twin of the element-wise formula on the broadcast operands."""
    za, zb, zy = _zp(data, ta), _zp(data, tb), _zp(data, ty)
    a, b = _codes(data, shapes[0], ta), _codes(data, shapes[1], tb)
    model = _graph(op, ta, tb, ty, shapes[0], shapes[1], (s[0], za, s[1], zb, s[2], zy))
    progs = [intsim.load(model, target="ort", fusion="integer", kernels=k) for k in ("fast", "reference")]
    assert [n.op for n in progs[0].graph.nodes] == [op.lower()]
    got = [p.run({"a": a, "b": b})["y"] for p in progs]
    assert got[0].dtype == np.dtype(ty) and np.array_equal(got[0], got[1])
    shape = np.broadcast_shapes(a.shape, b.shape)
    if a.shape == shape:
        info = np.iinfo(ty)
        want = np.empty(shape, ty)
        twin = ek.qlinear_add_ref if op == "Add" else ek.qlinear_mul_ref
        bb = b if b.size == 1 else np.ascontiguousarray(np.broadcast_to(b, shape))
        twin(a, s[0], za, bb, s[1], zb, s[2], zy, int(info.min), int(info.max), want)
        assert np.array_equal(got[0], want)


def test_the_onnxruntime_policy_keeps_a_16bit_add_float():
    m = _graph("Add", np.int16, np.int16, np.int16, (4,), (4,), (0.5, 0, 0.25, 3, 1.0, -2))
    nodes = intsim.load(m, target="ort").graph.nodes
    assert [n.op for n in nodes] == ["dequantize", "dequantize", "onnx", "quantize"]
    assert "add" in [n.op for n in intsim.load(m, target="ort", fusion="integer").graph.nodes]


@pytest.mark.parametrize("target", ["tflite", "tflite-builtin", "tflite-xnnpack"])
@pytest.mark.parametrize("op", ["Add", "Mul"])
def test_tflite_rules_refuse_what_tflite_kernels_do_not_take(target, op):
    """TFLite's ADD/MUL take one type for operands and output, a 16-bit one int16 with zero point 0
    (add.cc / mul.cc Prepare): under the integer policy a uint16, an int16 with a zero point or a
    mixed-signedness add/mul is refused by name; int16 with zero points 0 runs (rules.TfliteAdd /
    FixedRequant, the TFLite importer's int16 path)."""
    a16 = np.arange(-5, 5, dtype=np.int16).reshape(2, 5)
    ok = intsim.load(_graph(op, np.int16, np.int16, np.int16, (2, 5), (2, 5), (0.5, 0, 0.25, 0, 1.0, 0)),
                     target=target, fusion="integer")
    assert ok.run({"a": a16, "b": a16})["y"].dtype == np.int16
    cases = [(np.uint16, np.uint16, 100, "int16 with zero point 0"), (np.int16, np.int16, 3, "zero points 3"),
             (np.uint8, np.int8, 0, "one type")]
    for ta, tb, z, why in cases:
        m = _graph(op, ta, tb, ta, (2, 5), (2, 5), (0.5, z, 0.25, 0, 1.0, z))
        with pytest.raises(intsim.IntsimError, match=f"target {target} has no rule for {op} at node 'op'.*{why}"):
            intsim.load(m, target=target, fusion="integer").run({"a": np.zeros((2, 5), ta), "b": np.zeros((2, 5), tb)})


@pytest.mark.parametrize("target", ["tflite-single", "cmsis-nn"])
@pytest.mark.parametrize("op", ["Add", "Mul"])
def test_q31_targets_refuse_what_tflite_kernels_do_not_take(target, op):
    """tflite-single and cmsis-nn compute TFLite's 8-bit ADD/MUL (one type for operands and output;
    MUL as rules.AccRequant(one_type=True)): a mixed-signedness or uint16 add/mul is refused by
    name, one type runs."""
    same = intsim.load(_graph(op, np.int8, np.int8, np.int8, (2, 5), (2, 5), (0.5, 1, 0.25, -2, 1.0, 3)),
                       target=target, fusion="integer")
    a8 = np.arange(-5, 5, dtype=np.int8).reshape(2, 5)
    assert same.run({"a": a8, "b": a8})["y"].dtype == np.int8
    for ta, tb, why in [(np.uint8, np.int8, "one type"), (np.uint16, np.uint16, "int16 with zero point 0")]:
        m = _graph(op, ta, tb, ta, (2, 5), (2, 5), (0.5, 0, 0.25, 0, 1.0, 0))
        with pytest.raises(intsim.IntsimError, match=f"target {target} has no rule for {op} at node 'op'.*{why}"):
            intsim.load(m, target=target, fusion="integer").run({"a": np.zeros((2, 5), ta), "b": np.zeros((2, 5), tb)})
