"""kernels.ort_gelu (onnxruntime's MLAS erf, Gelu and BiasGelu on an AVX-512F host) against its
NumPy twin and against onnxruntime itself, bit for bit (NaN bits too): random shapes (lengths
across the 16-lane blocks and their tails, bias rows), magnitudes from denormal to overflow,
the branch and clamp edges (0.921875, 3.925, +-0, +-inf, quiet and signaling NaNs), random bit
patterns; a naive erf (float64 math.erf rounded) that differs; bad input."""
from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper

from kernels import ort_gelu as G

pytestmark = pytest.mark.skipif(not G.supported(), reason="onnxruntime runs another MLAS erf on this host")

F32 = np.float32
EDGES = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45, 1.1754942e-38, 3e-39,
                  0.921875, -0.921875, np.nextafter(F32(0.921875), F32(0)), np.nextafter(F32(0.921875), F32(2)),
                  3.925, -3.925, np.nextafter(F32(3.925), F32(9)), 5.55, 1.3035, 3.4e38, -3.4e38, 1.0, -1.0],
                 F32)
SNANS = np.array([0x7F800001, 0x7FA00000, 0xFF800001, 0x7FC00001, 0xFFC12345, 0x7FFFFFFF], np.uint32).view(F32)

_SESSIONS: dict = {}


def _session(op, domain, n_in, opset, **attrs):
    key = (op, domain, n_in, opset, tuple(attrs.items()))
    if key not in _SESSIONS:
        names = ["x", "b"][:n_in]
        g = helper.make_graph([helper.make_node(op, names, ["y"], domain=domain, **attrs)], "g",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        ops = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] if domain else [])
        m = helper.make_model(g, opset_imports=ops)
        m.ir_version = 8
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        _SESSIONS[key] = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return _SESSIONS[key]


def ort_erf(x):
    return _session("Erf", "", 1, 13).run(None, {"x": x})[0]


def ort_gelu(x, opset20=False):
    s = _session("Gelu", "", 1, 20) if opset20 else _session("Gelu", "com.microsoft", 1, 13)
    return s.run(None, {"x": x})[0]


def ort_bias_gelu(x, b):
    return _session("BiasGelu", "com.microsoft", 2, 13).run(None, {"x": x, "b": b})[0]


def same_bits(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@st.composite
def values(draw, rows=False):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 70))
    lead = draw(st.integers(1, 4)) if rows else 1
    mode = draw(st.sampled_from(["normal", "wide", "bits", "edges"]))
    shape = (lead, n)
    if mode == "normal":
        v = rng.standard_normal(shape) * float(draw(st.sampled_from([0.5, 2.0, 5.0])))
    elif mode == "wide":        # magnitudes 1e-40 .. 1e6
        v = rng.standard_normal(shape) * 10.0 ** rng.integers(-40, 7, shape)
    elif mode == "bits":
        return rng.integers(0, 2**32, shape, dtype=np.uint64).astype(np.uint32).view(F32)
    else:
        return rng.choice(np.concatenate([EDGES, SNANS]), shape)
    return v.astype(F32)


@settings(max_examples=120, deadline=None)
@given(x=values(rows=True), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_kernels_equal_twins(x, bias, seed):
    out = np.full(x.shape, 7, F32)
    G.ort_erf(x, 1.0, out)
    assert same_bits(out, G.ort_erf_ref(x))
    b = np.random.default_rng(seed).standard_normal(x.shape[-1]).astype(F32) if bias else None
    G.ort_gelu(x, b, out)
    assert same_bits(out, G.ort_gelu_ref(x, b))


@settings(max_examples=120, deadline=None)
@given(x=values(rows=True), seed=st.integers(0, 2**16), scale=st.sampled_from([0.1, 1.0, 4.0]))
def test_kernels_equal_onnxruntime(x, seed, scale):
    out = np.empty_like(x)
    G.ort_erf(x, 1.0, out)
    assert same_bits(out, ort_erf(x))
    G.ort_gelu(x, None, out)
    assert same_bits(out, ort_gelu(x))
    assert same_bits(out, ort_gelu(x, opset20=True))
    b = (np.random.default_rng(seed).standard_normal(x.shape[-1]) * scale).astype(F32)
    G.ort_gelu(x, b, out)
    assert same_bits(out, ort_bias_gelu(x, b))


@pytest.mark.parametrize("n", [1, 15, 16, 17, 4095, 4096, 4097, 8200])
def test_long_buffers_and_random_bits_equal_onnxruntime(n):
    """Lengths around onnxruntime's 4096-element tasks and the 16-lane blocks; random bits."""
    x = np.random.default_rng(n).integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(F32)
    out = np.empty_like(x)
    G.ort_erf(x, 1.0, out)
    assert same_bits(out, ort_erf(x))
    G.ort_gelu(x, None, out)
    assert same_bits(out, ort_gelu(x))


def test_divided_erf_equals_onnxruntime_div_then_erf():
    """ort_erf(x, c) is onnxruntime's Div(x, c) -> Erf (a float32 division, then MLAS's erf)."""
    g = helper.make_graph([helper.make_node("Div", ["x", "c"], ["t"]), helper.make_node("Erf", ["t"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [helper.make_tensor("c", TensorProto.FLOAT, [], [1.4142135])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.concatenate([EDGES, np.random.default_rng(3).standard_normal(5000).astype(F32) * 3])
    out = np.empty_like(x)
    G.ort_erf(x, F32(1.4142135), out)
    assert same_bits(out, sess.run(None, {"x": x})[0])
    assert same_bits(out, G.ort_erf_ref(x, F32(1.4142135)))


def test_naive_erf_differs():
    """A float64 erf rounded to float32 (what NumPy/SciPy/math give) is not onnxruntime's: the
    equality tests above can fail; and ours equals onnxruntime on the very same inputs."""
    x = np.linspace(-4.5, 4.5, 20001, dtype=F32)
    want = ort_erf(x)
    naive = np.array([math.erf(float(v)) for v in x], F32)
    assert (naive.view(np.uint32) != want.view(np.uint32)).sum() > 100
    out = np.empty_like(x)
    G.ort_erf(x, 1.0, out)
    assert same_bits(out, want)
    naive_gelu = (x * F32(0.5) * (naive + F32(1))).astype(F32)
    G.ort_gelu(x, None, out)
    assert not same_bits(naive_gelu, out) and same_bits(out, ort_gelu(x))


def test_gelu_keeps_nan_bits_bias_gelu_quiets_them():
    """Gelu hands an input NaN back as it is (MLAS's fused kernel blends it in); BiasGelu's
    erf path quiets it. Both as onnxruntime."""
    x = SNANS.copy()
    out = np.empty_like(x)
    G.ort_gelu(x, None, out)
    assert same_bits(out, x) and same_bits(out, ort_gelu(x))
    b = np.zeros(x.size, F32)
    G.ort_gelu(x, b, out)
    assert same_bits(out, ort_bias_gelu(x, b))
    assert np.array_equal(out.view(np.uint32), x.view(np.uint32) | 0x00400000)


def test_refuses_bad_input_and_other_hosts():
    with pytest.raises(ValueError):
        G.ort_erf(np.zeros(4, np.float64), 1.0, np.empty(4, F32))
    with pytest.raises(ValueError):
        G.ort_erf(np.zeros(4, F32), 1.0, np.empty(3, F32))
    with pytest.raises(ValueError):
        G.ort_gelu(np.zeros((2, 5), F32), np.zeros(3, F32), np.empty((2, 5), F32))
    with pytest.raises(ValueError):
        G.ort_gelu(np.zeros((2, 10), F32)[:, ::2], None, np.empty((2, 5), F32))
    assert not G.supported(frozenset({"avx2", "fma"}))
    assert G.supported(frozenset({"avx2", "fma", "avx512f"}))
