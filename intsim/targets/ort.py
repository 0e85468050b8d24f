"""Target `ort`: onnxruntime CPU (MLAS) requantization, bit for bit.

    m[c]  = f32( f32(a_scale * b_scale[c]) / out_scale )
    y     = clamp( rint_half_even( f32(acc) * m[c] ) + out_zp, lo, hi )

`f32(acc)` itself rounds when |acc| > 2**24. The accumulation depends on the host CPU, as in
onnxruntime: on x86 without VNNI, u8 x s8 products are added in saturating int16 pairs
(`x86-u8s8-pairs`); targets `ort-vnni` and `ort-avx2` pin one of the two.
"""
from __future__ import annotations

from types import MappingProxyType

import numpy as np

from kernels.requant import ort_multiplier, requant_float, requant_float_ref
from kernels.x86pairs import host_saturates_u8s8

from ..errors import QuantParamError
from ..ir import Requant
from .base import Requantizer, Target
from .rules import AccRequant, OrtArith, QuantizeRound


class FloatRequantizer(Requantizer):
    kernel, twin = staticmethod(requant_float), staticmethod(requant_float_ref)
    arg_names = ("multiplier", "zero_point", "lo", "hi")

    def fused_form(self):
        p = self.params
        return p["multiplier"], np.int64(p["zero_point"]), np.int64(p["lo"]), np.int64(p["hi"])


# every integer op in onnxruntime's own arithmetic (MLAS float formulas; kernels' docstrings)
ORT_RULES = MappingProxyType({
    "conv": AccRequant(), "matmul": AccRequant(),
    "add": OrtArith(), "mul": OrtArith(), "concat": OrtArith(), "lut": OrtArith(),
    "softmax": OrtArith(),    "avgpool": OrtArith(), "global_avgpool": OrtArith(), "dynamic_quantize": OrtArith(),
    "quantize": QuantizeRound("rne"),
})


class OrtTarget(Target):
    """onnxruntime: `ort` follows the host's u8 x s8 summation; `ort-vnni` (exact) and `ort-avx2`
    (pair-saturating) pin one (targets.registry)."""

    name = "ort"
    rules = ORT_RULES
    float_engine = "onnxruntime"
    saturating_u8s8 = None  # None: follow the host

    def __init__(self, name: str | None = None, saturating_u8s8: bool | None = None):
        self.name = name or self.name
        self.saturating_u8s8 = saturating_u8s8

    def requantizer(self, rq: Requant, channels: int, node: str) -> Requantizer:
        if rq.divisor != 1:
            raise QuantParamError(f"tensor '{rq.out_name}' (node '{node}'): target {self.name} has no "
                                  f"requantization by a window count")
        m = ort_multiplier(rq.a_scale, rq.b_scale, rq.out_scale)
        m = np.ascontiguousarray(np.broadcast_to(m.reshape(-1), (channels,)) if m.size == 1 else m.reshape(-1))
        return FloatRequantizer(self.name, {"multiplier": m.astype(np.float32), "zero_point": int(rq.out_zp),
                                            "lo": int(rq.lo), "hi": int(rq.hi)})

    def accumulation(self, a_dtype, b_dtype) -> str:
        sat = host_saturates_u8s8() if self.saturating_u8s8 is None else self.saturating_u8s8
        if sat and np.dtype(a_dtype) == np.uint8 and np.dtype(b_dtype) == np.int8:
            return "x86-u8s8-pairs"
        return "exact"
