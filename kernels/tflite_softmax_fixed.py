"""TFLite SOFTMAX of int8 codes to int8 (zero point -128) and uint8 to uint8 (zero point 0),
output scale 1/256, as the interpreter's reference kernel computes it (activations.cc
SoftmaxPrepare<kReference>: PreprocessSoftmaxScaling, CalculateInputRadius; SoftmaxEval ->
reference_ops::Softmax of internal/reference/softmax.h), in gemmlowp int32 fixed point over the
last axis (srdhm, rdbpot, wrap32 as kernels.fixedpoint states them; every sum wraps in int32):

    M, L = QuantizeMultiplierGreaterThanOne(min(beta * sx * 2**26, 2**31 - 1))   (float64)
    diff_min = -floor(31 * 2**26 / 2**L)
    per row:  m = max(x);  d[j] = x[j] - m
        a[j] = srdhm(wrap32(d[j] * 2**L), M)                 FixedPoint<int32, 5> (26 fraction bits)
        e[j] = exp_on_negative_values(a[j])                  FixedPoint<int32, 0>
        S = sum of rdbpot(e[j], 12) over d[j] >= diff_min    FixedPoint<int32, 12>, wrapping
        h = clz32(S);  n = 12 - h
        r = one_over_one_plus_x_for_x_in_0_1(wrap32((S << h) - 2**31))
        y[j] = clamp(rdbpot(srdhm(r, e[j]), n + 23) + lo, lo, hi)   if d[j] >= diff_min
             = lo                                                   otherwise
        (lo, hi = the output type's range)

gemmlowp (fixedpoint/fixedpoint.h), int32, F_k = FixedPoint<int32, k> (31 - k fraction bits):
    exp_on_negative_values(a in F_5): q = 2**24;  r = wrap32((a & (q - 1)) - q)
        t = exp_quarter(sat32(r * 2**5));  rem = wrap32(r - a)
        for k, c in (-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                    (2, 39332535), (3, 720401), (4, 242):   t = srdhm(t, c) if rem & 2**(26+k)
        result = 2**31 - 1 if a == 0 else t
    exp_quarter(x in F_0): x = wrap32(x + 2**28);  x2 = srdhm(x, x); x3 = srdhm(x2, x); x4 = srdhm(x2, x2)
        p = rdbpot(wrap32(srdhm(wrap32(rdbpot(x4, 2) + x3), 715827883) + x2), 1)
        result = wrap32(1895147668 + srdhm(1895147668, wrap32(x + p)))
    one_over_one_plus_x_for_x_in_0_1(a in F_0): s = a + 2**31 - 1;
        h = trunc((s + sign(s)) / 2)   (RoundingHalfSum, sign(0) = +1)
        x = wrap32(1515870810 + srdhm(h, -1010580540))             F_2: 48/17 - 32/17 * h
        3 times: x = wrap32(x + sat32(4 * srdhm(x, wrap32(2**29 - srdhm(h, x)))))
        result = sat32(2 * x)
"""
from __future__ import annotations

import math

import numpy as np

from .fixedpoint import (INT32_MAX, INT32_MIN, quantize_multiplier, rdbpot1, rounding_divide_by_pot_ref, srdhm1,
                         srdhm_ref, wrap32)
from .jit import kernel

_QUARTER = 1 << 24                     # 1/4 in FixedPoint<int32, 5>
_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401), (4, 242))
_BARREL_BITS = np.array([26 + k for k, _ in _BARREL], np.int64)
_BARREL_MULT = np.array([c for _, c in _BARREL], np.int64)


def reference_params(sx, beta) -> tuple:
    """(M, L, diff_min) as SoftmaxPrepare<kReference> computes them from the float32 scale and beta."""
    real = min(float(np.float32(beta)) * float(np.float32(sx)) * float(1 << 26), float((1 << 31) - 1))
    m, s = quantize_multiplier(np.float64(real))
    shift = int(s)
    if shift < 0:                      # QuantizeMultiplierGreaterThanOne needs real >= 1
        raise ValueError(f"TFLite reference SOFTMAX: beta * input scale {real / (1 << 26)!r} is below 2**-26")
    return int(m), shift, -int(math.floor(31.0 * (1 << 26) / (1 << shift)))


@kernel
def _sat32(v):
    return min(max(v, np.int64(-2147483648)), np.int64(2147483647))


@kernel
def _exp_neg(a, bits, mults):
    r = wrap32((a & np.int64(_QUARTER - 1)) - np.int64(_QUARTER))
    x = wrap32(_sat32(r * 32) + np.int64(1 << 28))
    x2 = srdhm1(x, x)
    x3 = srdhm1(x2, x)
    x4 = srdhm1(x2, x2)
    p = rdbpot1(wrap32(srdhm1(wrap32(rdbpot1(x4, 2) + x3), np.int64(715827883)) + x2), 1)
    t = wrap32(np.int64(1895147668) + srdhm1(np.int64(1895147668), wrap32(x + p)))
    rem = wrap32(r - a)
    for i in range(bits.shape[0]):
        if rem & (np.int64(1) << bits[i]):
            t = srdhm1(t, mults[i])
    return np.int64(2147483647) if a == 0 else t


@kernel
def _one_over_one_plus_x(a):
    s = a + np.int64(2147483647)
    s = s + 1 if s >= 0 else s - 1
    h = s >> 1 if s >= 0 else -((-s) >> 1)
    x = wrap32(np.int64(1515870810) + srdhm1(h, np.int64(-1010580540)))
    for _ in range(3):
        x = wrap32(x + _sat32(4 * srdhm1(x, wrap32(np.int64(1 << 29) - srdhm1(h, x)))))
    return _sat32(2 * x)


@kernel
def _softmax_rows_impl(x, mult, shift, diff_min, lo, hi, bits, mults, out):
    for r in range(x.shape[0]):
        m = np.int64(x[r, 0])
        for j in range(1, x.shape[1]):
            m = max(m, np.int64(x[r, j]))
        total = np.int64(0)
        for j in range(x.shape[1]):
            d = np.int64(x[r, j]) - m
            if d >= diff_min:
                total = wrap32(total + rdbpot1(_exp_neg(srdhm1(wrap32(d << shift), mult), bits, mults), 12))
        head = 32
        u = total & np.int64(0xFFFFFFFF)
        while u:
            head -= 1
            u >>= 1
        recip = _one_over_one_plus_x(wrap32(((total & np.int64(0xFFFFFFFF)) << head) - np.int64(1 << 31)))
        n = 12 - head + 23
        for j in range(x.shape[1]):
            d = np.int64(x[r, j]) - m
            if d >= diff_min:
                e = _exp_neg(srdhm1(wrap32(d << shift), mult), bits, mults)
                out[r, j] = min(max(rdbpot1(srdhm1(recip, e), n) + lo, lo), hi)
            else:
                out[r, j] = lo


def _check_rows(name, x, out) -> None:
    """x and out: arrays of one shape (R, D), D >= 1, one 8-bit dtype (the kernel indexes both
    by x's shape and reads x[r, 0]); out C-contiguous."""
    for t, a in (("x", x), ("out", out)):
        if not isinstance(a, np.ndarray) or a.dtype not in (np.int8, np.uint8):
            raise ValueError(f"{name}: '{t}' must be an int8 or uint8 array")
    if x.dtype != out.dtype or x.ndim != 2 or x.shape != out.shape or x.shape[1] < 1:
        raise ValueError(f"{name}: x {x.dtype}{list(x.shape)} and out {out.dtype}{list(out.shape)} must be one "
                         f"(R, D) shape with D >= 1 and one dtype")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name}: 'out' must be C-contiguous")


def softmax_fixed_rows(x, sx, beta, out) -> None:
    """x, out (R, D) int8 or uint8 (same dtype): the reference kernel's softmax of each row (module doc)."""
    _check_rows("softmax_fixed_rows", x, out)
    mult, shift, diff_min = reference_params(sx, beta)
    info = np.iinfo(out.dtype)
    _softmax_rows_impl(np.ascontiguousarray(x), np.int64(mult), np.int64(shift), np.int64(diff_min),
                       np.int64(info.min), np.int64(info.max), _BARREL_BITS, _BARREL_MULT, out)


# ----------------------------------------------------------------------------- NumPy int64 twin

def _w(v):
    return ((np.asarray(v, np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _mul(a, b):
    return srdhm_ref(*np.broadcast_arrays(np.asarray(a, np.int64), np.asarray(b, np.int64))).astype(np.int64)


def _div(v, e):
    v = np.asarray(v, np.int64)
    return rounding_divide_by_pot_ref(v, np.broadcast_to(np.int64(e), v.shape)).astype(np.int64)


def _exp_neg_ref(a):
    r = _w((a & (_QUARTER - 1)) - _QUARTER)
    x = _w(np.clip(r * 32, INT32_MIN, INT32_MAX) + (1 << 28))
    x2 = _mul(x, x)
    x3, x4 = _mul(x2, x), _mul(x2, x2)
    p = _div(_w(_mul(_w(_div(x4, 2) + x3), 715827883) + x2), 1)
    t = _w(1895147668 + _mul(1895147668, _w(x + p)))
    rem = _w(r - a)
    for k, c in _BARREL:
        t = np.where(rem & (1 << (26 + k)), _mul(t, c), t)
    return np.where(a == 0, INT32_MAX, t)


def _one_over_ref(a):
    s = a + INT32_MAX
    h = np.trunc((s + np.where(s >= 0, 1, -1)) / 2).astype(np.int64)
    x = _w(1515870810 + _mul(h, -1010580540))
    for _ in range(3):
        x = _w(x + np.clip(4 * _mul(x, _w((1 << 29) - _mul(h, x))), INT32_MIN, INT32_MAX))
    return np.clip(2 * x, INT32_MIN, INT32_MAX)


def softmax_fixed_rows_ref(x, sx, beta, out) -> None:
    """NumPy int64 twin of softmax_fixed_rows (whole rows at once, Python-int srdhm / rdbpot)."""
    _check_rows("softmax_fixed_rows_ref", x, out)
    mult, shift, diff_min = reference_params(sx, beta)
    info = np.iinfo(out.dtype)
    xi = np.asarray(x, np.int64)
    d = xi - xi.max(axis=1, keepdims=True)
    keep = d >= diff_min
    e = _exp_neg_ref(_mul(_w(d * (1 << shift)), mult))
    total = _w(np.where(keep, _div(e, 12), 0).sum(axis=1, keepdims=True))
    u = total & 0xFFFFFFFF
    head = np.array([32 - int(v).bit_length() for v in u.reshape(-1)], np.int64).reshape(u.shape)
    recip = _one_over_ref(_w((u << head) - (1 << 31)))
    y = np.stack([_div(_mul(np.broadcast_to(recip[i], e[i].shape), e[i]), int(12 - head[i, 0] + 23))
                  for i in range(e.shape[0])]) if e.size else e
    out[...] = np.where(keep, np.clip(y + info.min, info.min, info.max), info.min).astype(out.dtype)
