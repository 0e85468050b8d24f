"""The SIMD engine's AMX path (kernels.simd, isa "amx": tdpbusd on 16x16 tiles) against the NumPy
int64 references (kernels.gemm.gemm_acc_ref, kernels.conv.conv2d_acc_ref), equality only, and the
ISA choice (kernels.cpu). Weights are drawn so that every b - b_zp fits int8 (else pack_b falls
back to the int16 panels and this path would not run): every case asserts it packed for "amx".
Skipped where the CPU lacks AMX-INT8 or Linux did not grant the tile data state.
"""
from __future__ import annotations

import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from kernels import cpu, fast_conv as fc
from kernels import threads as kthreads
from kernels.conv import ConvGeom, conv2d_acc_ref, conv_out_hw
from kernels.gemm import gemm_acc_ref
from kernels.requant import ort_round_ref
from kernels.simd import drivers, packing, wrappers
from tests.kernels.guarded import guarded_bytes
from tests.kernels.strategies import zero_point

pytestmark = pytest.mark.skipif(bool(cpu.missing("amx")), reason=f"no AMX here: {cpu.missing('amx')}")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def weights(rng, shape, dtype, zps, mode):
    """b of `dtype` with column (last axis) zero points zps and every b - zp in [-128, 127]: edge
    values (the dtype's ends, zp - 128, zp + 127, zp) in mode "ends", else uniform."""
    info = np.iinfo(dtype)
    lo = np.maximum(int(info.min), zps - 128)
    hi = np.minimum(int(info.max), zps + 127)
    if mode == "ends":
        pick = rng.integers(0, 3, shape)
        return np.where(pick == 0, lo, np.where(pick == 1, hi, zps)).astype(dtype)
    return (lo + rng.integers(0, 2**31, shape) % (hi - lo + 1)).astype(dtype)


def activations(rng, shape, dtype, mode):
    info = np.iinfo(dtype)
    if mode == "ends":
        return rng.choice(np.array([info.min, info.max, 0], dtype), shape)
    return rng.integers(int(info.min), int(info.max) + 1, shape).astype(dtype)


@st.composite
def amx_gemm(draw, max_dim=150):
    m, n = draw(st.integers(1, max_dim)), draw(st.integers(1, max_dim))
    k = draw(st.sampled_from([1, 3, 4, 5, 63, 64, 65, 130, 576, 1030]) | st.integers(1, 700))
    ad, bd = draw(st.sampled_from([np.uint8, np.int8])), draw(st.sampled_from([np.int8, np.uint8]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mode = draw(st.sampled_from(["random", "ends"]))
    bz = np.array([draw(zero_point(bd)) for _ in range(n)], np.int64) if draw(st.booleans()) else \
        np.zeros(n, np.int64) + (128 if bd == np.uint8 else 0)
    b = weights(rng, (k, n), bd, bz, mode)
    a = activations(rng, (m, k), ad, mode)
    bias = rng.integers(-2**31, 2**31, n)
    return a, draw(zero_point(ad)), b, bz, bias


def reference_acc(a, az, b, bz, bias, dtype):
    want = np.empty((a.shape[0], b.shape[1]), dtype)
    gemm_acc_ref(a, b, az, bz, bias, want)        # int64, cast (wrapped) to int32 by astype
    return want


def amx_pack(b, bz):
    packed = packing.pack_b(b, bz, isa="amx", amx_min_k=1)
    assert packed.isa == "amx" and packed.steps % 16 == 0
    return packed


def with_threads(threads, fn):
    old = kthreads.get_num_threads()
    try:
        kthreads.set_num_threads(threads)
        with mock.patch.object(drivers, "SERIAL_OPS", 0), mock.patch.object(drivers, "NATIVE_SERIAL_OPS", 0):
            fn()
    finally:
        kthreads.set_num_threads(old)


@pytest.mark.parametrize("threads", [1, 2])
@settings(max_examples=40, deadline=None)
@given(case=amx_gemm(), acc_dtype=st.sampled_from([np.int32, np.int64]))
@example(case=(np.full((1, 1), 255, np.uint8), 0, np.full((1, 1), -128, np.int8), np.zeros(1, np.int64),
               np.zeros(1, np.int64)), acc_dtype=np.int32)
def test_amx_gemm_equals_reference(threads, case, acc_dtype):
    a, az, b, bz, bias = case
    packed = amx_pack(b, bz)
    got = np.empty((a.shape[0], b.shape[1]), acc_dtype)
    with_threads(threads, lambda: wrappers.gemm_packed(a, az, packed, bias, got))
    assert np.array_equal(got, reference_acc(a, az, b, bz, bias, acc_dtype))


@pytest.mark.parametrize("threads", [1, 2])
@settings(max_examples=40, deadline=None)
@given(case=amx_gemm(), out_dtype=st.sampled_from([np.uint8, np.int8]), scale_exp=st.integers(-18, -4),
       seed=st.integers(0, 2**32 - 1))
def test_amx_gemm_requant_equals_reference(threads, case, out_dtype, scale_exp, seed):
    a, az, b, bz, bias = case
    n = b.shape[1]
    rng = np.random.default_rng(seed)
    mult = (rng.uniform(0.5, 1.0, n) * 2.0**scale_exp).astype(np.float32)
    info = np.iinfo(out_dtype)
    zp = int(rng.choice([info.min, info.max, rng.integers(info.min, int(info.max) + 1)]))
    lo, hi = int(rng.integers(info.min, zp + 1)), int(rng.integers(zp, int(info.max) + 1))
    packed = amx_pack(b, bz)
    out = np.empty((a.shape[0], n), out_dtype)
    with_threads(threads, lambda: wrappers.gemm_packed_requant(a, az, packed, bias, mult, zp, lo, hi, out))
    acc = reference_acc(a, az, b, bz, bias, np.int32)
    want = ort_round_ref(acc, mult[None, :], lo - zp, hi - zp).astype(np.int64) + zp
    assert np.array_equal(out.astype(np.int64), want)


@pytest.mark.parametrize("m,k,n", [(64, 1024, 64), (96, 2048, 40), (33, 640, 32), (32, 64, 32)])
def test_amx_uint8_a_in_place_and_k_blocks(m, k, n):
    """K % 64 == 0 with uint8 A: full tiles are read straight from A, over several K blocks."""
    rng = np.random.default_rng(m + k + n)
    a = activations(rng, (m, k), np.uint8, "ends")
    bz = np.zeros(n, np.int64)
    b = weights(rng, (k, n), np.int8, bz, "ends")
    packed = amx_pack(b, bz)
    for az in (0, 255):
        got = np.empty((m, n), np.int32)
        wrappers.gemm_packed(a, az, packed, np.zeros(n, np.int64), got)
        assert np.array_equal(got, reference_acc(a, az, b, bz, np.zeros(n, np.int64), np.int32))


@pytest.mark.parametrize("m,k,n,ad", [(64, 4160, 64, np.uint8), (33, 4160, 40, np.uint8), (40, 4097, 33, np.int8),
                                       (96, 8192, 32, np.uint8)])
def test_amx_several_k_blocks_requant_and_int32(m, k, n, ad):
    """K > 64 tile steps (packing.AMX_KC_TILES): the C tiles are stored after one K block and
    reloaded by the next; the requantizing path stores bytes after the last one. Full and
    edge tiles (M, N not multiples of 32), A in place (uint8, K % 64 == 0) and packed."""
    assert packing.kc_tile_steps(packing.amx_steps(k)) < packing.amx_steps(k)
    rng = np.random.default_rng(m + k + n)
    a = activations(rng, (m, k), ad, "ends")
    bz = np.zeros(n, np.int64)
    b = weights(rng, (k, n), np.int8, bz, "ends")
    packed = amx_pack(b, bz)
    bias = rng.integers(-2**20, 2**20, n)
    mult = np.full(n, 2.0**-16, np.float32)
    for az in (0, int(np.iinfo(ad).max)):
        got = np.empty((m, n), np.int32)
        wrappers.gemm_packed(a, az, packed, bias, got)
        acc = reference_acc(a, az, b, bz, bias, np.int32)
        assert np.array_equal(got, acc)
        out = np.empty((m, n), np.uint8)
        wrappers.gemm_packed_requant(a, az, packed, bias, mult, 3, 0, 255, out)
        want = ort_round_ref(acc, mult[None, :], 0 - 3, 255 - 3).astype(np.int64) + 3
        assert np.array_equal(out.astype(np.int64), want)


def test_amx_int32_wraps():
    k = 70016
    a, b = np.full((3, k), 255, np.uint8), np.full((k, 2), 127, np.int8)
    packed = amx_pack(b, np.zeros(2, np.int64))
    got = np.empty((3, 2), np.int32)
    bias = np.array([0, 2**31 - 1], np.int64)
    wrappers.gemm_packed(a, 0, packed, bias, got)
    assert np.array_equal(got, reference_acc(a, 0, b, np.zeros(2, np.int64), bias, np.int32))


@st.composite
def amx_conv(draw):
    group = draw(st.sampled_from([1, 1, 2]))
    cg, mg = draw(st.integers(2 if group > 1 else 1, 40)), draw(st.integers(1, 40))   # (cg = 1: depthwise)
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    geom = ConvGeom(draw(st.integers(1, 2)), draw(st.integers(1, 2)), *(draw(st.integers(0, 1)) for _ in range(4)),
                    1, 1, group)
    h, w = draw(st.integers(kh, 12)), draw(st.integers(kw, 12))
    xd, wd = draw(st.sampled_from([np.uint8, np.int8])), draw(st.sampled_from([np.int8, np.uint8]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mode = draw(st.sampled_from(["random", "ends"]))
    wz = np.array([draw(zero_point(wd)) for _ in range(mg * group)], np.int64)
    wt = weights(rng, (cg, kh, kw, mg * group), wd, wz, mode).transpose(3, 0, 1, 2).copy()
    x = activations(rng, (draw(st.integers(1, 2)), cg * group, h, w), xd, mode)
    return x, draw(zero_point(xd)), wt, wz, rng.integers(-2**31, 2**31, mg * group), geom


def test_mismatched_amx_panels_are_refused_before_the_driver():
    packed = amx_pack(np.ones((130, 40), np.int8), np.zeros(40, np.int64))
    geo = drivers.gemm_geo(5, 130, 40, "amx")
    offs = np.zeros(64, np.int32)
    for bad in (packed._replace(panels=packed.panels[:-64]), packed._replace(steps=packed.steps - 16),
                packed._replace(panels=packed.panels.astype(np.int16))):
        with pytest.raises(ValueError, match="AMX panels"):
            drivers.bind_packed(geo, 0, bad, offs, drivers.rq_none(), threads=1)
    with mock.patch.object(cpu, "amx_permitted", lambda: False), pytest.raises(RuntimeError, match="AMX"):
        drivers.bind_packed(geo, 0, packed, offs, drivers.rq_none(), threads=1)


def test_small_k_packs_for_vnni_by_default():
    b = np.zeros((packing.AMX_MIN_K - 1, 8), np.int8)
    assert packing.pack_b(b, 0, isa="amx").isa == "avx512vnni"
    assert packing.pack_b(np.zeros((packing.AMX_MIN_K, 8), np.int8), 0, isa="amx").isa == "amx"
    assert packing.pack_b(b, 0, isa="amx", amx_min_k=1).isa == "amx"


@pytest.mark.parametrize("threads", [1, 2])
@settings(max_examples=30, deadline=None)
@given(case=amx_conv(), acc_dtype=st.sampled_from([np.int32, np.int64]))
def test_amx_conv_equals_reference(threads, case, acc_dtype):
    x, xz, w, wz, bias, geom = case
    with mock.patch.object(packing, "AMX_MIN_K", 1):
        pc = fc.pack_conv(w, wz, geom, isa="amx")
    assert pc.kind == "gemm" and all(p.isa == "amx" for p in pc.packs)
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], w.shape[2], w.shape[3], geom)
    got = np.empty((x.shape[0], w.shape[0], oh, ow), acc_dtype)
    with_threads(threads, lambda: fc.conv2d_fast(x, xz, pc, bias, got))
    want = np.empty(got.shape, np.int64)
    conv2d_acc_ref(x, w, xz, wz, bias, geom, want)
    assert np.array_equal(got, want.astype(acc_dtype))


def test_best_isa_prefers_amx_only_with_permission():
    feats = {"avx512f", "avx512bw", "avx512vnni", "avx2", "fma", "amx-tile", "amx-int8"}
    assert cpu.best_isa(feats, force_portable=False, no_amx=False) == "amx"
    assert cpu.best_isa(feats, force_portable=False, no_amx=True) == "avx512vnni"
    assert cpu.best_isa(feats - {"amx-int8"}, force_portable=False, no_amx=False) == "avx512vnni"
    with mock.patch.object(cpu, "amx_permitted", lambda: False):
        assert cpu.best_isa(feats, force_portable=False, no_amx=False) == "avx512vnni"
        assert "arch_prctl" in cpu.missing("amx")
        with pytest.raises(ValueError, match="amx"):
            packing.pack_b(np.zeros((4, 4), np.int8), 0, isa="amx")


@pytest.mark.parametrize("value,want", [("1", "avx512vnni"), ("0", "amx")])
def test_env_no_amx_forces_vnni(value, want):
    env = dict(os.environ, INTSIM_NO_AMX=value, INTSIM_PORTABLE="0")
    out = subprocess.run([sys.executable, "-c", "from kernels import cpu; print(cpu.best_isa())"],
                         env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == want


@pytest.mark.parametrize("threads", [1, 2])
@settings(max_examples=40, deadline=None)
@given(m=st.sampled_from([32, 64, 96, 128]) | st.integers(32, 200),
       k=st.sampled_from([4, 36, 68, 132, 144, 200, 260, 580]) | st.integers(1, 180).map(lambda v: 4 * v),
       n=st.integers(1, 80), mode=st.sampled_from(["random", "ends"]), seed=st.integers(0, 2**32 - 1))
def test_amx_uint8_a_in_place_with_k_not_a_multiple_of_64(threads, m, k, n, mode, seed):
    """uint8 A with K % 4 == 0: full tiles are read in place also when K % 64 != 0 (the bytes read
    past K come from the next row and meet zero panels; an item ending at row M is packed):
    int32 sums and the requantization equal the reference, on 1 and 2 threads."""
    rng = np.random.default_rng(seed)
    a = activations(rng, (m, k), np.uint8, mode)
    for az in (0, 255, int(rng.integers(0, 256))):
        _sums_and_requant_equal(threads, a, az, rng, n, mode, 2.0**-14, 7)


def _sums_and_requant_equal(threads, a, az, rng, n, mode, scale, zp):
    """uint8 a (M, K) times random int8 weights (zero points 0) packed for AMX: gemm_packed's int32
    sums and gemm_packed_requant's uint8 bytes (mult = scale, zero point zp, range 0..255) equal
    the reference on `threads` threads."""
    m, k = a.shape
    bz = np.zeros(n, np.int64)
    b = weights(rng, (k, n), np.int8, bz, mode)
    packed = amx_pack(b, bz)
    bias = rng.integers(-2**20, 2**20, n)
    mult = np.full(n, scale, np.float32)
    got = np.empty((m, n), np.int32)
    out = np.empty((m, n), np.uint8)
    with_threads(threads, lambda: (wrappers.gemm_packed(a, az, packed, bias, got),
                                   wrappers.gemm_packed_requant(a, az, packed, bias, mult, zp, 0, 255, out)))
    acc = reference_acc(a, az, b, bz, bias, np.int32)
    assert np.array_equal(got, acc)
    assert np.array_equal(out.astype(np.int64), ort_round_ref(acc, mult[None, :], -zp, 255 - zp).astype(np.int64) + zp)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m,k", [(32, 68), (64, 36), (64, 4), (33, 100), (96, 40), (32, 64), (40, 99), (41, 90), (32, 99)])
def test_amx_in_place_reads_stay_inside_a(threads, m, k):
    """A ending right before an inaccessible page: the in-place reads past K never leave A (a read
    past its end would fault), and the sums equal the reference."""
    a = guarded_bytes(m * k)
    if a is None:
        pytest.skip("no mprotect")
    rng = np.random.default_rng(m * k)
    a = a.reshape(m, k)
    a[...] = activations(rng, (m, k), np.uint8, "random")
    n = 40
    bz = np.zeros(n, np.int64)
    b = weights(rng, (k, n), np.int8, bz, "random")
    packed = amx_pack(b, bz)
    got = np.empty((m, n), np.int32)
    with_threads(threads, lambda: wrappers.gemm_packed(a, 3, packed, np.zeros(n, np.int64), got))
    assert np.array_equal(got, reference_acc(a, 3, b, bz, np.zeros(n, np.int64), np.int32))


def _at_offset(a, off):
    """A copy of a whose data starts `off` bytes past a 64-byte line."""
    buf = np.empty(a.nbytes + 128, np.uint8)
    s = (-buf.ctypes.data) % 64 + off
    v = buf[s:s + a.nbytes].view(a.dtype).reshape(a.shape)
    v[...] = a
    return v


def test_packed_panels_start_on_a_cache_line():
    """pack_b's panels (every isa) start on a 64-byte line (packing.ALIGN)."""
    rng = np.random.default_rng(5)
    for isa, k in (("amx", 300), ("avx512vnni", 40), ("avx2", 40)):
        b = rng.integers(-100, 100, (k, 70)).astype(np.int8)
        packed = packing.pack_b(b, np.zeros(70, np.int64), isa=isa, amx_min_k=1)
        assert packed.panels.ctypes.data % packing.ALIGN == 0


@pytest.mark.parametrize("threads", [1, 2])
@settings(max_examples=30, deadline=None)
@given(m=st.sampled_from([32, 49, 64, 196]) | st.integers(1, 200),
       k=st.sampled_from([64, 128, 147, 192, 256, 576]) | st.integers(1, 160).map(lambda v: 4 * v) |
       st.integers(1, 700), n=st.integers(1, 130), off=st.sampled_from([0, 16, 48, 1]),
       mode=st.sampled_from(["random", "ends"]),
       seed=st.integers(0, 2**32 - 1))
def test_amx_a_in_place_tile_by_tile_at_any_alignment(threads, m, k, n, off, mode, seed):
    """uint8 A starting on a 64-byte line or off it (off bytes), any K (K % 4 != 0 too), M not a
    multiple of 32: full tiles are read in place (byte strides) when their rows start on lines or
    the item has few panels, the partial last tile and the rest packed (drivers.amx_in_place_end);
    int32 sums and requantized bytes equal the reference."""
    rng = np.random.default_rng(seed)
    a = _at_offset(activations(rng, (m, k), np.uint8, mode), off)
    _sums_and_requant_equal(threads, a, int(rng.integers(0, 256)), rng, n, mode, 2.0**-13, 9)


@settings(max_examples=300, deadline=None)
@given(m=st.integers(1, 20000), n=st.integers(1, 3000), threads=st.integers(2, 8))
def test_amx_split_gives_each_thread_equal_runs_of_m_blocks(m, n, threads):
    """drivers._gemm_split on AMX with more tiles than one M block holds: items of <= MC_TILES
    tiles spanning all of N, their count a multiple of the thread count (the regions give each
    thread an equal run of items), the fewest such."""
    mc, npi = drivers._gemm_split(m, n, "amx", threads)
    n_tiles, n_panels = packing.ceil_div(m, 32), packing.ceil_div(n, 32)
    if n_tiles <= packing.MC_TILES:
        return
    blocks = packing.ceil_div(n_tiles, mc)
    assert mc <= packing.MC_TILES and npi == n_panels
    assert packing.ceil_div(n_tiles, threads * packing.MC_TILES) * threads >= blocks
    assert blocks > threads * (packing.ceil_div(n_tiles, threads * packing.MC_TILES) - 1)


@pytest.mark.parametrize("threads", [1, 2])
@settings(max_examples=12, deadline=None)
@given(m=st.sampled_from([513, 784, 1025]) | st.integers(513, 1200), k=st.sampled_from([3, 130, 193, 1152]),
       n=st.sampled_from([1, 33, 128, 130]), az_end=st.booleans(), mode=st.sampled_from(["random", "ends"]),
       seed=st.integers(0, 2**32 - 1))
def test_amx_gemm_with_m_blocks_per_thread_equals_reference(threads, m, k, n, az_end, mode, seed):
    """GEMMs of more than MC_TILES tiles of rows (AMX's M-block split on 2 threads, _gemm_split):
    int32 sums and requantized bytes equal the int64 reference, odd M, N and K (K % 4 != 0),
    per-column weight zero points, A's zero point at the ends."""
    rng = np.random.default_rng(seed)
    a = activations(rng, (m, k), np.uint8, mode)
    bz = rng.integers(-20, 20, n)
    b = weights(rng, (k, n), np.int8, bz, mode)
    az = int(rng.choice([0, 255])) if az_end else int(rng.integers(0, 256))
    bias = rng.integers(-2**20, 2**20, n)
    packed = amx_pack(b, bz)
    mult = (rng.uniform(0.5, 1.0, n) * 2.0**-14).astype(np.float32)
    got, out = np.empty((m, n), np.int32), np.empty((m, n), np.uint8)
    with_threads(threads, lambda: (wrappers.gemm_packed(a, az, packed, bias, got),
                                   wrappers.gemm_packed_requant(a, az, packed, bias, mult, 9, 0, 255, out)))
    acc = reference_acc(a, az, b, bz, bias, np.int32)
    assert np.array_equal(got, acc)
    assert np.array_equal(out.astype(np.int64), ort_round_ref(acc, mult[None, :], -9, 246).astype(np.int64) + 9)
