"""TFLite SOFTMAX of int16 codes to int16 (zero points 0), as every kernel path of the
interpreter computes it (activations.cc SoftmaxPrepare for int16 + reference_ops::SoftmaxInt16,
tensorflow/lite/kernels/internal/reference/softmax.h; the optimized kernels call the same
function and XNNPACK does not take int16), over the last axis:

    prepare:  (m, s) = QuantizeMultiplier(double(f32(sx * beta)) / (10 / 65535))
              E = gen_lut(exp, -10, 0),  R = gen_lut(1 / (1 + x), 0, 1)      (513 int16 each)
    gen_lut(f, a, b) (common.h; float64, round half away from zero):
              h = (b - a) / 512;  for i < 512, with u(v) = round(f(v) * 32768):
                  mid_err = round((f(a + (i+1)*h) * 32768 + u(a + i*h)) / 2) - u(a + i*h + h/2)
                  T[i] = clamp(u(a + i*h) - round(mid_err / 2), -32768, 32767)
              T[512] = clamp(u(b), -32768, 32767)
    lookup(v, T) (lut_lookup_with_interpolation, int16 v):
              j = 256 + (v >> 7);  o = v & 127;  d = int16(T[j+1] - T[j])
              int16(T[j] + ((d * o + 64) >> 7))
    per row:  mx = max(x);  e[c] = lookup(clamp(MultiplyByQuantizedMultiplier(x[c] - mx, m, s)
              + 32767, -32768, 32767), E)                                   (Q0.15)
              S = sum(e) (int32);  z = clz32(S)
              r = lookup(clamp(((S << (z - 1)) + 2**13 >> 14) - 98304, -32768, 32767), R)
              y[c] = clamp((e[c] * r + 2**(30 - z)) >> (31 - z), 0, 32767)      (int64)

TFLite's prepare takes only an output zero point of 0 and an output scale near 2**-15
(`check_params`); the kernel itself does not read the output scale (Q0.15 codes).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .fixedpoint import multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_ref, quantize_multiplier
from .jit import kernel

F32 = np.float32


def _round(v: float) -> float:
    """TfLiteRound / std::round on a double: half away from zero."""
    return math.copysign(math.floor(abs(v) + 0.5), v)


def gen_lut(fn, lo: float, hi: float) -> np.ndarray:
    """(513,) int16: TFLite's gen_lut of fn over [lo, hi] (module doc)."""
    step = (hi - lo) / 512
    half = step / 2
    out = np.empty(513, np.int16)
    for i in range(512):
        u = _round(fn(lo + i * step) * 32768.0)
        interp = _round((fn(lo + (i + 1) * step) * 32768.0 + u) / 2)
        err = interp - _round(fn(lo + i * step + half) * 32768.0)
        out[i] = int(min(max(u - _round(err / 2), -32768.0), 32767.0))
    out[512] = int(min(max(_round(fn(hi) * 32768.0), -32768.0), 32767.0))
    return out


@lru_cache(maxsize=1)
def tables() -> tuple:
    """(exp table over [-10, 0], 1/(1+x) table over [0, 1]); built once, read only."""
    exp_lut, rec_lut = gen_lut(math.exp, -10.0, 0.0), gen_lut(lambda v: 1.0 / (1.0 + v), 0.0, 1.0)
    exp_lut.flags.writeable = rec_lut.flags.writeable = False
    return exp_lut, rec_lut


def input_multiplier(sx, beta) -> tuple:
    """(m, shift): QuantizeMultiplier(double(f32(sx * beta)) / (10 / 65535))."""
    real = np.float64(F32(F32(sx) * F32(beta))) / (10.0 / 65535.0)
    m, s = quantize_multiplier(np.array([real], np.float64))
    return int(m[0]), int(s[0])


def check_params(sy, zy) -> None:
    """ValueError where TFLite's prepare fails: output zero point not 0, output scale not within
    0.1% of 2**-15 (measured: the interpreter refuses 1e-4 as "not near 1/32768")."""
    if int(zy) != 0:
        raise ValueError(f"int16 SOFTMAX needs output zero point 0, got {int(zy)}")
    if abs(float(sy) * 32768.0 - 1.0) > 1e-3:
        raise ValueError(f"int16 SOFTMAX needs output scale 2**-15, got {float(sy)!r}")


@kernel
def _lookup(v, lut):
    j = 256 + (v >> 7)
    d = np.int64(lut[j + 1]) - np.int64(lut[j])
    d = ((d + 32768) & 0xFFFF) - 32768
    r = np.int64(lut[j]) + ((d * (v & 127) + 64) >> 7)
    return ((r + 32768) & 0xFFFF) - 32768


@kernel
def _clz32(v):
    n = 0
    while n < 32 and (v >> (31 - n)) & 1 == 0:
        n += 1
    return n


@kernel
def _softmax16_impl(scaled, exp_lut, rec_lut, out):
    """scaled (R, D) int64: MultiplyByQuantizedMultiplier(x - max) of each entry."""
    for r in range(scaled.shape[0]):
        total = np.int64(0)
        for c in range(scaled.shape[1]):
            v = min(max(scaled[r, c] + 32767, -32768), 32767)
            e = _lookup(v, exp_lut)
            out[r, c] = e
            total += e
        z = _clz32(total)
        sh = (((total << (z - 1)) + (1 << 13)) >> 14) - 98304
        rec = _lookup(min(max(sh, -32768), 32767), rec_lut)
        rs = 31 - z
        for c in range(scaled.shape[1]):
            y = (np.int64(out[r, c]) * rec + (np.int64(1) << (rs - 1))) >> rs
            out[r, c] = min(max(y, 0), 32767)


def _scaled(x, sx, beta, mbqm):
    xi = np.asarray(x, np.int64)
    diff = xi - xi.max(axis=1, keepdims=True)
    m, s = input_multiplier(sx, beta)
    return np.asarray(mbqm(diff.reshape(-1), np.full(diff.size, m), np.full(diff.size, s), "double"),
                      np.int64).reshape(diff.shape)


def softmax16_rows(x, sx, beta, out) -> None:
    """x, out (R, D) int16: TFLite's int16 softmax of each row (module doc)."""
    exp_lut, rec_lut = tables()
    _softmax16_impl(np.ascontiguousarray(_scaled(x, sx, beta, multiply_by_quantized_multiplier)), exp_lut, rec_lut,
                    out)


def _lookup_ref(v: int, lut) -> int:
    j = 256 + (v >> 7)
    d = int(lut[j + 1]) - int(lut[j])
    d = ((d + 32768) & 0xFFFF) - 32768
    r = int(lut[j]) + ((d * (v & 127) + 64) >> 7)
    return ((r + 32768) & 0xFFFF) - 32768


def softmax16_rows_ref(x, sx, beta, out) -> None:
    """Twin of softmax16_rows in Python ints, one row and entry at a time."""
    exp_lut, rec_lut = tables()
    scaled = _scaled(x, sx, beta, multiply_by_quantized_multiplier_ref)
    for r, row in enumerate(scaled.tolist()):
        e = [_lookup_ref(min(max(v + 32767, -32768), 32767), exp_lut) for v in row]
        total = sum(e)
        z = 32 - total.bit_length()
        rec = _lookup_ref(min(max((((total << (z - 1)) + (1 << 13)) >> 14) - 98304, -32768), 32767), rec_lut)
        rs = 31 - z
        out[r] = [min(max((v * rec + (1 << (rs - 1))) >> rs, 0), 32767) for v in e]
