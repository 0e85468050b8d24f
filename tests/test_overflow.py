"""intsim/overflow.py and `intsim overflow`: static bounds against brute force, observed
ranges, narrow accumulators on the models, the x86 pair saturation, CLI and report."""
from __future__ import annotations

import itertools
import json

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import intsim
from intsim.cli import main
from intsim.ir import IntType
from intsim.overflow import (LayerParams, a2q_bits, analyze, conv_pad_masks, datatype_range, signed_bits,
                             sweep, weight_range)
from kernels.conv import ConvGeom, conv2d_acc_ref, conv_out_hw
from models.zoo import digits_split, quantized_model, sample_inputs

from .ortutil import run_ort

U8, S8 = IntType(8, False), IntType(8, True)


# ----------------------------------------------------------------------- bit widths
@given(st.integers(-2**40, 2**40), st.integers(0, 2**40))
def test_signed_bits_is_the_least_width_that_holds_the_range(lo, span):
    hi = lo + span
    n = signed_bits(lo, hi)
    assert -2 ** (n - 1) <= lo and hi <= 2 ** (n - 1) - 1
    assert n == 1 or not (-2 ** (n - 2) <= lo and hi <= 2 ** (n - 2) - 1)


@pytest.mark.parametrize("l1, n, signed", [(1, 8, False), (100, 8, False), (37, 8, True), (5000, 4, True), (3, 2, False)])
def test_a2q_matches_the_published_float_formula(l1, n, signed):
    import math
    alpha = math.log2(l1) + n - int(signed)
    assert a2q_bits(l1, n, signed) == math.ceil(alpha + math.log2(1 + 2 ** -alpha) + 1)


# ------------------------------------------------------------------- static bounds
@st.composite
def small_conv(draw):
    """A conv whose whole input has at most 10 elements (2**10 extreme inputs)."""
    cg, m = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(kh, 2)), draw(st.integers(kw, max(kw, 10 // (2 * cg))))
    pads = [draw(st.integers(0, 1)) for _ in range(4)]
    g = ConvGeom(draw(st.integers(1, 2)), draw(st.integers(1, 2)), *pads, 1, 1, 1)
    x_type = draw(st.sampled_from([U8, S8]))
    x_zp = draw(st.sampled_from([x_type.qmin, x_type.qmax, 0]) | st.integers(x_type.qmin, x_type.qmax))
    x_lo = draw(st.integers(x_type.qmin, x_type.qmax))
    x_hi = draw(st.integers(x_lo, x_type.qmax))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    wq = rng.integers(-128, 128, (m, cg, kh, kw)).astype(np.int8)
    if draw(st.booleans()):
        wq.flat[0] = -128
    w_zp = [int(v) for v in rng.integers(-128, 128, m)]
    bias = [int(v) for v in rng.integers(-2**20, 2**20, m)]
    return g, (1, cg, h, w), wq, w_zp, bias, x_type, x_zp, x_lo, x_hi


def _params(case):
    g, shape, wq, w_zp, bias, x_type, x_zp, x_lo, x_hi = case
    u = wq.astype(np.int64) - np.array(w_zp, np.int64)[:, None, None, None]
    return LayerParams("n", "conv", u, bias, w_zp, x_zp, x_type, S8, x_lo, x_hi,
                       conv_pad_masks(shape[2], shape[3], wq.shape[2], wq.shape[3], g))


def _brute_force(case):
    """Every input at the ends of [x_lo, x_hi] (the sum is linear in each x): all 2**E of them."""
    g, shape, wq, w_zp, bias, _, x_zp, x_lo, x_hi = case
    e = int(np.prod(shape))
    xs = np.array(list(itertools.product([x_lo, x_hi], repeat=e)), np.int64).reshape((-1,) + shape[1:])
    oh, ow = conv_out_hw(shape[2], shape[3], wq.shape[2], wq.shape[3], g)
    acc = np.empty((len(xs), wq.shape[0], oh, ow), np.int64)
    conv2d_acc_ref(xs, wq, x_zp, np.array(w_zp), np.array(bias), g, acc)
    return acc.min(axis=(0, 2, 3)), acc.max(axis=(0, 2, 3))


@settings(max_examples=60, deadline=None)
@given(small_conv())
def test_weight_aware_bound_is_the_brute_force_extreme(case):
    p = _params(case)
    lo, hi = _brute_force(case)
    assert weight_range(p) == list(zip(lo.tolist(), hi.tolist()))


@settings(max_examples=60, deadline=None)
@given(small_conv(), st.integers(0, 2**31))
def test_observed_never_leaves_the_bounds_and_datatype_contains_weights(case, seed):
    g, shape, wq, w_zp, bias, x_type, x_zp, x_lo, x_hi = case
    p = _params(case)
    x = np.random.default_rng(seed).integers(x_lo, x_hi + 1, (8,) + shape[1:])
    oh, ow = conv_out_hw(shape[2], shape[3], wq.shape[2], wq.shape[3], g)
    acc = np.empty((8, wq.shape[0], oh, ow), np.int64)
    conv2d_acc_ref(x, wq, x_zp, np.array(w_zp), np.array(bias), g, acc)
    for c, ((wlo, whi), (dlo, dhi)) in enumerate(zip(weight_range(p), datatype_range(p))):
        assert wlo <= int(acc[:, c].min()) and int(acc[:, c].max()) <= whi
        assert dlo <= wlo and whi <= dhi
        assert all(isinstance(v, int) for v in (wlo, whi, dlo, dhi))


@settings(max_examples=60, deadline=None)
@given(small_conv())
def test_a2q_covers_the_weight_aware_range_without_zero_points_or_bias(case):
    g, shape, wq, _, _, x_type, _, _, _ = case
    z = [0] * wq.shape[0]
    p = _params((g, shape, wq, z, z, x_type, 0, x_type.qmin, x_type.qmax))
    for (lo, hi), c in zip(weight_range(p), range(wq.shape[0])):
        assert signed_bits(lo, hi) <= a2q_bits(int(np.abs(wq[c].astype(np.int64)).sum()), 8, x_type.signed)


# ---------------------------------------------------------------------- the models
@pytest.fixture(scope="module")
def digits():
    return intsim.import_onnx(quantized_model("digits_cnn", "qdq_u8_pc"))


@pytest.mark.parametrize("name, form, n", [("digits_cnn", "qdq_u8_pc", 32), ("mobilenetv2_s", "qdq_s8_pt", 2),
                                           ("mobilenetv2_s", "qop_u8", 2)])
def test_wrap_at_32_bits_equals_the_exact_result(name, form, n):
    g = intsim.import_onnx(quantized_model(name, form))
    feeds = sample_inputs(name, n)
    exact = intsim.Program(g, target="ort-vnni").run(feeds)
    wrapped, taps = intsim.Program(g, target="ort-vnni", accumulator=intsim.Accumulator(32, "wrap")).run(feeds, taps=True)
    for k in exact:
        assert np.array_equal(exact[k], wrapped[k])
    assert sum(t.get("overflow_events", 0) for t in taps.values()) == 0


def test_analyze_digits_report_is_consistent(digits):
    feeds = sample_inputs("digits_cnn", 48)
    rep = analyze(digits, feeds, acc_bits=18, overflow="saturate", model="digits")
    assert [l["op"] for l in rep["layers"]] == ["conv", "conv", "matmul"]
    for l in rep["layers"]:
        b = l["bits"]
        assert b["observed"] <= b["weights"] <= b["datatype"]
        lo, hi = l["weights_range"]
        assert lo <= l["observed_min"] and l["observed_max"] <= hi
        assert l["headroom_bits"] == 18 - b["observed"]
    first = rep["layers"][0]   # nothing upstream: a mismatch needs an event of its own
    assert first["overflow_events"] > 0 or first["output_mismatch"] == 0
    assert analyze(digits, None)["layers"][0]["observed_min"] is None


def test_weight_aware_width_never_overflows_on_the_digits_net(digits):
    """At the widest weight-aware bound, no partial sum in the K order overflows (x ranges hold x_zp)."""
    bits = max(l["bits"]["weights"] for l in analyze(digits)["layers"])
    _, _, x, _ = digits_split()
    ref = intsim.Program(digits, target="ort-vnni").run({"input": x})
    for mode in ("wrap", "saturate"):
        outs, taps = intsim.Program(digits, target="ort-vnni",
                                    accumulator=intsim.Accumulator(bits, mode)).run({"input": x}, taps=True)
        assert sum(t.get("overflow_events", 0) for t in taps.values()) == 0
        assert all(np.array_equal(outs[k], ref[k]) for k in ref)


def test_sweep_finds_the_narrowest_width_and_accuracy(digits):
    _, _, x, y = digits_split()
    res = sweep(digits, {"input": x[:120]}, widths=range(14, 25), labels=y[:120])
    for mode in ("wrap", "saturate"):
        rows = {r["bits"]: r for r in res["rows"] if r["mode"] == mode}
        best = res["narrowest"][mode]
        assert rows[best]["mismatch"] == 0 and all(rows[b]["mismatch"] == 0 for b in rows if b >= best)
        assert best == 14 or rows[best - 1]["mismatch"] > 0
        assert rows[24]["accuracy"] == res["reference_accuracy"]
    assert res["reference_accuracy"] > 0.9


# ------------------------------------------------------------------ x86 u8s8 pairs
def _matmul_integer(k: int) -> onnx.ModelProto:
    b = np.full((k, 2), -128, np.int8)
    g = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "g",
                          [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, k])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 2])],
                          [onnx.numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def test_x86_pairs_reproduce_int16_saturation_where_it_changes_the_result():
    k = 64
    model = _matmul_integer(k)
    a = np.full((1, k), 255, np.uint8)
    a[0, -1] = 250
    pairs = intsim.load(model, accumulator=intsim.Accumulator(32, "x86-u8s8-pairs")).run({"a": a})["y"]
    exact = intsim.load(model, target="ort-vnni").run({"a": a})["y"]
    # plain Python: pairs (2j, 2j+1) clamped to int16, then summed
    prods = [int(v) * -128 for v in a[0]]
    want = sum(max(-32768, min(32767, prods[j] + prods[j + 1])) for j in range(0, k, 2))
    assert int(pairs[0, 0]) == want == -32768 * 31 + max(-32768, 255 * -128 + 250 * -128)
    assert int(exact[0, 0]) == sum(prods) != want
    from kernels.x86pairs import host_saturates_u8s8
    if host_saturates_u8s8():
        assert int(run_ort(model, {"a": a})["y"][0, 0]) == want


# ---------------------------------------------------------------------------- CLI
def test_cli_json_report_and_exit_codes(tmp_path, capsys):
    _, _, x, y = digits_split()
    np.savez(tmp_path / "in.npz", input=x[:40], labels=y[:40])
    path = str(quantized_model("digits_cnn", "qdq_u8_pc"))
    rc = main(["overflow", path, "--input", str(tmp_path / "in.npz"), "--acc-bits", "18", "--json", "-",
               "--report", str(tmp_path / "r.html")])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert {"model", "acc_bits", "layers"} <= set(rep) and rep["acc_bits"] == 18
    for l in rep["layers"]:
        assert {"node", "op", "k", "bits", "observed_min", "observed_max", "overflow_events", "headroom_bits"} <= set(l)
        assert set(l["bits"]) == {"datatype", "weights", "a2q", "observed"}
    page = (tmp_path / "r.html").read_text()
    assert page.count("<svg") == 1 and "accumulator width 18 bits" in page
    assert main(["overflow", path, "--acc-bits", "16", "--fail-on-overflow"]) == 1
    assert main(["overflow", path, "--acc-bits", "32", "--fail-on-overflow"]) == 0
    assert main(["overflow", path, "--sweep", "12:40:1"]) == 2
    assert main(["overflow", path, "--sweep", "16:18"]) == 2          # needs --input
    assert main(["overflow", path, "--acc-overflow", "x86-u8s8-pairs"]) == 2
    assert main(["overflow", str(tmp_path / "missing.onnx")]) == 2
