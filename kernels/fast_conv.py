"""Fast exact integer 2-D convolution (NCHW) through the fast GEMM engine.

Contract (as kernels.conv.conv2d_acc, for x uint8/int8 and w int8/uint8, int4 weights as int8):

    acc[n, m, oy, ox] = bias[m] + sum_{c, ky, kx} (x[n, g*Cg + c, iy, ix] - x_zp) * (w[m, c, ky, kx] - w_zp[m])

with g = m // (M / group), iy = oy*sh - pt + ky*dh, ix = ox*sw - pl + kx*dw; taps outside the
image count as x_zp (contribute 0). acc int32 (the exact sum wrapped mod 2**32) or int64 (exact).

- General and grouped convs: per chunk of images and per group, ONE fast GEMM (kernels.simd)
  on the NHWC im2col rows A[(n*OH + oy)*OW + ox, k], k = (ky*KW + kx)*Cg + c (kernels.conv_rows;
  an exact sum does not depend on the K order; plain 1x1 convs read the transposed x itself); the
  weights B[k, j] = w[g*Mg + j, c, ky, kx] are packed once by `pack_conv`; the int32 sums are
  written (or requantized) into the NCHW output by kernels.conv_rows.rows_to_nchw.
- Depthwise (group == C, one input channel per group): a dedicated kernel; per output plane,
  int32 sums of the KH*KW products (|product| < 2**17, so exact for KH*KW < 2**14), plus bias in int64.
The fused variants apply the ORT float requantization of kernels.requant per output channel.
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np

from . import cpu
from .conv import ConvGeom, conv2d_acc, conv2d_acc_ref, conv_out_hw
from .conv_plan import ConvPlan, GroupPlan, make_plan, run_plan
from .conv_rows import conv_geo
from .fast_depthwise import depthwise
from .simd import packing
from .simd.drivers import bind_packed, gemm_geo, rq_none, run_packed
from .simd.packing import PackedB, fits_int32, offsets, pack_b, vector_arg
from .requant import requant_float, requant_float_ref


class PackedConv(NamedTuple):
    """Conv weights prepared once: `packs` holds one PackedB per group (GEMM kinds), or the
    zero-point-subtracted taps wz (M, KH*KW) int32 for the depthwise kind."""
    kind: str                 # "gemm" | "depthwise" | "portable"
    geom: ConvGeom
    m: int
    cg: int
    kh: int
    kw: int
    packs: tuple
    wz: np.ndarray
    w: np.ndarray
    w_zp: np.ndarray


def _check_w(w, w_zp, geom):
    if not isinstance(w, np.ndarray) or w.ndim != 4 or w.dtype not in (np.int8, np.uint8):
        raise ValueError(f"pack_conv: weight w must be a 4-D int8/uint8 array, got "
                         f"{getattr(w, 'dtype', type(w))} {getattr(w, 'shape', '')}")
    if min(w.shape) < 1 or geom.group < 1 or w.shape[0] % geom.group:
        raise ValueError(f"pack_conv: weight {w.shape} does not split into {geom.group} groups")
    if w_zp.shape != (w.shape[0],):
        raise ValueError(f"pack_conv: w_zp {w_zp.shape} must be ({w.shape[0]},)")


def is_depthwise(w_shape, geom: ConvGeom) -> bool:
    return w_shape[1] == 1 and geom.group > 1 and w_shape[0] % geom.group == 0


WINDOW_AMX_MIN_K = 64     # K from which a one-channel one-row kernel (one_channel_row) packs AMX panels
                          # (the lower of this and packing.AMX_MIN_K; a
                          # Conv1d stem: its windows are read in place, kernels.conv_rows.window_rows);
                          # K = 80 stride 4 over 8 x 16000 samples, 32 out, 1 thread: 231-274 us on
                          # AMX against 433-436 on VNNI (both in place; loaded host, alternating)


def one_channel_row(w_shape, geom: ConvGeom) -> bool:
    """A kernel of one row over one input channel, no groups, no dilation: the first conv of a
    raw-signal Conv1d (its im2col rows are overlapping windows of the signal)."""
    return w_shape[1] == 1 and w_shape[2] == 1 and geom.group == 1 and geom.dil_w == 1


def pack_conv(w, w_zp, geom: ConvGeom, isa: str | None = None) -> PackedConv:
    """Prepare conv weights w (M, C/group, KH, KW) with per-channel zero points w_zp (M,)."""
    if not isinstance(w, np.ndarray) or w.ndim != 4:
        raise ValueError(f"pack_conv: weight w must be a 4-D int8/uint8 array, got {np.shape(w)}")
    w_zp = vector_arg(w_zp, w.shape[0], np.int64, "w_zp", "pack_conv")
    _check_w(w, w_zp, geom)
    isa = cpu.best_isa() if isa is None else isa
    m, cg, kh, kw = w.shape
    wz = np.zeros((0, 0), np.int32)
    if isa == "portable":
        return PackedConv("portable", geom, m, cg, kh, kw, (), wz, w.copy(), w_zp)
    if is_depthwise(w.shape, geom) and kh * kw < 2**14:
        wz = (w.reshape(m, kh * kw).astype(np.int64) - w_zp[:, None]).astype(np.int32)
        return PackedConv("depthwise", geom, m, cg, kh, kw, (), wz, w.copy(), w_zp)
    mg = m // geom.group
    b = w.reshape(geom.group, mg, cg, kh, kw).transpose(0, 3, 4, 2, 1).reshape(geom.group, kh * kw * cg, mg)
    amx_min_k = min(WINDOW_AMX_MIN_K, packing.AMX_MIN_K) if one_channel_row(w.shape, geom) else None
    packs = tuple(pack_b(np.ascontiguousarray(b[g]), w_zp[g * mg:(g + 1) * mg], isa, amx_min_k)
                  for g in range(geom.group))
    return PackedConv("gemm", geom, m, cg, kh, kw, packs, wz, w.copy(), w_zp)


def _check_x(x, pc: PackedConv, where):
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.dtype not in (np.uint8, np.int8):
        raise ValueError(f"{where}: input x must be a 4-D uint8/int8 array, got "
                         f"{getattr(x, 'dtype', type(x))} {getattr(x, 'shape', '')}")
    g = pc.geom
    if x.shape[1] != pc.cg * g.group:
        raise ValueError(f"{where}: x has {x.shape[1]} channels, weights expect {pc.cg * g.group}")
    if min(g.stride_h, g.stride_w, g.dil_h, g.dil_w) < 1 or \
            min(g.pad_top, g.pad_left, g.pad_bottom, g.pad_right) < 0:
        raise ValueError(f"{where}: strides/dilations must be >= 1 and pads >= 0, got {g}")
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], pc.kh, pc.kw, g)
    if oh < 1 or ow < 1:
        raise ValueError(f"{where}: kernel {pc.kh}x{pc.kw} (dilated) is larger than the padded "
                         f"input {x.shape[2]}x{x.shape[3]}")
    return x.shape[0], pc.m, oh, ow


def _check_dst(dst, shape, dtypes, where, name):
    if not isinstance(dst, np.ndarray) or dst.shape != shape or dst.dtype not in dtypes:
        raise ValueError(f"{where}: {name} must be {'/'.join(np.dtype(d).name for d in dtypes)} "
                         f"{shape}, got {getattr(dst, 'dtype', None)} {getattr(dst, 'shape', None)}")
    if not dst.flags.c_contiguous:
        raise ValueError(f"{where}: {name} must be C-contiguous")


def plan_conv_exact(pc: PackedConv, in_chw, x_dtype, x_zp, bias, rq) -> ConvPlan:
    """The conv plan (kernels.conv_plan) of a GEMM-kind pc: per group, the fast GEMM with bias and
    zero points in its column offsets (kernels.simd.packing.offsets), nothing added afterwards.
    bias: int64 (M,); rq as kernels.conv_rows.rows_to_nchw."""
    if pc.kind != "gemm":
        raise ValueError(f"plan_conv_exact: a {pc.kind} conv has no GEMM plan")
    mg = pc.m // pc.geom.group
    zeros = np.zeros(mg, np.int64)
    groups = []
    for gi, pack in enumerate(pc.packs):
        offs, o = offsets(pack, np.dtype(x_dtype), x_zp, bias[gi * mg:(gi + 1) * mg])
        groups.append(GroupPlan(partial(_exact_gemm, pack, offs, o), zeros, zeros, False,
                                partial(_exact_bind_q, pack, offs, o, gi * mg)))
    return make_plan(in_chw, x_dtype, x_zp, pc.geom, (pc.m, pc.cg, pc.kh, pc.kw), groups, rq)


def _exact_gemm(pack: PackedB, offs, o, cols, raw):
    """raw (rows, Mg) = the int32 sums of cols (rows, K)."""
    run_packed(cols.reshape(-1), gemm_geo(cols.shape[0], pack.k, pack.n, pack.isa), o, pack, offs, raw, rq_none())


def _exact_bind_q(pack: PackedB, offs, o, c0, rows, conv, x_shape, rq):
    """GroupPlan.bind_q of the exact engine: call(src, q) writes q (rows, Mg) 8-bit (unit column
    stride, any row stride: requantized in the micro-kernel's registers) from cols (rows, K)
    flattened, or with conv = (c0, cg, kh, kw, cgeo, pad) from the NHWC image of shape x_shape
    flattened, its im2col rows packed tile by tile (kernels.conv_rows.conv_geo)."""
    geo = gemm_geo(rows, pack.k, pack.n, pack.isa)
    if conv is not None:
        geo = conv_geo(geo, x_shape, *conv)
    return bind_packed(geo, o, pack, offs, group_rq(rq, c0, pack.n))


def group_rq(rq, c0, mg):
    """rq for the group whose output channels are c0..c0+mg-1: mult as given when it has mg
    entries (already the group's), else its slice c0:c0+mg of the conv's (M,) multipliers."""
    mult = rq[1]
    if mult.shape[0] == mg:
        return rq
    if mult.shape[0] < c0 + mg:
        raise ValueError(f"gemm_q: mult has {mult.shape[0]} entries, the group needs {mg} (channels {c0}..)")
    return (rq[0], np.ascontiguousarray(mult[c0:c0 + mg]), rq[2], rq[3], rq[4])


class DepthwisePlan(NamedTuple):
    """A depthwise conv's run-time constants, prepared once (kernels.fast_depthwise.depthwise
    still checks every argument on each call)."""
    pc: PackedConv
    x_zp: int
    bias: np.ndarray
    geo: np.ndarray
    rq: tuple


def plan_depthwise(pc: PackedConv, x_zp, bias, rq) -> DepthwisePlan:
    """The plan of a depthwise-kind pc: bias int64 (M,), rq as kernels.fast_depthwise.depthwise."""
    if pc.kind != "depthwise":
        raise ValueError(f"plan_depthwise: a {pc.kind} conv is not depthwise")
    g = pc.geom
    geo = np.array([pc.kh, pc.kw, g.stride_h, g.stride_w, g.pad_top, g.pad_left, g.dil_h, g.dil_w], np.int64)
    return DepthwisePlan(pc, int(x_zp), np.ascontiguousarray(bias, np.int64), geo, rq)


def run_depthwise_plan(plan: DepthwisePlan, x, dst) -> None:
    """dst = the planned depthwise conv of x (exact sums, fused requant when rq[0])."""
    depthwise(np.ascontiguousarray(x), plan.x_zp, plan.pc.wz, plan.bias, plan.geo, dst, plan.rq)


def _depthwise(x, x_zp, pc: PackedConv, bias, dst, rq):
    run_depthwise_plan(plan_depthwise(pc, x_zp, bias, rq), x, dst)


def _depthwise_fits(x, x_zp, pc, bias):
    info = np.iinfo(x.dtype)
    amax = max(abs(int(info.max) - int(x_zp)), abs(int(info.min) - int(x_zp)))
    bound = np.abs(bias.astype(np.float64)) + amax * np.abs(pc.wz.astype(np.float64)).sum(1)
    return bool(bound.max(initial=0.0) < 2.0**31 - 2**12)


def _prepare(x, x_zp, pc, bias, where):
    if not isinstance(pc, PackedConv):
        raise ValueError(f"{where}: weights must come from pack_conv")
    shape = _check_x(x, pc, where)
    info = np.iinfo(x.dtype)
    if not info.min <= int(x_zp) <= info.max:
        raise ValueError(f"{where}: x_zp {x_zp} outside the {x.dtype} range")
    return shape, vector_arg(bias, pc.m, np.int64, "bias", where)


def conv2d_fast(x, x_zp, pc: PackedConv, bias, acc) -> None:
    """acc (N, M, OH, OW) int32 (wraps) or int64 (exact): the conv of the module docstring."""
    where = "conv2d_fast"
    shape, bias = _prepare(x, x_zp, pc, bias, where)
    _check_dst(acc, shape, (np.int32, np.int64), where, "acc")
    exact64 = acc.dtype == np.int64 and not _fits(x, x_zp, pc, bias)
    if pc.kind == "portable" or exact64:
        conv2d_acc(x, pc.w, x_zp, pc.w_zp, bias, pc.geom, acc)
    elif pc.kind == "depthwise":
        _depthwise(x, x_zp, pc, bias, acc, rq_none())
    else:
        run_plan(plan_conv_exact(pc, x.shape[1:], x.dtype, x_zp, bias, rq_none()), x, acc, where)


def _fits(x, x_zp, pc, bias):
    if pc.kind == "depthwise":
        return _depthwise_fits(x, x_zp, pc, bias)
    mg = pc.m // pc.geom.group
    return all(fits_int32(p, x.dtype, x_zp, bias[g * mg:(g + 1) * mg]) for g, p in enumerate(pc.packs))


def conv2d_fast_ref(x, x_zp, pc: PackedConv, bias, acc) -> None:
    """NumPy int64 twin of conv2d_fast (from the unpacked weights kept in pc)."""
    bias = np.broadcast_to(np.asarray(bias, np.int64), (pc.m,))
    conv2d_acc_ref(x, pc.w, x_zp, pc.w_zp, bias, pc.geom, acc)


def conv2d_fast_requant(x, x_zp, pc: PackedConv, bias, mult, zp, lo, hi, out) -> None:
    """out (N, M, OH, OW) uint8/int8 = clamp(rint_RNE(f32(acc) * mult[m]) + zp, lo, hi), all
    float32, acc the int32 (wrapped) sum of conv2d_fast."""
    where = "conv2d_fast_requant"
    shape, bias = _prepare(x, x_zp, pc, bias, where)
    _check_dst(out, shape, (np.uint8, np.int8), where, "out")
    mult = vector_arg(mult, pc.m, np.float32, "mult", where)
    info = np.iinfo(out.dtype)
    if not (info.min <= lo <= zp <= hi <= info.max) or not np.all(np.isfinite(mult)):
        raise ValueError(f"{where}: need finite mult and {info.min} <= lo <= zp <= hi <= {info.max}")
    rq = (True, mult, np.int64(zp), np.int64(lo), np.int64(hi))
    if pc.kind == "portable":
        acc = np.empty(shape, np.int32)
        conv2d_acc(x, pc.w, x_zp, pc.w_zp, bias, pc.geom, acc)
        requant_float(acc.reshape(shape[0], shape[1], -1), mult, zp, lo, hi, out.reshape(shape[0], shape[1], -1))
    elif pc.kind == "depthwise":
        _depthwise(x, x_zp, pc, bias, out, rq)
    else:
        run_plan(plan_conv_exact(pc, x.shape[1:], x.dtype, x_zp, bias, rq), x, out, where)


def conv2d_fast_requant_ref(x, x_zp, pc: PackedConv, bias, mult, zp, lo, hi, out) -> None:
    """NumPy twin: int64 conv wrapped to int32, then the float32 requantization."""
    acc = np.empty(out.shape, np.int32)
    conv2d_fast_ref(x, x_zp, pc, bias, acc)
    mult = np.broadcast_to(np.asarray(mult, np.float32), (pc.m,))
    requant_float_ref(acc.reshape(out.shape[0], out.shape[1], -1), mult, zp, lo, hi,
                      out.reshape(out.shape[0], out.shape[1], -1))
