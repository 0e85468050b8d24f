"""Window geometry shared by convs, pools and the quantizer's im2col."""
from __future__ import annotations


def auto_pads(auto_pad: str, spatial, kernel, strides, dilations) -> list:
    """ONNX auto_pad as explicit pads [begin_0.., end_0..].

    SAME_UPPER / SAME_LOWER: out = ceil(size / stride), total = max(0, (out - 1) * stride +
    (k - 1) * dilation + 1 - size), split with the odd pad at the end (UPPER) or the
    beginning (LOWER). VALID: no padding.
    """
    n = len(spatial)
    if auto_pad == "VALID":
        return [0] * (2 * n)
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        b, e = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
        begins.append(b)
        ends.append(e)
    return begins + ends
