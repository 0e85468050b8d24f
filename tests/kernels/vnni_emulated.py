"""The avx512vnni GEMM drivers of kernels.simd.drivers recompiled with vpdpbusd written in generic
LLVM IR, so that every part of the VNNI path except the one instruction runs on any x86-64 host:
the panels and A quads, the +128 offset and its correction, the 6x32 micro-kernels built by
kernels.simd.microkernels from the same generator, the tile loops, K blocks, edge tiles, the int32 epilogue
and the in-register requantization.

vpdpbusd (Intel SDM, VPDPBUSD, the non-saturating form), per int32 lane i of 16:

    dst[i] = acc[i] + sum_{j < 4} zext(a.byte[4i + j]) * sext(b.byte[4i + j])      (mod 2**32)

which is exactly what `vpdpbusd_generic` emits (LLVM widens, multiplies and adds in i32, all
wrapping; on AVX2 it legalises the 512-bit vectors to pairs of ymm).
"""
from __future__ import annotations

import types as pytypes
from contextlib import contextmanager
from unittest import mock

import numba
from llvmlite import ir

from kernels import cpu
from kernels.simd import drivers
from kernels.simd import microkernels

_I32 = ir.IntType(32)


def vpdpbusd_generic(builder, acc, a_splat, b8):
    """The vpdpbusd zmm arithmetic of the module docstring: acc <16 x i32>, a_splat <16 x i32>
    (four u8 per lane), b8 <64 x i8>."""
    v64 = ir.VectorType(_I32, 64)
    a = builder.zext(builder.bitcast(a_splat, ir.VectorType(ir.IntType(8), 64)), v64)
    prod = builder.mul(a, builder.sext(b8, v64))
    out = acc
    for j in range(4):
        pick = ir.Constant(ir.VectorType(_I32, 16), [4 * i + j for i in range(16)])
        out = builder.add(out, builder.shuffle_vector(prod, prod, pick))
    return out


def _recompiled(dispatcher, parallel=False, **globals_):
    """dispatcher's Python function compiled afresh (no cache) with some of its globals replaced."""
    f = dispatcher.py_func
    g = dict(f.__globals__, **globals_)
    fn = pytypes.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__)
    return numba.njit(nogil=True, parallel=parallel)(fn)


_built = {}


def drivers():
    """(drive, par): kernels.simd.drivers' _drive_vnni512 and _par_vnni512 over micro-kernels
    made by kernels.simd.microkernels' own generators with vpdpbusd_generic (built once)."""
    if not _built:
        # A addressed in bytes, as microkernels' own mk_vnni512 / mk_vnni512_q (the drivers pass byte offsets)
        mk = microkernels.make_microkernel(microkernels.VNNI_MR, microkernels.VNNI_NR // 16, 16, 8, vpdpbusd_generic,
                                           a_bytes=True)
        mk_q = microkernels.make_microkernel_q(microkernels.VNNI_MR, microkernels.VNNI_NR // 16, 16, 8, vpdpbusd_generic,
                                               masked=True, a_bytes=True)
        tiles = _recompiled(drivers._tiles_vnni512, mk_vnni512=mk, mk_vnni512_q=mk_q)
        drive = _recompiled(drivers._drive_vnni512, _tiles_vnni512=tiles)
        _built["drive"], _built["par"] = drive, _recompiled(drivers._par_vnni512, parallel=True, _drive_vnni512=drive)
    return _built["drive"], _built["par"]


@contextmanager
def emulated_vnni():
    """Within the block, GEMMs packed for "avx512vnni" run the emulated drivers."""
    drive, par = drivers()
    with mock.patch.dict(drivers.SERIAL_DRIVERS, {"avx512vnni": drive}), mock.patch.dict(drivers._PAR_DRIVERS, {"avx512vnni": par}):
        yield


EMULATED = "avx512vnni-emulated"     # a test parameter: the avx512vnni path with vpdpbusd_generic
# The avx512vnni path the tests run: the real one where the CPU has it (the emulation would only
# repeat it, at a minute of compilation), else the emulated drivers.
VNNI_PATH = EMULATED if cpu.missing("avx512vnni") else "avx512vnni"


@contextmanager
def running(isa):
    """The ISA to pack for, with EMULATED meaning "avx512vnni" on the emulated drivers."""
    if isa == EMULATED:
        with emulated_vnni():
            yield "avx512vnni"
    else:
        yield isa
