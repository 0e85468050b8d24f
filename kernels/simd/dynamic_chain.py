"""One chain of a dynamically quantized MatMul (intsim.runtime.dynamic_matmul) in one Numba call:

    [codes, (scale, zp) = the codes of float32 x]       kernels.dynamic_quant.rows_impl (optional)
    raw = codes @ (W - W_zp)                             the SIMD engine's serial driver, a_zp 0
    y = f32(f32(int32(raw - zp * col_sum)) * f32(scale * w_scale)) [+ bias]   kernels.dynamic_quant.epilogue_impl

the very kernels that dynamic_quantize_rows, gemm_packed and dequantize_int_matmul run one after
the other, on the same arrays and in the same order, entered once instead of three times (each
Numba entry checks and unboxes its arguments: ~1.5-2 us a chain of the tiny encoder's 9 saved).
Only where the GEMM runs on the calling thread (drivers.work_threads says 1) with a SIMD driver;
bind_dynamic_chain returns None otherwise and the caller keeps the three calls.
"""
from __future__ import annotations

import numpy as np

from ..dynamic_quant import bind_dequantize_int_matmul, epilogue_impl, rows_impl
from ..jit import kernel
from .drivers import SERIAL_DRIVERS, bind_packed, gemm_geo, n_items, rq_none, work_threads
from .packing import PackedB, offsets

_AVX2, _VNNI512, _AMX = SERIAL_DRIVERS["avx2"], SERIAL_DRIVERS["avx512vnni"], SERIAL_DRIVERS["amx"]


@kernel
def _chain_avx2(x, codes, params, quantize, geo, add, panels, offs, raw, rq, items, col_sum, w_scale, bias, out):
    if quantize and rows_impl(x, codes, params):
        return 1
    _AVX2(codes, geo, add, panels, offs, raw, rq, np.int64(0), items)
    epilogue_impl(raw, np.int64(params[1]), col_sum, params[0], w_scale, bias, out)
    return 0


@kernel
def _chain_vnni512(x, codes, params, quantize, geo, add, panels, offs, raw, rq, items, col_sum, w_scale, bias, out):
    if quantize and rows_impl(x, codes, params):
        return 1
    _VNNI512(codes, geo, add, panels, offs, raw, rq, np.int64(0), items)
    epilogue_impl(raw, np.int64(params[1]), col_sum, params[0], w_scale, bias, out)
    return 0


@kernel
def _chain_amx(x, codes, params, quantize, geo, add, panels, offs, raw, rq, items, col_sum, w_scale, bias, out):
    if quantize and rows_impl(x, codes, params):
        return 1
    _AMX(codes, geo, add, panels, offs, raw, rq, np.int64(0), items)
    epilogue_impl(raw, np.int64(params[1]), col_sum, params[0], w_scale, bias, out)
    return 0


_CHAINS = {"avx2": (_AVX2, _chain_avx2), "avx512vnni": (_VNNI512, _chain_vnni512), "amx": (_AMX, _chain_amx)}


def bind_dynamic_chain(x, codes, params, quantize: bool, packed: PackedB, raw, col_sum, w_scale, bias, out):
    """call(x2) for C-contiguous float32 x2 of x's shape (the caller's guarantee): with
    `quantize`, the codes of x2 into uint8 codes (x's shape) and float32 params = [scale, zp],
    returning 1 (nothing usable written: NaN or infinite x2, or a zero scale) or 0; then
    raw (M, N) int32 = codes @ (W - W_zp) of the packed weights, and float32 out (M, N) the
    epilogue of raw with params' zp and scale (kernels.dynamic_quant.dequantize_int_matmul);
    without `quantize`, codes and params are those a previous call wrote, and x2 is not read.
    None when the GEMM would not run on a serial SIMD driver (portable engine, several threads,
    or a driver other than the engine's own). Arrays checked now (ValueError)."""
    found = _CHAINS.get(packed.isa)
    if found is None or SERIAL_DRIVERS.get(packed.isa) is not found[0]:
        return None
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous and
            isinstance(codes, np.ndarray) and codes.dtype == np.uint8 and codes.shape == x.shape and
            codes.flags.c_contiguous and isinstance(params, np.ndarray) and params.dtype == np.float32 and
            params.shape == (2,)):
        raise ValueError("bind_dynamic_chain: x (float32), codes (uint8, x's shape) and params (float32 (2,)) "
                         "must be C-contiguous arrays")
    m = codes.size // packed.k if packed.k else 0
    if codes.size != m * packed.k or m == 0 or not raw.flags.c_contiguous or not out.flags.c_contiguous or \
            raw.dtype != np.int32 or raw.shape != (m, packed.n):
        raise ValueError(f"bind_dynamic_chain: codes of {codes.size} values and raw {raw.shape} do not fit "
                         f"K={packed.k}, N={packed.n}")
    bind_dequantize_int_matmul(raw, col_sum, w_scale, bias, out)        # checks the epilogue's arrays
    offs, add = offsets(packed, np.uint8, 0, np.zeros(packed.n, np.int64))
    geo = gemm_geo(m, packed.k, packed.n, packed.isa)
    if work_threads(geo) != 1:
        return None
    rq = rq_none()
    bind_packed(geo, add, packed, offs, rq)     # the driver's own checks (AMX: tile permission, panels)
    chain, items, add = found[1], np.int64(n_items(geo, packed.isa)), np.int64(add)
    flat = codes.reshape(-1)
    return lambda x2: chain(x2.reshape(-1), flat, params, quantize, geo, add, packed.panels, offs, raw, rq, items,
                            col_sum, w_scale, bias, out)


__all__ = ["bind_dynamic_chain"]
