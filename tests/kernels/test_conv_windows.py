"""The VNNI driver reading a one-row uint8 image's conv windows in place (a one-channel Conv1d:
rows sw*C bytes apart in the signal, kernels.conv_rows.window_rows / window_run): the same bytes
as the int64 reference conv followed by the ORT float requantization, for strides 1-5, kernels
with K % 4 != 0, signals whose last window ends at the signal's end or before it, pads, zero
points and values at their ends, 1 and 2 threads, bound and frozen; reads never leave the signal."""
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from kernels import cpu, threads as kernel_threads
from kernels.conv import ConvGeom, conv2d_acc_ref
from kernels.conv_plan import BoundPlan
from kernels.conv_rows import conv_geo, window_rows
from kernels.fast_conv import pack_conv, plan_conv_exact
from kernels.requant import requant_float_ref
from kernels.simd.drivers import gemm_geo
from tests.kernels.guarded import guarded_bytes
from tests.kernels.vnni_emulated import VNNI_PATH, running

# the VNNI driver (emulated where the CPU lacks it) and, where the host has it, the AMX driver
# (a one-channel kernel of K >= 64, or any K >= 128, packs AMX panels)
ISAS = [VNNI_PATH] + ([] if cpu.missing("amx") else ["amx"])


def _plan(rng, c, kw, stride, pl, pr, m, w, x_zp, ends, isa):
    wt = rng.integers(-128, 128, (m, c, 1, kw)).astype(np.int8)
    w_zp = rng.integers(-128, 128, m) if rng.integers(0, 2) else 0
    if ends:
        wt[::2] = -128
        wt[1::3] = 127
    g = ConvGeom(1, stride, 0, pl, 0, pr, 1, 1, 1)
    bias = rng.integers(-2**14, 2**14, m)
    mult = (rng.uniform(0.5, 1, m) * 2.0 ** rng.integers(-16, -10, m)).astype(np.float32)
    zp = int(rng.integers(0, 256))
    rq = (True, mult, np.int64(zp), np.int64(min(zp, 20)), np.int64(max(zp, 240)))
    plan = plan_conv_exact(pack_conv(wt, w_zp, g, isa=isa), (c, 1, w), np.uint8, x_zp, bias, rq)
    return plan, wt, np.broadcast_to(np.asarray(w_zp, np.int64), (m,)), g, bias, rq


def _want(x_nchw, plan, wt, w_zp, g, bias, rq):
    n, m = x_nchw.shape[0], plan.m
    acc = np.empty((n, m, 1, plan.ow), np.int64)
    conv2d_acc_ref(x_nchw, wt, plan.x_zp, w_zp, bias, g, acc)
    want = np.empty((n, m, plan.ow), np.uint8)
    requant_float_ref(((acc + 2**31) % 2**32 - 2**31).reshape(n, m, plan.ow), rq[1], rq[2], rq[3], rq[4], want)
    return want.transpose(0, 2, 1).reshape(n, 1, plan.ow, m)       # channels-last


@pytest.mark.parametrize("isa", ISAS)
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), c=st.sampled_from([1, 1, 2, 3]), kw=st.integers(1, 100),
       stride=st.integers(1, 5), pads=st.sampled_from([(0, 0), (0, 3), (2, 0), (5, 7)]), extra=st.integers(0, 9),
       m=st.sampled_from([1, 7, 32, 33]), n=st.integers(1, 3), threads=st.sampled_from([1, 2]),
       ends=st.booleans())
@example(seed=0, c=1, kw=80, stride=4, pads=(0, 0), extra=0, m=32, n=2, threads=2, ends=True)  # the audio stem
@example(seed=1, c=1, kw=13, stride=3, pads=(0, 0), extra=0, m=7, n=3, threads=1, ends=True)  # K % 4, exact end
@example(seed=2, c=1, kw=67, stride=2, pads=(0, 0), extra=0, m=33, n=3, threads=2, ends=True)  # AMX, K % 4
def test_windows_equal_the_reference(isa, seed, c, kw, stride, pads, extra, m, n, threads, ends):
    """A Conv1d over a (N, C, W) uint8 signal (as (N, C, 1, W)), bound and frozen, channels-last
    in and out: the bytes of the reference; W = (OW - 1)*stride + KW - pads + extra, so extra == 0
    ends the last window at the signal's (padded) end."""
    rng = np.random.default_rng(seed)
    ow = int(rng.integers(1, 60)) if rng.integers(0, 2) else int(rng.integers(60, 400))
    w = max(1, (ow - 1) * stride + kw - sum(pads) + extra)
    x_zp = int(rng.choice([0, 255, int(rng.integers(0, 256))]))
    before = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(threads)
    try:
        with running(isa) as isa:
            try:
                plan, wt, w_zp, g, bias, rq = _plan(rng, c, kw, stride, *pads, m, w, x_zp, ends, isa)
            except ValueError:
                return                          # the kernel does not fit the padded signal
            x = rng.integers(0, 256, (n, 1, w, c)).astype(np.uint8)
            if ends:
                x[:, :, ::3] = 255
                x[:, :, 1::4] = 0
            want = _want(x.transpose(0, 3, 1, 2), plan, wt, w_zp, g, bias, rq)
            got = np.full(want.shape, 3, np.uint8)
            bound = BoundPlan(plan, n, "nhwc", "nhwc", np.uint8, "conv")
            bound(x, got)
            assert np.array_equal(got, want)
            frozen = np.full(want.shape, 5, np.uint8)
            call = bound.freeze(x, frozen)
            x[...] = rng.integers(0, 256, x.shape)
            call()
            assert np.array_equal(frozen, _want(x.transpose(0, 3, 1, 2), plan, wt, w_zp, g, bias, rq))
    finally:
        kernel_threads.set_num_threads(before)


def test_window_rows_takes_the_one_row_uint8_convs_only():
    """The in-place descriptor test: a one-channel Conv1d's windows qualify; an int8 image (the
    exact engine's add = 128 on VNNI), two image rows, or a channel slice of the image (Cg < C) do not."""
    gg = gemm_geo(2 * 19, 80, 32, "avx512vnni")
    cgeo = np.array([1, 4, 0, 0, 1, 1, 1, 19], np.int64)
    x = np.zeros(2 * 152, np.uint8)
    assert window_rows(x, conv_geo(gg, (2, 1, 152, 1), 0, 1, 1, 80, cgeo, 0), 0)
    assert not window_rows(x, conv_geo(gg, (2, 1, 152, 1), 0, 1, 1, 80, cgeo, 0), 128)
    g2 = gemm_geo(2 * 2 * 19, 80, 32, "avx512vnni")
    assert not window_rows(np.zeros(2 * 2 * 152, np.uint8), conv_geo(g2, (2, 2, 152, 1), 0, 1, 1, 80,
                                       np.array([1, 4, 0, 0, 1, 1, 2, 19], np.int64), 0), 0)
    gc = gemm_geo(2 * 19, 80, 32, "avx512vnni")
    assert not window_rows(np.zeros(2 * 152 * 2, np.uint8), conv_geo(gc, (2, 1, 152, 2), 0, 1, 1, 80, cgeo, 0), 0)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("kw, stride, extra", [(80, 4, 0), (13, 3, 0), (13, 3, 2), (7, 5, 0), (1, 1, 0), (67, 2, 0)])
def test_windows_never_read_past_the_signal(isa, kw, stride, extra):
    """The last image's signal ends right before an inaccessible page: in-place window reads (whose
    last word runs up to 3 bytes past K) stay inside it (a read past it faults)."""
    rng = np.random.default_rng(kw)
    n, ow, m = 2, 97, 32
    w = (ow - 1) * stride + kw + extra
    buf = guarded_bytes(n * w)
    if buf is None:
        pytest.skip("no mprotect here")
    with running(isa) as isa:
        plan, wt, w_zp, g, bias, rq = _plan(rng, 1, kw, stride, 0, 0, m, w, 0, True, isa)
        x = buf.reshape(n, 1, w, 1)
        x[...] = rng.integers(0, 256, x.shape)
        got = np.empty((n, 1, ow, m), np.uint8)
        BoundPlan(plan, n, "nhwc", "nhwc", np.uint8, "conv").freeze(x, got)()
    assert np.array_equal(got, _want(x.transpose(0, 3, 1, 2), plan, wt, w_zp, g, bias, rq))
