"""The requantizing micro-kernels (kernels.simd.microkernels mk_*_q): in the last K block the int32 tile is
requantized in registers and stored as bytes. Equality only, against NumPy twins:

1. pair engine (fast_pairs.run_raw with rq, as conv plans call it): == x86pairs'
   gemm_acc_pairs_ref wrapped to int32, then requant.requant_float_ref; C-contiguous and
   row-strided destinations (a column slice of a wider array), bytes outside never touched.
2. exact engine (kernels.simd.wrappers.gemm_packed_requant): == gemm_packed_requant_ref, same layouts,
   and == the int32-block epilogue path (a column-strided out takes it).
3. Several K blocks (K > 512 pair engine, K > 256 exact engine), threads, M = 1.
4. Round half to even on exact ties and saturation, from Python's round() (not the code).
5. The conv plans' bound GEMMs (GroupPlan.bind_q) with a row-strided q (what conv_plan may pass).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import cpu
from kernels.simd import packing, wrappers
from kernels import fast_pairs as fp
from kernels.requant import requant_float_ref
from kernels.x86pairs import gemm_acc_pairs_ref
from tests.kernels.strategies import biases, int_array, zero_point

pytestmark = pytest.mark.skipif(not cpu.has_avx2(), reason=cpu.missing("avx2") or "no avx2")

DIM = st.integers(1, 300)
K_DIM = st.integers(1, 300).filter(lambda k: k % 4) | DIM
TIES = [0.5, 0.25, 1.0, 2.0**-7, 3.0, 1000.0]      # exact ties, identity, saturation


@st.composite
def requant_params(draw, n, dtype):
    """(mult float32 (n,), zp, lo, hi): tie-making and saturating multipliers, random ones,
    zero points at the ends, clamps narrower than the dtype (relu6-like) or the full range."""
    kind = draw(st.sampled_from(["ties", "random", "mixed"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ties = rng.choice(np.array(TIES, np.float32), n)
    rand = (2.0 ** rng.uniform(-24, 0, n)).astype(np.float32)
    mult = {"ties": ties, "random": rand, "mixed": np.where(rng.random(n) < 0.5, ties, rand)}[kind]
    info = np.iinfo(dtype)
    zp = draw(zero_point(dtype))
    clamp = draw(st.sampled_from(["full", "relu6", "any"]))
    if clamp == "full":
        return mult.astype(np.float32), zp, int(info.min), int(info.max)
    if clamp == "relu6":
        return mult.astype(np.float32), zp, zp, min(int(info.max), zp + 6)
    return mult.astype(np.float32), zp, draw(st.integers(int(info.min), zp)), draw(st.integers(zp, int(info.max)))


def requant_twin(acc32, mult, zp, lo, hi, dtype):
    out = np.empty(acc32.shape, dtype)
    requant_float_ref(acc32[:, :, None], mult, zp, lo, hi, out[:, :, None])     # (P, C, Q) = (M, N, 1)
    return out


def strided_out(m, n, dtype, gap, fill=77):
    """(view (m, n) with row stride n + gap and unit column stride, the whole sentinel array)."""
    big = np.full((m, n + gap), fill, dtype)
    return big[:, gap // 2:gap // 2 + n], big


def untouched(big, n, gap, fill=77):
    return (big[:, :gap // 2] == fill).all() and (big[:, gap // 2 + n:] == fill).all()


def pairs_case(a, b, a_zp, bias, rqp, dtype, gap, threads=None):
    """(fast, twin) bytes of the pair engine with rq: off = bias - a_zp*S[n] starts the sums."""
    mult, zp, lo, hi = rqp
    m, n = a.shape[0], b.shape[1]
    acc = np.empty((m, n), np.int32)
    gemm_acc_pairs_ref(a, b, a_zp, np.zeros(n, np.int64), bias, acc)
    want = requant_twin(acc, mult, zp, lo, hi, dtype)
    pack = fp.pack_b_pairs(b)
    off = bias - np.int64(a_zp) * pack.col_sum
    got, big = strided_out(m, n, dtype, gap) if gap else (np.empty((m, n), dtype), None)
    fp.run_raw(a, pack, got, threads=threads, off=off, rq=(True, mult, np.int64(zp), np.int64(lo), np.int64(hi)))
    assert big is None or untouched(big, n, gap)
    return got, want


# ----------------------------------------------------------------------------- 1. pair engine
@pytest.mark.long
@settings(max_examples=120, deadline=None)
@given(DIM, K_DIM, DIM, st.sampled_from([np.uint8, np.int8]), st.sampled_from([0, 0, 6, 64]), st.data())
def test_pairs_requant_equals_twin(m, k, n, dtype, gap, data):
    a = data.draw(int_array((m, k), np.uint8))
    b = data.draw(int_array((k, n), np.int8))
    got, want = pairs_case(a, b, data.draw(zero_point(np.uint8)), data.draw(biases(n, bits=20)),
                           data.draw(requant_params(n, dtype)), dtype, gap)
    assert np.array_equal(got, want)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(513, 1100), st.integers(1, 70), st.sampled_from([np.uint8, np.int8]),
       st.sampled_from([None, 1, 2]), st.data())
def test_pairs_requant_several_k_blocks_and_threads(m, k, n, dtype, threads, data):
    """K > 512: the first K blocks sum int32 into the item's block, the last one requantizes."""
    a = data.draw(int_array((m, k), np.uint8))
    b = data.draw(int_array((k, n), np.int8))
    got, want = pairs_case(a, b, data.draw(zero_point(np.uint8)), data.draw(biases(n, bits=24)),
                           data.draw(requant_params(n, dtype)), dtype, 5, threads)
    assert np.array_equal(got, want)


# ----------------------------------------------------------------------------- 2. exact engine
def exact_case(a, a_zp, b, b_zp, bias, rqp, dtype, layout):
    mult, zp, lo, hi = rqp
    m, n = a.shape[0], b.shape[1]
    packed = packing.pack_b(b, b_zp, isa="avx2")
    want = np.empty((m, n), dtype)
    wrappers.gemm_packed_requant_ref(a, a_zp, packed, bias, mult, zp, lo, hi, want)
    big = None
    if layout == "rows":
        got, big = strided_out(m, n, dtype, 9)
    else:
        got = np.empty((m, n), dtype, order="F" if layout == "fortran" else "C")
    wrappers.gemm_packed_requant(a, a_zp, packed, bias, mult, zp, lo, hi, got)
    assert big is None or untouched(big, n, 9)
    return got, want


@pytest.mark.long
@settings(max_examples=50, deadline=None)
@given(DIM, K_DIM, DIM, st.sampled_from([np.uint8, np.int8]), st.sampled_from([np.uint8, np.int8]),
       st.sampled_from([np.uint8, np.int8]), st.sampled_from(["c", "rows", "fortran"]), st.data())
def test_exact_requant_equals_twin(m, k, n, ad, bd, dtype, layout, data):
    """Fortran-order out takes the int32 block + epilogue path; both paths equal the twin."""
    a = data.draw(int_array((m, k), ad))
    b = data.draw(int_array((k, n), bd))
    b_zp = np.array([data.draw(zero_point(bd)) for _ in range(n)], np.int64)
    got, want = exact_case(a, data.draw(zero_point(ad)), b, b_zp, data.draw(biases(n, bits=24)),
                           data.draw(requant_params(n, dtype)), dtype, layout)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("m,k,n", [(1, 700, 17), (13, 257, 33), (50, 1030, 96), (6, 256, 16), (7, 3, 1)])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_exact_requant_register_path_equals_block_path(m, k, n, dtype):
    """The in-register requant (C and row-strided out) == the int32 block + epilogue (F out)."""
    rng = np.random.default_rng(m + k + n)
    a = rng.choice(np.array([0, 1, 127, 128, 255], np.uint8), (m, k))
    b = rng.choice(np.array([-128, -1, 0, 1, 127], np.int8), (k, n))
    mult = rng.choice(np.array(TIES + [1e-4, 3e-6], np.float32), n)
    info, bias = np.iinfo(dtype), rng.integers(-2**20, 2**20, n)
    outs = {}
    for layout in ("c", "rows", "fortran"):
        got, want = exact_case(a, 128, b, np.zeros(n, np.int64), bias,
                               (mult, int(info.min) + 3, int(info.min), int(info.max)), dtype, layout)
        assert np.array_equal(got, want)
        outs[layout] = got
    assert np.array_equal(outs["c"], outs["fortran"]) and np.array_equal(outs["rows"], outs["fortran"])


@pytest.mark.skipif(bool(cpu.missing("avx512vnni")), reason=cpu.missing("avx512vnni") or "ok")
@settings(max_examples=40, deadline=None)
@given(DIM, K_DIM, DIM, st.sampled_from([np.uint8, np.int8]), st.data())
def test_vnni512_requant_equals_twin(m, k, n, dtype, data):
    a = data.draw(int_array((m, k), np.uint8))
    b = data.draw(int_array((k, n), np.int8, span=(-64, 63)))
    packed = packing.pack_b(b, np.zeros(n, np.int64), isa="avx512vnni")
    assert packed.isa == "avx512vnni"
    mult, zp, lo, hi = data.draw(requant_params(n, dtype))
    want, got = np.empty((m, n), dtype), np.empty((m, n), dtype)
    wrappers.gemm_packed_requant_ref(a, 3, packed, np.zeros(n, np.int64), mult, zp, lo, hi, want)
    wrappers.gemm_packed_requant(a, 3, packed, np.zeros(n, np.int64), mult, zp, lo, hi, got)
    assert np.array_equal(got, want)


# ----------------------------------------------------------------------------- 4. by hand
def round_half_even(num, den):
    """Python's round() on an exact fraction: half to even (independent of the code)."""
    from fractions import Fraction
    return round(Fraction(num, den))


@pytest.mark.parametrize("dtype,zp,lo,hi", [(np.uint8, 0, 0, 255), (np.int8, 0, -128, 127), (np.uint8, 10, 10, 16)])
def test_ties_round_half_even_and_saturate_by_hand(dtype, zp, lo, hi):
    """acc = a single product a*b (K = 1, b = 1), mult 0.5 / 0.25: every odd acc is a tie;
    the expected bytes come from Python's exact round(), then the clamp."""
    acc = np.arange(-300, 301)
    a = np.clip(acc, 0, 255).astype(np.uint8)[:, None]          # a in 0..255, a_zp = 0, b = 1
    a_neg = np.clip(-acc, 0, 255).astype(np.uint8)[:, None]     # b = -1 covers the negative sums
    for mult, den in ((0.5, 2), (0.25, 4)):
        for rows, sign in ((a, 1), (a_neg, -1)):
            b = np.full((1, 19), sign, np.int8)
            pack = fp.pack_b_pairs(b)
            got = np.empty((rows.shape[0], 19), dtype)
            fp.run_raw(rows, pack, got, off=np.zeros(19, np.int64),
                       rq=(True, np.full(19, mult, np.float32), np.int64(zp), np.int64(lo), np.int64(hi)))
            sums = sign * rows[:, 0].astype(np.int64)
            want = np.array([min(max(round_half_even(int(s), den) + zp, lo), hi) for s in sums])
            assert np.array_equal(got, np.repeat(want[:, None], 19, axis=1).astype(dtype))
    assert round_half_even(5, 2) == 2 and round_half_even(-5, 2) == -2 and round_half_even(7, 2) == 4


# ----------------------------------------------------------------------------- 5. conv plans' bind_q
@pytest.mark.parametrize("engine", ["pairs", "exact"])
@pytest.mark.parametrize("rows,k,mg,groups", [(12544 // 16, 32, 16, 2), (49, 320, 40, 3), (37, 27, 17, 2)])
def test_gemm_q_row_strided_q(engine, rows, k, mg, groups):
    """q = out_nhwc.reshape(rows, M)[:, g*Mg:(g+1)*Mg] (row stride M bytes): each group's
    bound GEMM (GroupPlan.bind_q) writes its columns only, equal to the twin."""
    from kernels.conv import ConvGeom
    from kernels.fast_conv import pack_conv, plan_conv_exact
    rng = np.random.default_rng(rows + k)
    m = mg * groups
    w = rng.integers(-128, 128, (m, k, 1, 1)).astype(np.int8)
    geom = ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, groups)
    cols = rng.choice(np.array([0, 1, 128, 255], np.uint8), (rows, k))
    mult = rng.choice(np.array(TIES + [1e-4], np.float32), m)
    rq = (True, mult, np.int64(7), np.int64(0), np.int64(255))
    bias = rng.integers(-2**16, 2**16, m)
    if engine == "pairs":
        plan = fp.plan_conv_pairs(fp.pack_conv_pairs(w, geom), (k * groups, 1, 1), 5, np.zeros(m, np.int64), bias, rq)
    else:
        plan = plan_conv_exact(pack_conv(w, np.zeros(m, np.int64), geom), (k * groups, 1, 1), np.uint8, 5, bias, rq)
    out = np.full((rows, m), 99, np.uint8)
    for gi, gp in enumerate(plan.groups):
        gp.bind_q(rows, None, cols.shape, rq)(cols.reshape(-1), out[:, gi * mg:(gi + 1) * mg])
        acc = np.empty((rows, mg), np.int32)
        wg = w[gi * mg:(gi + 1) * mg, :, 0, 0].T
        if engine == "pairs":
            gemm_acc_pairs_ref(cols, np.ascontiguousarray(wg), 5, np.zeros(mg, np.int64), bias[gi * mg:(gi + 1) * mg], acc)
        else:
            acc[...] = (cols.astype(np.int64) - 5) @ wg.astype(np.int64) + bias[gi * mg:(gi + 1) * mg]
        want = requant_twin(acc, mult[gi * mg:(gi + 1) * mg], 7, 0, 255, np.uint8)
        assert np.array_equal(out[:, gi * mg:(gi + 1) * mg], want)
        assert (out[:, (gi + 1) * mg:] == 99).all()
