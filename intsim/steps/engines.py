"""The accumulation engines of conv and matmul: one table, one choice per node at prepare.

    engine = select(mode, kernels, simd)     mode     exact | x86-u8s8-pairs | narrow
                                             kernels  fast | reference (intsim.load(kernels=...))
                                             simd     the host runs the SIMD engines and both
                                                      operands are 8-bit (kernels.cpu.best_isa)

Each engine sums acc[..] = bias + sum_k (x_k - x_zp) * (w_k - w_zp) into an int64 array the
caller allocated, under its accumulation model, and returns the count of narrow-accumulator
overflow events (0 for the exact and pair-saturating models):

    conv(x4 (N, C, H, W), b, geom, acc (N, M, OH, OW))
    gemm(a (M, K), bmat (K, N), b, acc (M, N))       packed panels when bmat is b's static weight
    batched(a (B, M, K), bmat (B, K, N), b, acc (B, M, N))

The SIMD engines also have the fused form of a conv (or a MatMul as a 1x1 conv) with its
requantization, used when compute.Bound.fused_requant proves it exact:

    fused(b, geom, x_shape (N, C, H, W), x_dtype, layouts, out_dtype, rq, where, depthwise)
        -> call(x, out), call.freeze(x, out) -> call()

the whole conv bound once to one input shape, layout pair ("nchw"/"nhwc" for x and out) and
kernel thread count (kernels.conv_plan.bind_plan, kernels.depthwise_nhwc.bind_depthwise,
kernels.grouped_nhwc.bind_grouped for narrow groups channels-last), or
None when it would be a depthwise kernel and `depthwise` is False.

`b` is the node's compute.Bound: weights, zero points, bias, the narrow model, and `packed`,
the panels each engine packs once per geometry.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from kernels import conv as kc
from kernels import conv_nchw_1x1, conv_plan, depthwise_nhwc, fast_conv, fast_pairs, gemm, grouped_nhwc, overflow, \
    x86pairs
from kernels.conv import conv_out_hw
from kernels.simd import packing, wrappers


class Engine(NamedTuple):
    name: str
    conv: Callable
    gemm: Callable
    batched: Callable
    fused: Callable = None      # the fused conv + requantization (SIMD engines only)
    bind_gemm: Callable = None  # bind_gemm(a, bmat, b, acc) -> call() of gemm on these arrays (simd-exact only)


def packed_exact(b, geom):
    """The SIMD exact engine's conv panels for `geom`, packed once."""
    if geom not in b.packed:
        b.packed[geom] = fast_conv.pack_conv(b.conv_w(), b.w_zp, geom)
    return b.packed[geom]


def packed_pairs(b, geom):
    """The pair-saturating SIMD engine's conv panels for `geom`, packed once."""
    key = ("pairs", geom)
    if key not in b.packed:
        b.packed[key] = fast_pairs.pack_conv_pairs(b.conv_w(), geom)
    return b.packed[key]


def _plain(conv_fn, gemm_fn, batched_fn, name):
    """An engine of kernels with the (x, w, x_zp, w_zp, bias, [geom,] acc) signature."""
    def conv(x4, b, geom, acc):
        conv_fn(x4, b.w, b.x_zp, b.w_zp, b.bias, geom, acc)
        return 0

    def gemm_(a, bmat, b, acc):
        gemm_fn(a, bmat, b.x_zp, b.w_zp, b.bias, acc)
        return 0

    def batched(a, bmat, b, acc):
        batched_fn(a, bmat, b.x_zp, b.w_zp, b.bias, acc)
        return 0
    return Engine(name, conv, gemm_, batched)


def _narrow(conv_fn, gemm_fn, name):
    """The narrow-accumulator engine (kernels/overflow.py): canonical K order, events counted."""
    def conv(x4, b, geom, acc):
        return conv_fn(x4, b.w, b.x_zp, b.w_zp, b.bias, geom, b.narrow, acc)

    def batched(a, bmat, b, acc):
        return sum(gemm_fn(a[i], bmat[i], b.x_zp, b.w_zp, b.bias, b.narrow, acc[i]) for i in range(a.shape[0]))

    def gemm_(a, bmat, b, acc):
        return batched(a[None], bmat[None], b, acc[None])
    return Engine(name, conv, gemm_, batched)


def fused_exact(b, geom, x_shape, x_dtype, layouts, out_dtype, rq, where="conv", depthwise=True):
    """The exact engine's fused conv: an NCHW 1x1 conv read and written in place
    (kernels.conv_nchw_1x1, when it fits), the GEMM plan of its panels, or the depthwise kernel."""
    w = b.conv_w()
    if rq[0] and conv_nchw_1x1.fits(w, b.w_zp, x_dtype, geom, layouts,
                                    conv_out_hw(x_shape[2], x_shape[3], w.shape[2], w.shape[3], geom)):
        return conv_nchw_1x1.bind_nchw_1x1(w, b.x_zp, b.bias, rq, x_shape, (geom.stride_h, geom.stride_w),
                                           out_dtype, where)
    pc = packed_exact(b, geom)
    if pc.kind == "gemm" and layouts == ("nhwc", "nhwc") and rq[0] and \
            grouped_nhwc.fits(pc.w.shape, geom.group, x_dtype, pc.w, pc.w_zp):
        # narrow groups (RegNetX): all groups in one call, tiles read from the image
        plan = grouped_nhwc.plan_grouped(pc.w, pc.w_zp, geom, x_shape[1:], x_dtype, b.x_zp, b.bias, rq)
        return grouped_nhwc.bind_grouped(plan, x_shape[0], out_dtype, where)
    if pc.kind == "gemm":
        plan = fast_conv.plan_conv_exact(pc, x_shape[1:], x_dtype, b.x_zp, b.bias, rq)
        return conv_plan.bind_plan(plan, x_shape[0], *layouts, out_dtype, where)
    if not depthwise:
        return None
    plan = fast_conv.plan_depthwise(pc, b.x_zp, b.bias, rq)
    return depthwise_nhwc.bind_depthwise(plan, x_shape, x_dtype, out_dtype, *layouts)


def fused_pairs(b, geom, x_shape, x_dtype, layouts, out_dtype, rq, where="conv", depthwise=True):
    """The pair-saturating engine's fused conv; depthwise convs are summed exactly (fused_exact),
    as onnxruntime's depthwise kernels do."""
    pc = packed_pairs(b, geom)
    if pc.kind != "gemm":
        return fused_exact(b, geom, x_shape, x_dtype, layouts, out_dtype, rq, where, depthwise)
    plan = fast_pairs.plan_conv_pairs(pc, x_shape[1:], b.x_zp, b.w_zp, b.bias, rq)
    return conv_plan.bind_plan(plan, x_shape[0], *layouts, out_dtype, where)


def _simd_exact():
    portable = ENGINES[("exact", "fast", False)]

    def conv(x4, b, geom, acc):
        fast_conv.conv2d_fast(x4, b.x_zp, packed_exact(b, geom), b.bias, acc)
        return 0

    def gemm_(a, bmat, b, acc):
        if bmat is not b.w:
            return portable.gemm(a, bmat, b, acc)
        if "b" not in b.packed:
            b.packed["b"] = packing.pack_b(bmat, b.w_zp)
        wrappers.gemm_packed(a, b.x_zp, b.packed["b"], b.bias, acc)
        return 0

    def batched(a, bmat, b, acc):
        """Per batch entry, B (an activation) packed and multiplied by the SIMD GEMM: the same
        exact sums as the portable batched kernel (activation x activation MatMul)."""
        if a.dtype not in BYTES or bmat.dtype not in BYTES:
            return portable.batched(a, bmat, b, acc)
        for i in range(a.shape[0]):
            wrappers.gemm_packed(a[i], b.x_zp, packing.pack_b(bmat[i], b.w_zp), b.bias, acc[i])
        return 0

    def bind_gemm(a, bmat, b, acc):
        """call() doing gemm_(a, bmat, b, acc) on these arrays, its setup done once
        (wrappers.bind_gemm_packed); None when B is not the bound weights."""
        if bmat is not b.w:
            return None
        if "b" not in b.packed:
            b.packed["b"] = packing.pack_b(bmat, b.w_zp)
        return wrappers.bind_gemm_packed(a, b.x_zp, b.packed["b"], b.bias, acc)
    return Engine("simd-exact", conv, gemm_, batched, fused_exact, bind_gemm)


def _simd_pairs():
    portable = ENGINES[("x86-u8s8-pairs", "fast", False)]

    def conv(x4, b, geom, acc):
        fast_pairs.conv2d_pairs_fast(x4, b.x_zp, packed_pairs(b, geom), b.w_zp, b.bias, acc)
        return 0

    def gemm_(a, bmat, b, acc):
        if bmat is not b.w:
            return portable.gemm(a, bmat, b, acc)
        if "pairs" not in b.packed:
            b.packed["pairs"] = fast_pairs.pack_b_pairs(bmat)
        fast_pairs.gemm_pairs_packed(a, b.x_zp, b.packed["pairs"], b.w_zp, b.bias, acc)
        return 0
    return Engine("simd-pairs", conv, gemm_, portable.batched, fused_pairs)


# (mode, kernels, simd) -> Engine; the reference engines are the NumPy int64 twins
ENGINES: dict = {
    ("exact", "fast", False): _plain(kc.conv2d_acc, gemm.gemm_acc, gemm.batched_gemm_acc, "portable"),
    ("exact", "reference", False): _plain(kc.conv2d_acc_ref, gemm.gemm_acc_ref, gemm.batched_gemm_acc_ref,
                                          "reference"),
    ("x86-u8s8-pairs", "fast", False): _plain(x86pairs.conv2d_acc_pairs, x86pairs.gemm_acc_pairs,
                                              x86pairs.batched_gemm_acc_pairs, "pairs"),
    ("x86-u8s8-pairs", "reference", False): _plain(x86pairs.conv2d_acc_pairs_ref, x86pairs.gemm_acc_pairs_ref,
                                                   x86pairs.batched_gemm_acc_pairs_ref, "pairs-reference"),
    ("narrow", "fast", False): _narrow(overflow.conv2d_acc_narrow, overflow.gemm_acc_narrow, "narrow"),
    ("narrow", "reference", False): _narrow(overflow.conv2d_acc_narrow_ref, overflow.gemm_acc_narrow_ref,
                                            "narrow-reference"),
}
ENGINES[("exact", "fast", True)] = _simd_exact()
ENGINES[("x86-u8s8-pairs", "fast", True)] = _simd_pairs()
KERNEL_SETS = ("fast", "reference")


def select(mode: str, kernels: str, simd: bool) -> Engine:
    """The engine for an accumulation `mode` ("exact", "x86-u8s8-pairs", or "narrow" for every
    modelled narrow accumulator), kernel set and SIMD eligibility; the reference set has no
    SIMD variant."""
    return ENGINES[(mode, kernels, simd and (mode, kernels, True) in ENGINES)]


BYTES = (np.dtype(np.uint8), np.dtype(np.int8))
