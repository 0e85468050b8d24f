"""Elementwise quantized ops with onnxruntime 1.32 x86-64 (AVX2+FMA, MLAS) arithmetic, bit for bit.

All float work is float32. `fma(a, b, c)` is a fused multiply-add (one rounding), as the
AVX2 kernels use. `cvt(v)` is x86 `cvtps2dq`: round half to even under the default MXCSR,
and NaN or |v| >= 2**31 gives INT32_MIN. `sat(v)` is the pack chain (packs_epi32 then
packus/packs_epi16), i.e. clamp to [qmin, qmax] of the 8-bit type.

qlinear_add (com.microsoft QLinearAdd; also ORT's fused QDQ Add), MlasQLinearAddKernelAvx2Helper:
    rA = f32(sa / sy), rB = f32(sb / sy)
    fixed = f32(zy) - fma(rA, f32(za), f32(rB * f32(zb)))     (the compiler contracts one product)
    vector B:  y = sat(cvt(fma(f32(a), rA, fma(f32(b), rB, fixed))))
    scalar B:  fixed' = fma(f32(b), rB, fixed);  y = sat(cvt(fma(f32(a), rA, fixed')))
  The raw codes a, b (not a - za) are converted; the zero points live only in `fixed`.
  ORT calls the scalar path whenever one operand is a single value in a broadcast span;
  when A is the scalar it swaps the operands (A's scale/zp go with the scalar), which changes
  the FMA nesting: `qlinear_add` does the same when `a.size == 1`.
  No float clamp: saturation happens in the integer packs.

qlinear_mul (com.microsoft QLinearMul), SSE2 MlasQLinearMulKernel (no FMA):
    r = f32(f32(sa * sb) / sy)
    y = sat(cvt(f32(f32(f32((a - za) * (b - zb)) * r) + f32(zy))))
  the product is exact int32; the zero point is added in float before rounding.
  qlinear_mul_rows: the same per element, with one b per row of a (R, Q) (a broadcast b);
  qlinear_mul_cols: one b per image and channel of a channels-last a (N, P, C).

quantize_linear (QuantizeLinear, MlasQuantizeLinear SSE2):
    y = cvt(min(max(f32(x / s), f32(qmin - z)), f32(qmax - z))) + z
  (division, not multiplication by 1/s; NaN -> qmin because maxps returns its second operand)

dequantize_linear (DequantizeLinear): y = f32(f32(q - z) * s)

`lo`/`hi` (fused activation bounds) are applied as an integer clamp after saturation; pass the
type's range for the plain ONNX ops.

Operand and output types: qlinear_add, qlinear_mul and qlinear_mul_rows take a, b and out each
of uint8, int8, uint16 or int16, independently (mixed signedness: int8 + int8 -> uint8; 16-bit:
Quark's A16W8 / U16W8 residual add under the "integer" fusion policy). onnxruntime's own
QLinearAdd/QLinearMul take one 8-bit type; the wider and mixed cases are the same formulas with
`sat` the output type's range: every 16-bit code is exact in float32, and a 16-bit product
(a - za)*(b - zb) is exact in int64, then rounded once (RNE) by f32(). The planned add
(`add_plan`) stays on one 8-bit type.
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .jit import kernel, kernel_array
from .threads import parallel_items

F32 = np.float32
INT32_MIN = -(1 << 31)
_TWO31 = 2147483648.0


# ---------------------------------------------------------------- float helpers

@intrinsic
def fma32(typingctx, a, b, c):
    """float32 fused multiply-add (llvm.fma.f32): one rounding of a*b + c."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        f = ir.FloatType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f, [f, f, f]), "llvm.fma.f32")
        return builder.call(fn, args)
    return sig, codegen


def fma32_np(a, b, c) -> np.ndarray:
    """NumPy float32 FMA, exactly rounded: the float64 product of two float32 is exact; the
    float64 sum is made round-to-odd (its sticky bit kept) so the final float32 rounding is
    the single correct rounding of a*b + c."""
    p = np.asarray(a, np.float64) * np.asarray(b, np.float64)
    c = np.asarray(c, np.float64)
    s = p + c
    bb = s - p
    err = (p - (s - bb)) + (c - bb)
    even = (s.view(np.int64) & 1) == 0 if s.ndim else (np.array(s).view(np.int64) & 1) == 0
    fix = (err != 0) & even & np.isfinite(s)
    s = np.where(fix, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return s.astype(F32)


def cvt_np(v) -> np.ndarray:
    """x86 cvtps2dq on float32: RNE; NaN or out of int32 range -> INT32_MIN (int64 result)."""
    v = np.asarray(v, F32)
    ok = (v >= F32(-_TWO31)) & (v < F32(_TWO31))
    return np.where(ok, np.rint(np.where(ok, v, 0)).astype(np.int64), INT32_MIN)


@kernel
def _cvt(v):
    if v >= np.float32(-_TWO31) and v < np.float32(_TWO31):
        return np.int64(np.rint(v))
    return np.int64(INT32_MIN)


@kernel
def _clamp(v, lo, hi):
    return lo if v < lo else (hi if v > hi else v)


@kernel(inline="always")
def _sat_cvt(v, flo, fhi, lo, checked):
    """clamp(cvt(v), lo, hi) without branches (so loops vectorize): flo/fhi are lo/hi as
    float32 (exact, |lo|, |hi| < 2**24), so clamp(rint(v)) equals clamp(cvt(v)) whenever v is
    inside int32; when `checked`, NaN or |v| >= 2**31 (cvt -> INT32_MIN) gives lo."""
    r = np.rint(v)
    r = r if r > flo else flo
    r = r if r < fhi else fhi
    q = np.int32(r)
    if checked:
        ok = (v >= np.float32(-_TWO31)) & (v < np.float32(_TWO31))
        return q if ok else np.int32(lo)
    return q


def _type_range(dtype) -> tuple:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


CODE_TYPES = tuple(np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16))


# ---------------------------------------------------------------- validation

def _check_pair(name, a, b, out):
    for t, arr in (("a", a), ("b", b), ("out", out)):
        if not isinstance(arr, np.ndarray):
            raise ValueError(f"{name}: '{t}' must be a NumPy array")
    if any(arr.dtype not in CODE_TYPES for arr in (a, b, out)):
        raise ValueError(f"{name}: a, b and out must each have dtype uint8, int8, uint16 or int16 "
                         f"(got {a.dtype}, {b.dtype}, {out.dtype})")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name}: 'out' must be C-contiguous")
    if a.size != 1 and b.size != 1 and a.shape != b.shape:
        raise ValueError(f"{name}: shapes of a {a.shape} and b {b.shape} differ (broadcast first)")
    want = a.shape if a.size != 1 or b.size == 1 else b.shape
    if out.size != max(a.size, b.size) or (a.size > 1 or b.size > 1) and out.shape != want:
        raise ValueError(f"{name}: out shape {out.shape} does not fit a {a.shape}, b {b.shape}")


def _check_params(name, scales, zps, dtypes, lo, hi):
    """Scales finite and > 0; zps[i] inside dtypes[i]'s range; [lo, hi] inside the output's
    (dtypes[-1]'s) range."""
    for s in scales:
        s = F32(s)
        if not (np.isfinite(s) and s > 0):
            raise ValueError(f"{name}: scale {float(s)!r} must be finite and > 0")
    for z, dtype in zip(zps, dtypes):
        qmin, qmax = _type_range(dtype)
        if not qmin <= int(z) <= qmax:
            raise ValueError(f"{name}: zero point {int(z)} outside [{qmin}, {qmax}] of {np.dtype(dtype)}")
    qmin, qmax = _type_range(dtypes[-1])
    if not qmin <= int(lo) <= int(hi) <= qmax:
        raise ValueError(f"{name}: clamp [{lo}, {hi}] not inside [{qmin}, {qmax}]")


# ---------------------------------------------------------------- QLinearAdd

def add_constants(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp) -> tuple:
    """(rA, rB, fixed) of MLAS's AVX2 QLinearAdd, float32."""
    r_a = F32(F32(a_scale) / F32(y_scale))
    r_b = F32(F32(b_scale) / F32(y_scale))
    fixed = F32(F32(y_zp) - fma32_np(r_a, F32(a_zp), F32(r_b * F32(b_zp))))
    return r_a, r_b, fixed


class AddPlan(NamedTuple):
    """QLinearAdd constants for one (A, B) operand order, validated once (see `add_plan`)."""
    r_a: np.float32
    r_b: np.float32
    fixed: np.float32
    lo: int
    hi: int
    dtype: np.dtype
    checked: bool       # False when every |v| is provably < 2**30 (no cvt overflow test needed)


def add_plan(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp, lo, hi, dtype) -> AddPlan:
    """Validate the quantization parameters of a QLinearAdd on `dtype` (uint8/int8) and derive
    its float32 constants; A is the operand that `qlinear_add_planned` takes as a vector."""
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.int8):
        raise ValueError(f"qlinear_add: dtype must be uint8 or int8, got {dtype}")
    _check_params("qlinear_add", (a_scale, b_scale, y_scale), (a_zp, b_zp, y_zp), (dtype,) * 3, lo, hi)
    r_a, r_b, fixed = add_constants(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp)
    return AddPlan(r_a, r_b, fixed, int(lo), int(hi), dtype, _cvt_may_overflow(r_a, r_b, fixed, dtype, dtype))


def _cvt_may_overflow(r_a, r_b, fixed, a_dtype, b_dtype) -> bool:
    """|fma(a, rA, fma(b, rB, fixed))| may reach 2**30 for codes of these types (then the
    kernel tests for cvt's out-of-range INT32_MIN)."""
    span = lambda t: float(1 << (8 * np.dtype(t).itemsize))  # noqa: E731
    with np.errstate(over="ignore", invalid="ignore"):
        bound = span(a_dtype) * abs(float(r_a)) + span(b_dtype) * abs(float(r_b)) + abs(float(fixed))
    return not (np.isfinite(bound) and bound < 2.0 ** 30)


@kernel
def _add_vv_impl(a, b, r_a, r_b, fixed, lo, hi, checked, out):
    flo, fhi = np.float32(lo), np.float32(hi)
    if checked:
        for i in range(a.size):
            v = fma32(np.float32(a[i]), r_a, fma32(np.float32(b[i]), r_b, fixed))
            out[i] = _sat_cvt(v, flo, fhi, lo, True)
    else:
        for i in range(a.size):
            v = fma32(np.float32(a[i]), r_a, fma32(np.float32(b[i]), r_b, fixed))
            out[i] = _sat_cvt(v, flo, fhi, lo, False)


@kernel
def _add_vs_impl(a, b, r_a, r_b, fixed, lo, hi, checked, out):
    """The scalar-B loop; b is a one-element array read at each call: fixed' = fma(f32(b), rB, fixed)."""
    fixed_b = fma32(np.float32(b[0]), r_b, fixed)
    flo, fhi = np.float32(lo), np.float32(hi)
    if checked:
        for i in range(a.size):
            out[i] = _sat_cvt(fma32(np.float32(a[i]), r_a, fixed_b), flo, fhi, lo, True)
    else:
        for i in range(a.size):
            out[i] = _sat_cvt(fma32(np.float32(a[i]), r_a, fixed_b), flo, fhi, lo, False)


def _add_plan(a, a_scale, a_zp, b, b_scale, b_zp):
    """ORT's operand order: the scalar goes second (A and B swap when A is the scalar)."""
    if a.size == 1 and b.size != 1:
        return b, b_scale, b_zp, a, a_scale, a_zp
    return a, a_scale, a_zp, b, b_scale, b_zp


_PAR_MIN = 1 << 18      # elements below which one thread is faster than sharing the work
_PAR_CHUNK = 1 << 16


def _chunked(fn, n: int) -> None:
    """fn(i0, i1) over [0, n): one call for small n, else chunks shared by the fast kernels'
    threads (kernels.threads.parallel_items); fn must be a nogil kernel call."""
    if n < _PAR_MIN:
        fn(0, n)
        return
    chunks = -(-n // _PAR_CHUNK)
    parallel_items(lambda c0, c1: fn(c0 * _PAR_CHUNK, min(c1 * _PAR_CHUNK, n)), chunks, per_thread=2)


def _check_planned(name, a, b, plan, out):
    for t, arr in (("a", a), ("b", b), ("out", out)):
        if not isinstance(arr, np.ndarray):
            raise ValueError(f"{name}: '{t}' must be a NumPy array")
    if a.dtype != plan.dtype or b.dtype != plan.dtype or out.dtype != plan.dtype:
        raise ValueError(f"{name}: a, b and out must be {plan.dtype} (got {a.dtype}, {b.dtype}, {out.dtype})")
    if a.shape != out.shape or (b.size != 1 and b.shape != out.shape):
        raise ValueError(f"{name}: a {a.shape} and b {b.shape} must have out's shape {out.shape} "
                         f"(b may be a single value)")
    if not (out.flags.c_contiguous and a.flags.c_contiguous and b.flags.c_contiguous):
        raise ValueError(f"{name}: a, b and out must be C-contiguous")


def qlinear_add_planned(a, b, plan: AddPlan, out) -> None:
    """QLinearAdd with constants from `add_plan` (see module docstring): a, out C-contiguous of
    one shape, b of that shape (vector path) or a single value (ORT's scalar-B path).
    Large arrays are split across the fast kernels' threads (elementwise, same result)."""
    _check_planned("qlinear_add", a, b, plan, out)
    _add_run(a.reshape(-1), b, plan, out.reshape(-1))


def _add_run(av, b, plan: AddPlan, ov) -> None:
    """The vector or scalar-B element loop over flat a and out (arrays checked by the caller)."""
    lo, hi = np.int64(plan.lo), np.int64(plan.hi)
    if b.size == 1 and av.size != 1:
        bv = b.reshape(-1)
        _chunked(lambda i0, i1: _add_vs_impl(av[i0:i1], bv, plan.r_a, plan.r_b, plan.fixed, lo, hi, plan.checked,
                                             ov[i0:i1]), av.size)
    else:
        bv = b.reshape(-1)
        _chunked(lambda i0, i1: _add_vv_impl(av[i0:i1], bv[i0:i1], plan.r_a, plan.r_b, plan.fixed, lo, hi,
                                             plan.checked, ov[i0:i1]), av.size)


def bind_add_planned(a, b, plan: AddPlan, out):
    """call() doing qlinear_add_planned(a, b, plan, out) on these very arrays, checked now:
    the element kernel itself when the arrays are too small to split (a single-value b is read
    at each call, as an array)."""
    _check_planned("qlinear_add", a, b, plan, out)
    if a.size >= _PAR_MIN:
        return partial(qlinear_add_planned, a, b, plan, out)
    if b.size == 1 and a.size != 1:
        return partial(_add_vs_impl, a.reshape(-1), b.reshape(-1), plan.r_a, plan.r_b, plan.fixed,
                       np.int64(plan.lo), np.int64(plan.hi), plan.checked, out.reshape(-1))
    return partial(_add_vv_impl, a.reshape(-1), b.reshape(-1), plan.r_a, plan.r_b, plan.fixed,
                   np.int64(plan.lo), np.int64(plan.hi), plan.checked, out.reshape(-1))


def qlinear_add(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, lo, hi, out) -> None:
    """QLinearAdd / fused QDQ Add as onnxruntime x86 AVX2 computes it (see module docstring).

    a, b: uint8, int8, uint16 or int16 arrays (each its own type) of one shape, or one of them
    a single value (ORT's scalar path); out: any of those types, C-contiguous, shape of the
    broadcast result. Scales float32 > 0, each zero point in its tensor's type's range, [lo, hi]
    an integer clamp inside out's type's range.
    """
    _check_pair("qlinear_add", a, b, out)
    _check_params("qlinear_add", (a_scale, b_scale, y_scale), (a_zp, b_zp, y_zp), (a.dtype, b.dtype, out.dtype),
                  lo, hi)
    a, a_scale, a_zp, b, b_scale, b_zp = _add_plan(a, a_scale, a_zp, b, b_scale, b_zp)
    r_a, r_b, fixed = add_constants(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp)
    plan = AddPlan(r_a, r_b, fixed, int(lo), int(hi), out.dtype, _cvt_may_overflow(r_a, r_b, fixed, a.dtype, b.dtype))
    _add_run(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b), plan, out.reshape(-1))


def qlinear_add_ref(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, lo, hi, out) -> None:
    """NumPy twin of qlinear_add (exact FMA emulation in float64, int64 results)."""
    _check_pair("qlinear_add_ref", a, b, out)
    a, a_scale, a_zp, b, b_scale, b_zp = _add_plan(a, a_scale, a_zp, b, b_scale, b_zp)
    r_a, r_b, fixed = add_constants(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp)
    af = a.astype(np.int64).reshape(-1).astype(F32)
    bf = b.astype(np.int64).reshape(-1).astype(F32)
    if b.size == 1:
        v = fma32_np(af, r_a, fma32_np(bf[0], r_b, fixed))
    else:
        v = fma32_np(af, r_a, fma32_np(bf, r_b, fixed))
    out.reshape(-1)[...] = np.clip(cvt_np(v), lo, hi)


# ---------------------------------------------------------------- QLinearMul

def mul_ratio(a_scale, b_scale, y_scale) -> np.float32:
    return F32(F32(F32(a_scale) * F32(b_scale)) / F32(y_scale))


@kernel(inline="always")
def _mul_code(prod, ratio, y_zp_f, flo, fhi, lo):
    """QLinearMul's output code from the exact product prod = (a - za)(b - zb) (float32 or
    integer): clamp(cvt(f32(f32(f32(prod) * ratio) + zy)), lo, hi) (_sat_cvt, checked)."""
    return _sat_cvt(np.float32(np.float32(np.float32(prod) * ratio) + y_zp_f), flo, fhi, lo, True)


@kernel
def _mul_impl(a, a_zp, b, b_zp, ratio, y_zp_f, lo, hi, out):
    """out[i] = clamp(cvt(f32(f32(f32(prod) * ratio) + zy)), lo, hi), prod = (a[i] - za)(b[i] - zb)
    (b[0] for a single b) for 8-bit codes (16-bit codes take _mul_wide_impl), the product
    computed as f32(a - za) * f32(b - zb): both factors are integers of magnitude <= 255 and
    |prod| <= 2**16 < 2**24, so the float product is exact and equals f32(int32 prod) (a float
    multiply vectorises better than vpmulld); the clamp branch-free (_sat_cvt, checked: NaN or
    |v| >= 2**31 gives lo as cvt's INT32_MIN would): the loops vectorise."""
    flo, fhi = np.float32(lo), np.float32(hi)
    za, zb = np.float32(a_zp), np.float32(b_zp)
    if b.size == 1:
        bz = np.float32(np.float32(b[0]) - zb)
        for i in range(a.size):
            out[i] = _mul_code((np.float32(a[i]) - za) * bz, ratio, y_zp_f, flo, fhi, lo)
    else:
        for i in range(a.size):
            out[i] = _mul_code((np.float32(a[i]) - za) * (np.float32(b[i]) - zb), ratio, y_zp_f, flo, fhi, lo)


@kernel
def _mul_wide_impl(a, a_zp, b, b_zp, ratio, y_zp_f, lo, hi, out):
    """_mul_impl for 16-bit codes: the product (up to 2**32) exact in int64."""
    flo, fhi = np.float32(lo), np.float32(hi)
    scalar = b.size == 1
    for i in range(a.size):
        bi = b[0] if scalar else b[i]
        out[i] = _mul_code((np.int64(a[i]) - a_zp) * (np.int64(bi) - b_zp), ratio, y_zp_f, flo, fhi, lo)


def _mul_plan(a, a_scale, a_zp, b, b_scale, b_zp):
    return _add_plan(a, a_scale, a_zp, b, b_scale, b_zp)


def qlinear_mul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, lo, hi, out) -> None:
    """QLinearMul as onnxruntime x86 (SSE2 MLAS) computes it (see module docstring).
    Same array contract as `qlinear_add`."""
    bind_mul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, lo, hi, out)()


def bind_mul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, lo, hi, out):
    """call() doing qlinear_mul on these very arrays, checked now (a and b C-contiguous, so the
    call reads them in place)."""
    _check_pair("qlinear_mul", a, b, out)
    _check_params("qlinear_mul", (a_scale, b_scale, y_scale), (a_zp, b_zp, y_zp), (a.dtype, b.dtype, out.dtype),
                  lo, hi)
    a, a_scale, a_zp, b, b_scale, b_zp = _mul_plan(a, a_scale, a_zp, b, b_scale, b_zp)
    impl = _mul_impl if a.dtype.itemsize == 1 and b.dtype.itemsize == 1 else _mul_wide_impl   # exact float32 product: 8-bit only
    return partial(impl, np.ascontiguousarray(a).reshape(-1), np.int64(a_zp), np.ascontiguousarray(b).reshape(-1),
                   np.int64(b_zp), mul_ratio(a_scale, b_scale, y_scale), F32(y_zp), np.int64(lo), np.int64(hi),
                   out.reshape(-1))


def qlinear_mul_ref(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, lo, hi, out) -> None:
    """NumPy twin of qlinear_mul."""
    _check_pair("qlinear_mul_ref", a, b, out)
    a, a_scale, a_zp, b, b_scale, b_zp = _mul_plan(a, a_scale, a_zp, b, b_scale, b_zp)
    prod = (a.astype(np.int64).reshape(-1) - int(a_zp)) * (b.astype(np.int64).reshape(-1) - int(b_zp))
    v = (prod.astype(F32) * mul_ratio(a_scale, b_scale, y_scale)).astype(F32) + F32(y_zp)
    out.reshape(-1)[...] = np.clip(cvt_np(v.astype(F32)), lo, hi)



@kernel
def _mul_rows_impl(a, a_zp, b, b_zp, ratio, y_zp_f, lo, hi, out):
    flo, fhi = np.float32(lo), np.float32(hi)
    for r in range(a.shape[0]):
        bz = np.int64(b[r]) - b_zp
        for q in range(a.shape[1]):
            out[r, q] = _mul_code((np.int64(a[r, q]) - a_zp) * bz, ratio, y_zp_f, flo, fhi, lo)


class MulPlan(NamedTuple):
    """QLinearMul constants, validated once (see `mul_plan`)."""
    a_zp: np.int64
    b_zp: np.int64
    ratio: np.float32
    y_zp_f: np.float32
    lo: np.int64
    hi: np.int64
    dtype: np.dtype


def mul_plan(a_scale, a_zp, b_scale, b_zp, y_scale, y_zp, lo, hi, dtype) -> MulPlan:
    """Validate the quantization parameters of a QLinearMul on `dtype` (uint8/int8) and derive
    its constants for `qlinear_mul_planned` (the product is exact and commutative: the operand
    order does not change a bit)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.int8):
        raise ValueError(f"qlinear_mul: dtype must be uint8 or int8, got {dtype}")
    _check_params("qlinear_mul", (a_scale, b_scale, y_scale), (a_zp, b_zp, y_zp), (dtype,) * 3, lo, hi)
    return MulPlan(np.int64(a_zp), np.int64(b_zp), mul_ratio(a_scale, b_scale, y_scale), F32(y_zp), np.int64(lo),
                   np.int64(hi), dtype)


def _check_mul_planned(name, a, b, plan, out):
    for t, arr in (("a", a), ("b", b), ("out", out)):
        if not isinstance(arr, np.ndarray) or arr.dtype != plan.dtype or not arr.flags.c_contiguous:
            raise ValueError(f"{name}: '{t}' must be a C-contiguous {plan.dtype} array")
    if a.shape != b.shape or a.shape != out.shape:
        raise ValueError(f"{name}: a {a.shape}, b {b.shape} and out {out.shape} must have one shape")


def qlinear_mul_planned(a, b, plan: MulPlan, out) -> None:
    """QLinearMul (the module doc's formula, element for element as `qlinear_mul`) of two arrays
    of one shape with constants from `mul_plan`; a, b, out C-contiguous."""
    bind_mul_planned(a, b, plan, out)()


def bind_mul_planned(a, b, plan: MulPlan, out):
    """call() doing qlinear_mul_planned(a, b, plan, out) on these very arrays, checked now: the
    loop of `qlinear_mul` (_mul_impl; 8-bit operands, exact products)."""
    _check_mul_planned("qlinear_mul", a, b, plan, out)
    return partial(_mul_impl, a.reshape(-1), plan.a_zp, b.reshape(-1), plan.b_zp, plan.ratio, plan.y_zp_f,
                   plan.lo, plan.hi, out.reshape(-1))


def qlinear_mul_planned_ref(a, b, plan: MulPlan, out) -> None:
    """NumPy twin of qlinear_mul_planned (int64 products, float32 steps)."""
    _check_mul_planned("qlinear_mul_planned_ref", a, b, plan, out)
    prod = (a.astype(np.int64) - int(plan.a_zp)) * (b.astype(np.int64) - int(plan.b_zp))
    v = (prod.astype(F32) * plan.ratio).astype(F32) + plan.y_zp_f
    out[...] = np.clip(cvt_np(v.astype(F32)), int(plan.lo), int(plan.hi))


def _check_rows(name, a, b, out):
    for t, arr in (("a", a), ("b", b), ("out", out)):
        if not isinstance(arr, np.ndarray) or arr.dtype not in CODE_TYPES:
            raise ValueError(f"{name}: '{t}' must be a uint8/int8/uint16/int16 array")
    if a.ndim != 2 or out.shape != a.shape or b.shape != (a.shape[0],):
        raise ValueError(f"{name}: a and out must be (R, Q) and b (R,), got {a.shape}, {out.shape}, {b.shape}")
    if not (a.flags.c_contiguous and out.flags.c_contiguous):
        raise ValueError(f"{name}: a and out must be C-contiguous")


def qlinear_mul_rows(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, lo, hi, out) -> None:
    """QLinearMul of a (R, Q) by one value of b per row (b (R,)): out[r, q] = qlinear_mul of
    a[r, q] and b[r], the formula of `qlinear_mul` element for element (the squeeze-excite
    broadcast (N, C, H, W) x (N, C, 1, 1) without expanding b). The product is commutative
    and exact, so which operand is the per-row one does not change a bit."""
    b = np.ascontiguousarray(b) if isinstance(b, np.ndarray) else b
    bind_mul_rows(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, lo, hi, out)()


def bind_mul_rows(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, lo, hi, out):
    """call() doing qlinear_mul_rows on these very arrays (b C-contiguous), checked now."""
    _check_rows("qlinear_mul_rows", a, b, out)
    _check_params("qlinear_mul_rows", (a_scale, b_scale, y_scale), (a_zp, b_zp, y_zp), (a.dtype, b.dtype, out.dtype),
                  lo, hi)
    if not b.flags.c_contiguous:
        raise ValueError("qlinear_mul_rows: b must be C-contiguous")
    return partial(_mul_rows_impl, a, np.int64(a_zp), b, np.int64(b_zp), mul_ratio(a_scale, b_scale, y_scale),
                   F32(y_zp), np.int64(lo), np.int64(hi), out)


def qlinear_mul_rows_ref(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, lo, hi, out) -> None:
    """NumPy twin of qlinear_mul_rows (int64 products, float32 steps)."""
    _check_rows("qlinear_mul_rows_ref", a, b, out)
    prod = (a.astype(np.int64) - int(a_zp)) * (b.astype(np.int64)[:, None] - int(b_zp))
    v = (prod.astype(F32) * mul_ratio(a_scale, b_scale, y_scale)).astype(F32) + F32(y_zp)
    out[...] = np.clip(cvt_np(v.astype(F32)), lo, hi)


@kernel
def _mul_cols_impl(a, a_zp, b, b_zp, ratio, y_zp_f, lo, hi, out):
    """out[n, p, c] = _mul_impl's formula of a[n, p, c] and b[n, c] (8-bit codes: the product in
    float32, exact as in _mul_impl)."""
    flo, fhi = np.float32(lo), np.float32(hi)
    za = np.float32(a_zp)
    n_img, n_pix, n_ch = a.shape
    bz = np.empty(n_ch, np.float32)
    for n in range(n_img):
        for c in range(n_ch):
            bz[c] = np.float32(np.int32(b[n, c]) - np.int32(b_zp))
        for p in range(n_pix):
            for c in range(n_ch):   # f32(a - za) * f32(b - zb): the exact product (_mul_impl)
                out[n, p, c] = _mul_code((np.float32(a[n, p, c]) - za) * bz[c], ratio, y_zp_f, flo, fhi, lo)


def qlinear_mul_cols(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, lo, hi, out) -> None:
    """QLinearMul of channels-last a (N, P, C) by one value of b per image and channel (b (N, C)):
    out[n, p, c] = qlinear_mul of a[n, p, c] and b[n, c], the formula of `qlinear_mul` element
    for element (the squeeze-excite broadcast (N, C, H, W) x (N, C, 1, 1) of activations held
    channels-last, intsim.layout). 8-bit codes; which operand is the per-channel one does not
    change a bit (the product is exact and commutative)."""
    bind_mul_cols(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, lo, hi, out)()


def bind_mul_cols(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, lo, hi, out):
    """call() doing qlinear_mul_cols on these very arrays, checked now."""
    for t, arr in (("a", a), ("b", b), ("out", out)):
        if not isinstance(arr, np.ndarray) or arr.dtype not in (np.uint8, np.int8) or not arr.flags.c_contiguous:
            raise ValueError(f"qlinear_mul_cols: '{t}' must be a C-contiguous uint8/int8 array")
    if a.ndim != 3 or out.shape != a.shape or b.shape != (a.shape[0], a.shape[2]):
        raise ValueError(f"qlinear_mul_cols: a and out must be (N, P, C) and b (N, C), got {a.shape}, {out.shape}, "
                         f"{b.shape}")
    _check_params("qlinear_mul_cols", (a_scale, b_scale, y_scale), (a_zp, b_zp, y_zp), (a.dtype, b.dtype, out.dtype),
                  lo, hi)
    return partial(_mul_cols_impl, a, np.int64(a_zp), b, np.int64(b_zp), mul_ratio(a_scale, b_scale, y_scale),
                   F32(y_zp), np.int64(lo), np.int64(hi), out)


# ---------------------------------------------------------------- Quantize / Dequantize

def _check_axis_params(name, x, scale, zp, out):
    scale = np.ascontiguousarray(scale, F32).reshape(-1)
    zp = np.ascontiguousarray(np.broadcast_to(np.asarray(zp).astype(np.int64).reshape(-1), scale.shape))
    if not isinstance(x, np.ndarray) or not isinstance(out, np.ndarray) or x.shape != out.shape:
        raise ValueError(f"{name}: input and out must be arrays of one shape")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name}: 'out' must be C-contiguous")
    if scale.size != 1 and (x.ndim != 3 or x.shape[1] != scale.size):
        raise ValueError(f"{name}: per-axis scale of {scale.size} values needs input laid out (outer, "
                         f"{scale.size}, inner), got {x.shape}")
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"{name}: scales must be finite and > 0")
    return scale, zp


def _as3d(x, channels):
    return x.reshape(1, 1, -1) if channels == 1 else x


@kernel
def _quantize_impl(x, scale, zp, qmin, qmax, out):
    p_, c_, q_ = x.shape
    for c in range(c_):
        s = scale[c]
        z = zp[c]
        fmin = np.float32(qmin - z)
        fmax = np.float32(qmax - z)
        fz = np.float32(z)
        for p in range(p_):
            xr = x[p, c]
            orow = out[p, c]
            for q in range(q_):
                v = np.float32(xr[q] / s)
                v = v if v > fmin else fmin       # maxps(v, min): NaN -> min
                v = v if v < fmax else fmax
                # v is inside [qmin - z, qmax - z], so cvt(v) == rint(v), and rint(v) + z is
                # exact in float32 (|.| < 2**17 for 16-bit types)
                orow[q] = np.int32(np.rint(v) + fz)


class QuantizePlan(NamedTuple):
    """Validated QuantizeLinear parameters: scale (C,) float32 > 0, zp (C,) int64 in
    [qmin, qmax], [qmin, qmax] inside `dtype` (an 8- or 16-bit integer type)."""
    scale: np.ndarray
    zp: np.ndarray
    qmin: int
    qmax: int
    dtype: np.dtype


def quantize_plan(scale, zp, qmin, qmax, dtype) -> QuantizePlan:
    """Check QuantizeLinear parameters once (ValueError) for `quantize_linear_planned`."""
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.int8, np.uint16, np.int16):
        raise ValueError(f"quantize_linear: out dtype must be an 8- or 16-bit integer, got {dtype}")
    scale = kernel_array(np.asarray(scale, F32).reshape(-1))
    zp = np.ascontiguousarray(np.broadcast_to(np.asarray(zp).astype(np.int64).reshape(-1), scale.shape))
    if scale.size == 0 or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError("quantize_linear: scales must be finite and > 0")
    lo, hi = _type_range(dtype)
    if not lo <= qmin <= qmax <= hi or np.any(zp < qmin) or np.any(zp > qmax):
        raise ValueError(f"quantize_linear: range [{qmin}, {qmax}] / zero points do not fit {dtype}")
    return QuantizePlan(scale, zp, int(qmin), int(qmax), dtype)


def _chunk_rows(fn, x3, out3) -> None:
    """Run fn(x_part, out_part) over parts of (P, C, Q) arrays: the whole for small inputs;
    else slices along P (or along Q when P == C == 1), shared by the fast kernels' threads."""
    p_, c_, q_ = x3.shape
    if p_ == 1 and c_ == 1:
        _chunked(lambda i0, i1: fn(x3[:, :, i0:i1], out3[:, :, i0:i1]), q_)
        return
    if x3.size < _PAR_MIN or p_ == 1:
        fn(x3, out3)
        return
    parallel_items(lambda i0, i1: fn(x3[i0:i1], out3[i0:i1]), p_, per_thread=2)


def _check_planned_io(where, a, out, dtype_error, c) -> None:
    """The array checks of the planned Q/DQ wrappers, in order: arrays of one shape, the dtypes
    (dtype_error() returns a message when they are wrong), C-contiguous, and for c > 1 scales the
    (outer, c, inner) layout."""
    if not isinstance(a, np.ndarray) or not isinstance(out, np.ndarray) or a.shape != out.shape:
        raise ValueError(f"{where}: input and out must be arrays of one shape")
    msg = dtype_error()
    if msg:
        raise ValueError(f"{where}: {msg}")
    if not (a.flags.c_contiguous and out.flags.c_contiguous):
        raise ValueError(f"{where}: input and out must be C-contiguous")
    if c != 1 and (a.ndim != 3 or a.shape[1] != c):
        raise ValueError(f"{where}: per-axis scale of {c} values needs input laid out (outer, "
                         f"{c}, inner), got {a.shape}")


def quantize_linear_planned(x, plan: QuantizePlan, out) -> None:
    """QuantizeLinear float32 -> int with a `quantize_plan` (formula in the module docstring).
    Per tensor (one scale): x and out of any one shape. Per axis (C scales): x and out laid
    out (outer, C, inner). Both C-contiguous."""
    _check_planned_io("quantize_linear", x, out,
                      lambda: None if x.dtype == np.float32 and out.dtype == plan.dtype else
                      f"needs float32 input and {plan.dtype} out, got {x.dtype}, {out.dtype}", plan.scale.size)
    c = plan.scale.size
    qmin, qmax = np.int64(plan.qmin), np.int64(plan.qmax)
    _chunk_rows(lambda xp, op: _quantize_impl(xp, plan.scale, plan.zp, qmin, qmax, op),
                _as3d(x, c), _as3d(out, c))


def bind_quantize_planned(x, plan: QuantizePlan, out):
    """call() doing quantize_linear_planned(x, plan, out) on these very arrays, checked now: the
    element kernel itself when the arrays are too small to split (_chunk_rows runs them whole)."""
    quantize_linear_planned(x, plan, out)       # the checks (and one run: the same values)
    c = plan.scale.size
    x3, o3 = _as3d(x, c), _as3d(out, c)
    if x3.size >= _PAR_MIN:
        return partial(quantize_linear_planned, x, plan, out)
    return partial(_quantize_impl, x3, plan.scale, plan.zp, np.int64(plan.qmin), np.int64(plan.qmax), o3)


def bind_quantize_into(plan: QuantizePlan, out):
    """call(x) doing quantize_linear_planned(x, plan, out) for any x of out's shape (a graph
    input: a new array each run) into this very out: for one scale and fewer than _PAR_MIN
    elements, x's checks (float32, C-contiguous, out's shape) then the element kernel itself;
    else quantize_linear_planned."""
    if plan.scale.size != 1 or out.size >= _PAR_MIN or not out.flags.c_contiguous:
        return lambda x: quantize_linear_planned(x, plan, out)
    shape, o3 = out.shape, out.reshape(1, 1, -1)
    qmin, qmax = np.int64(plan.qmin), np.int64(plan.qmax)

    def call(x):
        if type(x) is not np.ndarray or x.dtype != np.float32 or x.shape != shape or not x.flags.c_contiguous:
            quantize_linear_planned(x, plan, out)     # its checks (and x's own layout)
            return
        _quantize_impl(x.reshape(1, 1, -1), plan.scale, plan.zp, qmin, qmax, o3)
    return call


def quantize_linear(x, scale, zp, qmin, qmax, out) -> None:
    """QuantizeLinear float32 -> int (uint8/int8/uint16/int16 `out`), onnxruntime's MLAS order:
    y = cvt(min(max(f32(x / s), f32(qmin - z)), f32(qmax - z))) + z.
    Per tensor: scale/zp of one value, any x shape. Per axis: x laid out (outer, C, inner),
    scale/zp of C values."""
    _check_axis_params("quantize_linear", x, scale, zp, out)
    if x.dtype != np.float32:
        raise ValueError(f"quantize_linear: input must be float32, got {x.dtype}")
    quantize_linear_planned(np.ascontiguousarray(x), quantize_plan(scale, zp, qmin, qmax, out.dtype), out)


def quantize_linear_ref(x, scale, zp, qmin, qmax, out) -> None:
    """NumPy twin of quantize_linear."""
    scale, zp = _check_axis_params("quantize_linear_ref", x, scale, zp, out)
    x3 = _as3d(x, scale.size).astype(F32)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        v = (x3 / scale[None, :, None]).astype(F32)
    fmin = (qmin - zp).astype(F32)[None, :, None]
    fmax = (qmax - zp).astype(F32)[None, :, None]
    v = np.where(v > fmin, v, fmin)
    v = np.where(v < fmax, v, fmax)
    _as3d(out, scale.size)[...] = cvt_np(v) + zp[None, :, None]


@kernel
def _dequantize_impl(q, scale, zp, out):
    p_, c_, r_ = q.shape
    for c in range(c_):
        for p in range(p_):
            for r in range(r_):
                out[p, c, r] = np.float32(np.int64(q[p, c, r]) - zp[c]) * scale[c]


@kernel
def _dequantize_narrow_impl(q, scale, zp, out):
    """_dequantize_impl for q and zp of at most 16 bits: q - zp is then exact in int32 (|.| <
    2**17) and converts to the same float32 as the int64 difference, in wider SIMD lanes."""
    p_, c_, r_ = q.shape
    for c in range(c_):
        s = scale[c]
        z = np.int32(zp[c])
        for p in range(p_):
            for r in range(r_):
                out[p, c, r] = np.float32(np.int32(q[p, c, r]) - z) * s


class DequantizePlan(NamedTuple):
    """Validated DequantizeLinear parameters: scale (C,) float32 finite > 0, zp (C,) int64."""
    scale: np.ndarray
    zp: np.ndarray


def dequantize_plan(scale, zp) -> DequantizePlan:
    """Check DequantizeLinear parameters once (ValueError) for `dequantize_linear_planned`."""
    scale = kernel_array(np.asarray(scale, F32).reshape(-1))
    zp = np.ascontiguousarray(np.broadcast_to(np.asarray(zp).astype(np.int64).reshape(-1), scale.shape))
    if scale.size == 0 or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError("dequantize_linear: scales must be finite and > 0")
    return DequantizePlan(scale, zp)


def dequantize_linear_planned(q, plan: DequantizePlan, out) -> None:
    """DequantizeLinear int -> float32 with a `dequantize_plan`: y = f32(f32(q - z) * s);
    layouts as `quantize_linear_planned` (q of at most 32 bits, both C-contiguous)."""
    _check_planned_io("dequantize_linear", q, out,
                      lambda: None if q.dtype.kind in "iu" and q.dtype.itemsize <= 4 and out.dtype == np.float32 else
                      f"needs an integer input of <= 32 bits and a float32 out ({q.dtype}, {out.dtype})",
                      plan.scale.size)
    c = plan.scale.size
    narrow = q.dtype.itemsize <= 2 and plan.zp.min() >= -(1 << 16) and plan.zp.max() < (1 << 16)
    (_dequantize_narrow_impl if narrow else _dequantize_impl)(_as3d(q, c), plan.scale, plan.zp, _as3d(out, c))


def bind_dequantize_planned(q, plan: DequantizePlan, out):
    """call() doing dequantize_linear_planned(q, plan, out) on these very arrays, checked now."""
    dequantize_linear_planned(q, plan, out)     # the checks (and one run: the same values)
    c = plan.scale.size
    narrow = q.dtype.itemsize <= 2 and plan.zp.min() >= -(1 << 16) and plan.zp.max() < (1 << 16)
    return partial(_dequantize_narrow_impl if narrow else _dequantize_impl, _as3d(q, c), plan.scale, plan.zp,
                   _as3d(out, c))


def dequantize_linear(q, scale, zp, out) -> None:
    """DequantizeLinear int -> float32: y = f32(f32(q - z) * s); layouts as quantize_linear."""
    scale, zp = _check_axis_params("dequantize_linear", q, scale, zp, out)
    if q.dtype.kind not in "iu" or out.dtype != np.float32:
        raise ValueError(f"dequantize_linear: needs an integer input and a float32 out ({q.dtype}, {out.dtype})")
    dequantize_linear_planned(np.ascontiguousarray(q), DequantizePlan(scale, zp), out)


def dequantize_linear_ref(q, scale, zp, out) -> None:
    """NumPy twin of dequantize_linear."""
    scale, zp = _check_axis_params("dequantize_linear_ref", q, scale, zp, out)
    d = (_as3d(q, scale.size).astype(np.int64) - zp[None, :, None]).astype(F32)
    _as3d(out, scale.size)[...] = (d * scale[None, :, None]).astype(F32)
