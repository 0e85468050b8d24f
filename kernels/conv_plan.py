"""A GEMM-kind conv of a whole batch, checked once (the plan) and run many times.

Both SIMD conv engines (kernels.fast_conv: exact vpmaddwd sums; kernels.fast_pairs:
onnxruntime's pair-saturating vpmaddubsw sums) compute, per chunk of images and per group g,

    cols = im2col rows of x (images*OH*OW, KH*KW*Cg), K order (ky, kx, c)   (kernels.conv_rows)
    raw  = gemm_g(cols)                       int32 (rows, Mg), wrapping mod 2**32
    acc  = int64(raw) + off_g[j] - wz_g[j] * rowsum(cols)[r]
    out[n, g*Mg + j, p] = acc, int32(acc) or its ORT float requantization (rq)

and differ only in gemm_g (which includes or leaves out bias and zero-point terms) and in off_g,
wz_g. A plan holds everything that does not depend on x: the geometry, per-group GEMM callables
and offsets, the requantization. `make_plan` validates them; `run_plan` checks only x and out
(dtype, shape, contiguity) before touching memory.

x and out may each be NCHW or channels-last (NHWC) arrays (the executor keeps activations
channels-last between layers, intsim.layout). When the plan requantizes and the GEMM's sums are
the whole acc (no wz term), the micro-kernel requantizes in registers and writes bytes (gemm_q),
and for kernel rows of at least IMPLICIT_MIN_RUN bytes the GEMM packs its A tiles straight from
the NHWC image (conv_q: implicit im2col, no rows in memory); the same integers either way.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from . import conv_rows
from .workspace import scratch


class GroupPlan(NamedTuple):
    gemm: Callable        # gemm(cols (rows, K) C-contiguous, raw (rows, Mg) int32) -> None
    off: np.ndarray       # int64 (Mg,)
    wz: np.ndarray        # int64 (Mg,)
    rowsum: bool          # whether any wz is non-zero (the row sums are needed)
    gemm_q: Callable = None   # gemm_q(cols, q (rows, Mg) 8-bit, rq): the requantized rows, when the
    #                           GEMM's own sums are the whole acc (off and wz terms inside them)
    conv_q: Callable = None   # conv_q(xh (n, H, W, C), (c0, cg, kh, kw, cgeo, pad), q, rq): gemm_q
    #                           of xh's im2col rows, packed tile by tile from xh (never stored)


class ConvPlan(NamedTuple):
    in_chw: tuple         # (C, H, W) of x
    x_dtype: np.dtype
    x_zp: int
    m: int
    cg: int
    kh: int
    kw: int
    oh: int
    ow: int
    cgeo: np.ndarray      # int64 [sh, sw, pt, pl, dh, dw, OH, OW]
    plain: bool           # 1x1, unit strides, no pads, one group: the rows are x's NHWC pixels
    groups: tuple         # GroupPlan per group
    rq: tuple             # (requant, mult float32 (M,), zp, lo, hi) int64 scalars


def make_plan(in_chw, x_dtype, x_zp, geom, w_shape, groups, rq) -> ConvPlan:
    """Check and assemble a plan; geom: kernels.conv.ConvGeom, w_shape (M, Cg, KH, KW)."""
    from .conv import conv_out_hw
    c, h, w = (int(v) for v in in_chw)
    m, cg, kh, kw = (int(v) for v in w_shape)
    group = int(geom.group)
    x_dtype = np.dtype(x_dtype)
    if x_dtype not in (np.uint8, np.int8) or c != cg * group or m % group or len(groups) != group:
        raise ValueError(f"conv plan: x {x_dtype} ({c}, {h}, {w}), weights {tuple(w_shape)} and "
                         f"{group} groups ({len(groups)} planned) do not fit")
    info = np.iinfo(x_dtype)
    if not info.min <= int(x_zp) <= info.max:
        raise ValueError(f"conv plan: x_zp {x_zp} outside the {x_dtype} range")
    oh, ow = conv_out_hw(h, w, kh, kw, geom)
    if oh < 1 or ow < 1:
        raise ValueError(f"conv plan: kernel {kh}x{kw} does not fit the input {h}x{w}")
    mg = m // group
    for gp in groups:
        if gp.off.dtype != np.int64 or gp.off.shape != (mg,) or gp.wz.dtype != np.int64 or gp.wz.shape != (mg,):
            raise ValueError(f"conv plan: per-group offsets must be int64 ({mg},)")
    requant, mult = bool(rq[0]), np.ascontiguousarray(rq[1], np.float32)
    if requant and (mult.shape != (m,) or not np.all(np.isfinite(mult))):
        raise ValueError(f"conv plan: mult must be finite float32 ({m},)")
    cgeo = np.array([geom.stride_h, geom.stride_w, geom.pad_top, geom.pad_left, geom.dil_h, geom.dil_w, oh, ow],
                    np.int64)
    plain = group == 1 and conv_rows.is_plain_1x1(kh, kw, geom)
    rq = (requant, mult, np.int64(rq[2]), np.int64(rq[3]), np.int64(rq[4]))
    return ConvPlan((c, h, w), x_dtype, int(x_zp), m, cg, kh, kw, oh, ow, cgeo, plain, tuple(groups), rq)


IMPLICIT_MIN_RUN = 32   # bytes per kernel row (KW*Cg) from which the GEMM packs its tiles from the
#                         image: shorter runs are cheaper through im2col rows (MobileNetV2 stem,
#                         3x3x3 at batch 8: 938 us implicit vs 600 us through rows, one thread)
_Q8_RANGE = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}


def _dims(a, layout):
    """(N, C, H, W) of a 4-D array in `layout` ("nchw" or "nhwc")."""
    return a.shape if layout == "nchw" else (a.shape[0], a.shape[3], a.shape[1], a.shape[2])


def _shape(n, c, h, w, layout):
    return (n, c, h, w) if layout == "nchw" else (n, h, w, c)


def check_io(plan: ConvPlan, x, out, where: str, x_layout: str = "nchw", out_layout: str = "nchw") -> None:
    """x (N, C, H, W) (or (N, H, W, C) for x_layout "nhwc") of the planned dtype and shape; out
    (N, M, OH, OW) (or (N, OH, OW, M)) C-contiguous, uint8/int8 when the plan requantizes, else
    int32/int64."""
    if x_layout not in ("nchw", "nhwc") or out_layout not in ("nchw", "nhwc"):
        raise ValueError(f"{where}: layouts must be 'nchw' or 'nhwc', got {x_layout!r}, {out_layout!r}")
    c, h, w = plan.in_chw
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.dtype != plan.x_dtype or _dims(x, x_layout)[1:] != plan.in_chw:
        raise ValueError(f"{where}: x must be {plan.x_dtype} {_shape('N', c, h, w, x_layout)}, got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {np.shape(x)}")
    if x_layout == "nhwc" and not x.flags.c_contiguous:
        raise ValueError(f"{where}: an NHWC x must be C-contiguous")
    shape = _shape(x.shape[0], plan.m, plan.oh, plan.ow, out_layout)
    kinds = (np.uint8, np.int8) if plan.rq[0] else (np.int32, np.int64)
    if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype not in kinds or not out.flags.c_contiguous:
        raise ValueError(f"{where}: out must be a C-contiguous {'/'.join(np.dtype(k).name for k in kinds)} array "
                         f"of shape {shape}, got {getattr(out, 'dtype', None)} {getattr(out, 'shape', None)}")
    if plan.rq[0]:
        lo, hi = _Q8_RANGE[out.dtype]
        if not lo <= int(plan.rq[3]) <= int(plan.rq[2]) <= int(plan.rq[4]) <= hi:
            raise ValueError(f"{where}: need {lo} <= lo <= zp <= hi <= {hi}")


def run_plan(plan: ConvPlan, x, out, where: str = "conv", x_layout: str = "nchw", out_layout: str = "nchw") -> None:
    """out = the planned conv of x (module docstring). x_layout / out_layout: "nchw" (N, C, H, W)
    or "nhwc" (N, H, W, C) arrays (channels-last ones skip the layout moves)."""
    check_io(plan, x, out, where, x_layout, out_layout)
    n_img = x.shape[0]
    p = plan.oh * plan.ow
    mg = plan.m // len(plan.groups)
    k = plan.kh * plan.kw * plan.cg
    xh = x if x_layout == "nhwc" else conv_rows.to_nhwc(np.ascontiguousarray(x), conv_rows.runner(x.size))
    nhwc = out_layout == "nhwc"
    out3 = out.reshape(n_img, p, plan.m) if nhwc else out.reshape(n_img, plan.m, p)
    chunk = conv_rows.image_chunk(p, k + 4 * mg, n_img)
    none = np.zeros(0, np.int64)
    for n0 in range(0, n_img, chunk):
        n1 = min(n_img, n0 + chunk)
        rows = (n1 - n0) * p
        for gi, gp in enumerate(plan.groups):
            # implicit im2col: the GEMM packs its A tiles from the image (no rows in memory)
            implicit = plan.rq[0] and gp.conv_q is not None and not plan.plain and \
                plan.kw * plan.cg >= IMPLICIT_MIN_RUN
            if implicit:
                cols = None
            elif plan.plain:
                cols = xh[n0:n1].reshape(rows, k)
            else:
                cols = scratch("conv.cols", (rows, k), plan.x_dtype)
                conv_rows.im2col_rows(xh[n0:n1], gi * plan.cg, plan.cg, plan.kh, plan.kw, plan.cgeo, plan.x_zp, cols,
                                      conv_rows.runner(cols.size))
            if plan.rq[0] and (implicit or gp.gemm_q is not None):
                # requantized in the GEMM's micro-kernel: straight into an NHWC out (the group's
                # columns), else into rows and one byte transpose into the planes
                q = out3[n0:n1].reshape(rows, plan.m)[:, gi * mg:(gi + 1) * mg] if nhwc else \
                    scratch("conv.q", (rows, mg), out.dtype)
                if implicit:
                    gp.conv_q(xh[n0:n1], (gi * plan.cg, plan.cg, plan.kh, plan.kw, plan.cgeo, plan.x_zp), q, plan.rq)
                else:
                    gp.gemm_q(cols, q, plan.rq)
                if not nhwc:
                    _rows_to_planes(q, out3[n0:n1], gi * mg)
                continue
            raw = scratch("conv.raw", (rows, mg), np.int32)
            gp.gemm(cols, raw)
            rowsum = conv_rows.row_sums(cols, conv_rows.runner(cols.size)) if gp.rowsum else none
            finish = conv_rows.rows_to_nhwc if nhwc else conv_rows.rows_to_nchw
            finish(raw, gp.off, gp.wz, rowsum, plan.rq, out3[n0:n1], gi * mg, conv_rows.runner(raw.size))


def _rows_to_planes(q, out3, ch0):
    """out3[n, ch0 + j, p] = q[n*P + p, j]: requantized rows (n*P, Mg) into NCHW planes."""
    n, m, p = out3.shape
    mg = q.shape[1]
    if mg == m:
        conv_rows.to_nhwc(q.reshape(n, p, mg, 1), conv_rows.runner(q.size), out=out3.reshape(n, mg, 1, p))
    else:
        out3[:, ch0:ch0 + mg] = q.reshape(n, p, mg).transpose(0, 2, 1)
