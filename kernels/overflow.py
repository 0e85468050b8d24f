"""Narrow accumulators: GEMM and conv whose running sum is held at `bits` bits (DESIGN §4).

Both kernels reduce to one model over a row of weights and a column of inputs, in the
canonical K order (GEMM: k; conv: channel of the group, kernel row, kernel column):

    p_k        = (x_k - x_zp) * (w_k - w_zp)                      (exact int64 product)
    fit(v)     = wrap:     ((v - lo) mod 2**bits) + lo            (two's complement)
                 saturate: min(max(v, lo), hi)                     lo = -2**(bits-1), hi = -lo - 1

    no tile:   s = fit(bias); for each k: s = fit(s + p_k)        acc = s
    tile T:    for each tile t of T consecutive k (k // T == t):
                   part_t = 0; for k in tile t: part_t = fit(part_t + p_k)
               acc = bias + sum_t part_t                           (exact int64 outer sum)

An *event* is one add (or the initial bias) whose exact value v lies outside [lo, hi]; every
kernel returns the number of events. Conv taps outside the image contribute p_k = 0 (the
input is padded with x_zp) and keep their slot in K, so they count in their tile but never
change the sum nor raise an event. `bits` is 2..63. Operands: integer arrays of at most 32
bits (wider ones must hold int32 values); x_zp a scalar; w_zp, bias int64 per output
channel; `acc` int64 (or int32, which wraps the stored value) of the output shape.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .conv import ConvGeom, check_conv_args, conv_out_hw
from .gemm import check_acc, check_int_operand, check_scalar_zp, check_vector
from .jit import kernel

MODES = ("wrap", "saturate")


class NarrowAcc(NamedTuple):
    """The accumulator model: width in bits (2..63), "wrap" or "saturate", tile (0: none)."""
    bits: int
    mode: str
    tile: int = 0


def check_narrow(model) -> tuple:
    """Validate a NarrowAcc; return (lo, hi, saturate, tile) as ints for the jitted code."""
    try:
        bits, mode, tile = int(model[0]), str(model[1]), int(model[2])
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"narrow accumulator must be NarrowAcc(bits, mode, tile), got {model!r}") from None
    if not 2 <= bits <= 63:
        raise ValueError(f"narrow accumulator width {bits} is outside 2..63 bits")
    if mode not in MODES:
        raise ValueError(f"narrow accumulator mode {mode!r} is not one of {', '.join(MODES)}")
    if tile < 0:
        raise ValueError(f"narrow accumulator tile {tile} must be >= 0 (0: no tile)")
    lo = -(1 << (bits - 1))
    return lo, -lo - 1, mode == "saturate", tile


# --------------------------------------------------------------------------------- kernels
@kernel
def _fit(v, lo, hi, saturate):
    """v held at the width [lo, hi]: clamp when `saturate`, else two's complement wrap."""
    if v >= lo and v <= hi:
        return v
    if saturate:
        return lo if v < lo else hi
    return ((v - lo) & (hi - lo)) + lo


@kernel
def _narrow_rows_impl(wc, col, bias, lo, hi, saturate, tile, out):
    """out[m, p] = the narrow model over bias[m] and the products wc[m, k] * col[k, p],
    k = 0..K-1 in order (module docstring); wc, col centred int64; returns the event count.
    Outputs are independent, so each k updates a whole row of running sums at once."""
    m_, k_ = wc.shape
    p_ = col.shape[1]
    events = 0
    s = np.empty(p_, np.int64)
    part = np.empty(p_, np.int64)
    for m in range(m_):
        b = bias[m]
        if tile > 0:
            s[:] = b
        else:
            if b < lo or b > hi:
                events += p_
            s[:] = _fit(b, lo, hi, saturate)
        for k0 in range(0, k_, tile if tile > 0 else k_ + 1):
            k1 = min(k_, k0 + tile) if tile > 0 else k_
            acc = part if tile > 0 else s
            if tile > 0:
                part[:] = 0
            for k in range(k0, k1):
                wv = wc[m, k]
                if wv == 0:
                    continue
                for p in range(p_):
                    v = acc[p] + wv * col[k, p]
                    if v < lo or v > hi:
                        events += 1
                        v = _fit(v, lo, hi, saturate)
                    acc[p] = v
            if tile > 0:
                for p in range(p_):
                    s[p] += part[p]
        for p in range(p_):
            out[m, p] = s[p]
    return events


@kernel
def _im2col_impl(xi, kh_, kw_, geo, col):
    """col[(c*KH + ky)*KW + kx, oy*OW + ox] = xi[c, iy, ix] (0 outside the image);
    geo = (sh, sw, pt, pl, dh, dw, group, oh, ow); xi centred (Cg, H, W)."""
    cg, h_, w_ = xi.shape
    sh, sw, pt, pl, dh, dw, oh_, ow_ = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[7], geo[8]
    for c in range(cg):
        for ky in range(kh_):
            for kx in range(kw_):
                r = (c * kh_ + ky) * kw_ + kx
                for oy in range(oh_):
                    iy = oy * sh - pt + ky * dh
                    for ox in range(ow_):
                        ix = ox * sw - pl + kx * dw
                        inside = iy >= 0 and iy < h_ and ix >= 0 and ix < w_
                        col[r, oy * ow_ + ox] = xi[c, iy, ix] if inside else 0


@kernel
def _conv_narrow_impl(xc, wc, bias, geo, lo, hi, saturate, tile, out):
    """Per image and group: im2col in the canonical K order, then the narrow rows model.
    xc (N, C, H, W), wc (M, Cg*KH*KW) centred int64; out (N, M, OH*OW) int64."""
    n_, c_, _, _ = xc.shape
    g_ = geo[6]
    cg = c_ // g_
    mg = wc.shape[0] // g_
    kh_, kw_ = geo[9], geo[10]
    col = np.empty((cg * kh_ * kw_, geo[7] * geo[8]), np.int64)
    buf = np.empty((mg, geo[7] * geo[8]), np.int64)
    events = 0
    for n in range(n_):
        for g in range(g_):
            _im2col_impl(xc[n, g * cg:(g + 1) * cg], kh_, kw_, geo, col)
            events += _narrow_rows_impl(wc[g * mg:(g + 1) * mg], col, bias[g * mg:(g + 1) * mg],
                                        lo, hi, saturate, tile, buf)
            out[n, g * mg:(g + 1) * mg] = buf
    return events


# ---------------------------------------------------------------------------------- public
def _centred(t, zp) -> np.ndarray:
    return np.ascontiguousarray(t.astype(np.int64) - zp)


def gemm_acc_narrow(a, b, a_zp, b_zp, bias, model: NarrowAcc, acc) -> int:
    """acc[m, n] = narrow model (module docstring) of bias[n] and the products
    (a[m, k] - a_zp) * (b[k, n] - b_zp[n]) for k = 0..K-1. Returns the event count.
    a (M, K), b (K, N) integer; acc (M, N) int32/int64. Raises ValueError on bad input."""
    lo, hi, sat, tile = check_narrow(model)
    a = check_int_operand("narrow gemm a", a, 2)
    b = check_int_operand("narrow gemm b", b, 2)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"narrow gemm: a {a.shape} and b {b.shape} do not multiply")
    n = b.shape[1]
    b_zp = check_vector("narrow gemm b_zp", b_zp, n)
    bias = check_vector("narrow gemm bias", bias, n)
    a_zp = check_scalar_zp("narrow gemm a_zp", a_zp)
    check_acc("narrow gemm acc", acc, (a.shape[0], n))
    wc = np.ascontiguousarray((b.astype(np.int64) - b_zp[None, :]).T)   # (N, K)
    col = np.ascontiguousarray(_centred(a, a_zp).T)                    # (K, M)
    out = np.empty((n, a.shape[0]), np.int64)
    events = _narrow_rows_impl(wc, col, bias, lo, hi, sat, tile, out)
    acc[...] = out.T
    return int(events)


def _conv_geo(x, w, geom, acc) -> np.ndarray:
    check_conv_args(x, w, 0, np.zeros(w.shape[0], np.int64), np.zeros(w.shape[0], np.int64), geom, acc)
    g = ConvGeom(*(int(v) for v in geom))
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], w.shape[2], w.shape[3], g)
    return np.array([g.stride_h, g.stride_w, g.pad_top, g.pad_left, g.dil_h, g.dil_w, g.group,
                     oh, ow, w.shape[2], w.shape[3]], np.int64)


def conv2d_acc_narrow(x, w, x_zp, w_zp, bias, geom: ConvGeom, model: NarrowAcc, acc) -> int:
    """acc[n, m, oy, ox] = narrow model of bias[m] and the products
    (x[n, g*Cg + c, iy, ix] - x_zp) * (w[m, c, ky, kx] - w_zp[m]) in the order c, ky, kx
    (padded taps: 0). x (N, C, H, W), w (M, C/group, KH, KW) integer; acc (N, M, OH, OW)
    int32/int64. Returns the event count. Raises ValueError on bad input."""
    lo, hi, sat, tile = check_narrow(model)
    x = check_int_operand("narrow conv x", x, 4)
    w = check_int_operand("narrow conv w", w, 4)
    geo = _conv_geo(x, w, geom, acc)
    m = w.shape[0]
    w_zp = check_vector("narrow conv w_zp", w_zp, m)
    bias = check_vector("narrow conv bias", bias, m)
    xc = _centred(x, check_scalar_zp("narrow conv x_zp", x_zp))
    wc = np.ascontiguousarray((w.astype(np.int64) - w_zp[:, None, None, None]).reshape(m, -1))
    out = np.empty((x.shape[0], m, int(geo[7] * geo[8])), np.int64)
    events = _conv_narrow_impl(xc, wc, bias, geo, lo, hi, sat, tile, out)
    acc[...] = out.reshape(acc.shape)
    return int(events)


# ------------------------------------------------------------------------- NumPy int64 twins
def _fit_ref(v: np.ndarray, lo: int, hi: int, saturate: bool) -> np.ndarray:
    if saturate:
        return np.clip(v, lo, hi)
    return np.mod(v - lo, hi - lo + 1) + lo


def _narrow_sum_ref(prods: np.ndarray, bias: np.ndarray, model) -> tuple:
    """prods (K, ...) in K order, bias broadcastable to prods[0]; returns (acc, events)."""
    lo, hi, sat, tile = check_narrow(model)
    shape = np.broadcast_shapes(prods.shape[1:], np.shape(bias))
    bias = np.broadcast_to(np.asarray(bias, np.int64), shape)
    k_ = prods.shape[0]
    step = tile if tile > 0 else max(k_, 1)
    events = 0 if tile else int(np.count_nonzero((bias < lo) | (bias > hi)))
    total = bias.copy() if tile else _fit_ref(bias, lo, hi, sat)
    for k0 in range(0, k_, step):
        run = np.zeros(shape, np.int64) if tile else total
        for k in range(k0, min(k_, k0 + step)):
            v = run + prods[k]
            events += int(np.count_nonzero((v < lo) | (v > hi)))
            run = _fit_ref(v, lo, hi, sat)
        total = total + run if tile else run
    return total, events


def gemm_acc_narrow_ref(a, b, a_zp, b_zp, bias, model: NarrowAcc, acc) -> int:
    """NumPy int64 twin of gemm_acc_narrow (no validation)."""
    ac = np.asarray(a).astype(np.int64) - np.int64(a_zp)
    bc = np.asarray(b).astype(np.int64) - np.asarray(b_zp, np.int64)[None, :]
    prods = ac.T[:, :, None] * bc[:, None, :]                    # (K, M, N)
    out, events = _narrow_sum_ref(prods, np.asarray(bias, np.int64)[None, :], model)
    acc[...] = out.astype(acc.dtype)
    return events


def conv2d_acc_narrow_ref(x, w, x_zp, w_zp, bias, geom: ConvGeom, model: NarrowAcc, acc) -> int:
    """NumPy int64 twin of conv2d_acc_narrow: explicit x_zp padding, one strided slice per
    tap, products stacked in the order (c, ky, kx) per group."""
    g = ConvGeom(*(int(v) for v in geom))
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh, ow = acc.shape[2], acc.shape[3]
    xp = np.zeros((n, c, h + g.pad_top + g.pad_bottom, wd + g.pad_left + g.pad_right), np.int64)
    xp[:, :, g.pad_top:g.pad_top + h, g.pad_left:g.pad_left + wd] = np.asarray(x, np.int64) - np.int64(x_zp)
    wc = np.asarray(w, np.int64) - np.asarray(w_zp, np.int64)[:, None, None, None]
    mg = m // g.group
    out = np.empty((n, m, oh, ow), np.int64)
    events = 0
    for gi in range(g.group):
        prods = []
        for ci in range(cg):
            for ky in range(kh):
                for kx in range(kw):
                    y0, x0 = ky * g.dil_h, kx * g.dil_w
                    sl = xp[:, gi * cg + ci, y0:y0 + g.stride_h * (oh - 1) + 1:g.stride_h,
                            x0:x0 + g.stride_w * (ow - 1) + 1:g.stride_w]          # (N, OH, OW)
                    prods.append(wc[gi * mg:(gi + 1) * mg, ci, ky, kx][None, :, None, None] * sl[:, None])
        res, ev = _narrow_sum_ref(np.stack(prods), np.asarray(bias, np.int64)[gi * mg:(gi + 1) * mg, None, None],
                                  model)
        out[:, gi * mg:(gi + 1) * mg] = res
        events += ev
    acc[...] = out.astype(acc.dtype)
    return events
