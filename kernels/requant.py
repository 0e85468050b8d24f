"""onnxruntime (MLAS) float requantization, bit for bit (DESIGN §3, target `ort`).

    m[c] = f32( f32(a_scale * b_scale[c]) / out_scale )
    out[p, c, q] = clamp( rint_half_even( f32(acc[p, c, q]) * m[c] ) + zp, lo, hi )

Every float operation is float32: f32(acc) itself rounds when |acc| > 2**24, and the product
is rounded to float32 before rint (a float64 product would round some ties differently).
MLAS clamps the float product to [lo - zp, hi - zp] before rounding; for the integer bounds
of 8/16-bit outputs that is the same as clamping the rounded integer, which is what this
kernel does so that the bounds stay exact for 32-bit outputs too.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel

_F_LIMIT = np.float32(2.0**62)  # |v| beyond this saturates before the int64 conversion


@kernel(inline="always")
def ort_round(acc, mult, flo, fhi):
    """The ORT float requant's one rounding, written once for every engine: rint_half_even(
    clamp(f32(acc) * mult, flo, fhi)) as float32 (acc an integer, mult/flo/fhi float32; with
    flo = f32(lo - zp), fhi = f32(hi - zp) the caller then adds zp, as an int32 or a float32,
    exactly: the result is a small integer)."""
    return np.rint(min(max(np.float32(acc) * mult, flo), fhi))


def ort_round_ref(acc, mult, flo, fhi):
    """NumPy twin of ort_round over arrays (mult float32, broadcast against acc): float32."""
    v = np.asarray(acc).astype(np.float32) * mult
    return np.rint(np.clip(v, np.float32(flo), np.float32(fhi)))


def ort_multiplier(a_scale, b_scale, out_scale) -> np.ndarray:
    """m = f32(f32(a_scale * b_scale) / out_scale), broadcast over channels, float32.
    Inputs are taken as float32 (the model's scales)."""
    a = np.asarray(a_scale, np.float32)
    b = np.asarray(b_scale, np.float32)
    o = np.asarray(out_scale, np.float32)
    return np.asarray(np.multiply(a, b, dtype=np.float32) / o, np.float32)


@kernel
def _requant_float_impl(acc, mult, zp, lo, hi, out):
    p_, c_, q_ = acc.shape
    for p in range(p_):
        for c in range(c_):
            m = mult[c]
            for q in range(q_):
                r = np.int64(ort_round(acc[p, c, q], m, -_F_LIMIT, _F_LIMIT)) + zp
                out[p, c, q] = min(max(r, lo), hi)


def _check_int(name: str, v) -> int:
    a = np.asarray(v)
    if a.size != 1 or a.dtype.kind not in "iu":
        raise ValueError(f"requant_float: {name} must be one integer, got {v!r}")
    return int(a.reshape(()))


def _run_checked(name, impl, acc, mult, mult_dtype, zp, lo, hi, out) -> None:
    """Validate a per-channel requant call (acc (P, C, Q) int32/int64, mult `mult_dtype` (C,)
    finite, out an integer array of acc's shape holding [lo, hi]) and run `impl` on it."""
    acc = np.asarray(acc)
    if acc.ndim != 3 or acc.dtype not in (np.int32, np.int64):
        raise ValueError(f"{name}: acc must be a (P, C, Q) int32/int64 array, got {acc.dtype} {acc.shape}")
    mult = np.asarray(mult)
    if mult.dtype != mult_dtype or mult.shape != (acc.shape[1],):
        raise ValueError(f"{name}: mult must be {np.dtype(mult_dtype)} ({acc.shape[1]},), got {mult.dtype} {mult.shape}")
    if not np.isfinite(mult).all():
        raise ValueError(f"{name}: mult holds a non-finite value")
    if not isinstance(out, np.ndarray) or out.dtype.kind not in "iu" or out.shape != acc.shape:
        raise ValueError(f"{name}: out must be an integer array of shape {acc.shape}")
    zp, lo, hi = _check_int("zp", zp), _check_int("lo", lo), _check_int("hi", hi)
    info = np.iinfo(out.dtype)
    if not info.min <= lo <= hi <= info.max or abs(zp) > 2**62:
        raise ValueError(f"{name}: need {info.min} <= lo ({lo}) <= hi ({hi}) <= {info.max} for out {out.dtype}")
    acc = np.ascontiguousarray(acc.astype(acc.dtype.newbyteorder("="), copy=False))
    mult = np.ascontiguousarray(mult.astype(mult_dtype, copy=False))
    if out.dtype.isnative and out.flags.writeable:
        impl(acc, mult, np.int64(zp), np.int64(lo), np.int64(hi), out)
    else:
        tmp = np.empty(out.shape, np.int64)
        impl(acc, mult, np.int64(zp), np.int64(lo), np.int64(hi), tmp)
        out[...] = tmp


def requant_float(acc, mult, zp, lo, hi, out) -> None:
    """out = clamp(rint_RNE(f32(acc) * mult[c]) + zp, lo, hi), acc (P, C, Q) int32/int64,
    mult float32 (C,), out (P, C, Q) any integer dtype holding [lo, hi]. Raises ValueError."""
    _run_checked("requant_float", _requant_float_impl, acc, mult, np.float32, zp, lo, hi, out)


def requant_float_ref(acc, mult, zp, lo, hi, out) -> None:
    """NumPy twin of requant_float (no validation)."""
    v = ort_round_ref(acc, np.asarray(mult, np.float32)[None, :, None], -_F_LIMIT, _F_LIMIT)
    r = v.astype(np.int64) + np.int64(zp)
    out[...] = np.clip(r, np.int64(lo), np.int64(hi)).astype(out.dtype)


# ------------------------------------------------------------------- float64, half away from zero
_D_LIMIT = 2.0**62    # |v| beyond this saturates before the int64 conversion


@kernel
def _requant_double_rhaz_impl(acc, mult, zp, lo, hi, int32_cast, out):
    p_, c_, q_ = acc.shape
    for p in range(p_):
        for c in range(c_):
            m = mult[c]
            for q in range(q_):
                v = np.float64(acc[p, c, q]) * m               # double x double -> double
                v = min(max(v, -_D_LIMIT), _D_LIMIT)
                t = np.float64(np.trunc(v))
                if abs(v - t) >= 0.5:                          # v - trunc(v) is exact
                    t += 1.0 if v > 0 else -1.0
                r = np.int64(t)
                if int32_cast:
                    if r > 2147483647 or r < -2147483648:
                        r = np.int64(-2147483648)              # x86 cvttsd2si of an out-of-range double
                    r = ((r + zp + 2147483648) & 0xFFFFFFFF) - 2147483648
                else:
                    r = r + zp
                out[p, c, q] = min(max(r, lo), hi)



def requant_double_rhaz(acc, mult, zp, lo, hi, out, int32_cast: bool = False) -> None:
    """out = clamp(round_RHAZ(double(acc) * mult[c]) + zp, lo, hi): TFLite's reference
    FULLY_CONNECTED requantization (reference_integer_ops::FullyConnected and
    FullyConnectedPerChannel, the overloads taking float scales, in
    tensorflow/lite/kernels/internal/reference/integer_ops/fully_connected.h:
    `static_cast<int32_t>(round(static_cast<double>(acc) * effective_output_scale))`, with
    effective_output_scale = double(input_scale) * double(filter_scale) / double(output_scale)).
    With `int32_cast` the rounded value is the C++ int32_t: outside int32 it becomes INT32_MIN,
    as the x86-64 conversion (cvttsd2si) gives it (reached by 16x8 layers with large
    multipliers, measured), and `+ zp` wraps in int32; without, both are exact in int64.
    acc (P, C, Q) int32/int64, mult float64 (C,). Raises ValueError."""
    _run_checked("requant_double_rhaz", lambda a, m, z, lo_, hi_, o: _requant_double_rhaz_impl(
        a, m, z, lo_, hi_, bool(int32_cast), o), acc, mult, np.float64, zp, lo, hi, out)


def requant_double_rhaz_ref(acc, mult, zp, lo, hi, out, int32_cast: bool = False) -> None:
    """NumPy twin of requant_double_rhaz (no validation)."""
    v = np.asarray(acc).astype(np.float64) * np.asarray(mult, np.float64)[None, :, None]
    v = np.clip(v, -_D_LIMIT, _D_LIMIT)
    t = np.trunc(v)
    r = (t + np.sign(v) * (np.abs(v - t) >= 0.5)).astype(np.int64)   # half away from zero (v - trunc(v) exact)
    if int32_cast:
        r = np.where((r > 2**31 - 1) | (r < -2**31), np.int64(-2**31), r)   # x86: out of range -> INT32_MIN
        r = ((r + np.int64(zp) + 2**31) & 0xFFFFFFFF) - 2**31
    else:
        r = r + np.int64(zp)
    out[...] = np.clip(r, np.int64(lo), np.int64(hi)).astype(out.dtype)
