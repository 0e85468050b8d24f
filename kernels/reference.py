"""The NumPy int64 twins of the kernels, in one namespace, so the executor can run a whole
model in reference mode (`kernels.reference.gemm_acc_ref` has the signature of
`kernels.gemm.gemm_acc`, and so on).

Other kernel modules add their own `*_ref` twins to this list as they are written.
"""
from __future__ import annotations

from .conv import conv2d_acc_ref
from .gemm import batched_gemm_acc_ref, gemm_acc_ref
from .int4 import pack_int4_ref, unpack_int4_ref
from .requant import requant_float_ref

__all__ = [
    "batched_gemm_acc_ref",
    "conv2d_acc_ref",
    "gemm_acc_ref",
    "pack_int4_ref",
    "requant_float_ref",
    "unpack_int4_ref",
]
