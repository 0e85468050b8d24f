"""TFLite RESIZE_BILINEAR of 8-bit codes in 10-bit fixed point (reference_ops::
ResizeBilinearInteger, tensorflow/lite/kernels/internal/reference/resize_bilinear.h; the
interpreter's optimized kernel computes the same, measured), NHWC:

    scale10 = (1024 * in + out // 2) // out;   align_corners and out > 1:
              (1024 * (in - 1) + (out - 1) // 2) // (out - 1)
    per output coordinate o (ComputeInterpolationValuesInteger):
        p  = o * scale10 + (half_pixel_centers ? scale10 // 2 - 512 : 0)
        i0 = max(tdiv(p, 1024), 0);   i1 = min(tdiv(p + 1023, 1024), in - 1)
        d  = p - 1024 * i0                              (tdiv: C++ division, toward zero)
    s = x[y0,x0]*(1024-dy)*(1024-dx) + x[y1,x0]*dy*(1024-dx) + x[y0,x1]*(1024-dy)*dx
        + x[y1,x1]*dy*dx                                (int64)
    y = tdiv(s + (s > 0 ? 2**19 : -2**19), 2**20)      (half away from zero; the codes are
                                                        interpolated as they are: input and
                                                        output quantization are equal)

The XNNPACK delegate's (the interpreter's default path) s8 resize in 11-bit fixed point
(resize_bilinear_q11, measured; xnn_indirection_init_resize_bilinear2d_hwc_q11 and the s8
ibilinear microkernels), coordinates in float32:

    adj   = align_corners and out != 1;   scale = f32(in - adj) / f32(out - adj)
    align_corners or not half_pixel_centers:  v = f32(o * scale)
    otherwise:  v = clamp(f32(o * scale) + f32(0.5 * scale - 0.5), 0, in - 1)
    i0 = int(v);  i1 = min(i0 + 1, in - 1);  a = lrintf(f32(v - i0) * 2048)   (half to even)
    t = (x[y0,x0] << 11) + (x[y0,x1] - x[y0,x0]) * ax;  b = (x[y1,x0] << 11) + (x[y1,x1] - x[y1,x0]) * ax
    y = ((t << 11) + (b - t) * ay + 2**21) >> 22                         (int32, arithmetic shift)
"""
from __future__ import annotations

import numpy as np

from .jit import kernel


F32 = np.float32


def _tdiv(a, b):
    """C++ integer division (toward zero) of int64 arrays by a positive int."""
    a = np.asarray(a, np.int64)
    q = np.abs(a) // b
    return np.where(a < 0, -q, q)


def bilinear_coords(in_size: int, out_size: int, align_corners: bool, half_pixel: bool):
    """(i0, i1, d) int64 (out_size,): the two source rows/columns of each output one and the
    10-bit weight d of i1."""
    if align_corners and out_size > 1:
        scale = (1024 * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    else:
        scale = (1024 * in_size + out_size // 2) // out_size
    p = np.arange(out_size, dtype=np.int64) * scale + ((scale // 2 - 512) if half_pixel else 0)
    i0 = np.maximum(_tdiv(p, 1024), 0)
    i1 = np.minimum(_tdiv(p + 1023, 1024), in_size - 1)
    return i0, i1, p - 1024 * i0


@kernel
def _bilinear_impl(x, y0, y1, wy_, x0, x1, wx_, q11, out):
    """Both interpolations over out (N, OH, OW, C); q11: XNNPACK's, else the reference's."""
    for n in range(out.shape[0]):
        for i in range(out.shape[1]):
            wy = wy_[i]
            for j in range(out.shape[2]):
                wx = wx_[j]
                for c in range(out.shape[3]):
                    tl = np.int64(x[n, y0[i], x0[j], c])
                    tr = np.int64(x[n, y0[i], x1[j], c])
                    bl = np.int64(x[n, y1[i], x0[j], c])
                    br = np.int64(x[n, y1[i], x1[j], c])
                    if q11:
                        t = (tl << 11) + (tr - tl) * wx
                        b = (bl << 11) + (br - bl) * wx
                        out[n, i, j, c] = ((t << 11) + (b - t) * wy + 2097152) >> 22
                        continue
                    s = (tl * ((1024 - wy) * (1024 - wx)) + bl * (wy * (1024 - wx))
                         + tr * ((1024 - wy) * wx) + br * (wy * wx))
                    r = s + 524288 if s > 0 else s - 524288
                    out[n, i, j, c] = r >> 20 if r >= 0 else -((-r) >> 20)


def _run(x, out_hw, align_corners, half_pixel, q11, out):
    coords = q11_coords if q11 else bilinear_coords
    y0, y1, wy = coords(x.shape[1], out_hw[0], align_corners, half_pixel)
    x0, x1, wx = coords(x.shape[2], out_hw[1], align_corners, half_pixel)
    _bilinear_impl(np.ascontiguousarray(x), y0, y1, wy, x0, x1, wx, q11, out)


def resize_bilinear(x, out_hw, align_corners: bool, half_pixel: bool, out) -> None:
    """x (N, H, W, C) 8-bit codes -> out (N, OH, OW, C) of x's dtype (module doc)."""
    _run(x, out_hw, align_corners, half_pixel, False, out)


def _corners_ref(x, out_hw, align_corners, half_pixel, coords):
    """(tl, tr, bl, br, wy, wx) int64, broadcast to (N, OH, OW, C): the four gathered corners
    and the weights of the lower / right ones (NumPy, for the twins)."""
    y0, y1, wy = coords(x.shape[1], out_hw[0], align_corners, half_pixel)
    x0, x1, wx = coords(x.shape[2], out_hw[1], align_corners, half_pixel)
    v = np.asarray(x, np.int64)
    return (v[:, y0][:, :, x0], v[:, y0][:, :, x1], v[:, y1][:, :, x0], v[:, y1][:, :, x1],
            wy[None, :, None, None], wx[None, None, :, None])


def resize_bilinear_ref(x, out_hw, align_corners: bool, half_pixel: bool, out) -> None:
    """NumPy int64 twin of resize_bilinear (gathers of the four corners)."""
    tl, tr, bl, br, wy, wx = _corners_ref(x, out_hw, align_corners, half_pixel, bilinear_coords)
    s = tl * (1024 - wy) * (1024 - wx) + bl * wy * (1024 - wx) + tr * (1024 - wy) * wx + br * wy * wx
    out[...] = _tdiv(s + np.where(s > 0, 1 << 19, -(1 << 19)), 1 << 20).astype(out.dtype)


def q11_coords(in_size: int, out_size: int, align_corners: bool, half_pixel: bool):
    """(i0, i1, a) int64 (out_size,): XNNPACK's source rows/columns and 11-bit weight of i1."""
    adj = 1 if align_corners and out_size != 1 else 0
    scale = F32(F32(in_size - adj) / F32(out_size - adj))
    o = np.arange(out_size, dtype=np.float32)
    v = (o * scale).astype(F32)
    if not (align_corners or not half_pixel):
        v = np.clip((v + F32(F32(F32(0.5) * scale) - F32(0.5))).astype(F32), F32(0), F32(in_size - 1))
    i0 = v.astype(np.int64)
    a = np.rint(((v - i0.astype(F32)).astype(F32) * F32(2048)).astype(F32)).astype(np.int64)
    return i0, np.minimum(i0 + 1, in_size - 1), a


def resize_bilinear_q11(x, out_hw, align_corners: bool, half_pixel: bool, out) -> None:
    """x (N, H, W, C) 8-bit codes -> out (N, OH, OW, C): XNNPACK's 11-bit interpolation (module doc)."""
    _run(x, out_hw, align_corners, half_pixel, True, out)


def resize_bilinear_q11_ref(x, out_hw, align_corners: bool, half_pixel: bool, out) -> None:
    """NumPy int64 twin of resize_bilinear_q11."""
    tl, tr, bl, br, wy, wx = _corners_ref(x, out_hw, align_corners, half_pixel, q11_coords)
    t = (tl << 11) + (tr - tl) * wx
    b = (bl << 11) + (br - bl) * wx
    out[...] = (((t << 11) + (b - t) * wy + (1 << 21)) >> 22).astype(out.dtype)
