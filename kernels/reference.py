"""The index of the kernels' NumPy int64 twins: for every public kernel, the reference that
computes the same integers in plain NumPy (int64 sums, the same float32 requant steps), with
the same signature. A caller that wants a whole run on references looks each kernel up here:

    from kernels import reference
    ref = reference.twin(kernels.fast_conv.conv2d_fast)      # conv2d_fast_ref
    ref = reference.TWINS["fast_conv.conv2d_fast"]           # the same, by name

Each twin lives beside its kernel (`<kernel>_ref` in the kernel's module); this module only
names them. One math, one reference: the depthwise twins are kernels.conv.conv2d_acc_ref with
group = C, and every ORT float requant twin rounds through kernels.requant.ort_round_ref.
"""
from __future__ import annotations

from typing import Callable

from . import (conv, conv_rows, depthwise_nhwc, eltwise, fast_conv, fast_depthwise, fast_pairs, fixedpoint,
               gemm, grouped_nhwc, int4, lut, overflow, pool, requant, x86pairs)
from .simd import wrappers

_MODULES = (conv, conv_rows, depthwise_nhwc, eltwise, fast_conv, fast_depthwise, wrappers, fast_pairs, fixedpoint,
            gemm, grouped_nhwc, int4, lut, overflow, pool, requant, x86pairs)

# "module.kernel" (module under kernels/) for every kernel that has a twin `module.kernel_ref` (same signature).
KERNELS = (
    "gemm.gemm_acc", "gemm.batched_gemm_acc",
    "conv.conv2d_acc",
    "simd.wrappers.gemm_packed", "simd.wrappers.gemm_packed_requant",
    "fast_conv.conv2d_fast", "fast_conv.conv2d_fast_requant",
    "fast_depthwise.depthwise", "depthwise_nhwc.depthwise_nhwc", "grouped_nhwc.grouped_nhwc",
    "fast_pairs.gemm_pairs_packed", "fast_pairs.conv2d_pairs_fast",
    "x86pairs.gemm_acc_pairs", "x86pairs.batched_gemm_acc_pairs", "x86pairs.conv2d_acc_pairs",
    "conv_rows.to_nhwc", "conv_rows.im2col_rows", "conv_rows.rows_to_nhwc", "conv_rows.rows_to_nchw",
    "overflow.gemm_acc_narrow", "overflow.conv2d_acc_narrow",
    "requant.requant_float", "requant.ort_round",
    "fixedpoint.quantize_multiplier", "fixedpoint.srdhm", "fixedpoint.rounding_divide_by_pot",
    "fixedpoint.multiply_by_quantized_multiplier", "fixedpoint.requant_fixedpoint",
    "fixedpoint.requant_multiply_shift", "fixedpoint.requant_shift",
    "eltwise.qlinear_add", "eltwise.qlinear_mul", "eltwise.quantize_linear", "eltwise.dequantize_linear",
    "lut.apply_table", "lut.apply_table_rows",
    "pool.maxpool", "pool.maxpool_nhwc", "pool.global_avgpool", "pool.avgpool",
    "int4.pack_int4", "int4.unpack_int4",
)


def _index() -> tuple[dict, dict]:
    """(twin by "module.kernel", twin by kernel function)."""
    mods = {m.__name__.partition(".")[2]: m for m in _MODULES}
    by_name, by_kernel = {}, {}
    for name in KERNELS:
        mod, _, fn = name.rpartition(".")
        by_name[name] = by_kernel[getattr(mods[mod], fn)] = getattr(mods[mod], f"{fn}_ref")
    return by_name, by_kernel


TWINS, _BY_KERNEL = _index()


def twin(kernel) -> Callable:
    """The NumPy int64 twin of `kernel` (a function listed in KERNELS); KeyError naming it otherwise."""
    try:
        return _BY_KERNEL[kernel]
    except (KeyError, TypeError):
        raise KeyError(f"kernels.reference: no twin for {getattr(kernel, '__module__', '?')}."
                       f"{getattr(kernel, '__name__', kernel)}") from None


__all__ = ["KERNELS", "TWINS", "twin"]
