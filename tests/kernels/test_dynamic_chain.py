"""kernels.simd.dynamic_chain (one call: the codes of x, the GEMM on the serial SIMD driver, the
float epilogue) against the NumPy int64 twins of the three kernels it chains
(dynamic_quantize_rows_ref, gemm_packed_ref, dequantize_int_matmul_ref), hypothesis: odd M, K,
N, int8/uint8 weights with zero points at the ends, per-tensor or per-column scales, with and
without bias, every ISA this host runs; inputs normal, tiny (subnormal), huge, all zero, signed
zeros, exact halves (ties), and NaN/infinity (the call reports 1 and the caller falls back)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import cpu
from kernels import dynamic_quant as D
from kernels.simd import packing
from kernels.simd.dynamic_chain import bind_dynamic_chain
from kernels.simd.wrappers import gemm_packed_ref
from tests.kernels.strategies import FLOAT_KINDS, float_tensor

ISAS = [i for i in ("amx", "avx512vnni", "avx2") if not cpu.missing(i)]


def _x(rng, shape, kind):
    """float_tensor with subnormal "tiny" values and one drawn special value."""
    return float_tensor(rng, shape, kind, special=rng.choice([np.inf, -np.inf, np.nan]), tiny=1e-39)
    if kind == "ties":      # values landing on .5 after the division
        return (rng.integers(-400, 400, shape) * 0.5).astype(np.float32)
    x = rng.standard_normal(shape).astype(np.float32) * np.float32({"tiny": 1e-39, "huge": 1e37}.get(kind, 3.0))
    if kind == "positive":
        x = np.abs(x) + np.float32(0.5)
    if kind == "special":
        x.flat[rng.integers(0, x.size)] = rng.choice([np.inf, -np.inf, np.nan])
    return x


@st.composite
def cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    m, k = draw(st.sampled_from([1, 3, 7, 32, 33])), draw(st.sampled_from([1, 5, 16, 37, 128]))
    chains = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.sampled_from([1, 9, 32, 33, 70]))
        wt = draw(st.sampled_from([np.int8, np.uint8]))
        info = np.iinfo(wt)
        w = rng.integers(info.min, info.max, (k, n), endpoint=True).astype(wt)
        w.flat[0] = draw(st.sampled_from([info.min, info.max]))
        wz = np.full(n, draw(st.sampled_from([info.min, info.max, 0, 3])), np.int64)
        ws = rng.uniform(1e-3, 0.05, draw(st.sampled_from([1, n]))).astype(np.float32)
        bias = (rng.standard_normal(draw(st.sampled_from([0, n]))) * 5).astype(np.float32)
        chains.append((w, wz, ws, bias))
    kind = draw(st.sampled_from(FLOAT_KINDS))
    return m, k, chains, _x(rng, (m, k), kind), _x(rng, (m, k), "normal")


def _want(x, chain, pk):
    w, wz, ws, bias = chain
    codes, params = np.empty(x.shape, np.uint8), np.empty(2, np.float32)
    if D.dynamic_quantize_rows_ref(x, codes, params):
        return None
    raw = np.empty((x.shape[0], w.shape[1]), np.int32)
    gemm_packed_ref(codes, 0, pk, 0, raw)
    out = np.empty(raw.shape, np.float32)
    D.dequantize_int_matmul_ref(raw, int(params[1]), np.ascontiguousarray(pk.col_sum, np.int64), params[0], ws,
                                bias, out)
    return out


@pytest.mark.parametrize("isa", ISAS)
@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_chain_equals_the_three_kernels_twins(isa, case):
    m, k, chains, x, x0 = case
    codes, params = np.empty((m, k), np.uint8), np.empty(2, np.float32)
    packs = [packing.pack_b(w, wz, isa) for w, wz, _, _ in chains]
    outs = [np.full((m, w.shape[1]), np.nan, np.float32) for w, _, _, _ in chains]
    calls = [bind_dynamic_chain(x0, codes, params, i == 0, pk, np.empty((m, pk.n), np.int32),
                                np.ascontiguousarray(pk.col_sum, np.int64), ch[2], ch[3], out)
             for i, (ch, pk, out) in enumerate(zip(chains, packs, outs))]
    if any(c is None for c in calls):   # not a serial SIMD GEMM here (the caller keeps three calls)
        assert all(pk.isa == "portable" for pk in packs)     # (these shapes are serial GEMMs)
        return
    with np.errstate(all="ignore"):
        for inp in (x0, x):                 # bound on x0, then run on another array of its shape
            wants = [_want(inp, ch, pk) for ch, pk in zip(chains, packs)]
            flag = calls[0](inp)
            if wants[0] is None:            # NaN or infinite input: reported, nothing to compare
                assert flag == 1
                continue
            assert flag == 0
            for c in calls[1:]:
                assert c(inp) == 0
            for got, want in zip(outs, wants):
                np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))


def test_chain_rejects_bad_arrays():
    pk = packing.pack_b(np.ones((4, 3), np.int8), np.zeros(3, np.int64))
    x, codes, params = np.ones((2, 4), np.float32), np.empty((2, 4), np.uint8), np.empty(2, np.float32)
    raw, out, cs, ws = np.empty((2, 3), np.int32), np.empty((2, 3), np.float32), np.zeros(3, np.int64), \
        np.ones(1, np.float32)
    with pytest.raises(ValueError, match="codes"):
        bind_dynamic_chain(x, codes[:, :2].copy(), params, True, pk, raw, cs, ws, np.zeros(0, np.float32), out)
    with pytest.raises(ValueError, match="raw"):
        bind_dynamic_chain(x, codes, params, True, pk, np.empty((2, 4), np.int32), cs, ws, np.zeros(0, np.float32),
                           out)
    with pytest.raises(ValueError, match="bias"):
        bind_dynamic_chain(x, codes, params, True, pk, raw, cs, ws, np.zeros(2, np.float32), out)
