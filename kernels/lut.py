"""256-entry lookup tables of onnxruntime 1.32 (x86-64, FMA3), bit for bit, and their application.

A table is indexed by the input code's low byte (uint8 view of int8 codes), as ORT indexes it,
and built in float32 exactly as ORT builds it (QlinearBuildLookupTable):
    d[i]   = f32(f32(int(code_i) - zx) * sx)                       dequantize
    f[i]   = transform(d[i])                                        per op, below
    tab[i] = cvt(min(max(f32(f[i] / sy), f32(qmin - zy)), f32(qmax - zy))) + zy   MlasQuantizeLinear

transforms:
    requant (QLinearConcat inputs whose scale/zp differ from the output's): identity
    leaky_relu (QLinearLeakyRelu): v >= 0 ? v : f32(alpha * v)
    sigmoid (QLinearSigmoid): MLAS logistic (FMA3 kernel, Eigen's rational polynomial):
        v = min(max(v, -18), 18); v2 = f32(v * v)
        p = fma(fma(fma(fma(v2, a9, a7), v2, a5), v2, a3), v2, a1); p = f32(p * v)
        q = fma(fma(fma(fma(fma(v2, b10, b8), v2, b6), v2, b4), v2, b2), v2, b0)
        f = min(max(f32(f32(p / q) + 0.5), 0), 1)

apply_table: out[i] = tab[x[i]]; for bytes on an AVX-512 VBMI host 64 codes a step (vpermi2b
over the table's four 64-byte quarters), the same bytes as the plain loop.
"""
from __future__ import annotations

from functools import partial

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from . import cpu
from .eltwise import fma32_np, quantize_linear_ref
from .jit import FORCE_PORTABLE, kernel

VBMI = cpu.has_avx512vbmi() and not FORCE_PORTABLE     # byte lookups by vpermi2b (not with INTSIM_PORTABLE=1)

F32 = np.float32

_LOGISTIC = dict(
    a9=F32(4.37031012579801e-11), a7=F32(1.15627324459942e-07), a5=F32(6.08574864600143e-05),
    a3=F32(8.51377133304701e-03), a1=F32(2.48287947061529e-01),
    b10=F32(6.10247389755681e-13), b8=F32(5.76102136993427e-09), b6=F32(6.29106785017040e-06),
    b4=F32(1.70198817374094e-03), b2=F32(1.16817656904453e-01), b0=F32(9.93151921023180e-01))


def _check(name, x_scale, x_zp, y_scale, y_zp, in_dtype, out_dtype):
    for d in (in_dtype, out_dtype):
        if np.dtype(d) not in (np.dtype(np.uint8), np.dtype(np.int8)):
            raise ValueError(f"{name}: lookup tables need uint8/int8 types, got {np.dtype(d)}")
    for s in (x_scale, y_scale):
        if not (np.isfinite(F32(s)) and F32(s) > 0):
            raise ValueError(f"{name}: scale {s!r} must be finite and > 0")
    for z, d in ((x_zp, in_dtype), (y_zp, out_dtype)):
        info = np.iinfo(d)
        if not info.min <= int(z) <= info.max:
            raise ValueError(f"{name}: zero point {z} outside the {np.dtype(d)} range")


def _dequantized_codes(in_dtype, x_scale, x_zp) -> np.ndarray:
    codes = np.arange(256, dtype=np.uint8).view(in_dtype).astype(np.int64)
    return ((codes - int(x_zp)).astype(F32) * F32(x_scale)).astype(F32)


def _quantize(f, y_scale, y_zp, out_dtype) -> np.ndarray:
    info = np.iinfo(out_dtype)
    out = np.empty(256, out_dtype)
    quantize_linear_ref(f.astype(F32), np.array([y_scale], F32), np.array([y_zp]), info.min, info.max, out)
    return out


def mlas_logistic(v) -> np.ndarray:
    """MLAS's float32 logistic on FMA3 hosts (see module docstring)."""
    c = _LOGISTIC
    v = np.asarray(v, F32)
    v = np.minimum(np.maximum(v, F32(-18.0)), F32(18.0))
    v2 = (v * v).astype(F32)
    p = fma32_np(v2, c["a9"], c["a7"])
    for k in ("a5", "a3", "a1"):
        p = fma32_np(p, v2, c[k])
    p = (p * v).astype(F32)
    q = fma32_np(v2, c["b10"], c["b8"])
    for k in ("b6", "b4", "b2", "b0"):
        q = fma32_np(q, v2, c[k])
    r = ((p / q).astype(F32) + F32(0.5)).astype(F32)
    return np.minimum(np.maximum(r, F32(0.0)), F32(1.0))


def build_table_requant(x_scale, x_zp, y_scale, y_zp, in_dtype, out_dtype) -> np.ndarray:
    """QLinearConcat's per-input table: quantize(dequantize(x)) -> (256,) of out_dtype."""
    _check("build_table_requant", x_scale, x_zp, y_scale, y_zp, in_dtype, out_dtype)
    return _quantize(_dequantized_codes(in_dtype, x_scale, x_zp), y_scale, y_zp, out_dtype)


def build_table_leaky_relu(alpha, x_scale, x_zp, y_scale, y_zp, in_dtype, out_dtype) -> np.ndarray:
    """QLinearLeakyRelu's table (alpha as the float32 attribute)."""
    _check("build_table_leaky_relu", x_scale, x_zp, y_scale, y_zp, in_dtype, out_dtype)
    d = _dequantized_codes(in_dtype, x_scale, x_zp)
    f = np.where(d >= F32(0), d, (F32(alpha) * d).astype(F32))
    return _quantize(f, y_scale, y_zp, out_dtype)


def build_table_sigmoid(x_scale, x_zp, y_scale, y_zp, in_dtype, out_dtype) -> np.ndarray:
    """QLinearSigmoid's table, through MLAS's logistic."""
    _check("build_table_sigmoid", x_scale, x_zp, y_scale, y_zp, in_dtype, out_dtype)
    return _quantize(mlas_logistic(_dequantized_codes(in_dtype, x_scale, x_zp)), y_scale, y_zp, out_dtype)


@kernel
def _apply_table_impl(x, table, out):
    for i in range(x.size):
        out[i] = table[x[i]]


_V64I8 = ir.VectorType(ir.IntType(8), 64)
_I64 = ir.IntType(64)


@intrinsic
def _lookup64(typingctx, x, table, out, nblk):
    """out[i] = table[x[i]] for i < 64*nblk, 64 bytes a step (AVX-512 VBMI): the 256-byte table
    as four zmm; vpermi2b picks from t0:t1 (codes < 128) and from t2:t3 (codes >= 128) by the
    code's low 7 bits, and the code's high bit selects between the two. Not bounds-checked."""
    sig = types.void(x, table, out, types.int64)

    def codegen(context, builder, signature, args):
        xp, tp, op = (context.make_array(signature.args[k])(context, builder, args[k]).data for k in (0, 1, 2))
        fnty = ir.FunctionType(_V64I8, [_V64I8, _V64I8, _V64I8])
        perm = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpermi2var.qi.512")

        def vec(ptr, index):
            return builder.bitcast(builder.gep(ptr, [index]), _V64I8.as_pointer())
        t0, t1, t2, t3 = (builder.load(vec(tp, ir.Constant(_I64, 64 * k)), align=1) for k in range(4))
        entry, fn = builder.block, builder.function
        loop, done = fn.append_basic_block("lut_loop"), fn.append_basic_block("lut_done")
        builder.cbranch(builder.icmp_signed(">", args[3], ir.Constant(_I64, 0)), loop, done)
        builder.position_at_end(loop)
        g = builder.phi(_I64, "g")
        g.add_incoming(ir.Constant(_I64, 0), entry)
        at = builder.mul(g, ir.Constant(_I64, 64))
        v = builder.load(vec(xp, at), align=1)
        lo, hi = builder.call(perm, [t0, v, t1]), builder.call(perm, [t2, v, t3])
        high = builder.icmp_signed("<", v, ir.Constant(_V64I8, None))
        builder.store(builder.select(high, hi, lo), vec(op, at), align=1)
        nxt = builder.add(g, ir.Constant(_I64, 1))
        g.add_incoming(nxt, builder.block)
        builder.cbranch(builder.icmp_signed("<", nxt, args[3]), loop, done)
        builder.position_at_end(done)
        return context.get_dummy_value()
    return sig, codegen


@kernel
def _apply_table_vbmi(x, table, out):
    """_apply_table_impl on uint8 x, table and out: 64 bytes a step by _lookup64, then the tail."""
    nblk = x.size // 64
    _lookup64(x, table, out, nblk)
    for i in range(nblk * 64, x.size):
        out[i] = table[x[i]]


def _table_kernel(xf, table):
    """The loop for flat unsigned x and table: the VBMI one for bytes when the host has it."""
    if xf.dtype == np.uint8 and table.dtype == np.uint8 and VBMI:
        return _apply_table_vbmi
    return _apply_table_impl


_UNSIGNED = {1: np.uint8, 2: np.uint16}


def _as_unsigned(a):
    """An 8/16-bit signed array viewed as its unsigned type (the same bits): a table lookup copies
    bits, so int8 and uint8 tables share one compiled specialization (fewer cold compiles)."""
    return a.view(_UNSIGNED[a.dtype.itemsize]) if a.dtype in (np.int8, np.int16) else a


def apply_table(x, table, out) -> None:
    """out[i] = table[unsigned view of x[i]]; x uint8/int8 with a (256,) table, or uint16/int16
    with a (65536,) one, of out's dtype; out the shape of x, C-contiguous."""
    if not isinstance(x, np.ndarray) or x.dtype not in (np.uint8, np.int8, np.uint16, np.int16):
        raise ValueError("apply_table: x must be a uint8/int8/uint16/int16 array")
    n = 1 << (8 * x.dtype.itemsize)
    if not isinstance(table, np.ndarray) or table.shape != (n,) or table.dtype != out.dtype:
        raise ValueError(f"apply_table: table must be ({n},) of the out dtype {out.dtype}")
    if out.shape != x.shape or not out.flags.c_contiguous:
        raise ValueError(f"apply_table: out {out.shape} must be C-contiguous of x's shape {x.shape}")
    xf, tf = np.ascontiguousarray(x).reshape(-1).view(_UNSIGNED[x.dtype.itemsize]), np.ascontiguousarray(_as_unsigned(table))
    _table_kernel(xf, tf)(xf, tf, _as_unsigned(out.reshape(-1)))


def bind_table(x, table, out):
    """apply_table's checks once, for arrays a frozen run keeps: call() computes
    out[i] = table[unsigned view of x[i]] on these x and out (both C-contiguous)."""
    if not isinstance(x, np.ndarray) or not x.flags.c_contiguous:
        raise ValueError("bind_table: x must be a C-contiguous array")
    apply_table(x, table, out)      # checks; the call then reuses the flat views
    xf, of = x.reshape(-1).view(_UNSIGNED[x.dtype.itemsize]), _as_unsigned(out.reshape(-1))
    tf = np.ascontiguousarray(_as_unsigned(table))
    return partial(_table_kernel(xf, tf), xf, tf, of)


def apply_table_ref(x, table, out) -> None:
    """NumPy twin of apply_table."""
    out[...] = table[x.view(_UNSIGNED[x.dtype.itemsize]).astype(np.int64)]


@kernel
def _apply_table_rows_impl(x, table, out, c0):
    ci = x.shape[1]
    for r in range(x.shape[0]):
        s, d = x[r], out[r, c0:c0 + ci]          # row views: unit-stride loops
        for j in range(ci):
            d[j] = table[s[j]]


@kernel
def _apply_table_rows_vbmi(x, table, out, c0):
    """_apply_table_rows_impl for 8-bit x and table (uint8 views), 64 bytes at a time by
    _lookup64 (on the row views), the row's tail byte by byte; compiled and run only on VBMI hosts."""
    ci = x.shape[1]
    whole = ci // 64
    for r in range(x.shape[0]):
        s, d = x[r], out[r, c0:c0 + ci]
        if whole:
            _lookup64(s, table, d, whole)
        for j in range(whole * 64, ci):
            d[j] = table[s[j]]


def apply_table_rows(x, table, out, c0) -> None:
    """out[p, c0 + j] = table[unsigned view of x[p, j]]: x (P, Ci) uint8/int8 (or 16-bit with a
    65536-entry table), C-contiguous; out (P, C) of the table's dtype with unit column stride, c0 +
    Ci <= C; the other columns untouched. A concat's requantized input written straight into
    its channels of a channels-last output (no buffer, no second copy)."""
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype not in (np.uint8, np.int8, np.uint16, np.int16) \
            or not x.flags.c_contiguous:
        raise ValueError("apply_table_rows: x must be a C-contiguous 2-D 8/16-bit integer array")
    n = 1 << (8 * x.dtype.itemsize)
    if not isinstance(table, np.ndarray) or table.shape != (n,) or table.dtype != out.dtype:
        raise ValueError(f"apply_table_rows: table must be ({n},) of the out dtype {out.dtype}")
    if out.ndim != 2 or out.shape[0] != x.shape[0] or out.strides[1] != out.itemsize or \
            not 0 <= int(c0) <= out.shape[1] - x.shape[1]:
        raise ValueError(f"apply_table_rows: out {out.shape} (unit column stride) cannot take x {x.shape} at "
                         f"column {c0}")
    impl = _apply_table_rows_vbmi if x.dtype.itemsize == 1 and VBMI else _apply_table_rows_impl
    impl(x.view(_UNSIGNED[x.dtype.itemsize]), _as_unsigned(table), _as_unsigned(out), np.int64(c0))


def apply_table_rows_ref(x, table, out, c0) -> None:
    """NumPy twin of apply_table_rows."""
    out[:, c0:c0 + x.shape[1]] = table[x.view(_UNSIGNED[x.dtype.itemsize]).astype(np.int64)]
