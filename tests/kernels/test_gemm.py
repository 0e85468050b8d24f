"""kernels.gemm against its NumPy int64 twin, equality, edge values included."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels.gemm import (batched_gemm_acc, batched_gemm_acc_ref, centred_bound, gemm_acc, gemm_acc_ref,
                          k_block)
from tests.kernels.strategies import DTYPES, biases, int_array, k_size, zero_point, zero_points


@st.composite
def gemm_case(draw, dtypes=DTYPES, max_k=40):
    m, k, n = draw(st.integers(1, 40)), draw(k_size(max_k)), draw(st.integers(1, 40))
    ad, bd = draw(st.sampled_from(dtypes)), draw(st.sampled_from(dtypes))
    a = draw(int_array((m, k), ad))
    b = draw(int_array((k, n), bd))
    return a, b, draw(zero_point(ad)), draw(zero_points(bd, n)), draw(biases(n))


def run_both(fn, ref, args, shape, acc_dtype):
    got = np.full(shape, 0x5A5A5A5A, acc_dtype)   # garbage the kernel must overwrite
    want = np.empty(shape, acc_dtype)
    fn(*args, got)
    ref(*args, want)
    return got, want


@settings(max_examples=100, deadline=None)
@given(gemm_case(), st.sampled_from([np.int32, np.int64]))
def test_gemm_equals_reference(case, acc_dtype):
    a, b = case[0], case[1]
    got, want = run_both(gemm_acc, gemm_acc_ref, case, (a.shape[0], b.shape[1]), acc_dtype)
    assert np.array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(gemm_case(dtypes=[np.int16, np.uint16, np.int8], max_k=300), st.sampled_from([np.int32, np.int64]))
def test_gemm_long_k_crosses_int32_runs(case, acc_dtype):
    """K up to 300 with 16-bit operands: runs of int32 sums (kblock can be 128) and the int64 path."""
    a, b = case[0], case[1]
    got, want = run_both(gemm_acc, gemm_acc_ref, case, (a.shape[0], b.shape[1]), acc_dtype)
    assert np.array_equal(got, want)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**32 - 1), st.integers(-2**15, 2**15))
def test_int32_operands_take_the_int64_path(m, n, seed, zp):
    rng = np.random.default_rng(seed)
    a = rng.integers(-2**15, 2**15, (m, 13)).astype(np.int32)
    b = rng.integers(-2**20, 2**20, (13, n)).astype(np.int32)
    case = (a, b, zp, np.full(n, -7, np.int64), np.zeros(n, np.int64))
    got, want = run_both(gemm_acc, gemm_acc_ref, case, (m, n), np.int64)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.uint32])
def test_wide_dtypes_holding_int32_values(dtype):
    rng = np.random.default_rng(6)
    lo = 0 if np.iinfo(dtype).min == 0 else -2**31
    a = np.array([[lo, 2**31 - 1, 5], [7, lo, 2**31 - 1]], dtype)
    b = rng.integers(0, 2**31, (3, 4)).astype(dtype)
    case = (a, b, 1, np.array([0, 1, -5, 2**31 - 1], np.int64), np.zeros(4, np.int64))
    got, want = run_both(gemm_acc, gemm_acc_ref, case, (2, 4), np.int64)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.int8, np.int32])
@pytest.mark.parametrize("m, k, n", [(0, 3, 2), (2, 0, 3), (2, 3, 0)])
def test_empty_dimensions(m, k, n, dtype):
    bias = np.arange(n, dtype=np.int64) - 1
    acc = np.full((m, n), 99, np.int64)
    gemm_acc(np.zeros((m, k), dtype), np.zeros((k, n), dtype), 3, np.ones(n, np.int64), bias, acc)
    assert acc.tolist() == [bias.tolist()] * m     # K == 0: only the bias


def test_int32_run_bound_is_tight_and_exact():
    """int16 a all -32768 with a_zp 32767, int8 b all -128 with b_zp 127: every product is
    65535 * 255, kblock is 128 and a run of 128 products is 2_139_062_400 < 2**31."""
    ab, bb = centred_bound(np.int16, 32767, 32767), centred_bound(np.int8, 127, 127)
    assert (ab, bb) == (65535, 255)
    kb = k_block(ab, bb)
    assert kb * ab * bb <= 2**31 - 1 < (kb + 1) * ab * bb
    k = 1000
    a = np.full((2, k), -32768, np.int16)
    b = np.full((k, 3), -128, np.int8)
    acc = np.empty((2, 3), np.int64)
    gemm_acc(a, b, 32767, np.full(3, 127, np.int64), np.array([0, 1, -1], np.int64), acc)
    assert acc.tolist() == [[k * 65535 * 255 + d for d in (0, 1, -1)]] * 2


@given(st.integers(1, 2**20), st.integers(1, 2**20))
def test_k_block_never_overflows_int32(ab, bb):
    kb = k_block(ab, bb)
    assert kb == 0 and ab * bb > 2**31 - 1 or kb * ab * bb <= 2**31 - 1 < (kb + 1) * ab * bb


def test_int32_accumulator_wraps_like_twos_complement():
    a = np.full((1, 70001), 255, np.uint8)
    b = np.full((70001, 2), 127, np.int8)
    acc32, acc64 = np.empty((1, 2), np.int32), np.empty((1, 2), np.int64)
    z = np.zeros(2, np.int64)
    gemm_acc(a, b, 0, z, z, acc32)
    gemm_acc(a, b, 0, z, z, acc64)
    exact = 255 * 127 * 70001
    assert acc64.tolist() == [[exact, exact]]
    assert acc32.tolist() == [[((exact + 2**31) % 2**32) - 2**31] * 2]


def test_extremes_uint8_255_times_int8_minus_128():
    k = 67
    a = np.full((3, k), 255, np.uint8)
    b = np.full((k, 5), -128, np.int8)
    acc = np.empty((3, 5), np.int32)
    gemm_acc(a, b, 0, np.zeros(5, np.int64), np.zeros(5, np.int64), acc)
    assert (acc == -255 * 128 * k).all()   # exact: no int16 pair saturation on this path


def test_non_contiguous_and_big_endian_inputs():
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (11, 7)).astype(np.int8).T          # (7, 11), F-ordered view
    b = rng.integers(0, 65536, (11, 5)).astype(">u2")
    case = (a, b, -5, np.arange(5, dtype=np.int64), np.arange(5, dtype=np.int64) * 1000)
    got, want = run_both(gemm_acc, gemm_acc_ref, case, (7, 5), np.int64)
    assert np.array_equal(got, want)
    acc = np.empty((14, 5), np.int64)[::2]                          # strided accumulator
    gemm_acc(*case, acc)
    assert np.array_equal(acc, want)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 9), k_size(19), st.integers(1, 9), st.integers(0, 2**32 - 1),
       st.sampled_from([np.int32, np.int64]))
def test_batched_gemm_equals_reference(bt, m, k, n, seed, acc_dtype):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (bt, m, k)).astype(np.int8)
    b = rng.integers(0, 256, (bt, k, n)).astype(np.uint8)
    case = (a, b, -128, rng.integers(0, 256, n).astype(np.int64), rng.integers(-2**31, 2**31, n))
    got, want = run_both(batched_gemm_acc, batched_gemm_acc_ref, case, (bt, m, n), acc_dtype)
    assert np.array_equal(got, want)


def test_batched_gemm_matches_per_batch_gemm():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (3, 4, 6)).astype(np.uint8)
    b = rng.integers(-128, 128, (3, 6, 5)).astype(np.int8)
    bz, bias = np.array([0, 1, -1, 127, -128], np.int64), np.arange(5, dtype=np.int64)
    acc = np.empty((3, 4, 5), np.int32)
    batched_gemm_acc(a, b, 255, bz, bias, acc)
    for i in range(3):
        one = np.empty((4, 5), np.int32)
        gemm_acc(a[i], b[i], 255, bz, bias, one)
        assert np.array_equal(acc[i], one)


Z3 = np.zeros(3, np.int64)


@pytest.mark.parametrize("a, b, a_zp, b_zp, bias, acc, word", [
    (np.zeros((2, 4), np.int8), np.zeros((5, 3), np.int8), 0, Z3, Z3, np.empty((2, 3), np.int32), "multiply"),
    (np.zeros((2, 4), np.int8), np.zeros((4, 3), np.int8), 0, Z3, Z3, np.empty((2, 2), np.int32), "acc"),
    (np.zeros((2, 4), np.float32), np.zeros((4, 3), np.int8), 0, Z3, Z3, np.empty((2, 3), np.int32), "a "),
    (np.zeros((2, 4), np.int8), np.zeros((4, 3), bool), 0, Z3, Z3, np.empty((2, 3), np.int32), "b "),
    (np.zeros((2, 4), np.int8), np.zeros((4, 3), np.int8), 0, Z3[:2], Z3, np.empty((2, 3), np.int32), "b_zp"),
    (np.zeros((2, 4), np.int8), np.zeros((4, 3), np.int8), 0, Z3, Z3[:2], np.empty((2, 3), np.int32), "bias"),
    (np.zeros((2, 4), np.int8), np.zeros((4, 3), np.int8), 2**40, Z3, Z3, np.empty((2, 3), np.int32), "a_zp"),
    (np.zeros((2, 4), np.int8), np.zeros((4, 3), np.int8), 0, Z3, Z3, np.empty((2, 3), np.int16), "acc"),
    (np.full((2, 4), 2**40), np.zeros((4, 3), np.int8), 0, Z3, Z3, np.empty((2, 3), np.int64), "a "),
    (np.zeros((4,), np.int8), np.zeros((4, 3), np.int8), 0, Z3, Z3, np.empty((1, 3), np.int64), "a "),
])
def test_bad_input_raises_value_error_naming_the_tensor(a, b, a_zp, b_zp, bias, acc, word):
    with pytest.raises(ValueError, match=word):
        gemm_acc(a, b, a_zp, b_zp, bias, acc)


def test_batched_rejects_mismatched_batches():
    with pytest.raises(ValueError):
        batched_gemm_acc(np.zeros((2, 3, 4), np.int8), np.zeros((3, 4, 5), np.int8), 0,
                         np.zeros(5, np.int64), np.zeros(5, np.int64), np.empty((2, 3, 5), np.int64))
