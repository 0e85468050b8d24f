"""kernels.gemm against its NumPy int64 twin, equality, edge values included."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels.gemm import batched_gemm_acc, batched_gemm_acc_ref, gemm_acc, gemm_acc_ref
from tests.kernels.strategies import DTYPES, int_array, zero_point


@st.composite
def gemm_case(draw):
    m, k, n = draw(st.integers(1, 40)), draw(st.integers(1, 41)), draw(st.integers(1, 40))
    ad, bd = draw(st.sampled_from(DTYPES)), draw(st.sampled_from(DTYPES))
    a = draw(int_array((m, k), ad))
    b = draw(int_array((k, n), bd))
    az = draw(zero_point(ad))
    bz = np.array([draw(zero_point(bd)) for _ in range(n)], np.int64)
    bias = np.array(draw(st.lists(st.integers(-2**31, 2**31 - 1), min_size=n, max_size=n)), np.int64)
    return a, b, az, bz, bias


@settings(max_examples=150, deadline=None)
@given(gemm_case(), st.sampled_from([np.int32, np.int64]))
def test_gemm_equals_reference(case, acc_dtype):
    a, b, az, bz, bias = case
    got = np.empty((a.shape[0], b.shape[1]), acc_dtype)
    want = np.empty_like(got)
    gemm_acc(a, b, az, bz, bias, got)
    gemm_acc_ref(a, b, az, bz, bias, want)
    assert np.array_equal(got, want)


def test_int32_accumulator_wraps_like_twos_complement():
    a = np.full((1, 70000), 255, np.uint8)
    b = np.full((70000, 1), 127, np.int8)
    acc32, acc64 = np.empty((1, 1), np.int32), np.empty((1, 1), np.int64)
    z = np.zeros(1, np.int64)
    gemm_acc(a, b, 0, z, z, acc32)
    gemm_acc(a, b, 0, z, z, acc64)
    exact = 255 * 127 * 70000
    assert acc64[0, 0] == exact
    assert acc32[0, 0] == ((exact + 2**31) % 2**32) - 2**31


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_batched_gemm_equals_reference(bt, m, k, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (bt, m, k)).astype(np.int8)
    b = rng.integers(0, 256, (bt, k, n)).astype(np.uint8)
    bz = rng.integers(0, 256, n).astype(np.int64)
    bias = rng.integers(-1000, 1000, n).astype(np.int64)
    got, want = np.empty((bt, m, n), np.int64), np.empty((bt, m, n), np.int64)
    batched_gemm_acc(a, b, -3, bz, bias, got)
    batched_gemm_acc_ref(a, b, -3, bz, bias, want)
    assert np.array_equal(got, want)


def test_bad_shapes_raise():
    z = np.zeros(3, np.int64)
    with pytest.raises(ValueError):
        gemm_acc(np.zeros((2, 4), np.int8), np.zeros((5, 3), np.int8), 0, z, z, np.empty((2, 3), np.int32))
    with pytest.raises(ValueError):
        gemm_acc(np.zeros((2, 4), np.int8), np.zeros((4, 3), np.int8), 0, z, z, np.empty((2, 2), np.int32))
    with pytest.raises(ValueError):
        gemm_acc(np.zeros((2, 4), np.float32), np.zeros((4, 3), np.int8), 0, z, z, np.empty((2, 3), np.int32))
