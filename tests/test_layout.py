"""intsim.layout: channels-last activations behind NCHW views. The views hold the same values,
the tensors chosen are exactly those read only by channels-last readers (never graph outputs),
and a model run with channels-last activations equals the all-NCHW run, with the layer kernels
actually reading and writing channels-last."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import intsim
from intsim import layout

zoo = pytest.importorskip("models.zoo")


@settings(max_examples=60, deadline=None)
@given(st.tuples(*[st.integers(1, 5)] * 4))
def test_nhwc_of_finds_exactly_channels_last_memory(shape):
    n, c, h, w = shape
    x = np.arange(n * c * h * w, dtype=np.int32).reshape(shape)
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    view = layout.nchw_view(xh)
    assert np.array_equal(view, x)
    assert layout.nhwc_of(view) is not None and np.shares_memory(layout.nhwc_of(view), xh)
    assert np.array_equal(layout.nhwc_of(view), xh)
    if c > 1 and h * w > 1:        # otherwise both orders are the same memory
        assert layout.nhwc_of(x) is None
        assert layout.nhwc_of(view[:, ::-1]) is None
    assert layout.nhwc_of(x[0]) is None


@settings(max_examples=60, deadline=None)
@given(st.tuples(*[st.integers(1, 5)] * 3))
def test_held_nhwc_finds_exactly_channels_last_signals(shape):
    """A 1-D signal (N, C, W) held channels-last is read as the (N, 1, W, C) image of one row,
    and planes_view gives the signal back; a channels-first signal (C, W > 1) is not held so."""
    n, c, w = shape
    x = np.arange(n * c * w, dtype=np.int32).reshape(shape)
    xh = np.ascontiguousarray(x.transpose(0, 2, 1)).reshape(n, 1, w, c)
    view = layout.planes_view(xh, 3)
    assert view.shape == x.shape and np.array_equal(view, x) and np.shares_memory(view, xh)
    held = layout.held_nhwc(view)
    assert held is not None and held.shape == (n, 1, w, c) and np.shares_memory(held, xh)
    assert np.array_equal(held, xh)
    if c > 1 and w > 1:
        assert layout.held_nhwc(x) is None
    x4 = x.reshape(n, c, 1, w)
    assert np.array_equal(layout.planes_view(np.ascontiguousarray(x4.transpose(0, 2, 3, 1)), 4), x4)


def _model(name, form="qdq_u8_pc"):
    try:
        return zoo.quantized_model(name, form)
    except RuntimeError as e:
        pytest.skip(str(e))


def test_channels_last_tensors_are_read_only_by_channels_last_readers():
    prog = intsim.load(_model("mobilenetv2_s"))
    chosen = prog._ctx.channels_last
    assert chosen, "MobileNetV2 has conv -> conv edges"
    _check_readers(prog, chosen)


def _check_readers(prog, chosen):
    """Every chosen tensor is read only by channels-last readers or by channel concats whose
    output is chosen; every other tensor (not a graph output) has a reader that is neither."""
    readers = {}
    for node in prog.graph.nodes:
        for t in node.inputs:
            readers.setdefault(t, []).append(node)

    def ok(nd):
        return layout.reads_channels_last(nd) or (layout.is_channel_concat(nd, prog.graph) and nd.outputs[0] in chosen)
    for t in chosen:
        assert t not in prog.graph.outputs
        assert all(ok(nd) for nd in readers[t])
    for t, nodes in readers.items():
        if t not in chosen and t not in prog.graph.outputs and t in prog.graph.tensors:
            assert not all(ok(nd) for nd in nodes)


def _assert_replays_equal(got, want):
    """got: runs on feeds cycling through want's feeds (a recording, then frozen replays)."""
    for i, g in enumerate(got):
        for k in g:
            np.testing.assert_array_equal(g[k], want[i % len(want)][k])


@pytest.mark.parametrize("form", ["qdq_u8", "qop_s8"])
def test_fire_module_concats_run_channels_last(form):
    """SqueezeNet's fire modules (expand convs -> channel concat -> squeeze conv or MaxPool): the
    concats' inputs and outputs are stored channels-last (QOperator graphs too, whose concat shapes
    are unknown), the run equals the all-NCHW run, the frozen replays equal it too."""
    try:
        path = str(zoo.arch_quantized_model("squeezenet1_1", form, 64))
    except zoo.ModelUnavailable as e:
        pytest.skip(str(e))
    prog = intsim.load(path)
    chosen = prog._ctx.channels_last
    concats = [nd for nd in prog.graph.nodes if nd.op == "concat"]
    assert concats and all(nd.outputs[0] in chosen and nd.inputs[2] in chosen for nd in concats)
    _check_readers(prog, chosen)
    feeds = [{zoo.INPUT_NAME: zoo.arch_inputs("squeezenet1_1", 2, seed, 64)} for seed in (3, 4)]
    got = [prog.run(f) for _ in range(3) for f in feeds]          # recording, then frozen replays
    import unittest.mock as mock
    with mock.patch.object(layout, "reads_channels_last", lambda node: False), \
            mock.patch.object(layout, "is_channel_concat", lambda node, graph: False):
        plain = intsim.load(path)
        assert not plain._ctx.channels_last
        want = [plain.run(f) for f in feeds]
    _assert_replays_equal(got, want)


@pytest.mark.parametrize("name", ["mobilenetv2_s", "digits_dsconv", "digits_cnn"])
@pytest.mark.parametrize("form", zoo.FORMS)
def test_channels_last_run_equals_nchw_run(name, form, monkeypatch):
    """Same outputs with and without channels-last activations; with them, the conv plans
    really read and write channels-last arrays."""
    from kernels import conv_plan
    path = _model(name, form)
    feeds = zoo.sample_inputs(name, 5, seed=13)
    layouts = []
    real = conv_plan.run_plan

    def spy(plan, x, out, where="conv", x_layout="nchw", out_layout="nchw"):
        if where == "conv":                 # (MatMul lanes run 1x1 conv plans channels-last)
            layouts.append((x_layout, out_layout))
        return real(plan, x, out, where, x_layout, out_layout)
    monkeypatch.setattr(conv_plan, "run_plan", spy)

    class SpyBound(conv_plan.BoundPlan):      # the lanes' bound plans (no run_plan call per run)
        def __init__(self, plan, n_img, x_layout, out_layout, out_dtype, where):
            if where == "conv":
                layouts.append((x_layout, out_layout))
            super().__init__(plan, n_img, x_layout, out_layout, out_dtype, where)
    monkeypatch.setattr(conv_plan, "BoundPlan", SpyBound)
    from kernels import depthwise_nhwc
    dw_calls = []
    real_dw = depthwise_nhwc._bind_planned

    def dw_spy(plan, x_nchw, out_nchw, threads=None):
        if not (x_nchw or out_nchw):
            dw_calls.append(1)
        return real_dw(plan, x_nchw, out_nchw, threads)
    monkeypatch.setattr(depthwise_nhwc, "_bind_planned", dw_spy)
    fast = intsim.load(path).run(feeds)
    monkeypatch.setattr(layout, "reads_channels_last", lambda node: False)
    n_fast = len(layouts)
    plain = intsim.load(path).run(feeds)
    for k in fast:
        np.testing.assert_array_equal(fast[k], plain[k])
    assert all(out == "nchw" for _, out in layouts[n_fast:])     # (a 1-channel x is both layouts)
    assert any(out == "nhwc" for _, out in layouts[:n_fast]), layouts[:n_fast]
    if name != "digits_cnn":                                      # models with depthwise convs
        assert dw_calls, "no depthwise conv ran channels-last"


@pytest.mark.parametrize("name,se,gap", [("efficientnet_b0", 16, 17), ("mobilenet_v3_small", 9, 10)])
@pytest.mark.parametrize("form", ["qdq_u8", "qop_s8"])
def test_mbconv_blocks_stay_channels_last(name, se, gap, form, monkeypatch):
    """EfficientNet-B0 / MobileNetV3-Small (the architecture zoo at 64x64): every squeeze-excite
    mul and global average pool reads its channels-last images as they are held (between the
    block's convs, through the activation tables), and the run equals the all-NCHW run (and so,
    by tests/test_arch_zoo.py, onnxruntime)."""
    from kernels import eltwise, pool
    try:
        path = str(zoo.arch_quantized_model(name, form, 64))
    except zoo.ModelUnavailable as e:
        pytest.skip(str(e))
    calls = {"cols": 0, "gap": 0}

    def counted(key, fn):
        def spy(*a, **k):
            calls[key] += 1
            return fn(*a, **k)
        return spy
    monkeypatch.setattr(eltwise, "qlinear_mul_cols", counted("cols", eltwise.qlinear_mul_cols))
    monkeypatch.setattr(pool, "bind_global_avgpool_nhwc", counted("gap", pool.bind_global_avgpool_nhwc))
    feeds = {zoo.INPUT_NAME: zoo.arch_inputs(name, 2, 0, 64)}
    fast = intsim.load(path, target="ort").run(feeds)
    assert calls == {"cols": se, "gap": gap}
    monkeypatch.setattr(layout, "reads_channels_last", lambda node: False)
    monkeypatch.setattr(layout, "channels_last_tensors", lambda graph, readers_named=(): frozenset())
    from intsim.runtime import program
    monkeypatch.setattr(program, "channels_last_tensors", lambda graph, readers_named=(): frozenset())
    plain = intsim.load(path, target="ort").run(feeds)
    assert calls == {"cols": se, "gap": gap}                 # no channels-last images in the NCHW run
    for k in fast:
        np.testing.assert_array_equal(fast[k], plain[k])


@pytest.mark.parametrize("form", ["qdq_u8", "qop_u8"])
@pytest.mark.parametrize("threads", [1, 2])
def test_audio_conv1d_runs_channels_last(form, threads, monkeypatch, request):
    """The Conv1d audio net (1-D convs and MaxPools): its convs read and write channels-last
    signals ((N, 1, W, C) images) and its MaxPools read them in place, the run and its frozen
    replays equal the all-NCHW run (and so, by tests/test_arch_zoo.py, onnxruntime), on 1 and 2
    kernel threads."""
    from kernels import conv_plan, pool, threads as kernel_threads
    from intsim.runtime import program
    before = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(threads)
    request.addfinalizer(lambda: kernel_threads.set_num_threads(before))
    try:
        path = str(zoo.arch_quantized_model("audio_conv1d", form, 64))
    except zoo.ModelUnavailable as e:
        pytest.skip(str(e))
    layouts, pools = [], []

    class SpyBound(conv_plan.BoundPlan):
        def __init__(self, plan, n_img, x_layout, out_layout, out_dtype, where):
            layouts.append((plan.in_chw, x_layout, out_layout))
            super().__init__(plan, n_img, x_layout, out_layout, out_dtype, where)
    monkeypatch.setattr(conv_plan, "BoundPlan", SpyBound)

    def pool_spy(xh, *a):
        pools.append(xh.shape)
        return real_pool(xh, *a)
    real_pool = pool.bind_maxpool_nhwc
    monkeypatch.setattr(pool, "bind_maxpool_nhwc", pool_spy)
    feeds = [{zoo.INPUT_NAME: zoo.arch_inputs("audio_conv1d", 2, seed, 64)} for seed in (5, 6)]
    prog = intsim.load(path)
    got = [prog.run(f) for _ in range(3) for f in feeds]          # recording, then frozen replays
    assert any(x == "nhwc" and c > 1 and out == "nhwc" for (c, _, _), x, out in layouts), layouts
    assert pools and all(s[1] == 1 for s in pools), pools
    monkeypatch.setattr(layout, "reads_channels_last", lambda node: False)
    monkeypatch.setattr(program, "channels_last_tensors", lambda graph, readers_named=(): frozenset())
    plain = intsim.load(path)
    assert not plain._ctx.channels_last
    want = [plain.run(f) for f in feeds]
    _assert_replays_equal(got, want)
