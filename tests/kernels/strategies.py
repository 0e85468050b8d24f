"""Hypothesis strategies shared by the kernel tests: integer arrays that include the type's
extremes and zero points at the ends of the range."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

DTYPES = [np.uint8, np.int8, np.int16]


@st.composite
def int_array(draw, shape, dtype):
    info = np.iinfo(dtype)
    mode = draw(st.sampled_from(["random", "min", "max", "ends"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if mode == "min":
        return np.full(shape, info.min, dtype)
    if mode == "max":
        return np.full(shape, info.max, dtype)
    if mode == "ends":
        return rng.choice(np.array([info.min, info.max, 0 if info.min < 0 else info.min], dtype), size=shape)
    return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=np.int64).astype(dtype)


def zero_point(dtype):
    info = np.iinfo(dtype)
    return st.sampled_from([int(info.min), int(info.max), 0 if info.min < 0 else int(info.min)]) | \
        st.integers(int(info.min), int(info.max))
