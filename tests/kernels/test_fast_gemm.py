"""kernels.simd (the SIMD GEMM engine) against a NumPy int64 reference written here, equality only.

Every case runs on each path this host can execute (avx512vnni vpdpbusd panels, avx2 vpmaddwd
panels, portable loops); where the CPU has no VNNI, the avx512vnni drivers run with vpdpbusd
emulated in generic LLVM IR instead (tests/kernels/vnni_emulated.py: everything of that path but
the one instruction).
"""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import cpu
from kernels import threads as kernel_threads
from kernels.simd import drivers, microkernels, packing, wrappers
from kernels import threads as kthreads
from tests.kernels.guarded import guarded_bytes
from tests.kernels.strategies import int_array, zero_point
from tests.kernels.vnni_emulated import VNNI_PATH, running

RUNNABLE = [isa for isa in ("amx", "avx512vnni", "avxvnni", "avx2", "portable") if not cpu.missing(isa)]   # what this host runs
WITH_VNNI = list(dict.fromkeys(RUNNABLE + [VNNI_PATH]))   # + the avx512vnni path, emulated where the CPU lacks it


def wrap32(v):
    return ((v.astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32)


def exact_sum(a, az, b, bz, bias):
    """sum_k (a - az)(b - bz[n]) + bias[n], in Python-sized int64 (no overflow for these sizes)."""
    return (a.astype(np.int64) - az) @ (b.astype(np.int64) - np.asarray(bz, np.int64)) + np.asarray(bias, np.int64)


def requant_reference(acc32, mult, zp, lo, hi):
    v = acc32.astype(np.float32) * mult.astype(np.float32)
    q = np.rint(v).astype(np.int64) + zp           # rint: half to even, on the float32 product
    return np.clip(q, lo, hi)


@st.composite
def gemm_case(draw, max_dim=300, int4=False):
    m, k, n = (draw(st.integers(1, max_dim)) for _ in range(3))
    ad = draw(st.sampled_from([np.uint8, np.int8]))
    bd = np.int8 if int4 else draw(st.sampled_from([np.uint8, np.int8]))
    a = draw(int_array((m, k), ad))
    if int4:
        b = draw(st.integers(0, 2**32 - 1).map(lambda s: np.random.default_rng(s).integers(-8, 8, (k, n)).astype(np.int8)))
        bz = np.array(draw(st.lists(st.integers(-8, 7), min_size=n, max_size=n)), np.int64)
    else:
        b = draw(int_array((k, n), bd))
        bz = np.array([draw(zero_point(bd)) for _ in range(n)], np.int64)
    az = draw(zero_point(ad))
    bias = np.array(draw(st.lists(st.integers(-2**31, 2**31 - 1), min_size=n, max_size=n)), np.int64)
    return a, az, b, bz, bias


def check_case(case, isa, acc_dtype):
    a, az, b, bz, bias = case
    packed = packing.pack_b(b, bz, isa=isa)
    got = np.empty((a.shape[0], b.shape[1]), acc_dtype)
    wrappers.gemm_packed(a, az, packed, bias, got)
    want = exact_sum(a, az, b, bz, bias)
    assert np.array_equal(got, want if acc_dtype == np.int64 else wrap32(want))
    twin = np.empty_like(got)
    wrappers.gemm_packed_ref(a, az, packed, bias, twin)
    assert np.array_equal(got, twin)


@pytest.mark.parametrize("isa", WITH_VNNI)
@settings(max_examples=60, deadline=None)
@given(case=gemm_case(), acc_dtype=st.sampled_from([np.int32, np.int64]))
def test_gemm_equals_reference(isa, case, acc_dtype):
    with running(isa) as isa:
        check_case(case, isa, acc_dtype)


@pytest.mark.parametrize("isa", WITH_VNNI)
@settings(max_examples=40, deadline=None)
@given(case=gemm_case(max_dim=120), acc_dtype=st.sampled_from([np.int32, np.int64]), seed=st.integers(0, 2**32 - 1))
def test_bound_gemm_equals_twin_and_reads_a_at_each_call(isa, case, acc_dtype, seed):
    """bind_gemm_packed: its setup (offsets, geometry, work split) done once, the call on the
    bound arrays equals gemm_packed_ref, and a call after A's values change sees the new A."""
    a, az, b, bz, bias = case
    with running(isa) as isa:
        packed = packing.pack_b(b, bz, isa=isa)
        a = np.ascontiguousarray(a)
        got, twin = np.empty((a.shape[0], b.shape[1]), acc_dtype), np.empty((a.shape[0], b.shape[1]), acc_dtype)
        call = wrappers.bind_gemm_packed(a, az, packed, bias, got)
        for _ in range(2):
            call()
            wrappers.gemm_packed_ref(a, az, packed, bias, twin)
            assert np.array_equal(got, twin)
            info = np.iinfo(a.dtype)
            a[...] = np.random.default_rng(seed).integers(info.min, info.max + 1, a.shape)


@pytest.mark.parametrize("isa", RUNNABLE)
@settings(max_examples=30, deadline=None)
@given(case=gemm_case(max_dim=40, int4=True))
def test_int4_weights_given_as_int8(isa, case):
    check_case(case, isa, np.int32)


@pytest.mark.parametrize("isa", WITH_VNNI)
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 1030, 1), (7, 1030, 33), (13, 5, 257), (97, 257, 16)])
@pytest.mark.parametrize("corner", ["a_min_b_max", "a_max_b_min", "zp_ends"])
def test_extreme_values_and_block_edges(isa, shape, corner):
    with running(isa) as isa:
        extreme_cases(isa, shape, corner)


def extreme_cases(isa, shape, corner):
    m, k, n = shape
    for ad, bd in [(np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8), (np.int8, np.uint8)]:
        ai, bi = np.iinfo(ad), np.iinfo(bd)
        if corner == "a_min_b_max":
            a, b, az, bz = np.full((m, k), ai.min, ad), np.full((k, n), bi.max, bd), ai.max, np.full(n, bi.min)
        elif corner == "a_max_b_min":
            a, b, az, bz = np.full((m, k), ai.max, ad), np.full((k, n), bi.min, bd), ai.min, np.full(n, bi.max)
        else:
            rng = np.random.default_rng(m * 1000 + k)
            a = rng.choice(np.array([ai.min, ai.max], ad), (m, k))
            b = rng.choice(np.array([bi.min, bi.max], bd), (k, n))
            az, bz = ai.max, rng.choice([bi.min, bi.max], n)
        bias = np.full(n, -2**31, np.int64)
        check_case((a, az, b, bz, bias), isa, np.int32)
        check_case((a, az, b, bz, bias), isa, np.int64)


@pytest.mark.parametrize("isa", WITH_VNNI)
@pytest.mark.parametrize("m,k,n", [(6, 1032, 32), (97, 1032, 48), (13, 2052, 70), (600, 8, 48)])
def test_uint8_a_read_in_place_over_k_blocks(isa, m, k, n):
    """uint8 A with K % 4 == 0 (the VNNI driver reads full tiles straight from A, over several K
    blocks when K > 512): int32, int64 and requantized outputs equal the reference, also for A
    as rows of a wider array (copied by the wrapper) and with a partial last tile."""
    rng = np.random.default_rng(m + k + n)
    a = rng.choice(np.array([0, 1, 128, 254, 255], np.uint8), (m, k))
    b = rng.choice(np.array([-128, -1, 0, 1, 127], np.int8), (k, n))
    bias = rng.integers(-2**20, 2**20, n)
    with running(isa) as isa:
        for az in (0, 255):
            check_case((a, az, b, np.zeros(n, np.int64), bias), isa, np.int32)
            check_case((np.hstack([a, a])[:, :k], az, b, np.zeros(n, np.int64), bias), isa, np.int64)
            check_requant_case((a, az, b, np.zeros(n, np.int64), bias), isa, np.uint8, -14, m)


@pytest.mark.parametrize("isa", WITH_VNNI)
def test_int32_wraps_and_int64_stays_exact_beyond_int32(isa):
    k = 70000
    a = np.full((3, k), 255, np.uint8)
    b = np.full((k, 2), 127, np.int8)
    case = (a, 0, b, np.zeros(2, np.int64), np.array([0, 2**31 - 1], np.int64))
    exact = 255 * 127 * k
    assert exact > 2**31
    with running(isa) as isa:
        check_case(case, isa, np.int32)
        check_case(case, isa, np.int64)


@pytest.mark.parametrize("isa", WITH_VNNI)
@settings(max_examples=50, deadline=None)
@given(case=gemm_case(max_dim=120), out_dtype=st.sampled_from([np.uint8, np.int8]),
       scale_exp=st.integers(-16, -4), seed=st.integers(0, 2**32 - 1))
def test_fused_requant_equals_reference(isa, case, out_dtype, scale_exp, seed):
    with running(isa) as isa:
        check_requant_case(case, isa, out_dtype, scale_exp, seed)


def check_requant_case(case, isa, out_dtype, scale_exp, seed):
    a, az, b, bz, bias = case
    bias = bias % 2**20 - 2**19
    n = b.shape[1]
    rng = np.random.default_rng(seed)
    mult = (rng.uniform(0.5, 1.0, n) * 2.0**scale_exp).astype(np.float32)
    info = np.iinfo(out_dtype)
    zp = int(rng.integers(info.min, int(info.max) + 1))
    lo, hi = int(rng.integers(info.min, zp + 1)), int(rng.integers(zp, int(info.max) + 1))
    packed = packing.pack_b(b, bz, isa=isa)
    out = np.empty((a.shape[0], n), out_dtype)
    wrappers.gemm_packed_requant(a, az, packed, bias, mult, zp, lo, hi, out)
    want = requant_reference(wrap32(exact_sum(a, az, b, bz, bias)), mult, zp, lo, hi)
    assert np.array_equal(out.astype(np.int64), want)
    twin = np.empty_like(out)
    wrappers.gemm_packed_requant_ref(a, az, packed, bias, mult, zp, lo, hi, twin)
    assert np.array_equal(out, twin)


# N whose last panel holds 1..16 columns (the 12x16 half kernels of the avx512vnni driver over tile pairs;
# an odd tile count ends with the 6x32 kernel), M of even and odd tile counts, K across K blocks (> 512)
HALF_TAIL = st.tuples(st.integers(1, 61), st.sampled_from([1, 3, 4, 31, 64, 127, 513, 517, 600]) | st.integers(1, 700),
                      st.tuples(st.integers(0, 2), st.integers(1, 16)).map(lambda t: 32 * t[0] + t[1]))


@st.composite
def vnni_case(draw, shape):
    """A gemm_case whose b - b_zp fits int8 (so the avx512vnni/amx panels, not avx2's, are used):
    int8 b with b_zp 0 or uint8 b with b_zp 128, edge values included."""
    m, k, n = draw(shape)
    ad, bd = draw(st.sampled_from([np.uint8, np.int8])), draw(st.sampled_from([np.uint8, np.int8]))
    a, b = draw(int_array((m, k), ad)), draw(int_array((k, n), bd))
    bias = np.array(draw(st.lists(st.integers(-2**31, 2**31 - 1), min_size=n, max_size=n)), np.int64)
    return a, draw(zero_point(ad)), b, np.full(n, 0 if bd == np.int8 else 128, np.int64), bias


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("isa", WITH_VNNI)
@settings(max_examples=40, deadline=None)
@given(case=vnni_case(HALF_TAIL), acc_dtype=st.sampled_from([np.int32, np.int64]),
       out_dtype=st.sampled_from([np.uint8, np.int8]), scale_exp=st.integers(-16, -4), seed=st.integers(0, 2**32 - 1))
def test_half_panel_tail_equals_reference(isa, threads, case, acc_dtype, out_dtype, scale_exp, seed):
    """int32/int64 sums and the fused requantization of GEMMs whose last VNNI panel is at most half
    full equal the reference, on 1 and 2 threads (items of odd and even tile counts)."""
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(threads)
    try:
        with running(isa) as path:
            check_case(case, path, acc_dtype)
            check_requant_case(case, path, out_dtype, scale_exp, seed)
    finally:
        kernel_threads.set_num_threads(old)


def test_requant_rounds_ties_to_even_in_float32():
    # acc * 0.5 lands on .5 ties: 1 -> 0.5 -> 0, 3 -> 1.5 -> 2, -1 -> -0.5 -> -0, 5 -> 2.5 -> 2
    a = np.array([[1], [3], [-1], [5]], np.int8)
    b = np.ones((1, 1), np.int8)
    packed = packing.pack_b(b, 0, isa=RUNNABLE[0])
    out = np.empty((4, 1), np.int8)
    wrappers.gemm_packed_requant(a, 0, packed, 0, np.float32(0.5), 0, -128, 127, out)
    assert out.ravel().tolist() == [0, 2, 0, 2]


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threads_give_identical_results(threads, native, monkeypatch):
    """Any thread count, through Numba's parallel region (native) or the Python pool."""
    monkeypatch.setattr(kthreads, "NATIVE_THREADS", native)
    rng = np.random.default_rng(threads)
    a = rng.integers(0, 256, (301, 129)).astype(np.uint8)
    b = rng.integers(-128, 128, (129, 290)).astype(np.int8)
    packed = packing.pack_b(b, 3, isa=RUNNABLE[0])
    old = kernel_threads.get_num_threads()
    try:
        kernel_threads.set_num_threads(threads)
        got = np.empty((301, 290), np.int32)
        wrappers.gemm_packed(a, 7, packed, np.zeros(290), got)
    finally:
        kernel_threads.set_num_threads(old)
    assert np.array_equal(got, wrap32(exact_sum(a, 7, b, np.full(290, 3), np.zeros(290, np.int64))))


def test_bad_inputs_raise_value_error_naming_the_tensor():
    b = np.zeros((4, 3), np.int8)
    packed = packing.pack_b(b, 0, isa=RUNNABLE[0])
    acc = np.empty((2, 3), np.int32)
    cases = [
        (lambda: packing.pack_b(b.astype(np.float32), 0), "weight b"),
        (lambda: packing.pack_b(np.zeros((0, 3), np.int8), 0), "weight b"),
        (lambda: packing.pack_b(b, [0, 1], isa="avx2"), "b_zp"),
        (lambda: packing.pack_b(b, 200), "b_zp"),
        (lambda: packing.pack_b(b, 0, isa="neon"), "isa"),
        (lambda: wrappers.gemm_packed(np.zeros((2, 5), np.uint8), 0, packed, 0, acc), "a (2, 5)"),
        (lambda: wrappers.gemm_packed(np.zeros((2, 4), np.int16), 0, packed, 0, acc), "activation a"),
        (lambda: wrappers.gemm_packed(np.zeros((2, 4), np.uint8), 300, packed, 0, acc), "a_zp"),
        (lambda: wrappers.gemm_packed(np.zeros((2, 4), np.uint8), 0, packed, np.zeros(2), acc), "bias"),
        (lambda: wrappers.gemm_packed(np.zeros((2, 4), np.uint8), 0, packed, 0, np.empty((2, 3), np.int16)), "acc"),
        (lambda: wrappers.gemm_packed(np.zeros((2, 4), np.uint8), 0, packed, 0, np.empty((3, 3), np.int32)), "acc"),
        (lambda: wrappers.gemm_packed_requant(np.zeros((2, 4), np.uint8), 0, packed, 0, 1.0, 0, 0, 255,
                                        np.empty((2, 3), np.int32)), "out"),
        (lambda: wrappers.gemm_packed_requant(np.zeros((2, 4), np.uint8), 0, packed, 0, 1.0, 5, 6, 255,
                                        np.empty((2, 3), np.uint8)), "lo"),
        (lambda: wrappers.gemm_packed_requant(np.zeros((2, 4), np.uint8), 0, packed, 0, np.nan, 0, 0, 255,
                                        np.empty((2, 3), np.uint8)), "mult"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name.replace("(", r"\(").replace(")", r"\)")):
            call()


def test_non_contiguous_activations_are_accepted():
    rng = np.random.default_rng(5)
    big = rng.integers(-128, 128, (40, 60)).astype(np.int8)
    a = big[::3, 1::2]
    b = rng.integers(-128, 128, (30, 21)).astype(np.int8)
    check_case((a, -128, b, np.zeros(21, np.int64), np.zeros(21, np.int64)), RUNNABLE[0], np.int32)


def test_vnni_falls_back_to_int16_panels_when_weights_do_not_fit_int8():
    b = np.full((4, 2), 255, np.uint8)
    assert packing.pack_b(b, 0, isa="avx512vnni").isa == "avx2"
    assert packing.pack_b(np.full((4, 2), 127, np.int8), 0, isa="avx512vnni").isa == "avx512vnni"


def emulate_vnni_gemm(a, az, packed, bias):
    """The avx512vnni path with vpdpbusd emulated in NumPy: unpack the panels and the A words
    by their documented layouts, then u8 x s8 sums + per-column offsets, wrapped to int32."""
    mr, nr, g = microkernels.VNNI_MR, microkernels.VNNI_NR, 4
    m, steps, n = a.shape[0], packed.steps, packed.n
    n_panels, n_tiles = -(-n // nr), -(-m // mr)
    b_mat = np.zeros((steps * g, n_panels * nr), np.int64)
    a_mat = np.zeros((n_tiles * mr, steps * g), np.int64)
    offs, o = packing.offsets(packed, a.dtype, az, np.asarray(bias, np.int64))
    geo = drivers.gemm_geo(m, packed.k, n, "avx512vnni")
    src = np.ascontiguousarray(a).reshape(-1)
    kc = packing.k_block(steps)
    for s0 in range(0, steps, kc):
        ns = min(kc, steps - s0)
        blk = packed.panels[s0 * n_panels * nr * g:(s0 + ns) * n_panels * nr * g].reshape(n_panels, ns, nr, g)
        b_mat[s0 * g:(s0 + ns) * g] = blk.transpose(1, 3, 0, 2).reshape(ns * g, n_panels * nr)
        apk = np.empty(n_tiles * mr * ns * g, np.uint8)
        packing.pack_block(src, geo, np.int64(o), g, mr, 0, n_tiles, s0, ns, apk)
        a_mat[:, s0 * g:(s0 + ns) * g] = apk.reshape(n_tiles * mr, ns * g)   # row by row, lowest lane first
    return wrap32(offs[None, :n].astype(np.int64) + (a_mat @ b_mat)[:m, :n])


def vnni_weights(case):
    """The case with b and its zero points moved so that every b - bz fits int8 (the VNNI panels)."""
    a, az, b, bz, bias = case
    bz = np.clip(bz, b.astype(np.int64).max() - 127, b.astype(np.int64).min() + 128)  # bw fits int8
    if np.any(bz < np.iinfo(b.dtype).min) or np.any(bz > np.iinfo(b.dtype).max):
        bz = np.zeros_like(bz)
        b = (b.astype(np.int64) // 2).astype(np.int8)
    return a, az, b, bz, bias


@settings(max_examples=40, deadline=None)
@given(case=gemm_case())
def test_vnni_layout_and_offsets_with_numpy_vpdpbusd(case):
    """Runs on any host: the panel and A-quad layouts and the offsets of the VNNI path, summed by NumPy."""
    a, az, b, bz, bias = vnni_weights(case)
    packed = packing.pack_b(b, bz, isa="avx512vnni")
    assert packed.isa == "avx512vnni"
    assert np.array_equal(emulate_vnni_gemm(a, az, packed, bias), wrap32(exact_sum(a, az, b, bz, bias)))


@pytest.mark.long
@settings(max_examples=40, deadline=None)
@given(case=gemm_case(), acc_dtype=st.sampled_from([np.int32, np.int64]), threads=st.sampled_from([1, 2]),
       requant=st.sampled_from([None, np.uint8, np.int8]), seed=st.integers(0, 2**32 - 1))
def test_vnni_drivers_serial_parallel_requant(case, acc_dtype, threads, requant, seed):
    """Runs on any host: the avx512vnni drivers and micro-kernels (where the CPU lacks VNNI, as
    compiled for it with vpdpbusd written in generic IR, tests/kernels/vnni_emulated.py), on
    weights that take the VNNI panels; serial and as a parallel region of two threads (the
    serial cut-offs lowered)."""
    case = vnni_weights(case)
    assert packing.pack_b(case[2], case[3], isa="avx512vnni").isa == "avx512vnni"
    old = kernel_threads.get_num_threads()
    try:
        kernel_threads.set_num_threads(threads)
        with running(VNNI_PATH) as isa, mock.patch.object(drivers, "SERIAL_OPS", 0), \
                mock.patch.object(drivers, "NATIVE_SERIAL_OPS", 0):
            if requant is None:
                check_case(case, isa, acc_dtype)
            else:
                check_requant_case((*case[:4], case[4] % 2**20 - 2**19), isa, requant, -10, seed)
    finally:
        kernel_threads.set_num_threads(old)


@pytest.mark.parametrize("isa", RUNNABLE)
@pytest.mark.parametrize("m,k,n", [(12, 24, 32), (13, 27, 33), (6, 512, 16), (1, 4, 16), (97, 260, 144)])
@pytest.mark.parametrize("layout", ["c", "row_gap", "fortran"])
def test_acc_layouts_full_and_partial_tiles(isa, m, k, n, layout):
    """Full tiles (M % 6 == 0, N % 16 == 0) are summed straight into an int32 acc with row-contiguous
    storage (also with a row stride > N); partial tiles and other layouts go through the block."""
    rng = np.random.default_rng(m * 7 + k)
    a = rng.choice(np.array([0, 1, 127, 128, 254, 255], np.uint8), (m, k))
    b = rng.choice(np.array([-128, -1, 0, 1, 127], np.int8), (k, n))
    bz, bias = rng.integers(-128, 128, n), rng.integers(-2**31, 2**31, n)
    packed = packing.pack_b(b, bz, isa=isa)
    for dtype in (np.int32, np.int64):
        big = np.full((m, n + 5), 77, dtype)
        acc = {"c": np.empty((m, n), dtype), "row_gap": big[:, 2:n + 2],
               "fortran": np.empty((m, n), dtype, order="F")}[layout]
        wrappers.gemm_packed(a, 255, packed, bias, acc)
        want = exact_sum(a, 255, b, bz, bias)
        assert np.array_equal(acc, want if dtype == np.int64 else wrap32(want))
        if layout == "row_gap":
            assert (big[:, :2] == 77).all() and (big[:, n + 2:] == 77).all()


def test_work_threads_default_serial_below_threshold_explicit_kept():
    small = drivers.gemm_geo(16, 16, 16, "avx2")
    big = drivers.gemm_geo(1024, 1024, 1024, "avx2")
    old = kernel_threads.get_num_threads()
    try:
        kernel_threads.set_num_threads(3)
        assert drivers.work_threads(small) == 1 and drivers.work_threads(big) == 3
        assert drivers.work_threads(small, 2) == 2 and drivers.work_threads(big, 1) == 1
    finally:
        kernel_threads.set_num_threads(old)
    assert 2 * 16**3 < drivers.SERIAL_OPS <= 2 * 1024**3


@pytest.mark.parametrize("m,n,threads", [(49, 960, 2), (12544, 32, 2), (1024, 1024, 2), (7, 17, 1), (300, 300, 4),
                                         (96, 16, 2), (97, 960, 2)])
def test_split_covers_every_tile_and_panel_once(m, n, threads):
    """The work items of gemm_geo partition the (tile, panel) grid, with >= 4 items per thread
    when the grid has that many cells, except for few rows (at most MC_TILES tiles): one M block
    and one N range per thread."""
    old = kernel_threads.get_num_threads()
    try:
        kernel_threads.set_num_threads(threads)
        geo = drivers.gemm_geo(m, 64, n, "avx2")
    finally:
        kernel_threads.set_num_threads(old)
    n_tiles, n_panels = -(-m // 6), -(-n // 16)
    seen = np.zeros((n_tiles, n_panels), np.int64)
    count = drivers.n_items(geo, "avx2")
    for item in range(count):
        t0, t1, p0, p1 = drivers.item_bounds(item, geo, 6, 16, 16)
        seen[t0:t1, p0:p1] += 1
    assert (seen == 1).all()
    if threads > 1 and n_tiles <= packing.MC_TILES:
        assert count == min(threads, n_panels) and int(geo[packing.G_MC]) == n_tiles
    elif threads > 1:
        assert count >= min(4 * threads, n_tiles * n_panels)


@pytest.mark.parametrize("isa", WITH_VNNI)
@pytest.mark.parametrize("threads", [1, 2])
@settings(max_examples=25, deadline=None)
@given(m=st.sampled_from([6, 12, 13, 96, 97]) | st.integers(1, 200), k=st.sampled_from([1, 2, 3, 5, 27, 147]) |
       st.integers(1, 300), n=st.integers(1, 70), seed=st.integers(0, 2**32 - 1))
def test_vnni_uint8_a_in_place_with_k_not_a_multiple_of_4(isa, threads, m, k, n, seed):
    """uint8 A with K % 4 != 0: full tiles read in place, rows K bytes apart, each row's last word
    reading 1-3 bytes of the next row against zero panels (drivers.vnni_a_in_place; an item
    ending at row M is packed): int32 sums and requantized bytes equal the reference, also with
    A ending right before an inaccessible page (a read past A would fault)."""
    rng = np.random.default_rng(seed)
    a = rng.choice(np.array([0, 1, 128, 254, 255], np.uint8), (m, k))
    guarded = guarded_bytes(a.nbytes) if a.nbytes else None
    if guarded is not None:
        guarded = guarded.reshape(a.shape)
        guarded[...] = a
    b = rng.choice(np.array([-128, -1, 0, 1, 127], np.int8), (k, n))
    bias = rng.integers(-2**20, 2**20, n)
    old = kthreads.get_num_threads()
    try:
        kthreads.set_num_threads(threads)
        with running(isa) as isa, mock.patch.object(drivers, "SERIAL_OPS", 0), \
                mock.patch.object(drivers, "NATIVE_SERIAL_OPS", 0):
            for az in (0, 255, int(rng.integers(0, 256))):
                for src in (a,) if guarded is None else (a, guarded):
                    check_case((src, az, b, np.zeros(n, np.int64), bias), isa, np.int32)
                    check_requant_case((src, az, b, np.zeros(n, np.int64), bias), isa, np.uint8, -12, seed)
    finally:
        kthreads.set_num_threads(old)

