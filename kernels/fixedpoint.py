"""Fixed-point requantization: TFLite/gemmlowp, TFLite single rounding, CMSIS-NN, power of two.

Glossary: `m0` a q31 multiplier (int32, the real multiplier is m0 * 2**(shift - 31)); `shift`
its exponent (> 0 left, < 0 right); `srdhm` SaturatingRoundingDoublingHighMul; `pot` power of
two. RHU = round half up (toward +inf), RNE = half to even, RHAZ = half away from zero.

Integer rules (C++ semantics, int32 operands, `wrap32` = two's-complement reduction to int32):

    srdhm(a, b)        = INT32_MAX if a == b == INT32_MIN
                         else trunc_div(a*b + (2**30 if a*b >= 0 else 1 - 2**30), 2**31)
                         (gemmlowp: C++ `/` truncates; the net effect is RHU of a*b / 2**31)
    srdhm_no_sat(a, b) = wrap32((a*b + 2**30) >> 31)           (CMSIS-NN, INT32_MIN**2 -> INT32_MIN)
    rdbpot(x, e)       = (x >> e) + ((x & (2**e-1)) > ((2**e-1) >> 1) + (x < 0))   (RHAZ, 0<=e<=31)

    mode "double": rdbpot(srdhm(wrap32(x * 2**max(shift,0)), m0), max(-shift,0))
    mode "cmsis" : rdbpot(srdhm_no_sat(wrap32(x * 2**max(shift,0)), m0), max(-shift,0))
    mode "single": wrap32((x*m0 + 2**(30-shift)) >> (31-shift))      (int64, one RHU)
    mode "builtin": rhu_shift(srdhm(wrap32(x * 2**max(shift,0)), m0), max(-shift,0))
                   rhu_shift(x, e) = (x + 2**(e-1)) >> e  (e > 0; x for e == 0): TFLite's
                   optimized CPU kernels (ruy / cpu_backend_gemm's q31 high multiply, then a
                   round-half-up shift), measured against ai-edge-litert's builtin path
    mode "reduced64": (x * r + 2**(14-shift)) >> (15-shift), x the int64 accumulator (not
                   wrapped), r = (m0 + 2**15) >> 16 if m0 < 0x7FFF0000 else 0x7FFF: TFLite's
                   MultiplyByQuantizedMultiplier(int64_t x, ...) overload with the reduced 16-bit
                   multiplier (the 16x8 conv kernels; TFLite asserts shift < 8 in debug builds
                   only, the release arithmetic holds up to shift 14)

    requant_fixedpoint: out = clamp(wrap32(mbqm(wrap32(acc), m0[c], shift[c]) + zp), lo, hi)

The accumulator and the `+ zp` are int32 as in TFLite's kernels, so they wrap like the C++
does on every real compiler (signed overflow is formally undefined there).

Power-of-two and generic multiply-shift rules (exact int64, no intermediate wrap):

    requant_shift:          out = clamp(round_n(acc) + zp, lo, hi)
    requant_multiply_shift: out = clamp(round_n(acc * m[c]) + zp, lo, hi)
    round_n(v) = round(v / 2**n) with `rounding` in floor | rhu | rne | rhaz | trunc;
                 n < 0 is an exact left shift v * 2**-n.
"""
from __future__ import annotations

import math

import numpy as np

from .jit import kernel, kernel_array

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

MODES = {"double": 0, "single": 1, "cmsis": 2, "builtin": 3, "reduced64": 4}
ROUNDINGS = {"floor": 0, "rhu": 1, "rne": 2, "rhaz": 3, "trunc": 4}


def _mode_code(mode: str) -> int:
    if mode not in MODES:
        raise ValueError(f"unknown fixed-point mode '{mode}' (known: {', '.join(MODES)})")
    return MODES[mode]


def _rounding_code(rounding: str) -> int:
    if rounding not in ROUNDINGS:
        raise ValueError(f"unknown rounding '{rounding}' (known: {', '.join(ROUNDINGS)})")
    return ROUNDINGS[rounding]


# ----------------------------------------------------------------------------- multipliers

@kernel
def _quantize_multiplier_impl(real, single_rounding, m_out, s_out):
    for i in range(real.shape[0]):
        if real[i] == 0.0:
            m_out[i] = 0
            s_out[i] = 0
            continue
        frac, exp = math.frexp(real[i])
        q = frac * 2147483648.0
        qi = np.int64(math.floor(abs(q) + 0.5))          # round half away from zero
        if q < 0:
            qi = -qi
        if qi == 2147483648:
            qi = qi // 2
            exp += 1
        if exp < -31:
            exp = 0
            qi = 0
        if single_rounding and exp > 30:
            exp = 30
            qi = 2147483647
        m_out[i] = qi
        s_out[i] = exp


def _check_real(real) -> np.ndarray:
    r = np.ascontiguousarray(np.asarray(real, dtype=np.float64).reshape(-1))
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"quantize_multiplier: multipliers must be finite and >= 0, got {r[:4].tolist()}")
    return r


def quantize_multiplier(real, single_rounding: bool = False):
    """TFLite QuantizeMultiplier of float64 multipliers (>= 0), elementwise.

    frac, shift = frexp(real) (frac in [0.5, 1)); m0 = round_RHAZ(frac * 2**31); if m0 == 2**31
    then m0 = 2**30, shift += 1; if shift < -31 then m0 = shift = 0 (flush); real == 0 gives
    (0, 0). With `single_rounding` (TFLITE_SINGLE_ROUNDING) a shift > 30 becomes 30 with
    m0 = 2**31 - 1. Returns (m0 int32, shift int32) shaped like `real`.
    """
    arr = np.asarray(real)
    r = _check_real(arr)
    m = np.empty(r.shape, np.int32)
    s = np.empty(r.shape, np.int32)
    _quantize_multiplier_impl(r, bool(single_rounding), m, s)
    return m.reshape(arr.shape), s.reshape(arr.shape)


def quantize_multiplier_ref(real, single_rounding: bool = False):
    """Python twin of quantize_multiplier (math.frexp and Python ints)."""
    arr = np.asarray(real)
    r = _check_real(arr)
    ms, ss = [], []
    for x in r.tolist():
        m, s = _quantize_one_ref(x, single_rounding)
        ms.append(m)
        ss.append(s)
    return np.array(ms, np.int32).reshape(arr.shape), np.array(ss, np.int32).reshape(arr.shape)


def _quantize_one_ref(x: float, single_rounding: bool):
    if x == 0.0:
        return 0, 0
    frac, exp = math.frexp(x)
    scaled = frac * (1 << 31)            # exact: a power-of-two scaling of a double
    m = int(math.floor(scaled + 0.5))    # frac > 0 here, so this is RHAZ
    if m == 1 << 31:
        m, exp = m // 2, exp + 1
    if exp < -31:
        return 0, 0
    if single_rounding and exp > 30:
        return (1 << 31) - 1, 30
    return m, exp


# ----------------------------------------------------------------------------- scalar integer rules

@kernel
def _wrap32(x):
    return ((np.int64(x) + 2147483648) & 0xFFFFFFFF) - 2147483648


@kernel
def _trunc_div_pow2(v, n):
    if v >= 0:
        return v >> n
    return -((-v) >> n)


@kernel
def _srdhm(a, b):
    a = np.int64(a)
    b = np.int64(b)
    if a == b and a == -2147483648:
        return np.int64(2147483647)
    ab = a * b
    nudge = np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30))
    return _wrap32(_trunc_div_pow2(ab + nudge, 31))


@kernel
def _srdhm_no_sat(a, b):
    return _wrap32((np.int64(a) * np.int64(b) + (1 << 30)) >> 31)


@kernel
def _rounding_divide_by_pot(x, exponent):
    x = np.int64(x)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@kernel
def _mbqm(x, m0, shift, mode):
    x = np.int64(x)
    m0 = np.int64(m0)
    if mode == 1:
        total = 31 - shift
        return _wrap32((x * m0 + (np.int64(1) << (total - 1))) >> total)
    if mode == 4:
        r = (m0 + 32768) >> 16 if m0 < 0x7FFF0000 else np.int64(0x7FFF)
        total = 15 - shift
        return (x * r + (np.int64(1) << (total - 1))) >> total
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    xs = _wrap32(x << left)
    if mode == 0 or mode == 3:
        hi = _srdhm(xs, m0)
    else:
        hi = _srdhm_no_sat(xs, m0)
    if mode == 3:
        return (hi + (np.int64(1) << (right - 1))) >> right if right > 0 else hi
    return _rounding_divide_by_pot(hi, right)


# the scalar rules for other modules' Numba kernels (one int64 value in int32 range each)
wrap32 = _wrap32
srdhm1 = _srdhm
rdbpot1 = _rounding_divide_by_pot


@kernel
def _srdhm_vec(a, b, out):
    for i in range(out.shape[0]):
        out[i] = _srdhm(a[i], b[i])


@kernel
def _rdbpot_vec(x, e, out):
    for i in range(out.shape[0]):
        out[i] = _rounding_divide_by_pot(x[i], e[i])


@kernel
def _mbqm_vec(x, m0, shift, mode, out):
    for i in range(out.shape[0]):
        out[i] = _mbqm(x[i], m0[i], shift[i], mode)


def _int32_operands(name: str, *arrays):
    """Broadcast integer operands, check they hold int32 values, return flat int64 arrays."""
    arrs = [np.asarray(a) for a in arrays]
    for a in arrs:
        if a.dtype.kind not in "iu":
            raise ValueError(f"{name}: operands must be integers, got {a.dtype}")
        if a.size and (int(a.min()) < INT32_MIN or int(a.max()) > INT32_MAX):
            raise ValueError(f"{name}: operand outside int32: [{int(a.min())}, {int(a.max())}]")
    b = np.broadcast_arrays(*arrs)
    return b[0].shape, [np.ascontiguousarray(x, np.int64).reshape(-1) for x in b]


def _shaped(flat: np.ndarray, shape):
    out = flat.astype(np.int32).reshape(shape)
    return out[()] if out.ndim == 0 else out


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul of int32 values, elementwise (see module doc).
    Goldens: srdhm(-5, 2**30) == -2, srdhm(5, 2**30) == 3, srdhm(INT32_MIN, INT32_MIN) == INT32_MAX."""
    shape, (fa, fb) = _int32_operands("srdhm", a, b)
    out = np.empty(fa.shape, np.int64)
    _srdhm_vec(fa, fb, out)
    return _shaped(out, shape)


def srdhm_ref(a, b):
    """Python-int twin of srdhm."""
    shape, (fa, fb) = _int32_operands("srdhm", a, b)
    return _shaped(np.array([_srdhm_one_ref(x, y) for x, y in zip(fa.tolist(), fb.tolist())],
                            np.int64), shape)


def _srdhm_one_ref(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    v = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    q = abs(v) // (1 << 31)
    return _wrap32_ref(q if v >= 0 else -q)


def _wrap32_ref(x: int) -> int:
    return ((x + (1 << 31)) % (1 << 32)) - (1 << 31)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT: x / 2**exponent rounded half away from zero, int32,
    0 <= exponent <= 31, elementwise."""
    shape, (fx, fe) = _int32_operands("rounding_divide_by_pot", x, exponent)
    if fe.size and (fe.min() < 0 or fe.max() > 31):
        raise ValueError(f"rounding_divide_by_pot: exponent outside 0..31: {int(fe.min())}..{int(fe.max())}")
    out = np.empty(fx.shape, np.int64)
    _rdbpot_vec(fx, fe, out)
    return _shaped(out, shape)


def rounding_divide_by_pot_ref(x, exponent):
    """Python-int twin of rounding_divide_by_pot."""
    shape, (fx, fe) = _int32_operands("rounding_divide_by_pot", x, exponent)
    if fe.size and (fe.min() < 0 or fe.max() > 31):
        raise ValueError(f"rounding_divide_by_pot: exponent outside 0..31: {int(fe.min())}..{int(fe.max())}")
    return _shaped(np.array([_rdbpot_one_ref(v, e) for v, e in zip(fx.tolist(), fe.tolist())],
                            np.int64), shape)


def _rdbpot_one_ref(x: int, e: int) -> int:
    mask = (1 << e) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if (x & mask) > threshold else 0)


def _check_shift(name: str, shift: np.ndarray) -> None:
    if shift.size and (shift.min() < -31 or shift.max() > 30):
        raise ValueError(f"{name}: shift outside -31..30: {int(shift.min())}..{int(shift.max())}")


def multiply_by_quantized_multiplier(acc, m0, shift, mode: str = "double"):
    """TFLite MultiplyByQuantizedMultiplier of int32 `acc` by q31 `m0` and `shift` (-31..30),
    elementwise; `mode` is "double", "single" or "cmsis" (module doc). Returns int32."""
    code = _mode_code(mode)
    shape, (fx, fm, fs) = _int32_operands("multiply_by_quantized_multiplier", acc, m0, shift)
    _check_shift("multiply_by_quantized_multiplier", fs)
    out = np.empty(fx.shape, np.int64)
    _mbqm_vec(fx, fm, fs, code, out)
    return _shaped(out, shape)


def multiply_by_quantized_multiplier_ref(acc, m0, shift, mode: str = "double"):
    """Python-int twin of multiply_by_quantized_multiplier."""
    _mode_code(mode)
    shape, (fx, fm, fs) = _int32_operands("multiply_by_quantized_multiplier", acc, m0, shift)
    _check_shift("multiply_by_quantized_multiplier", fs)
    vals = [_mbqm_one_ref(x, m, s, mode) for x, m, s in zip(fx.tolist(), fm.tolist(), fs.tolist())]
    return _shaped(np.array(vals, np.int64), shape)


def _mbqm_one_ref(x: int, m0: int, shift: int, mode: str) -> int:
    if mode == "reduced64":
        r = (m0 + (1 << 15)) >> 16 if m0 < 0x7FFF0000 else 0x7FFF
        return (x * r + (1 << (14 - shift))) >> (15 - shift)
    if mode == "single":
        total = 31 - shift
        return _wrap32_ref((x * m0 + (1 << (total - 1))) >> total)
    xs = _wrap32_ref(x * (1 << max(shift, 0)))
    if mode in ("double", "builtin"):
        hi = _srdhm_one_ref(xs, m0)
    else:
        hi = _wrap32_ref((xs * m0 + (1 << 30)) >> 31)
    if mode == "builtin":
        e = max(-shift, 0)
        return (hi + (1 << (e - 1))) >> e if e > 0 else hi
    return _rdbpot_one_ref(hi, max(-shift, 0))


# ----------------------------------------------------------------------------- (P, C, Q) requant

@kernel
def _requant_fixedpoint_impl(acc, m0, shift, zp, lo, hi, mode, out):
    p_, c_, q_ = acc.shape
    for p in range(p_):
        for c in range(c_):
            m = m0[c]
            s = shift[c]
            for q in range(q_):
                a = np.int64(acc[p, c, q]) if mode == 4 else _wrap32(acc[p, c, q])
                y = _wrap32(_mbqm(a, m, s, mode) + zp)
                if y < lo:
                    y = lo
                elif y > hi:
                    y = hi
                out[p, c, q] = y


def _check_layout(name: str, acc, out, per_channel: dict) -> None:
    if not isinstance(acc, np.ndarray) or not isinstance(out, np.ndarray):
        raise ValueError(f"{name}: acc and out must be NumPy arrays")
    if acc.ndim != 3 or out.shape != acc.shape:
        raise ValueError(f"{name}: acc {acc.shape} and out {out.shape} must both be (P, C, Q)")
    if acc.dtype not in (np.int32, np.int64) or out.dtype.kind not in "iu":
        raise ValueError(f"{name}: acc must be int32/int64 and out an integer array, got {acc.dtype}, {out.dtype}")
    for pname, arr in per_channel.items():
        if arr.shape != (acc.shape[1],):
            raise ValueError(f"{name}: {pname} has shape {arr.shape}, expected ({acc.shape[1]},)")


def _check_clamp(name: str, zp: int, lo: int, hi: int, out: np.ndarray) -> None:
    info = np.iinfo(out.dtype)
    if not (info.min <= lo <= hi <= info.max):
        raise ValueError(f"{name}: clamp [{lo}, {hi}] does not fit out dtype {out.dtype}")
    if not (INT32_MIN <= zp <= INT32_MAX):
        raise ValueError(f"{name}: zero point {zp} outside int32")


def _fixedpoint_args(acc, m0, shift, zp, lo, hi, mode, out):
    m0 = np.ascontiguousarray(m0, np.int64).reshape(-1)
    shift = np.ascontiguousarray(shift, np.int64).reshape(-1)
    _check_layout("requant_fixedpoint", acc, out, {"m0": m0, "shift": shift})
    _check_clamp("requant_fixedpoint", int(zp), int(lo), int(hi), out)
    _check_shift("requant_fixedpoint", shift)
    if mode == "reduced64" and shift.size and shift.max() > 14:
        raise ValueError(f"requant_fixedpoint: mode reduced64 needs shift <= 14, got {int(shift.max())}")
    if m0.size and (m0.min() < INT32_MIN or m0.max() > INT32_MAX):
        raise ValueError("requant_fixedpoint: m0 outside int32")
    return m0, shift, _mode_code(mode)


def requant_fixedpoint(acc, m0, shift, zp, lo, hi, mode, out) -> None:
    """out[p,c,q] = clamp(wrap32(mbqm(wrap32(acc[p,c,q]), m0[c], shift[c], mode) + zp), lo, hi).

    acc: int32/int64 (P, C, Q) (int64 values are reduced to int32 as the C++ int32_t
    parameter does, except in mode "reduced64", whose C++ parameter is int64_t); m0, shift:
    (C,) ints; out: integer (P, C, Q), written in place.
    """
    m0, shift, code = _fixedpoint_args(acc, m0, shift, zp, lo, hi, mode, out)
    _requant_fixedpoint_impl(np.ascontiguousarray(acc), m0, shift, np.int64(zp), np.int64(lo),
                             np.int64(hi), code, out)


def requant_fixedpoint_ref(acc, m0, shift, zp, lo, hi, mode, out) -> None:
    """NumPy int64 twin of requant_fixedpoint (vectorized; same rules as the Python-int twins)."""
    m0, shift, _ = _fixedpoint_args(acc, m0, shift, zp, lo, hi, mode, out)
    x = acc.astype(np.int64) if mode == "reduced64" else _wrap32_np(acc.astype(np.int64))
    m = m0[None, :, None]
    s = shift[None, :, None]
    y = _wrap32_np(_mbqm_np(x, m, s, mode) + np.int64(zp))
    out[...] = np.clip(y, lo, hi).astype(out.dtype)


def _wrap32_np(v: np.ndarray) -> np.ndarray:
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _mbqm_np(x: np.ndarray, m: np.ndarray, s: np.ndarray, mode: str) -> np.ndarray:
    x, m, s = np.broadcast_arrays(x, m, s)
    if mode == "reduced64":
        r = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, np.int64(0x7FFF))
        return (x * r + (np.int64(1) << (14 - s))) >> (15 - s)
    if mode == "single":
        total = 31 - s
        return _wrap32_np((x * m + (np.int64(1) << (total - 1))) >> total)
    xs = _wrap32_np(x << np.maximum(s, 0))
    ab = xs * m
    if mode in ("double", "builtin"):
        v = ab + np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
        hi = _wrap32_np(np.where(v >= 0, v >> 31, -((-v) >> 31)))
        hi = np.where((xs == INT32_MIN) & (m == INT32_MIN), np.int64(INT32_MAX), hi)
    else:
        hi = _wrap32_np((ab + (1 << 30)) >> 31)
    e = np.maximum(-s, 0)
    if mode == "builtin":
        return np.where(e > 0, (hi + (np.int64(1) << np.maximum(e - 1, 0))) >> e, hi)
    mask = (np.int64(1) << e) - 1
    threshold = (mask >> 1) + (hi < 0)
    return (hi >> e) + ((hi & mask) > threshold)


# ----------------------------------------------------------------------------- shifts

@kernel(inline="always")
def _round_shift(v, n, rounding):
    """v / 2**n rounded: (v + r) >> n with r = 0 floor, half rhu, half - (v < 0) rhaz,
    half - 1 + ((v >> n) & 1) rne, (v < 0) * (2**n - 1) trunc; n <= 0 shifts left."""
    if n <= 0:
        return v << (-n)
    half = np.int64(1) << (n - 1)
    neg = np.int64(1) if v < 0 else np.int64(0)
    if rounding == 1:
        r = half
    elif rounding == 2:
        r = half - 1 + ((v >> n) & 1)
    elif rounding == 3:
        r = half - neg
    elif rounding == 4:
        r = neg * (2 * half - 1)
    else:
        r = np.int64(0)
    return (v + r) >> n


@kernel
def _requant_mul_shift_impl(acc, mult, n, rounding, zp, lo, hi, out):
    p_, c_, q_ = acc.shape
    for p in range(p_):
        for c in range(c_):
            m = mult[c]
            s = n[c]
            for q in range(q_):
                y = _round_shift(np.int64(acc[p, c, q]) * m, s, rounding) + zp
                if y < lo:
                    y = lo
                elif y > hi:
                    y = hi
                out[p, c, q] = y


def _shift_args(name, acc, mult, n, zp, lo, hi, rounding, out):
    mult = np.ascontiguousarray(mult, np.int64).reshape(-1)
    n = np.ascontiguousarray(n, np.int64).reshape(-1)
    _check_layout(name, acc, out, {"multiplier": mult, "n": n})
    _check_clamp(name, int(zp), int(lo), int(hi), out)
    code = _rounding_code(rounding)
    if n.size and (n.min() < -31 or n.max() > 62):
        raise ValueError(f"{name}: shift n outside -31..62: {int(n.min())}..{int(n.max())}")
    amax = max(abs(int(acc.min())), abs(int(acc.max()))) if acc.size else 0
    mmax = int(np.abs(mult).max()) if mult.size else 0
    lmax = max(0, -int(n.min())) if n.size else 0
    if amax * mmax * (1 << lmax) >= 1 << 62:
        raise ValueError(f"{name}: |acc * multiplier * 2**left| may reach 2**62 (max |acc| {amax}, "
                         f"max |m| {mmax}, left shift {lmax}); int64 arithmetic would overflow")
    return mult, n, code


def requant_multiply_shift(acc, mult, n, rounding, zp, lo, hi, out) -> None:
    """out[p,c,q] = clamp(round_n[c](acc[p,c,q] * mult[c]) + zp, lo, hi), exact int64.

    round_n(v) = v / 2**n rounded per `rounding` (floor | rhu | rne | rhaz | trunc); n < 0 is a
    left shift. acc int32/int64 (P, C, Q); mult, n: (C,) ints; out integer (P, C, Q).
    """
    mult, n, code = _shift_args("requant_multiply_shift", acc, mult, n, zp, lo, hi, rounding, out)
    _requant_mul_shift_impl(np.ascontiguousarray(acc), mult, n, code, np.int64(zp), np.int64(lo),
                            np.int64(hi), out)


def requant_multiply_shift_ref(acc, mult, n, rounding, zp, lo, hi, out) -> None:
    """NumPy int64 twin of requant_multiply_shift."""
    mult, n, code = _shift_args("requant_multiply_shift", acc, mult, n, zp, lo, hi, rounding, out)
    v = acc.astype(np.int64) * mult[None, :, None]
    y = _round_shift_ref(v, n[None, :, None], rounding) + np.int64(zp)
    out[...] = np.clip(y, lo, hi).astype(out.dtype)


def _round_shift_ref(v: np.ndarray, n: np.ndarray, rounding: str) -> np.ndarray:
    n = np.broadcast_to(n, v.shape)
    pos = np.maximum(n, 0)
    q = v >> pos
    rem = v - (q << pos)
    half = np.where(pos > 0, np.int64(1) << np.maximum(pos - 1, 0), np.int64(1) << 62)
    up = {"floor": np.zeros(v.shape, bool),
          "rhu": rem >= half,
          "rne": (rem > half) | ((rem == half) & ((q & 1) == 1)),
          "rhaz": (rem > half) | ((rem == half) & (q >= 0)),
          "trunc": (rem > 0) & (v < 0)}[rounding]
    q = q + up.astype(np.int64)
    return np.where(n < 0, v << np.maximum(-n, 0), q)


def requant_shift(acc, n, rounding, zp, lo, hi, out) -> None:
    """Power-of-two requant: out[p,c,q] = clamp(round_n[c](acc[p,c,q]) + zp, lo, hi), exact int64.

    round_n(v) = (v + r) >> n with r = 0 (floor), 2**(n-1) (rhu), or the tie rule of rne/rhaz
    (trunc rounds toward zero); n < 0 is an exact left shift by -n. n: (C,) ints in -31..62.
    """
    n = np.asarray(n, np.int64).reshape(-1)
    requant_multiply_shift(acc, np.ones(n.shape, np.int64), n, rounding, zp, lo, hi, out)


def requant_shift_ref(acc, n, rounding, zp, lo, hi, out) -> None:
    """NumPy int64 twin of requant_shift."""
    n = np.asarray(n, np.int64).reshape(-1)
    requant_multiply_shift_ref(acc, np.ones(n.shape, np.int64), n, rounding, zp, lo, hi, out)


# ----------------------------------------------------------------------------- TFLite ADD

@kernel
def _tflite_add_impl(a, b, za, zb, m, s, left_shift, mode, zy, lo, hi, out):
    for i in range(a.size):
        va = _mbqm(_wrap32((np.int64(a[i]) - za) << left_shift), m[0], s[0], mode)
        vb = _mbqm(_wrap32((np.int64(b[i]) - zb) << left_shift), m[1], s[1], mode)
        y = _mbqm(_wrap32(va + vb), m[2], s[2], mode) + zy
        out[i] = lo if y < lo else (hi if y > hi else y)


def tflite_add_params(sa: float, sb: float, sy: float, left_shift: int, single_rounding: bool = False):
    """TFLite ADD's prepare (lite/kernels/add.cc): q31 multipliers and shifts (3,) of

        twice_max = 2 * max(sa, sb)                        (float32, exact)
        ra = sa / twice_max,  rb = sb / twice_max,  ry = twice_max / (2**left_shift * sy)

    in float64, each through QuantizeMultiplier (shift <= 0: "SmallerThanOneExp")."""
    twice_max = np.float64(2 * max(np.float32(sa), np.float32(sb)))
    real = np.array([np.float64(np.float32(sa)) / twice_max, np.float64(np.float32(sb)) / twice_max,
                     twice_max / np.float64(np.float32((1 << left_shift) * np.float32(sy)))], np.float64)
    m, s = quantize_multiplier(real, single_rounding)
    if np.any(s > 0):
        raise ValueError(f"tflite_add: output multiplier {float(real[2])!r} is not below one "
                         f"(input scales {sa}, {sb}, output scale {sy})")
    return m.astype(np.int64), s.astype(np.int64)


def _add_args(a, b, m, s, left_shift, mode, out):
    if a.shape != b.shape or out.shape != a.shape:
        raise ValueError(f"tflite_add: a {a.shape}, b {b.shape} and out {out.shape} must share one shape")
    m = np.ascontiguousarray(m, np.int64).reshape(-1)
    s = np.ascontiguousarray(s, np.int64).reshape(-1)
    if m.size != 3 or s.size != 3:
        raise ValueError("tflite_add: multipliers and shifts must hold 3 values (a, b, output)")
    _check_shift("tflite_add", s)
    if not 0 <= left_shift <= 20:
        raise ValueError(f"tflite_add: left shift {left_shift} outside 0..20")
    return m, s, _mode_code(mode)


def tflite_add(a, b, za, zb, m, s, left_shift, mode, zy, lo, hi, out) -> None:
    """TFLite ADD (reference_integer_ops::AddElementwise; CMSIS-NN arm_elementwise_add_s8), int32:

        va = mbqm(wrap32((a - za) << left_shift), m[0], s[0])
        vb = mbqm(wrap32((b - zb) << left_shift), m[1], s[1])
        out = clamp(mbqm(wrap32(va + vb), m[2], s[2]) + zy, lo, hi)

    mbqm = MultiplyByQuantizedMultiplier in `mode` (module doc; "double" is TFLite's
    MultiplyByQuantizedMultiplierSmallerThanOneExp). a, b, out: same shape, integer."""
    m, s, code = _add_args(a, b, m, s, left_shift, mode, out)
    flat = out.reshape(-1) if out.flags.c_contiguous else np.empty(out.size, out.dtype)
    _tflite_add_impl(kernel_array(a).reshape(-1), kernel_array(b).reshape(-1), np.int64(za),
                     np.int64(zb), m, s, np.int64(left_shift), code, np.int64(zy), np.int64(lo), np.int64(hi), flat)
    if not out.flags.c_contiguous:
        out[...] = flat.reshape(out.shape)


def tflite_add_ref(a, b, za, zb, m, s, left_shift, mode, zy, lo, hi, out) -> None:
    """Python-int twin of tflite_add."""
    m, s, _ = _add_args(a, b, m, s, left_shift, mode, out)
    m, s = m.tolist(), s.tolist()
    vals = []
    for x, y in zip(a.reshape(-1).tolist(), b.reshape(-1).tolist()):
        va = _mbqm_one_ref(_wrap32_ref((x - za) << left_shift), m[0], s[0], mode)
        vb = _mbqm_one_ref(_wrap32_ref((y - zb) << left_shift), m[1], s[1], mode)
        v = _mbqm_one_ref(_wrap32_ref(va + vb), m[2], s[2], mode) + zy
        vals.append(min(max(v, lo), hi))
    out[...] = np.array(vals, np.int64).reshape(out.shape)


@kernel(inline="always")
def _tflite_add_one(u, v, path, m, s, left_shift, zy):
    """One optimized-ADD output before the clamp, u = a - za, v = b - zb (tflite_add_lanes and
    tflite_add_broadcast state the arithmetic): path 0 AddElementwise's vector block, 1
    AddScalarBroadcast's vector block (truncating input shift), 2 the scalar tail (mode "double")."""
    if path == 0:
        va = _srdhm(_wrap32(u << (left_shift + s[0])), m[0])
        vb = _srdhm(_wrap32(v << (left_shift + s[1])), m[1])
        return _rounding_divide_by_pot(_srdhm(_wrap32(va + vb), m[2]), -s[2]) + zy
    if path == 1:
        va = _srdhm(_wrap32(u << left_shift), m[0]) >> -s[0]
        vb = _srdhm(_wrap32(v << left_shift), m[1]) >> -s[1]
        return _rounding_divide_by_pot(_srdhm(_wrap32(va + vb), m[2]), -s[2]) + zy
    va = _mbqm(_wrap32(u << left_shift), m[0], s[0], np.int64(0))
    vb = _mbqm(_wrap32(v << left_shift), m[1], s[1], np.int64(0))
    return _mbqm(_wrap32(va + vb), m[2], s[2], np.int64(0)) + zy


@kernel
def _tflite_add_lanes_impl(a, b, za, zb, m, s, left_shift, lanes, zy, lo, hi, out):
    n_vec = (a.size // lanes) * lanes if lanes > 0 else 0
    for i in range(a.size):
        y = _tflite_add_one(np.int64(a[i]) - za, np.int64(b[i]) - zb, 0 if i < n_vec else 2, m, s, left_shift, zy)
        out[i] = lo if y < lo else (hi if y > hi else y)


def _lanes_args(a, b, m, s, left_shift, lanes, out):
    m, s, _ = _add_args(a, b, m, s, left_shift, "double", out)
    if lanes < 0 or np.any(left_shift + s[:2] < 0):
        raise ValueError(f"tflite_add_lanes: lanes {lanes} < 0 or input shift below zero "
                         f"(left shift {left_shift}, input shifts {s[:2].tolist()})")
    return m, s


def tflite_add_lanes(a, b, za, zb, m, s, left_shift, lanes, zy, lo, hi, out) -> None:
    """TFLite's optimized 8-bit ADD (optimized_integer_ops::AddElementwise, lite/kernels/
    internal/optimized/integer_ops/add.h; NEON, through NEON_2_SSE on x86), int32, and its int16
    twin AddElementwiseInt16 (left_shift 15, zero points 0: the same blocks; it adds zy and clamps
    in int32 before a saturating narrow, which with zy = 0 is this clamp). The first
    floor(n / lanes) * lanes elements (flat order) take the vector path, which folds each
    input's right shift into the left shift before the high multiply:

        va = srdhm(wrap32((a - za) << (left_shift + s[0])), m[0])
        vb = srdhm(wrap32((b - zb) << (left_shift + s[1])), m[1])
        out = clamp(rdbpot(srdhm(wrap32(va + vb), m[2]), -s[2]) + zy, lo, hi)

    (vshlq_s32, vqrdmulhq_n_s32 = srdhm, gemmlowp RoundingDivideByPOT); the tail takes the
    scalar path, `tflite_add` in mode "double" (MultiplyByQuantizedMultiplierSmallerThanOneExp
    on each input after the plain left shift). The vector path narrows the requantized sum
    to int16 before adding zy: callers keep it inside int16. left_shift + s[i] >= 0."""
    m, s = _lanes_args(a, b, m, s, left_shift, lanes, out)
    flat = out.reshape(-1) if out.flags.c_contiguous else np.empty(out.size, out.dtype)
    _tflite_add_lanes_impl(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1), np.int64(za),
                           np.int64(zb), m, s, np.int64(left_shift), np.int64(lanes), np.int64(zy), np.int64(lo),
                           np.int64(hi), flat)
    if not out.flags.c_contiguous:
        out[...] = flat.reshape(out.shape)


def tflite_add_lanes_ref(a, b, za, zb, m, s, left_shift, lanes, zy, lo, hi, out) -> None:
    """Python-int twin of tflite_add_lanes."""
    m, s = _lanes_args(a, b, m, s, left_shift, lanes, out)
    m, s = m.tolist(), s.tolist()
    n_vec = (a.size // lanes) * lanes if lanes else 0
    vals = []
    for i, (x, y) in enumerate(zip(a.reshape(-1).tolist(), b.reshape(-1).tolist())):
        if i < n_vec:
            va = _srdhm_one_ref(_wrap32_ref((x - za) << (left_shift + s[0])), m[0])
            vb = _srdhm_one_ref(_wrap32_ref((y - zb) << (left_shift + s[1])), m[1])
            v = _rdbpot_one_ref(_srdhm_one_ref(_wrap32_ref(va + vb), m[2]), -s[2]) + zy
        else:
            va = _mbqm_one_ref(_wrap32_ref((x - za) << left_shift), m[0], s[0], "double")
            vb = _mbqm_one_ref(_wrap32_ref((y - zb) << left_shift), m[1], s[1], "double")
            v = _mbqm_one_ref(_wrap32_ref(va + vb), m[2], s[2], "double") + zy
        vals.append(min(max(v, lo), hi))
    out[...] = np.array(vals, np.int64).reshape(out.shape)


# ----------------------------------------------------------------------------- TFLite broadcast ADD
def tflite_fivefold(a_shape, b_shape):
    """TFLite's fivefold broadcast plan (reference_ops::ProcessBroadcastShapes,
    lite/kernels/internal/reference/process_broadcast_shapes.h) for shapes that differ:
    returns (swap, (y0, y1, y2, y3, y4)), or None for kGenericBroadcast. After swapping so
    input1 is the side whose innermost differing dim is 1 (kSecondInputBroadcastsFast swaps),
    input1 holds y0*y1*y2*y4 elements and input2 y0*y2*y3*y4; the output runs
    i0, i1, i2, i3, i4 over (y0, y1, y2, y3, y4)."""
    n = max(len(a_shape), len(b_shape))
    sa = [1] * (n - len(a_shape)) + list(a_shape)
    sb = [1] * (n - len(b_shape)) + list(b_shape)
    swap = None
    for i in range(n - 1, -1, -1):
        if sa[i] != sb[i]:
            if sa[i] == 1 or sb[i] == 1:
                swap = sa[i] != 1
                break
            return None
    if swap is None:
        raise ValueError(f"tflite_fivefold: shapes {a_shape} and {b_shape} do not broadcast")
    x, y = (sb, sa) if swap else (sa, sb)
    ys = [1] * 5
    i = n - 1
    for slot, test in ((4, lambda i: x[i] == y[i]), (3, lambda i: x[i] == 1), (2, lambda i: x[i] == y[i]),
                       (1, lambda i: y[i] == 1), (0, lambda i: x[i] == y[i])):
        while i >= 0 and test(i):
            ys[slot] *= max(x[i], y[i])
            i -= 1
    return (swap, tuple(ys)) if i < 0 else None


def _fivefold_plan(ys):
    """Flat input1 / input2 indices and path codes (0: AddElementwise's 16-lane block, 1:
    AddScalarBroadcast's 8-lane block, 2: the reference-rounded tail) of each output element."""
    y0, y1, y2, y3, y4 = ys
    i0, i1, i2, i3, i4 = np.meshgrid(*[np.arange(v, dtype=np.int64) for v in ys], indexing="ij")
    i1x = ((i0 * y1 + i1) * y2 + i2) * y4 + i4
    i2x = ((i0 * y2 + i2) * y3 + i3) * y4 + i4
    if y4 > 1:
        path = np.where(i4 < (y4 // 16) * 16, 0, 2)
    else:
        path = np.where(i3 < (y3 // 8) * 8, 1, 2)
    return i1x.reshape(-1), i2x.reshape(-1), path.reshape(-1).astype(np.int64)


@kernel
def _tflite_add_fivefold_impl(x1, x2, i1x, i2x, path, z, m, s, left_shift, zy, lo, hi, out):
    for k in range(out.size):
        y = _tflite_add_one(np.int64(x1[i1x[k]]) - z[0], np.int64(x2[i2x[k]]) - z[1], path[k], m, s, left_shift, zy)
        out[k] = lo if y < lo else (hi if y > hi else y)


def _fivefold_args(a, b, za, zb, m, s, left_shift, out):
    plan = tflite_fivefold(a.shape, b.shape)
    if plan is None or out.shape != np.broadcast_shapes(a.shape, b.shape):
        raise ValueError(f"tflite_add_broadcast: shapes {a.shape}, {b.shape} -> {out.shape} are not a "
                         f"fivefold broadcast")
    m, s, _ = _add_args(out, out, m, s, left_shift, "double", out)
    if np.any(s > 0):
        raise ValueError(f"tflite_add_broadcast: shifts {s.tolist()} above zero")
    swap, ys = plan
    x1, x2 = (b, a) if swap else (a, b)
    z, m, s = ((zb, za), m[[1, 0, 2]], s[[1, 0, 2]]) if swap else ((za, zb), m, s)
    return x1.reshape(-1), x2.reshape(-1), ys, np.array(z, np.int64), m, s


def tflite_add_broadcast(a, b, za, zb, m, s, left_shift, zy, lo, hi, out) -> None:
    """TFLite's optimized 8-bit broadcast ADD (optimized_integer_ops::BroadcastAddFivefold,
    lite/kernels/internal/optimized/integer_ops/add.h; NEON via NEON_2_SSE on x86), int32, for
    shapes `tflite_fivefold` accepts. Inputs are swapped as it says; with y4 > 1 each run of y4
    output elements is AddElementwise (`tflite_add_lanes`, 16 lanes, the blocks restarting per
    run); with y4 == 1 each run of y3 elements is AddScalarBroadcast, whose 8-lane blocks shift
    each input right after the high multiply, truncating (vshlq_s32 by a negative shift):

        va = srdhm(wrap32((x1 - z1) << left_shift), m1) >> -s1     (and vb likewise)
        out = clamp(rdbpot(srdhm(wrap32(va + vb), m[2]), -s[2]) + zy, lo, hi)

    and whose tail is the reference double rounding (`tflite_add`, mode "double"). s <= 0."""
    x1, x2, ys, z, m, s = _fivefold_args(np.ascontiguousarray(a), np.ascontiguousarray(b), za, zb, m, s,
                                         left_shift, out)
    i1x, i2x, path = _fivefold_plan(ys)
    flat = out.reshape(-1) if out.flags.c_contiguous else np.empty(out.size, out.dtype)
    _tflite_add_fivefold_impl(x1, x2, i1x, i2x, path, z, m, s, np.int64(left_shift), np.int64(zy), np.int64(lo),
                              np.int64(hi), flat)
    if not out.flags.c_contiguous:
        out[...] = flat.reshape(out.shape)


def tflite_add_broadcast_ref(a, b, za, zb, m, s, left_shift, zy, lo, hi, out) -> None:
    """Python-int twin of tflite_add_broadcast: the fivefold loops written out."""
    x1, x2, (y0, y1, y2, y3, y4), z, m, s = _fivefold_args(np.asarray(a), np.asarray(b), za, zb, m, s,
                                                           left_shift, out)
    x1, x2, (z1, z2), m, s = x1.tolist(), x2.tolist(), z.tolist(), m.tolist(), s.tolist()

    def one(u, v, path):
        u, v = u - z1, v - z2
        if path == 2:
            va = _mbqm_one_ref(_wrap32_ref(u << left_shift), m[0], s[0], "double")
            vb = _mbqm_one_ref(_wrap32_ref(v << left_shift), m[1], s[1], "double")
            r = _mbqm_one_ref(_wrap32_ref(va + vb), m[2], s[2], "double") + zy
        else:
            if path == 0:
                va = _srdhm_one_ref(_wrap32_ref(u << (left_shift + s[0])), m[0])
                vb = _srdhm_one_ref(_wrap32_ref(v << (left_shift + s[1])), m[1])
            else:
                va = _srdhm_one_ref(_wrap32_ref(u << left_shift), m[0]) >> -s[0]
                vb = _srdhm_one_ref(_wrap32_ref(v << left_shift), m[1]) >> -s[1]
            r = _rdbpot_one_ref(_srdhm_one_ref(_wrap32_ref(va + vb), m[2]), -s[2]) + zy
        return min(max(r, lo), hi)

    vals, p1, reset = [], 0, 0
    for _ in range(y0):
        p2 = reset
        for _ in range(y1):
            p2 = reset
            for _ in range(y2):
                if y4 > 1:
                    for _ in range(y3):
                        vals += [one(x1[p1 + k], x2[p2 + k], 0 if k < y4 // 16 * 16 else 2) for k in range(y4)]
                        p2 += y4
                    p1 += y4
                else:
                    vals += [one(x1[p1], x2[p2 + k], 1 if k < y3 // 8 * 8 else 2) for k in range(y3)]
                    p2 += y3
                    p1 += 1
        reset = p2
    out[...] = np.array(vals, np.int64).reshape(out.shape)


# ----------------------------------------------------------------------------- MEAN's 1/n fold
def mean_multiplier(m0, shift, n):
    """TFLite's MEAN multiplier with 1/n folded in (reference_ops::QuantizedMeanOrSum,
    tensorflow/lite/kernels/internal/reference/reduce.h), elementwise over NumPy int64 arrays:

        k = min(63 - clz64(n) (= floor(log2 n)), 32, 31 + shift)
        m = (m0 << k) // n          (int64, truncating: m0 >= 0, n > 0)
        returns (m, shift - k)

    (m0, shift) = QuantizeMultiplier(double(sx) / double(sy)); the mean is then
    MultiplyByQuantizedMultiplier(sum(x - zx), m, shift - k) + zy."""
    m0 = np.asarray(m0, np.int64)
    shift = np.asarray(shift, np.int64)
    n = np.asarray(n, np.int64)
    if np.any(n <= 0) or np.any(m0 < 0):
        raise ValueError("mean_multiplier: needs n > 0 and m0 >= 0")
    log2n = np.floor(np.log2(n.astype(np.float64))).astype(np.int64)
    log2n = np.where(np.left_shift(np.int64(1), log2n) > n, log2n - 1, log2n)     # exact floor(log2 n)
    log2n = np.where(np.left_shift(np.int64(1), log2n + 1) <= n, log2n + 1, log2n)
    k = np.minimum(np.minimum(log2n, 32), 31 + shift)
    return np.left_shift(m0, k) // n, shift - k


def mean_multiplier_ref(m0: int, shift: int, n: int):
    """Python-int twin of mean_multiplier for one (m0, shift, n)."""
    if n <= 0 or m0 < 0:
        raise ValueError("mean_multiplier: needs n > 0 and m0 >= 0")
    k = min(n.bit_length() - 1, 32, 31 + shift)
    return (m0 << k) // n, shift - k


# ----------------------------------------------------------------------------- optimized int8 MEAN
OPTIMIZED_MEAN_LANES = 16        # channels per vector block of optimized_integer_ops::MeanImpl


def optimized_mean_params(sx: float, zx: int, sy: float, zy: int, n: int):
    """(m0, shift, bias) of TFLite's optimized int8 MEAN over H, W (optimized_integer_ops::Mean,
    float32 as the C++ evaluates it):

        t = f32(f32(zx * sx) / sy);  t = f32(t + 0.5) if t > 0 else f32(t - 0.5)
        bias = zy - trunc(t)
        (m0, shift) = QuantizeMultiplier(double(f32(sx / f32(n * sy))))

    ValueError where t or the multiplier leave what the kernel can hold."""
    f = np.float32
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        t = f(f(f(zx) * f(sx)) / f(sy))
        t = f(t + f(0.5)) if t > 0 else f(t - f(0.5))
        real = f(f(sx) / f(f(n) * f(sy)))
    if not (np.isfinite(t) and abs(float(t)) < 2.0 ** 31):
        raise ValueError(f"optimized mean: zx * sx / sy = {float(t)!r} is outside int32")
    m0, shift = quantize_multiplier(np.array([np.float64(real)]))
    if int(shift[0]) > 30:
        raise ValueError(f"optimized mean: multiplier {float(real)!r} >= 2**30")
    return int(m0[0]), int(shift[0]), int(zy) - int(np.trunc(np.float64(t)))
