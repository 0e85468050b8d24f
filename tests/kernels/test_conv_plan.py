"""kernels.conv_plan: a plan is checked once, then run on any batch of the planned input shape
with the same results as the one-shot wrappers; bad x/out are refused before any memory is
touched."""
import numpy as np
import pytest
from hypothesis import assume, example, given, settings, strategies as st

from kernels.conv import ConvGeom, conv2d_acc_ref
from kernels.conv_plan import BoundPlan, make_plan, run_plan
from kernels.fast_conv import pack_conv, plan_conv_exact
from kernels.simd.drivers import rq_none
from kernels.fast_pairs import conv2d_pairs_fast_requant, pack_conv_pairs, plan_conv_pairs
from kernels.x86pairs import conv2d_acc_pairs_ref


def _case(rng, group=1, k=3):
    w = rng.integers(-128, 128, (6 * group, 4, k, k)).astype(np.int8)
    g = ConvGeom(1, 2, 1, 0, 1, 2, 1, 1, group)
    return w, g, (4 * group, 7, 9)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 2]), st.lists(st.integers(1, 5), min_size=1, max_size=3))
def test_one_plan_many_batches(seed, group, batches):
    rng = np.random.default_rng(seed)
    w, g, chw = _case(rng, group)
    m = w.shape[0]
    w_zp = rng.integers(-128, 128, m)
    bias = rng.integers(-2**20, 2**20, m)
    exact = plan_conv_exact(pack_conv(w, w_zp, g), chw, np.uint8, 17, bias, rq_none())
    pairs = plan_conv_pairs(pack_conv_pairs(w, g), chw, 17, w_zp, bias, rq_none())
    for n in batches:
        x = rng.integers(0, 256, (n,) + chw).astype(np.uint8)
        oh, ow = exact.oh, exact.ow
        got, want = np.empty((n, m, oh, ow), np.int64), np.empty((n, m, oh, ow), np.int64)
        run_plan(exact, x, got)
        conv2d_acc_ref(x, w, 17, w_zp, bias, g, want)
        assert np.array_equal(got, want)
        run_plan(pairs, x, got)
        conv2d_acc_pairs_ref(x, w, 17, w_zp, bias, g, want)
        assert np.array_equal(got, want)


def test_run_plan_refuses_bad_x_and_out():
    rng = np.random.default_rng(0)
    w, g, chw = _case(rng)
    plan = plan_conv_exact(pack_conv(w, 0, g), chw, np.uint8, 0, np.zeros(6, np.int64), rq_none())
    x = np.zeros((2,) + chw, np.uint8)
    out = np.empty((2, 6, plan.oh, plan.ow), np.int32)
    for bad_x in (x.astype(np.int8), x[:, :3], x[0], x.astype(np.int64)):
        with pytest.raises(ValueError, match="x must be"):
            run_plan(plan, bad_x, out)
    for bad_out in (out[:1], out.astype(np.uint8), np.empty((2, 6, plan.ow, plan.oh), np.int32).transpose(0, 1, 3, 2)):
        with pytest.raises(ValueError, match="out must be"):
            run_plan(plan, x, bad_out)
    with pytest.raises(ValueError, match="layouts"):
        run_plan(plan, x, out, "conv", "nchwc")
    with pytest.raises(ValueError, match="x must be"):
        run_plan(plan, x, out, "conv", "nhwc")          # an NCHW array declared channels-last
    with pytest.raises(ValueError, match="C-contiguous"):
        run_plan(plan, x.transpose(0, 2, 3, 1), out, "conv", "nhwc")
    xh = np.zeros((2, chw[1], chw[2], chw[0]), np.uint8)
    with pytest.raises(ValueError, match="out must be"):
        run_plan(plan, xh, out, "conv", "nhwc", "nhwc")


def test_bound_plan_refuses_what_run_plan_refuses():
    """A bound plan given arrays other than those it was bound for raises run_plan's errors
    (it never runs its descriptors on them); it cannot be bound without requantization."""
    rng = np.random.default_rng(2)
    w, g, chw = _case(rng)
    rq = (True, np.full(6, 1e-3, np.float32), np.int64(3), np.int64(0), np.int64(255))
    plan = plan_conv_exact(pack_conv(w, 0, g), chw, np.uint8, 0, np.zeros(6, np.int64), rq)
    bound = BoundPlan(plan, 2, "nchw", "nhwc", np.uint8, "conv")
    x = np.zeros((2,) + chw, np.uint8)
    out = np.empty((2, plan.oh, plan.ow, 6), np.uint8)
    bound(x, out)
    for bad_x in (x.astype(np.int8), x[:, :3], x[0], x.transpose(0, 2, 3, 1)):
        with pytest.raises(ValueError, match="x must be"):
            bound(bad_x, out)
    for bad_out in (out[:1], out.astype(np.int32), np.empty((2, 6, plan.oh, plan.ow), np.uint8),
                    np.empty((2, plan.ow, plan.oh, 6), np.uint8).transpose(0, 2, 1, 3)):
        with pytest.raises(ValueError, match="out must be"):
            bound(x, bad_out)
    small = np.zeros((1,) + chw, np.uint8)        # another batch: the general path, same values
    got, want = np.empty((1, plan.oh, plan.ow, 6), np.uint8), np.empty((1, plan.oh, plan.ow, 6), np.uint8)
    bound(small, got)
    run_plan(plan, small, want, "conv", "nchw", "nhwc")
    assert np.array_equal(got, want)
    with pytest.raises(ValueError, match="cannot be bound"):
        BoundPlan(plan._replace(rq=rq_none()), 2, "nchw", "nchw", np.uint8, "conv")
    with pytest.raises(ValueError, match="uint8/int8"):
        BoundPlan(plan, 2, "nchw", "nchw", np.int32, "conv")


def test_make_plan_refuses_inconsistent_parts():
    rng = np.random.default_rng(1)
    w, g, chw = _case(rng)
    pc = pack_conv(w, 0, g)
    good = plan_conv_exact(pc, chw, np.uint8, 0, np.zeros(6, np.int64), rq_none())
    gp = good.groups[0]
    with pytest.raises(ValueError, match="do not fit"):
        make_plan((5, 7, 9), np.uint8, 0, g, w.shape, good.groups, rq_none())
    with pytest.raises(ValueError, match="x_zp"):
        make_plan(chw, np.uint8, 256, g, w.shape, good.groups, rq_none())
    with pytest.raises(ValueError, match="does not fit"):
        make_plan((4, 1, 1), np.uint8, 0, g._replace(pad_top=0, pad_bottom=0), w.shape, good.groups, rq_none())
    with pytest.raises(ValueError, match="int64"):
        make_plan(chw, np.uint8, 0, g, w.shape, (gp._replace(off=gp.off[:3]),), rq_none())
    with pytest.raises(ValueError, match="mult"):
        make_plan(chw, np.uint8, 0, g, w.shape, good.groups, (True, np.full(6, np.nan, np.float32), 0, 0, 255))
    with pytest.raises(ValueError, match="depthwise"):
        plan_conv_exact(pack_conv(np.ones((4, 1, 3, 3), np.int8), 0, g._replace(group=4)), (4, 7, 9), np.uint8, 0,
                        np.zeros(4, np.int64), rq_none())


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 2]), st.sampled_from([1, 3]), st.integers(1, 3),
       st.sampled_from(["nchw", "nhwc"]), st.sampled_from(["nchw", "nhwc"]), st.booleans())
def test_layouts_give_the_same_values(seed, group, k, n, x_layout, out_layout, requant):
    """run_plan on channels-last x and/or out equals the NCHW run, value for value, on both
    engines, with and without the fused requantization (1x1 plain convs included)."""
    rng = np.random.default_rng(seed)
    w, g, chw = _case(rng, group, k)
    if k == 1:
        g = ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, group)
    m = w.shape[0]
    bias = rng.integers(-2**12, 2**12, m)
    x_zp = int(rng.choice([0, 17, 255]))
    rq = (True, (rng.uniform(0.5, 1, m) * 2.0 ** rng.integers(-12, -6, m)).astype(np.float32), 3, 0, 250) \
        if requant else rq_none()
    zeros = np.zeros(m, np.int64)
    plans = (plan_conv_exact(pack_conv(w, 0, g), chw, np.uint8, x_zp, bias, rq),
             plan_conv_pairs(pack_conv_pairs(w, g), chw, x_zp, zeros, bias, rq))
    x = rng.integers(0, 256, (n,) + chw).astype(np.uint8)
    x_in = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x_layout == "nhwc" else x
    dtype = np.uint8 if requant else np.int64
    for plan in plans:
        want = np.empty((n, m, plan.oh, plan.ow), dtype)
        run_plan(plan, x, want)
        got = np.empty((n, plan.oh, plan.ow, m) if out_layout == "nhwc" else want.shape, dtype)
        run_plan(plan, x_in, got, "conv", x_layout, out_layout)
        assert np.array_equal(got.transpose(0, 3, 1, 2) if out_layout == "nhwc" else got, want)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), group=st.sampled_from([1, 2, 3]), k=st.sampled_from([(3, 3), (7, 7), (1, 3)]),
       stride=st.sampled_from([1, 2]), dil=st.sampled_from([1, 2]), n=st.integers(1, 3),
       out_layout=st.sampled_from(["nchw", "nhwc"]), ends=st.booleans())
@example(seed=1770927, group=1, k=(3, 3), stride=1, dil=1, n=1, out_layout="nchw", ends=False)  # 1 in, 1 out: depthwise
def test_requantized_plans_equal_the_references(seed, group, k, stride, dil, n, out_layout, ends):
    """The requantizing paths (implicit im2col: tiles packed from the image, requantized in the
    micro-kernel) equal the int64 reference conv (exact engine) and onnxruntime's pair-saturating
    reference (pair engine) followed by the ORT float requantization formula; pads, strides,
    dilations, groups (row-strided outputs), x and weights at their ends."""
    from kernels.requant import requant_float_ref
    rng = np.random.default_rng(seed)
    kh, kw = k
    cg, mg = int(rng.choice([1, 3, 5, 11, 16, 24])), int(rng.integers(1, 20))   # both sides of IMPLICIT_MIN_RUN
    c, m = cg * group, mg * group
    h, w = int(rng.integers(kh, 14)), int(rng.integers(kw, 14))
    p = int(rng.integers(0, kh))
    g = ConvGeom(stride, stride, p, min(p, kw - 1), int(rng.integers(0, kh)), 0, dil, dil, group)
    wt = rng.integers(-128, 128, (m, cg, kh, kw)).astype(np.int8)
    x = rng.integers(0, 256, (n, c, h, w)).astype(np.uint8)
    x_zp = int(rng.choice([0, 255, 128]))
    if ends:
        x[..., ::2] = 255
        wt[::2] = -128
    bias = rng.integers(-2**14, 2**14, m)
    mult = (rng.uniform(0.5, 1, m) * 2.0 ** rng.integers(-14, -8, m)).astype(np.float32)
    rq = (True, mult, np.int64(int(rng.integers(0, 256))), np.int64(0), np.int64(255))
    rq = (True, mult, rq[2], np.int64(min(int(rq[2]), 20)), np.int64(max(int(rq[2]), 240)))
    zeros = np.zeros(m, np.int64)
    try:
        exact = plan_conv_exact(pack_conv(wt, 0, g), (c, h, w), np.uint8, x_zp, bias, rq)
    except ValueError:
        return                                  # the kernel does not fit the padded input
    pc = pack_conv_pairs(wt, g)
    oh, ow = exact.oh, exact.ow
    if pc.kind == "depthwise":
        # C/group == M/group == 1: onnxruntime (and the pair engine) sum these exactly with the
        # depthwise kernel, which has no GEMM plan; its one-shot entry point is checked instead.
        acc = np.empty((n, m, oh, ow), np.int64)
        conv2d_acc_pairs_ref(x, wt, x_zp, zeros, bias, g, acc)
        want = np.empty((n, m, oh * ow), np.uint8)
        requant_float_ref(((acc + 2**31) % 2**32 - 2**31).reshape(n, m, oh * ow), mult, rq[2], rq[3], rq[4], want)
        got = np.empty((n, m, oh, ow), np.uint8)
        conv2d_pairs_fast_requant(x, x_zp, pc, zeros, bias, mult, rq[2], rq[3], rq[4], got)
        assert np.array_equal(got.reshape(n, m, oh * ow), want)
        plans = ((exact, conv2d_acc_ref),)
    else:
        plans = ((exact, conv2d_acc_ref),
                 (plan_conv_pairs(pc, (c, h, w), x_zp, zeros, bias, rq), conv2d_acc_pairs_ref))
    for plan, ref in plans:
        acc = np.empty((n, m, oh, ow), np.int64)
        ref(x, wt, x_zp, zeros, bias, g, acc)
        acc32 = ((acc + 2**31) % 2**32 - 2**31)
        want = np.empty((n, m, oh * ow), np.uint8)
        requant_float_ref(acc32.reshape(n, m, oh * ow), mult, rq[2], rq[3], rq[4], want)
        got = np.empty((n, oh, ow, m) if out_layout == "nhwc" else (n, m, oh, ow), np.uint8)
        run_plan(plan, x, got, "conv", "nchw", out_layout)
        if BoundPlan.fits(plan, n):      # the bound form, from either input layout
            xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            for x_layout, x_in in (("nchw", x), ("nhwc", xh)):
                bound = np.full_like(got, 7)
                BoundPlan(plan, n, x_layout, out_layout, np.uint8, "conv")(x_in, bound)
                assert np.array_equal(bound, got)
        got = got.transpose(0, 3, 1, 2) if out_layout == "nhwc" else got
        assert np.array_equal(got.reshape(n, m, oh * ow), want)


@pytest.mark.parametrize("engine", ["exact", "pairs"])
@pytest.mark.parametrize("x_layout", ["nchw", "nhwc"])
def test_bound_plan_one_call_path(engine, x_layout):
    """A one-group plan written channels-last calls its GEMM once on x's pixels (BoundPlan.direct:
    a plain 1x1 reads them in place; a 3x3 packs its tiles from the image when its kernel rows are
    long, else goes through im2col rows): the same bytes as run_plan. Two groups: no direct call
    (frozen, one bound call per group when both pack from the image)."""
    rng = np.random.default_rng(5)
    # (kernel, channels, groups, direct): 3x3 over 16 channels has 48-byte kernel rows (implicit
    # im2col, IMPLICIT_MIN_RUN = 32), over 4 channels 12-byte rows (im2col rows first)
    # 3x3 over 32 channels in 2 groups: each group packs from the image (a frozen call per group)
    for k, c, group, direct in ((1, 8, 1, True), (3, 16, 1, True), (3, 4, 1, False), (1, 8, 2, False),
                                (3, 32, 2, False)):
        w = rng.integers(-128, 128, (12, c // group, k, k)).astype(np.int8)
        g = ConvGeom(1, 1, k // 2, k // 2, k // 2, k // 2, 1, 1, group)
        rq = (True, rng.uniform(1e-4, 1e-2, 12).astype(np.float32), np.int64(5), np.int64(0), np.int64(255))
        bias = rng.integers(-5000, 5000, 12)
        plan = plan_conv_exact(pack_conv(w, 0, g), (c, 5, 7), np.uint8, 3, bias, rq) if engine == "exact" else \
            plan_conv_pairs(pack_conv_pairs(w, g), (c, 5, 7), 3, np.zeros(12, np.int64), bias, rq)
        x = rng.integers(0, 256, (3, c, 5, 7)).astype(np.uint8)
        x_in = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x_layout == "nhwc" else x
        bound = BoundPlan(plan, 3, x_layout, "nhwc", np.uint8, "conv")
        assert (bound.direct is not None) == direct
        got, want = np.full((3, 5, 7, 12), 9, np.uint8), np.empty((3, 5, 7, 12), np.uint8)
        bound(x_in, got)
        run_plan(plan, x, want, "conv", "nchw", "nhwc")
        assert np.array_equal(got, want)
        # frozen on these arrays (intsim.frozen), both output layouts: later calls read x_in as it is then
        for out_layout, shape in (("nhwc", (3, 5, 7, 12)), ("nchw", (3, 12, 5, 7))):
            frozen, want = np.full(shape, 4, np.uint8), np.empty(shape, np.uint8)
            call = BoundPlan(plan, 3, x_layout, out_layout, np.uint8, "conv").freeze(x_in, frozen)
            for _ in range(2):
                x_in[...] = rng.integers(0, 256, x_in.shape)
                call()
                x = np.ascontiguousarray(x_in.transpose(0, 3, 1, 2)) if x_layout == "nhwc" else x_in
                run_plan(plan, x, want, "conv", "nchw", out_layout)
                assert np.array_equal(frozen, want)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), engine=st.sampled_from(["exact", "pairs"]), k=st.sampled_from([1, 3]),
       more=st.sampled_from([0, 2]), n=st.integers(1, 3), x_layout=st.sampled_from(["nchw", "nhwc"]),
       out_layout=st.sampled_from(["nchw", "nhwc"]), ends=st.booleans())
def test_one_pixel_or_one_channel_sides_run_channels_last(seed, engine, k, more, n, x_layout, out_layout, ends):
    """A side of one pixel (an SE block's 1x1 convs; a kxk conv over a kxk image) or one channel
    holds the same bytes NCHW and NHWC, so BoundPlan runs it channels-last (BoundPlan.runs: no
    transpose pass; one output pixel: the one-call path): called and frozen, it equals the int64
    reference conv followed by the ORT float requantization, at the ends of x, w and zero points,
    on the values x holds at each call; an NCHW x that is not C-contiguous (a channel slice) is
    refused by the bound path and runs the checked general path, with the same result."""
    from kernels.requant import requant_float_ref
    rng = np.random.default_rng(seed)
    c, m = int(rng.choice([1, 5, 16, 40])), int(rng.choice([1, 4, 17, 32]))
    hw, o = k + more, more + 1
    wt = rng.integers(-128, 128, (m, c, k, k)).astype(np.int8)
    x = rng.integers(0, 256, (n, c, hw, hw)).astype(np.uint8)
    x_zp = int(rng.choice([0, 255, 128]))
    if ends:
        x[::2] = 255
        wt[::2] = -128
    g = ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1)
    bias = rng.integers(-2**14, 2**14, m)
    mult = (rng.uniform(0.5, 1, m) * 2.0 ** rng.integers(-14, -8, m)).astype(np.float32)
    zp = int(rng.integers(0, 256))
    rq = (True, mult, np.int64(zp), np.int64(min(zp, 20)), np.int64(max(zp, 240)))
    zeros = np.zeros(m, np.int64)
    pc = pack_conv_pairs(wt, g)
    if engine == "exact" or pc.kind == "depthwise":     # (one channel in and out: no pair GEMM plan)
        plan, ref = plan_conv_exact(pack_conv(wt, 0, g), (c, hw, hw), np.uint8, x_zp, bias, rq), conv2d_acc_ref
    else:
        plan, ref = plan_conv_pairs(pc, (c, hw, hw), x_zp, zeros, bias, rq), conv2d_acc_pairs_ref
    if not BoundPlan.fits(plan, n):
        return

    def reference(xv):
        acc = np.empty((n, m, o, o), np.int64)
        ref(xv, wt, x_zp, zeros, bias, g, acc)
        want = np.empty((n, m, o * o), np.uint8)
        requant_float_ref(((acc + 2**31) % 2**32 - 2**31).reshape(n, m, o * o), mult, rq[2], rq[3], rq[4], want)
        return want.reshape(n, m, o, o)

    x_in = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x_layout == "nhwc" else x.copy()
    bound = BoundPlan(plan, n, x_layout, out_layout, np.uint8, "conv")
    assert bound.runs == ("nhwc" if x_layout == "nhwc" or more == 0 and k == 1 or c == 1 else "nchw",
                          "nhwc" if out_layout == "nhwc" or more == 0 or m == 1 else "nchw")
    as_nchw = (lambda y: y.transpose(0, 3, 1, 2)) if out_layout == "nhwc" else (lambda y: y)
    got = np.full((n, o, o, m) if out_layout == "nhwc" else (n, m, o, o), 7, np.uint8)
    bound(x_in, got)
    assert np.array_equal(as_nchw(got), reference(x))
    frozen = np.full_like(got, 9)
    call = bound.freeze(x_in, frozen)
    for _ in range(2):          # a later replay reads x_in as it is then
        x2 = rng.integers(0, 256, x.shape).astype(np.uint8)
        x_in[...] = np.ascontiguousarray(x2.transpose(0, 2, 3, 1)) if x_layout == "nhwc" else x2
        call()
        assert np.array_equal(as_nchw(frozen), reference(x2))
    if x_layout == "nchw":      # a channel slice of a wider NCHW array: not C-contiguous
        wide = np.zeros((n, c + 1, hw, hw), np.uint8)
        wide[:, 1:] = x2
        strided = np.full_like(got, 5)
        bound(wide[:, 1:], strided)
        assert np.array_equal(as_nchw(strided), reference(x2))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), engine=st.sampled_from(["exact", "pairs"]), n=st.integers(1, 3),
       hw=st.sampled_from([(1, 1), (1, 7), (5, 3)]), c=st.sampled_from([1, 3, 5, 64, 130]),
       m=st.sampled_from([1, 17, 33]), ends=st.booleans())
def test_gemm_rows_equals_the_bound_call(seed, engine, n, hw, c, m, ends):
    """BoundPlan.gemm_rows (a plain 1x1 conv's pixels as GEMM rows: a (..., C), y (..., M)) writes
    the bytes the bound 4-D call writes, which equal the int64 reference conv and the ORT float
    requantization (K = C odd or % 4 != 0, weights and zero points at the ends, both engines); a
    non-contiguous a takes the checked path, same bytes; an a of another size is refused."""
    from kernels.requant import requant_float_ref
    # one input and one output channel is onnxruntime's depthwise case (fast_pairs.is_ort_depthwise):
    # the pairs engine runs it on the depthwise path, with no GEMM plan to bind rows to
    assume(not (engine == "pairs" and c == 1 and m == 1))
    rng = np.random.default_rng(seed)
    h, w_ = hw
    wt = rng.integers(-128, 128, (m, c, 1, 1)).astype(np.int8)
    if ends:
        wt[::2] = 127
        wt[1::3] = -128
    x_zp = int(rng.choice([0, 255])) if ends else int(rng.integers(0, 256))
    g = ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1)
    bias = rng.integers(-2**14, 2**14, m)
    mult = (rng.uniform(0.5, 1, m) * 2.0**-10).astype(np.float32)
    rq = (True, mult, np.int64(int(rng.integers(0, 256))), np.int64(0), np.int64(255))
    zeros = np.zeros(m, np.int64)
    plan = plan_conv_exact(pack_conv(wt, 0, g), (c, h, w_), np.uint8, x_zp, bias, rq) if engine == "exact" else \
        plan_conv_pairs(pack_conv_pairs(wt, g), (c, h, w_), x_zp, zeros, bias, rq)
    bound = BoundPlan(plan, n, "nhwc", "nhwc", np.uint8, "conv")
    xh = rng.integers(0, 256, (n, h, w_, c)).astype(np.uint8)
    if ends:
        xh[..., ::2] = 255
        xh[0, 0, 0] = 0
    want = np.empty((n, h, w_, m), np.uint8)
    bound(xh, want)
    acc = np.empty((n, m, h, w_), np.int64)
    (conv2d_acc_ref if engine == "exact" else conv2d_acc_pairs_ref)(
        np.ascontiguousarray(xh.transpose(0, 3, 1, 2)), wt, x_zp, zeros, bias, g, acc)
    ref = np.empty((n, m, h * w_), np.uint8)
    requant_float_ref(((acc + 2**31) % 2**32 - 2**31).reshape(n, m, h * w_), mult, rq[2], rq[3], rq[4], ref)
    assert np.array_equal(want.transpose(0, 3, 1, 2).reshape(n, m, h * w_), ref)
    rows = n * h * w_
    for a in (xh.reshape(rows, c), xh.reshape(n, h * w_, c), np.asfortranarray(xh.reshape(rows, c))):
        y = np.full((rows, m), 3, np.uint8)
        bound.gemm_rows(a, y)
        assert np.array_equal(y, want.reshape(rows, m))
    with pytest.raises(ValueError):
        bound.gemm_rows(np.zeros((rows + 1, c), np.uint8), np.empty((rows + 1, m), np.uint8))
