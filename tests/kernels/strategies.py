"""Hypothesis strategies shared by the kernel tests: integer arrays that include the type's
extremes, zero points at the ends of the range, and the float32 inputs of dynamic
quantization (float_tensor)."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

DTYPES = [np.uint8, np.int8, np.int16]


@st.composite
def int_array(draw, shape, dtype, span=None):
    """An array of `dtype`: uniform, all-min, all-max, or a mix of the ends and zero.
    `span` (lo, hi) narrows the uniform values (e.g. small values in a wide dtype)."""
    info = np.iinfo(dtype)
    lo, hi = span if span is not None else (int(info.min), int(info.max))
    mode = draw(st.sampled_from(["random", "random", "min", "max", "ends"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if mode == "min":
        return np.full(shape, lo, dtype)
    if mode == "max":
        return np.full(shape, hi, dtype)
    if mode == "ends":
        return rng.choice(np.array([lo, hi, max(lo, min(hi, 0))], dtype), size=shape)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64).astype(dtype)


def zero_point(dtype):
    """A zero point of `dtype`, drawn often at either end of its range."""
    info = np.iinfo(dtype)
    ends = [int(info.min), int(info.max), 0 if info.min < 0 else int(info.min)]
    return st.sampled_from(ends) | st.integers(int(info.min), int(info.max))


def zero_points(dtype, n):
    """(n,) int64 per-channel zero points of `dtype`."""
    return st.lists(zero_point(dtype), min_size=n, max_size=n).map(lambda v: np.array(v, np.int64))


def biases(n, bits=31):
    """(n,) int64 biases spanning +-2**bits, ends included."""
    lim = 2**bits
    one = st.sampled_from([-lim, lim - 1, 0]) | st.integers(-lim, lim - 1)
    return st.lists(one, min_size=n, max_size=n).map(lambda v: np.array(v, np.int64))


def k_size(max_k=40):
    """Reduction lengths, mostly not a multiple of 4."""
    return st.integers(1, max_k).filter(lambda k: k % 4 != 0) | st.integers(1, max_k)


def bad_requant_params(m: int = 8) -> list:
    """(True, mult, zp, lo, hi) tuples a requantizing kernel of m uint8 output channels must
    refuse: too few multipliers, a NaN or an infinite one, float64 ones, a zero point outside
    uint8, lo > hi."""
    def mult(v):
        a = np.ones(m, np.float32)
        a[m // 2] = v
        return a
    z = np.int64(0)
    return [(True, np.ones(m - 1, np.float32), z, z, np.int64(255)),
            (True, mult(np.nan), z, z, np.int64(255)),
            (True, mult(np.inf), z, z, np.int64(255)),
            (True, np.ones(m, np.float64), z, z, np.int64(255)),
            (True, np.ones(m, np.float32), np.int64(300), z, np.int64(255)),
            (True, np.ones(m, np.float32), z, np.int64(10), np.int64(5))]


FLOAT_KINDS = ("normal", "normal", "tiny", "huge", "zero", "ties", "special", "positive")


def float_tensor(rng, shape, kind: str, special=np.nan, tiny=1e-38):
    """A float32 array of `shape` drawn as `kind`: standard normal x3 ("normal"), x`tiny`
    ("tiny"; 1e-39 gives subnormals), x1e37 ("huge"), zeros with every other one -0.0
    ("zero"), multiples of 0.5 in [-200, 200) ("ties": halves after a division), normal with
    `special` (NaN or an infinity) at two drawn positions ("special"), |normal| + 0.5
    ("positive")."""
    if kind == "zero":
        x = np.zeros(shape, np.float32)
        x.flat[::2] = np.float32(-0.0)
        return x
    if kind == "ties":
        return (rng.integers(-400, 400, shape) * 0.5).astype(np.float32)
    x = rng.standard_normal(shape).astype(np.float32) * np.float32({"tiny": tiny, "huge": 1e37}.get(kind, 3.0))
    if kind == "positive":
        x = np.abs(x) + np.float32(0.5)
    if kind == "special":
        x.flat[rng.integers(0, x.size, 2)] = special
    return x
