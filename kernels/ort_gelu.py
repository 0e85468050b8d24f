"""onnxruntime 1.32's float32 Erf, Gelu and BiasGelu on an x86-64 host with AVX-512F, bit for bit.

onnxruntime computes erf with MLAS (MlasComputeErf, onnxruntime/core/mlas/lib/erf.cpp), whose
AVX-512F kernel it dispatches on such a host; per element x, every step one float32 rounding,
fma(a, b, c) = a*b + c rounded once (vfmadd):

    a = min(|x|, 3.925)                     (a NaN stays NaN)
    s = a*a
    small = fma(fma(fma(fma(fma(S0, s, S1), s, S2), s, S3), s, S4), s, S5)
    small = fma(small, a, a)
    b = a if a > 0.921875 else 0
    q = fma(...fma(fma(B0, b, B1), b, B2)..., b, B6);  q = fma(q, b, b)
    t = max(-q, -88.3762626647949)          (exp(t) by MLAS's exp polynomial:)
    r = fma(log2(e), t, 12582912) - 12582912        (t/ln2 rounded to an integer)
    f = fma(r, LN2_LO, fma(r, LN2_HI, t))
    y = fma(...fma(fma(E0, f, E1), f, E2)..., f, E6) * 2**r
    erf(x) = copysign(1 - y if a > 0.921875 else small, x)

(the small-|x| branch of an erff after Norbert Juffa's faithfully rounded one, the large-|x|
branch 1 - exp(-q(|x|)); the constants below are MLAS's MlasErfConstants, its upper clamp the
AVX-512 kernel's 3.925). A NaN comes out as the input NaN quieted, +-inf as +-1.

Gelu (ONNX opset 20 approximate="none", com.microsoft Gelu: onnxruntime::Gelu<float>::Compute,
core/providers/cpu/tensor/gelu.cc, by MlasComputeGeluErf: MLAS's fused AVX-512 kernel,
lib/intrinsics/avx512/gelu_avx512f.cpp, the same erf inline) and BiasGelu (com.microsoft,
contrib_ops/cpu/bert/bias_gelu.cc, AddBiasGelu: the add and scale loops, MlasComputeErf, the
final loop) compute, per element:

    v = x + bias[i mod len(bias)]           (BiasGelu only; Gelu: v = x)
    out = (v * 0.5) * (erf(v * f32(1/sqrt(2))) + 1)
    Gelu only: out = x when x is a NaN (its bits kept: MLAS's fused AVX-512 Gelu kernel,
    MlasGeluErfKernelAvx512F, blends the input NaN back; BiasGelu's NaN is the quieted one)

The same arithmetic on every element (the kernel's tail runs the same vector code masked), so
no blocking or threading changes a bit. Other hosts run other MLAS kernels (the FMA3 one clamps
at 3.725 and maps NaN to +-erf(3.725); the SSE2 one differs again): `supported()` says whether
this host is one whose onnxruntime this module reproduces; callers keep onnxruntime elsewhere.
`ort_erf` / `ort_gelu` are the Numba kernels (LLVM's llvm.fma.f32 and selects), `ort_erf_ref` /
`ort_gelu_ref` their NumPy twins (exactly rounded FMA by kernels.eltwise.fma32_np); both are
compared with onnxruntime itself in tests/kernels/test_ort_gelu.py.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .cpu import host_features
from .eltwise import fma32, fma32_np
from .jit import kernel

F32 = np.float32
UPPER = F32(3.925)
SPLIT = F32(0.921875)
SMALL = tuple(F32(v) for v in (-5.99104969e-4, 4.99339588e-3, -2.67667342e-2, 1.12818025e-1,
                               -3.76124859e-1, 1.28379151e-1))
BIG = tuple(F32(v) for v in (1.72948930e-5, -3.83208680e-4, 3.88393435e-3, -2.42545605e-2,
                             1.06777847e-1, 6.34846687e-1, 1.28717512e-1))
EXP_LOWER = F32(-88.3762626647949)
LOG2E = F32(1.44269504088896341)
LN2_HI = F32(-6.93145752e-1)
LN2_LO = F32(-1.42860677e-6)
EXP = tuple(F32(v) for v in (1.38319808e-3, 8.37550033e-3, 4.16689515e-2, 1.66664466e-1,
                             4.99999851e-1, 1.0, 1.0))
ROUND = F32(1.25829120e+7)          # 1.5 * 2**23: adding and subtracting it rounds to an integer
INV_SQRT2 = F32(0.70710678118654752440)
HALF, ONE = F32(0.5), F32(1.0)

S0, S1, S2, S3, S4, S5 = SMALL
B0, B1, B2, B3, B4, B5, B6 = BIG
E0, E1, E2, E3, E4, E5, E6 = EXP


def supported(features=None) -> bool:
    """True on a host where onnxruntime runs the MLAS erf this module reproduces (AVX-512F)."""
    f = host_features() if features is None else features
    return "avx512f" in f and "fma" in f


@intrinsic
def _pow2(typingctx, r):
    """2**r as float32 for an integral float32 r with -126 <= r <= 127 (its exponent bits)."""
    sig = types.float32(types.float32)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        e = builder.fptosi(args[0], i32)
        bits = builder.shl(builder.add(e, ir.Constant(i32, 127)), ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())
    return sig, codegen


@kernel(inline="always")
def _erf(x):
    """MLAS's AVX-512 erf of one float32 (module doc)."""
    a = abs(x)
    a = UPPER if a > UPPER else a
    s = a * a
    p = fma32(fma32(fma32(fma32(fma32(S0, s, S1), s, S2), s, S3), s, S4), s, S5)
    small = fma32(p, a, a)
    big = a > SPLIT
    b = a if big else np.float32(0.0)
    q = fma32(fma32(fma32(fma32(fma32(fma32(B0, b, B1), b, B2), b, B3), b, B4), b, B5), b, B6)
    q = fma32(q, b, b)
    t = -q
    t = t if t > EXP_LOWER else EXP_LOWER
    r = fma32(LOG2E, t, ROUND) - ROUND
    f = fma32(r, LN2_LO, fma32(r, LN2_HI, t))
    y = fma32(fma32(fma32(fma32(fma32(fma32(E0, f, E1), f, E2), f, E3), f, E4), f, E5), f, E6)
    y = ONE - y * _pow2(r)
    return math.copysign(y if big else small, x)


@kernel
def _erf_impl(x, d, out):
    for i in range(x.size):
        out[i] = _erf(x[i] / d)


@kernel
def _gelu_impl(x, bias, out):
    n = bias.size
    if n == 0:
        for i in range(x.size):
            v = x[i]
            g = (v * HALF) * (_erf(v * INV_SQRT2) + ONE)
            out[i] = v if v != v else g
    else:
        for r in range(x.size // n):       # row views: a nonnegative index, so the loop vectorizes
            xr, yr = x[r * n:(r + 1) * n], out[r * n:(r + 1) * n]
            for j in range(n):
                v = xr[j] + bias[j]
                yr[j] = (v * HALF) * (_erf(v * INV_SQRT2) + ONE)


def _flat(a, name, size=None):
    if not isinstance(a, np.ndarray) or a.dtype != np.float32 or not a.flags.c_contiguous:
        raise ValueError(f"ort_gelu: {name} must be a C-contiguous float32 array")
    if size is not None and a.size != size:
        raise ValueError(f"ort_gelu: {name} has {a.size} elements, expected {size}")
    return a.reshape(-1)


_NO_BIAS = np.zeros(0, F32)


def _gelu_args(x, bias, out):
    b = _NO_BIAS if bias is None else _flat(bias, "bias")
    if bias is not None and (b.size == 0 or x.size % b.size):
        raise ValueError(f"ort_gelu: {x.size} elements are not whole rows of the bias's {b.size}")
    return _flat(x, "x"), b, _flat(out, "out", x.size)


def ort_erf(x, divisor, out) -> None:
    """out = onnxruntime's Erf of x / divisor (one float32 division, as onnxruntime's Div; a
    divisor of 1 leaves every x as it is) (module doc); float32, C-contiguous, same size."""
    _erf_impl(_flat(x, "x"), np.float32(divisor), _flat(out, "out", x.size))


def bind_ort_erf(x, divisor, out):
    """call() doing ort_erf(x, divisor, out) on these very arrays, checked now."""
    xf, d, of = _flat(x, "x"), np.float32(divisor), _flat(out, "out", x.size)
    return lambda: _erf_impl(xf, d, of)


def ort_gelu(x, bias, out) -> None:
    """out = onnxruntime's Gelu of x (bias None) or BiasGelu of x + bias (bias: the last axis,
    len(bias) dividing x.size) (module doc)."""
    _gelu_impl(*_gelu_args(x, bias, out))


def bind_ort_gelu(x, bias, out):
    """call() doing ort_gelu(x, bias, out) on these very arrays, checked now."""
    args = _gelu_args(x, bias, out)
    return lambda: _gelu_impl(*args)


def ort_erf_ref(x, divisor=1.0) -> np.ndarray:
    """NumPy twin of ort_erf (module doc), returned as a new float32 array."""
    x = np.asarray(x, F32)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
        x = (x / F32(divisor)).astype(F32)
    with np.errstate(invalid="ignore", over="ignore"):
        a = np.abs(x)
        a = np.where(a > UPPER, UPPER, a)
        s = a * a
        p = np.full_like(a, S0)
        for c in SMALL[1:]:
            p = fma32_np(p, s, c)
        small = fma32_np(p, a, a)
        big = a > SPLIT
        b = np.where(big, a, F32(0))
        q = np.full_like(a, B0)
        for c in BIG[1:]:
            q = fma32_np(q, b, c)
        q = fma32_np(q, b, b)
        t = np.maximum(-q, EXP_LOWER)
        r = (fma32_np(LOG2E, t, ROUND) - ROUND).astype(F32)
        f = fma32_np(r, LN2_LO, fma32_np(r, LN2_HI, t))
        y = np.full_like(a, E0)
        for c in EXP[1:]:
            y = fma32_np(y, f, c)
        y = (ONE - (y * np.ldexp(F32(1), r.astype(np.int32)).astype(F32)).astype(F32)).astype(F32)
        return np.copysign(np.where(big, y, small), x).astype(F32)


def ort_gelu_ref(x, bias=None) -> np.ndarray:
    """NumPy twin of ort_gelu (module doc), returned as a new float32 array."""
    v = np.asarray(x, F32)
    with np.errstate(invalid="ignore", over="ignore"):
        if bias is not None:
            b = np.asarray(bias, F32).reshape(-1)
            v = (v.reshape(-1, b.size) + b).reshape(v.shape).astype(F32)
        g = ((v * HALF) * (ort_erf_ref(v * INV_SQRT2) + ONE)).astype(F32)
    return g if bias is not None else np.where(np.isnan(v), v, g)
