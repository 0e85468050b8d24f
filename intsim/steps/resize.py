"""`resize_bilinear`: TFLite's RESIZE_BILINEAR of NHWC 8-bit codes (rules.TfliteResize, the
reference kernel's or XNNPACK's; kernels.tflite_resize states both), or int16 ones (the
reference arithmetic on every kernel path: XNNPACK does not take int16). Inputs (x, x_scale, x_zp, y_scale, y_zp); attrs
size (OH, OW), align_corners, half_pixel_centers. The codes are interpolated as they are, so
input and output quantization must be equal (a differing pair is refused by name)."""
from __future__ import annotations

import numpy as np

from kernels import tflite_resize as rk

from ..errors import ShapeError
from ..limits import check_shape
from ..targets.rules import TargetRefusal, TfliteResize
from . import target_arith as ta
from .params import ParamReader, out_type_8bit, check_scale, scalar_zp
from .registry import step


@step("resize_bilinear")
def prepare_resize_bilinear(node, ctx):
    rule = ta.require(ctx, node, ctx.target.rule(node), TfliteResize)
    t = node.attrs["out_type"]
    if not (t.bits == 16 and t.signed and rule.arithmetic == "reference"):     # int16: the reference arithmetic
        t = out_type_8bit(node, "RESIZE_BILINEAR")
    reader = ParamReader(node, ctx, (1, 2, 3, 4))
    size = tuple(int(v) for v in node.attrs["size"])
    align, half = bool(node.attrs["align_corners"]), bool(node.attrs["half_pixel_centers"])
    kern = ctx.kernel(rk.resize_bilinear_q11 if rule.arithmetic == "xnnpack" else rk.resize_bilinear)
    ins = node.inputs

    def run(env, tap):
        x, sx, zx, sy, zy = reader.values(env)[:5]
        same = np.array_equal(check_scale(sx, ins[1], node.name), check_scale(sy, ins[3], node.name)) and \
            scalar_zp(zx, ins[2], node.name) == scalar_zp(zy, ins[4], node.name)
        if not same:
            raise TargetRefusal(ctx.target.name, node, "input and output quantization differ")
        x = np.asarray(x)
        if x.ndim != 4 or min(size) < 1:
            raise ShapeError(f"node '{node.name}': RESIZE_BILINEAR needs a 4-D NHWC input and a size >= 1, "
                             f"got {x.shape} -> {list(size)}")
        shape = (x.shape[0], *size, x.shape[3])
        check_shape(shape, t.storage.itemsize, f"node '{node.name}' output")
        out = np.empty(shape, t.storage)
        kern(x, size, align, half, out)
        env[node.outputs[0]] = out
    return run
