"""Grouped convs with narrow groups (RegNetX: 16 channels a group), channels-last, every group in
one kernel call: a requantizing VNNI tile of 8 output pixels x 16 output channels that reads its
im2col straight from a padded copy of the image through a table of word offsets
(kernels.simd.microkernels.mk_taps_vnni512_q), instead of one packed GEMM per group.

Arithmetic (the ORT float requantization of kernels.requant, as kernels.fast_conv):

    acc[n, oy, ox, m] = bias[m] + sum_{ky, kx, c < Cg} (x[n, iy, ix, g*Cg + c] - x_zp) * (w[m, c, ky, kx] - w_zp[m])
    out[n, oy, ox, m] = clamp(rint_RNE(f32(acc) * mult[m]) + zp, lo, hi)        (all float32)

g = m // Mg, iy = oy*sh - pt + ky*dh, ix = ox*sw - pl + kx*dw; taps outside the image count as
x_zp. It is computed as vpdpbusd sums (four u8 x s8 products into int32, no saturation) of

    xp = x + o (o = 128 for int8 x, so xp is u8; the border of the padded copy holds x_zp + o)
    bw[k, m] = w[m, c, ky, kx] - w_zp[m]  (must fit int8),  k = (ky*KW + kx)*Cg + c
    acc = off[m] + sum_k xp[k] * bw[k, m],  off[m] = bias[m] - (x_zp + o) * sum_k bw[k, m]

all mod 2**32 (the exact sum wrapped to int32, as the GEMM engines' sums). Needs Mg % 16 == 0,
Cg % 4 == 0 and a VNNI host (kernels.cpu.has_avx512vnni); `fits` says when.
"""
from __future__ import annotations

import threading
from functools import partial
from typing import NamedTuple

import numpy as np
from numba import prange

from . import cpu
from .conv import ConvGeom, conv2d_acc_ref, conv_out_hw
from .jit import kernel
from .requant import requant_float_ref
from .simd.microkernels import TAPS_MR, mk_taps_vnni512_q
from .threads import bind_items, get_num_threads, native_split

LANES = 16            # output channels per tile (one zmm of int32)
SERIAL_OPS = 2**21    # 2*MACs below which the call stays on the calling thread (as the GEMM drivers)

# geo entries (int64) of a bound call
G_N, G_H, G_W, G_C, G_HP, G_WP, G_OH, G_OW, G_SH, G_SW, G_M, G_NXT, G_NBLK, G_STEPS, G_BPG, G_CG4, \
    G_PT, G_PL, G_ADD = range(19)


class GroupedPlan(NamedTuple):
    in_chw: tuple         # (C, H, W) of x
    x_dtype: np.dtype
    w_shape: tuple        # (M, Cg, KH, KW)
    out_hw: tuple         # (OH, OW)
    geom: ConvGeom
    pad_byte: int         # (x_zp + o) & 0xFF
    add: int              # o
    panels: np.ndarray    # int8 [block][step][16][4]
    offs: np.ndarray      # int32 (M,)
    mult: np.ndarray      # float32 (M,)
    rqs: np.ndarray       # float32 [lo - zp, hi - zp, zp]

    m = property(lambda self: self.w_shape[0])
    cg = property(lambda self: self.w_shape[1])
    kh = property(lambda self: self.w_shape[2])
    kw = property(lambda self: self.w_shape[3])
    oh = property(lambda self: self.out_hw[0])
    ow = property(lambda self: self.out_hw[1])
    pads = property(lambda self: (self.geom.pad_top, self.geom.pad_left, self.geom.pad_bottom, self.geom.pad_right))
    strides = property(lambda self: (self.geom.stride_h, self.geom.stride_w))
    dil = property(lambda self: (self.geom.dil_h, self.geom.dil_w))


def fits(w_shape, group, x_dtype, w=None, w_zp=None) -> bool:
    """Whether this kernel computes the conv: a VNNI host, 8-bit x, more than one group of
    Mg % 16 == 0 output and Cg % 4 == 0 input channels (not depthwise), and (when given) every
    w - w_zp in int8."""
    m, cg = int(w_shape[0]), int(w_shape[1])
    if group <= 1 or m % group or (m // group) % LANES or cg % 4 or np.dtype(x_dtype) not in (np.uint8, np.int8):
        return False
    if not cpu.has_avx512vnni() or cpu.best_isa() == "portable":
        return False
    if w is not None:
        bw = w.reshape(m, -1).astype(np.int64) - np.asarray(w_zp, np.int64).reshape(-1)[:, None]
        if bw.min() < -128 or bw.max() > 127:
            return False
    return True


def plan_grouped(w, w_zp, geom, in_chw, x_dtype, x_zp, bias, rq) -> GroupedPlan:
    """The plan of a grouped conv: weights w (M, Cg, KH, KW) int8/uint8, per-channel w_zp (M,),
    geom kernels.conv.ConvGeom, bias int64 (M,), rq = (True, mult float32 (M,), zp, lo, hi)."""
    m, cg, kh, kw = (int(v) for v in w.shape)
    group = int(geom.group)
    c, h, wd = (int(v) for v in in_chw)
    x_dtype = np.dtype(x_dtype)
    if not fits(w.shape, group, x_dtype, w, w_zp) or c != cg * group:
        raise ValueError(f"grouped_nhwc: weights {w.shape}, {group} groups, x {x_dtype} {in_chw} do not fit")
    if not rq[0]:
        raise ValueError("grouped_nhwc: the kernel requantizes (rq[0] must be True)")
    oh, ow = conv_out_hw(h, wd, kh, kw, geom)
    if oh < 1 or ow < 1:
        raise ValueError(f"grouped_nhwc: kernel {kh}x{kw} does not fit the input {h}x{wd}")
    w_zp = np.broadcast_to(np.asarray(w_zp, np.int64), (m,))
    k = kh * kw * cg
    bw = w.astype(np.int64).transpose(0, 2, 3, 1).reshape(m, k) - w_zp[:, None]        # (M, K), k = (ky, kx, c)
    steps = k // 4
    # [block][step][16 lanes][4]: block b holds channels 16b..16b+15 (all of one group)
    panels = bw.reshape(m // LANES, LANES, steps, 4).transpose(0, 2, 1, 3).astype(np.int8).ravel()
    o = 128 if x_dtype == np.int8 else 0
    off = np.asarray(bias, np.int64) - (int(x_zp) + o) * bw.sum(1)
    offs = ((off + 2**31) % 2**32 - 2**31).astype(np.int32)
    _, mult, zp, lo, hi = rq
    mult = np.ascontiguousarray(np.broadcast_to(np.asarray(mult, np.float32), (m,)))
    if not np.all(np.isfinite(mult)):
        raise ValueError("grouped_nhwc: mult must be finite float32")
    rqs = np.array([lo - zp, hi - zp, zp], np.float32)
    return GroupedPlan((c, h, wd), x_dtype, (m, cg, kh, kw), (oh, ow), ConvGeom(*(int(v) for v in geom)),
                       (int(x_zp) + o) & 0xFF, o, panels, offs, mult, rqs)


def tap_offsets(plan: GroupedPlan, wp: int) -> np.ndarray:
    """koff[s] (int64), the word offset of step s = (ky*KW + kx)*Cg/4 + q from a tile row's first
    word: ((ky*dh*Wp + kx*dw)*C)/4 + q (C and Cg multiples of 4)."""
    c = plan.in_chw[0]
    ky, kx, q = np.meshgrid(np.arange(plan.kh), np.arange(plan.kw), np.arange(plan.cg // 4), indexing="ij")
    return ((ky * plan.dil[0] * wp + kx * plan.dil[1]) * (c // 4) + q).astype(np.int64).ravel()


@kernel
def _fill_padded(x, xp, geo):
    """xp[n, pt + y, pl + x, :] = x[n, y, x, :] + add mod 256 (add 0 or 128), the border left as it is."""
    n_, h_, w_, c_ = geo[G_N], geo[G_H], geo[G_W], geo[G_C]
    hp, wp, pt, pl = geo[G_HP], geo[G_WP], geo[G_PT], geo[G_PL]
    add = np.uint8(geo[G_ADD])
    xb = x.reshape(x.size).view(np.uint8)
    run = w_ * c_
    for n in range(n_):
        for y in range(h_):
            s0 = (n * h_ + y) * run
            d0 = ((n * hp + pt + y) * wp + pl) * c_
            src, dst = xb[s0:s0 + run], xp[d0:d0 + run]
            if add == 0:
                dst[:] = src
            else:
                for j in range(run):
                    dst[j] = src[j] ^ add          # + 128 mod 256 (add is 0 or 128)


@kernel
def _drive(xp, geo, koff, panels, offs, dst, mult, rqs, i0, i1):
    """Tiles i0..i1-1: item ((n*OH + oy)*NXT + xt)*NBLK + b is output pixels ox = 8*xt.. of row
    oy of image n, channels 16b..16b+15 (mk_taps_vnni512_q)."""
    oh_, ow_, sh, sw = geo[G_OH], geo[G_OW], geo[G_SH], geo[G_SW]
    hp, wp, c4, nxt, nblk = geo[G_HP], geo[G_WP], geo[G_C] // 4, geo[G_NXT], geo[G_NBLK]
    steps, bpg, cg4 = geo[G_STEPS], geo[G_BPG], geo[G_CG4]
    qg = np.zeros(4, np.int64)
    qg[3] = geo[G_M]
    qout = (dst, mult, rqs)
    xw = xp.view(np.int32)
    for item in range(i0, i1):
        b = item % nblk
        rest = item // nblk
        xt = rest % nxt
        row = rest // nxt                      # n*OH + oy
        n, oy = row // oh_, row % oh_
        ox0 = xt * TAPS_MR
        m0 = row * ow_ + ox0
        qg[1] = m0 + min(TAPS_MR, ow_ - ox0)
        a_off = ((n * hp + oy * sh) * wp + ox0 * sw) * c4 + (b // bpg) * cg4
        mk_taps_vnni512_q(xw, a_off, sw * c4, koff, panels, b * steps * 64, steps, offs, b * 16, qout, m0, b * 16, qg)


@kernel(parallel=True)
def _par(xp, geo, koff, panels, offs, dst, mult, rqs, n_items, parts):
    """_drive over items 0..n_items-1 in `parts` contiguous ranges on Numba's parallel threads."""
    for p in prange(parts):
        i0, i1 = n_items * p // parts, n_items * (p + 1) // parts
        if i0 < i1:
            _drive(xp, geo, koff, panels, offs, dst, mult, rqs, i0, i1)


class BoundGrouped:
    """The plan bound to n_img NHWC images and an NHWC 8-bit out: call(x, out), and freeze(x, out)
    -> call() for these very arrays. The padded copies (border filled once with the pad byte) are
    one per calling thread for call (a Program runs batch slices through one bound call side by
    side) and one per frozen call. Thread count taken at binding: 1 below SERIAL_OPS, else
    get_num_threads()."""

    def __init__(self, plan: GroupedPlan, n_img: int, out_dtype, where: str = "conv", threads=None):
        c, h, w = plan.in_chw
        pt, pl, pb, pr = plan.pads
        hp, wp = h + pt + pb, w + pl + pr
        self.plan, self.where = plan, where
        self.x_shape = (n_img, h, w, c)
        self.out_shape = (n_img, plan.oh, plan.ow, plan.m)
        self.out_dtype = np.dtype(out_dtype)
        lo, hi = (0, 255) if self.out_dtype == np.uint8 else (-128, 127)
        zp, flo, fhi = float(plan.rqs[2]), float(plan.rqs[0]), float(plan.rqs[1])
        if self.out_dtype not in (np.uint8, np.int8) or not lo <= flo + zp <= zp <= fhi + zp <= hi:
            raise ValueError(f"{where}: out must be uint8/int8 holding lo <= zp <= hi")
        nxt = -(-plan.ow // TAPS_MR)
        nblk = plan.m // LANES
        steps = plan.kh * plan.kw * plan.cg // 4
        self.geo = np.array([n_img, h, w, c, hp, wp, plan.oh, plan.ow, plan.strides[0], plan.strides[1], plan.m,
                             nxt, nblk, steps, (plan.m // (c // plan.cg)) // LANES, plan.cg // 4, pt, pl, plan.add],
                            np.int64)
        # slack past the last image: a tile's rows beyond OW read (and discard) up to 8*sw + KW*dw pixels on
        slack = (TAPS_MR * plan.strides[1] + plan.kw * plan.dil[1] + 1) * c
        self.xp_size = n_img * hp * wp * c + slack
        self.local = threading.local()      # each calling thread's padded copy (batch slices run side by side)
        self.koff = tap_offsets(plan, wp)
        items = n_img * plan.oh * nxt * nblk
        macs = n_img * plan.oh * plan.ow * plan.m * plan.kh * plan.kw * plan.cg
        if threads is None:
            threads = 1 if 2 * macs < SERIAL_OPS else get_num_threads()
        self.threads = int(threads)
        self.items = bind_items(_drive, _par, (self.geo, self.koff, plan.panels, plan.offs),
                                (plan.mult, plan.rqs), items, self.threads)

    def _check(self, x, out):
        if type(x) is not np.ndarray or x.shape != self.x_shape or x.dtype != self.plan.x_dtype or \
                not x.flags.c_contiguous:
            raise ValueError(f"{self.where}: x must be a C-contiguous {self.plan.x_dtype} {self.x_shape}, got "
                             f"{getattr(x, 'dtype', type(x).__name__)} {np.shape(x)}")
        if type(out) is not np.ndarray or out.shape != self.out_shape or out.dtype != self.out_dtype or \
                not out.flags.c_contiguous:
            raise ValueError(f"{self.where}: out must be a C-contiguous {self.out_dtype} {self.out_shape}, got "
                             f"{getattr(out, 'dtype', None)} {getattr(out, 'shape', None)}")

    def _padded(self) -> np.ndarray:
        """A new padded copy: the border (and slack) holds the pad byte, the interior is written by each call."""
        return np.full(self.xp_size, self.plan.pad_byte, np.uint8)

    def __call__(self, x, out) -> None:
        self._check(x, out)
        xp = getattr(self.local, "xp", None)
        if xp is None:
            xp = self.local.xp = self._padded()
        _fill_padded(x, xp, self.geo)
        self.items(xp, out.reshape(-1, self.plan.m))

    def freeze(self, x, out):
        """call() running self(x, out) on these arrays, checked now, with a padded copy of its own."""
        self._check(x, out)
        return partial(_run, x, self._padded(), self.geo, self.items, out.reshape(-1, self.plan.m))


def _run(x, xp, geo, items, out2) -> None:
    _fill_padded(x, xp, geo)
    items(xp, out2)


def bind_grouped(plan: GroupedPlan, n_img: int, out_dtype, where: str = "conv", threads=None) -> BoundGrouped:
    return BoundGrouped(plan, n_img, out_dtype, where, threads)


def grouped_nhwc(x, x_zp, w, w_zp, bias, geom, rq, out, threads=None) -> None:
    """out (N, OH, OW, M) 8-bit = the requantized grouped conv of x (N, H, W, C) (module
    docstring), planned, bound and run once; ValueError when `fits` says no or an argument is bad."""
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"grouped_nhwc: x must be a 4-D (N, H, W, C) array, got {np.shape(x)}")
    plan = plan_grouped(w, w_zp, geom, (x.shape[3], x.shape[1], x.shape[2]), x.dtype, x_zp, bias, rq)
    bind_grouped(plan, x.shape[0], out.dtype, "grouped_nhwc", threads)(x, out)


def grouped_nhwc_ref(x, x_zp, w, w_zp, bias, geom, rq, out, threads=None) -> None:
    """NumPy int64 twin of grouped_nhwc (no validation; threads ignored): kernels.conv.conv2d_acc_ref
    on an NCHW copy, the sums wrapped to int32, then kernels.requant.requant_float_ref."""
    xn = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    acc = np.zeros((out.shape[0], out.shape[3], out.shape[1], out.shape[2]), np.int64)
    conv2d_acc_ref(xn, w, x_zp, np.broadcast_to(np.asarray(w_zp, np.int64), (w.shape[0],)),
                   np.asarray(bias, np.int64), geom, acc)
    acc32 = ((acc + 2**31) % 2**32 - 2**31).reshape(acc.shape[0], acc.shape[1], -1).astype(np.int32)
    q = np.empty(acc32.shape, out.dtype)
    _, mult, zp, lo, hi = rq
    requant_float_ref(acc32, np.broadcast_to(np.asarray(mult, np.float32), (w.shape[0],)), zp, lo, hi, q)
    out[...] = q.reshape(acc.shape).transpose(0, 2, 3, 1)


__all__ = ["LANES", "GroupedPlan", "BoundGrouped", "fits", "plan_grouped", "bind_grouped", "tap_offsets",
           "grouped_nhwc", "grouped_nhwc_ref"]
