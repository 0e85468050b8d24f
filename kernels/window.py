"""Exact integer pooling pieces for targets that pool in integers (intsim.targets.rules):
window sums with their counts, and the rational roundings applied to them.

    window_sums(x, zp, geometry)  sums[n, c, o...] = sum over the window's in-image taps of (x - zp)
                                  counts[o...]     = number of those taps (count_include_pad=0) or
                                                     the full window clipped to the padded image (=1)
    divide_round(num, den, r)     num / den rounded exactly: floor | rhu | rne | rhaz (den > 0)
    divide_rhaz_trunc(num, den)   C's (num +- den/2) / den: TFLite's rounded average of codes

Padding taps add 0 in (x - zp) space, as ONNX AveragePool and QLinearAveragePool define it.
Every sum is exact in int64 (2**63 > 2**16 taps * 2**16 values).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .jit import kernel

ROUNDINGS = ("floor", "rhu", "rne", "rhaz", "trunc")


@kernel
def _window_sums_impl(x, zp, k, st, pb, include_pad, pe, sums, counts):
    nc, ih, iw = x.shape
    _, oh, ow = sums.shape
    for oy in range(oh):
        y0 = oy * st[0] - pb[0]
        y1 = y0 + k[0]
        ya, yb = max(y0, 0), min(y1, ih)
        for ox in range(ow):
            x0 = ox * st[1] - pb[1]
            x1 = x0 + k[1]
            xa, xb = max(x0, 0), min(x1, iw)
            if include_pad:
                counts[oy, ox] = (min(y1, ih + pe[0]) - y0) * (min(x1, iw + pe[1]) - x0)
            else:
                counts[oy, ox] = max(yb - ya, 0) * max(xb - xa, 0)
            for c in range(nc):
                acc = np.int64(0)
                for yy in range(ya, yb):
                    for xx in range(xa, xb):
                        acc += np.int64(x[c, yy, xx]) - zp
                sums[c, oy, ox] = acc


def _geometry(x, kernel_shape, strides, pads, out_hw):
    if x.ndim != 4 or len(kernel_shape) != 2 or len(strides) != 2 or len(pads) != 4 or len(out_hw) != 2:
        raise ValueError(f"window_sums: needs a 2-D window over x (N, C, H, W), got x {x.shape}, "
                         f"kernel {list(kernel_shape)}, strides {list(strides)}, pads {list(pads)}")
    if min(kernel_shape) < 1 or min(strides) < 1 or min(pads) < 0 or min(out_hw) < 0:
        raise ValueError(f"window_sums: kernel, strides >= 1 and pads >= 0 required "
                         f"(kernel {list(kernel_shape)}, strides {list(strides)}, pads {list(pads)})")
    return (np.asarray(kernel_shape, np.int64), np.asarray(strides, np.int64), np.asarray(pads[:2], np.int64),
            np.asarray(pads[2:], np.int64))


def window_sums(x, zp, kernel_shape, strides, pads, out_hw, count_include_pad):
    """(sums int64 (N, C, OH, OW), counts int64 (OH, OW)) as the module doc says; `pads` is
    ONNX's (top, left, bottom, right), out_hw the pool's output size (ceil_mode already
    applied: windows past the padded image are clipped to it)."""
    k, st, pb, pe = _geometry(x, kernel_shape, strides, pads, out_hw)
    n, c = x.shape[:2]
    sums = np.empty((n * c,) + tuple(out_hw), np.int64)
    counts = np.empty(tuple(out_hw), np.int64)
    _window_sums_impl(np.ascontiguousarray(x).reshape((n * c,) + x.shape[2:]), np.int64(zp), k, st, pb,
                      bool(count_include_pad), pe, sums, counts)
    return sums.reshape((n, c) + tuple(out_hw)), counts


def window_sums_ref(x, zp, kernel_shape, strides, pads, out_hw, count_include_pad):
    """NumPy int64 twin of window_sums (one slice per output position)."""
    k, st, pb, pe = _geometry(x, kernel_shape, strides, pads, out_hw)
    ih, iw = x.shape[2:]
    v = x.astype(np.int64) - int(zp)
    sums = np.zeros(x.shape[:2] + tuple(out_hw), np.int64)
    counts = np.zeros(tuple(out_hw), np.int64)
    for oy in range(out_hw[0]):
        for ox in range(out_hw[1]):
            y0, x0 = oy * int(st[0]) - int(pb[0]), ox * int(st[1]) - int(pb[1])
            y1, x1 = y0 + int(k[0]), x0 + int(k[1])
            ya, yb, xa, xb = max(y0, 0), min(y1, ih), max(x0, 0), min(x1, iw)
            sums[:, :, oy, ox] = v[:, :, ya:max(yb, ya), xa:max(xb, xa)].sum(axis=(2, 3))
            counts[oy, ox] = ((min(y1, ih + int(pe[0])) - y0) * (min(x1, iw + int(pe[1])) - x0)
                              if count_include_pad else max(yb - ya, 0) * max(xb - xa, 0))
    return sums, counts


def divide_round(num, den, rounding: str) -> np.ndarray:
    """num / den rounded exactly (int64 arrays, broadcast; den > 0): floor, rhu (half up),
    rne (half to even), rhaz (half away from zero), trunc (toward zero). q = floor(num / den),
    r = num - q*den, then q + 1 where 2r > den, or 2r == den and the mode breaks the tie upward
    (trunc: where r > 0 and num < 0)."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"divide_round: rounding {rounding!r} is not one of {ROUNDINGS}")
    num, den = np.broadcast_arrays(np.asarray(num, np.int64), np.asarray(den, np.int64))
    if den.size and den.min() <= 0:
        raise ValueError("divide_round: divisors must be > 0")
    q = num // den
    twice = 2 * (num - q * den)
    tie = twice == den
    up = {"floor": np.zeros(q.shape, bool), "rhu": twice >= den,
          "rne": (twice > den) | (tie & ((q & 1) == 1)),
          "rhaz": (twice > den) | (tie & (num >= 0)), "trunc": (twice > 0) & (num < 0)}[rounding]
    return q + up


def divide_round_ref(num, den, rounding: str) -> np.ndarray:
    """Python-int (fractions) twin of divide_round."""
    num, den = np.broadcast_arrays(np.asarray(num, np.int64), np.asarray(den, np.int64))
    out = []
    for a, b in zip(num.reshape(-1).tolist(), den.reshape(-1).tolist()):
        f = Fraction(a, b)
        fl = math.floor(f)
        frac = f - fl
        if rounding == "floor":
            out.append(fl)
        elif rounding == "trunc":
            out.append(math.trunc(f))
        elif frac != Fraction(1, 2):
            out.append(fl + (frac > Fraction(1, 2)))
        else:
            out.append({"rhu": fl + 1, "rne": fl + (fl % 2), "rhaz": fl + (f > 0)}[rounding])
    return np.array(out, np.int64).reshape(num.shape)


def divide_rhaz_trunc(num, den) -> np.ndarray:
    """TFLite's average of codes (reference_integer_ops::AveragePool, CMSIS-NN arm_avgpool_s8):
    num > 0 ? (num + den/2) / den : (num - den/2) / den, C integer division (toward zero)."""
    num, den = np.broadcast_arrays(np.asarray(num, np.int64), np.asarray(den, np.int64))
    half = den // 2
    v = np.where(num > 0, num + half, num - half)
    return np.sign(v) * (np.abs(v) // den)
