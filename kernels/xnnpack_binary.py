"""XNNPACK's int8 (qs8) ADD / SUB and MUL, bit for bit (the TFLite interpreter's default path).

ADD / SUB (xnn_init_qs8_add_minmax_scalar_params, src/microparams-init.c; the qs8-vadd /
qs8-vaddc microkernels, scalar and x86 mul16 / mul32 / avx512skx alike): SUB is ADD with
b's scale negated (binary-elementwise-nd.c, `sign_b`). Prepare, float32:

    ra = f32(sa / sy),  rb = f32(+-sb / sy)          (the delegate takes |r| in [2**-10, 2**8))
    e = floor(log2(max(|ra|, |rb|))),  shift = 20 - e          (12..30)
    ma = sign(ra) * rint_RNE(|ra| * 2**shift),  mb likewise    (|m| <= 2**21; lrintf)
    bias = 2**(shift - 1) - ma*za - mb*zb

Run, int32 (no overflow: |ma*a|, |mb*b| <= 2**28, |bias| < 2**30):

    y = clamp((bias + ma*a + mb*b) >> shift + zy, lo, hi)      (>> arithmetic: half up)

The vector kernels saturate to int16 before adding zy and to int8 after; that equals the
clamp of the exact value. The operand order does not matter: a broadcast first operand runs
the `ropc` kernel with the parameters of (b, a), the same two multipliers.

MUL (xnn_init_qs8_mul_minmax_scalar_params; qs8-vmul fp32 kernels, e.g. sse41_mul16_ld64):

    r = f32(f32(sa * sb) / sy)                        (the delegate takes r in [2**-16, 2**8))
    y = clamp(rint_RNE(f32((a - za) * (b - zb)) * r) + zy, lo, hi)

the product exact in int32 and in float32 (|p| <= 2**16), zy added as an integer after the
rounding (unlike onnxruntime's QLinearMul, which adds it in float first).
"""
from __future__ import annotations

import numpy as np

from .jit import kernel

F32 = np.float32
ADD_RATIO_RANGE = (2.0 ** -10, 2.0 ** 8)      # |s_in / sy| the XNNPACK delegate takes for ADD / SUB
MUL_RATIO_RANGE = (2.0 ** -16, 2.0 ** 8)      # sa * sb / sy the delegate takes for MUL


def add_ratios(sa: float, sb: float, sy: float, subtract: bool = False) -> tuple:
    """(ra, rb) float32: sa / sy and (-sb if subtract) / sy, as XNNPACK divides them."""
    return F32(F32(sa) / F32(sy)), F32((F32(-1) if subtract else F32(1)) * F32(sb) / F32(sy))


def add_delegated(sa: float, sb: float, sy: float) -> bool:
    """The TFLite XNNPACK delegate takes this ADD / SUB (VisitBinaryNode, CheckTensorsInputOutputScale:
    f32(s / sy) in ADD_RATIO_RANGE for each input); elsewhere the interpreter's builtin kernel runs."""
    lo, hi = ADD_RATIO_RANGE
    return all(lo <= abs(float(r)) < hi for r in add_ratios(sa, sb, sy))


def mul_delegated(sa: float, sb: float, sy: float) -> bool:
    """The delegate takes this MUL (CheckTensorsInputProductOutputScale: f32(f32(sa * sb) / sy) in
    MUL_RATIO_RANGE); elsewhere the builtin kernel runs."""
    lo, hi = MUL_RATIO_RANGE
    return lo <= float(F32(F32(F32(sa) * F32(sb)) / F32(sy))) < hi


def add_params(sa: float, za: int, sb: float, zb: int, sy: float, subtract: bool = False) -> tuple:
    """(ma, mb, shift, bias) Python ints of XNNPACK's qs8 ADD (SUB when `subtract`); ValueError
    when a ratio |s / sy| lies outside ADD_RATIO_RANGE."""
    ra, rb = add_ratios(sa, sb, sy, subtract)
    if not add_delegated(sa, sb, sy):
        raise ValueError(f"xnnpack add: input-to-output scale ratio {float(ra)!r} or {float(rb)!r} outside "
                         f"[2**-10, 2**8)")
    top = max(abs(ra), abs(rb))
    shift = 20 - (int(np.frexp(top)[1]) - 1)           # frexp: top = f * 2**e, f in [0.5, 1)
    ma, mb = (int(np.copysign(np.rint(abs(np.float64(r)) * 2.0 ** shift), r)) for r in (ra, rb))
    bias = (1 << (shift - 1)) - ma * int(za) - mb * int(zb)
    return ma, mb, shift, bias


def mul_scale(sa: float, sb: float, sy: float) -> np.float32:
    """r = f32(f32(sa * sb) / sy); ValueError outside MUL_RATIO_RANGE."""
    r = F32(F32(F32(sa) * F32(sb)) / F32(sy))
    if not mul_delegated(sa, sb, sy):
        raise ValueError(f"xnnpack mul: product-to-output scale ratio {float(r)!r} outside [2**-16, 2**8)")
    return r


def _flat(name, a, b, out):
    if a.shape != b.shape or out.shape != a.shape:
        raise ValueError(f"{name}: a {a.shape}, b {b.shape} and out {out.shape} must share one shape")
    return np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1)


@kernel
def _add_impl(a, b, ma, mb, shift, bias, zy, lo, hi, out):
    for i in range(a.size):
        acc = bias + np.int64(a[i]) * ma + np.int64(b[i]) * mb
        y = (acc >> shift) + zy
        out[i] = lo if y < lo else (hi if y > hi else y)


def xnn_add(a, b, params, zy, lo, hi, out) -> None:
    """y = clamp((bias + ma*a + mb*b) >> shift + zy, lo, hi) over same-shape integer codes;
    params = add_params(...)."""
    fa, fb = _flat("xnn_add", a, b, out)
    ma, mb, shift, bias = (np.int64(v) for v in params)
    flat = np.empty(out.size, out.dtype)
    _add_impl(fa, fb, ma, mb, shift, bias, np.int64(zy), np.int64(lo), np.int64(hi), flat)
    out[...] = flat.reshape(out.shape)


def xnn_add_ref(a, b, params, zy, lo, hi, out) -> None:
    """NumPy int64 twin of xnn_add."""
    fa, fb = _flat("xnn_add", a, b, out)
    ma, mb, shift, bias = params
    acc = np.int64(bias) + fa.astype(np.int64) * np.int64(ma) + fb.astype(np.int64) * np.int64(mb)
    out[...] = np.clip((acc >> np.int64(shift)) + np.int64(zy), lo, hi).reshape(out.shape)


@kernel
def _mul_impl(a, b, za, zb, r, zy, lo, hi, out):
    for i in range(a.size):
        p = (np.int64(a[i]) - za) * (np.int64(b[i]) - zb)
        y = np.int64(np.rint(np.float32(p) * r)) + zy
        out[i] = lo if y < lo else (hi if y > hi else y)


def xnn_mul(a, b, za, zb, r, zy, lo, hi, out) -> None:
    """y = clamp(rint_RNE(f32((a - za)*(b - zb)) * r) + zy, lo, hi) over same-shape 8-bit
    codes; r = mul_scale(...) (float32)."""
    fa, fb = _flat("xnn_mul", a, b, out)
    flat = np.empty(out.size, out.dtype)
    _mul_impl(fa, fb, np.int64(za), np.int64(zb), F32(r), np.int64(zy), np.int64(lo), np.int64(hi), flat)
    out[...] = flat.reshape(out.shape)


def xnn_mul_ref(a, b, za, zb, r, zy, lo, hi, out) -> None:
    """NumPy int64 twin of xnn_mul (the float32 product rounds once: |p| < 2**17, |r| < 2**8)."""
    fa, fb = _flat("xnn_mul", a, b, out)
    p = (fa.astype(np.int64) - np.int64(za)) * (fb.astype(np.int64) - np.int64(zb))
    y = np.rint(p.astype(F32) * F32(r)).astype(np.int64) + np.int64(zy)
    out[...] = np.clip(y, lo, hi).reshape(out.shape)
