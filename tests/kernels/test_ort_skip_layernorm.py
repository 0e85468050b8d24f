"""kernels.ort_skip_layernorm (onnxruntime's float32 SkipLayerNormalization and
SkipSimplifiedLayerNormalization) against its NumPy twin and against onnxruntime itself, all
four outputs bit for bit: hidden sizes off every vector width, skip of the input's shape or
repeated over the batch, with and without beta and bias, epsilon 0, magnitudes that make the
order visible, huge values (overflow to inf), denormals, rows of equal values (variance 0: x/0);
a test showing the textbook float32 order differs; bad input."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper

from kernels import ort_skip_layernorm as K

OUTS = ["y", "mean", "inv_std", "total"]


def ort_skip_ln(x, skip, gamma, beta, bias, eps, simplified):
    """onnxruntime's four outputs of one (Skip|SkipSimplified)LayerNormalization node."""
    feeds = {"x": x, "skip": skip, "gamma": gamma}
    names = ["x", "skip", "gamma"] + ([] if simplified else ["beta" if beta is not None else ""])
    if beta is not None:
        feeds["beta"] = beta
    if bias is not None:
        feeds["bias"] = bias
        names.append("bias")
    while not names[-1]:
        names.pop()
    op = "SkipSimplifiedLayerNormalization" if simplified else "SkipLayerNormalization"
    node = helper.make_node(op, names, OUTS, domain="com.microsoft", epsilon=float(eps))
    ins = [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape)) for k, v in feeds.items()]
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in OUTS]
    model = helper.make_model(helper.make_graph([node], "g", ins, outs),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip(OUTS, sess.run(None, feeds)))


def values(rng, mode, shape):
    if mode == "normal":
        v = rng.standard_normal(shape)
    elif mode == "mixed":           # magnitudes 1e-3..1e5: another order gives other bits
        v = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 6, shape)
    elif mode == "offset":          # a large common offset: E[v^2] - E[v]^2 cancels badly
        v = rng.standard_normal(shape) * 3.0 + 1e4
    elif mode == "denormal":
        v = rng.standard_normal(shape) * 1e-40
    elif mode == "equal":           # every row one value: variance 0
        v = np.full(shape, rng.choice([0.0, 1.5, -7.25, 1e-42]))
    else:
        v = rng.choice(np.array([0.0, -3.4e38, 3.4e38, 1e-45, -1.0, 16777217.0, 2.5e19]), shape)
    return v.astype(np.float32)


@st.composite
def case(draw):
    b, s, n = draw(st.integers(1, 3)), draw(st.integers(1, 19)), draw(st.integers(1, 70))   # rows: 1..57
    rank3 = draw(st.booleans())
    shape = (b, s, n) if rank3 else (b * s, n)
    skip_shape = draw(st.sampled_from([shape, (s, n), (1, s, n)])) if rank3 else shape
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mode = draw(st.sampled_from(["normal", "mixed", "offset", "denormal", "equal", "ends"]))
    smode = draw(st.sampled_from([mode, "normal", "equal"]))
    simplified = draw(st.booleans())
    x, skip = values(rng, mode, shape), values(rng, smode, skip_shape)
    gamma = values(rng, draw(st.sampled_from(["normal", "mixed", "ends"])), (n,))
    beta = None if simplified or draw(st.booleans()) else values(rng, "normal", (n,))
    bias = values(rng, draw(st.sampled_from(["normal", "equal"])), (n,)) if draw(st.booleans()) else None
    eps = np.float32(draw(st.sampled_from([1e-5, 1e-12, 0.0, 1e-3])))
    return x, skip, gamma, beta, bias, eps, simplified


def run(fn, x, skip, gamma, beta, bias, eps, simplified, total=True):
    n = x.shape[-1]
    got = {"y": np.full(x.shape, 7, np.float32), "mean": np.full(x.shape[:-1] + (1,), 7, np.float32),
           "inv_std": np.full(x.shape[:-1] + (1,), 7, np.float32),
           "total": np.full(x.shape, 7, np.float32) if total else None}
    fn(x, skip, gamma, beta, bias, n, eps, simplified, got["y"], got["mean"], got["inv_std"], got["total"])
    return got


def same(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.int32), b.view(np.int32))


@settings(max_examples=120, deadline=None)
@given(c=case())
def test_kernel_equals_onnxruntime(c):
    got = run(K.ort_skip_layernorm, *c)
    want = ort_skip_ln(*c)
    for o in OUTS:
        assert same(got[o], want[o].reshape(got[o].shape)), (o, c[0].shape, c[1].shape, c[-1])


@settings(max_examples=120, deadline=None)
@given(c=case(), total=st.booleans())
def test_kernel_equals_twin(c, total):
    got = run(K.ort_skip_layernorm, *c, total=total)
    want = run(K.ort_skip_layernorm_ref, *c, total=total)
    for o in OUTS if total else OUTS[:3]:
        assert same(got[o], want[o]), o


def test_order_is_visible():
    """Rows where the textbook float32 LayerNorm (NumPy's mean and variance of the sum, or a
    left-to-right sum of v and v*v) differs from onnxruntime's: the tests above can fail."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 37)) * 3.0 + 1e3).astype(np.float32)
    skip = rng.standard_normal((4, 37)).astype(np.float32)
    gamma, beta = np.ones(37, np.float32), np.zeros(37, np.float32)
    want = ort_skip_ln(x, skip, gamma, beta, None, np.float32(1e-5), False)["y"]
    got = run(K.ort_skip_layernorm, x, skip, gamma, beta, None, np.float32(1e-5), False)["y"]
    assert same(got, want)
    v = x + skip
    mu, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
    assert not same(((v - mu) / np.sqrt(var + np.float32(1e-5)) * gamma + beta).astype(np.float32), want)
    s = np.zeros((4, 1), np.float32)
    q = np.zeros((4, 1), np.float32)
    for h in range(37):
        s, q = s + v[:, h:h + 1], q + v[:, h:h + 1] * v[:, h:h + 1]
    m = s / np.float32(37)
    sd = np.sqrt(q / np.float32(37) - m * m + np.float32(1e-5))
    assert not same(((v - m) / sd * gamma + beta).astype(np.float32), want)


def test_refuses_bad_input():
    x, g = np.zeros((2, 5), np.float32), np.ones(5, np.float32)
    y = np.empty((2, 5), np.float32)
    with pytest.raises(ValueError):
        K.ort_skip_layernorm(x.astype(np.float64), x, g, None, None, 5, 0.0, False, y)
    with pytest.raises(ValueError):
        K.ort_skip_layernorm(x, np.zeros((3, 5), np.float32), g, None, None, 5, 0.0, False, y)
    with pytest.raises(ValueError):
        K.ort_skip_layernorm(x, x, np.ones(4, np.float32), None, None, 5, 0.0, False, y)
    with pytest.raises(ValueError):
        K.ort_skip_layernorm(x, x, g, g, None, 5, 0.0, True, y)
    with pytest.raises(ValueError):
        K.ort_skip_layernorm(x, x, g, None, None, 5, 0.0, False, np.empty((2, 10), np.float32)[:, ::2])
