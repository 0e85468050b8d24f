"""kernels.lut: tables equal onnxruntime 1.32's QLinearSigmoid / QLinearLeakyRelu / QLinearConcat
on every input code, and apply_table equals its twin."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from onnx import helper

from kernels import lut as L
from kernels.jit import FORCE_PORTABLE
from tests.kernels.strategies import int_array
from tests.kernels.test_eltwise_ort import ort_session, qparams, vinfo, zp_pick
from tests.kernels.test_pool_ort import ort_qpool

F32 = np.float32


def ort_concat(xs, params, sy, zy, axis):
    names, ins, vals = ["sy", "zy"], [], [("sy", sy), ("zy", zy)]
    for i, (x, (s, z)) in enumerate(zip(xs, params)):
        vals += [(f"s{i}", s), (f"z{i}", z)]
        names += [f"x{i}", f"s{i}", f"z{i}"]
        ins.append(vinfo(f"x{i}", x.dtype, list(x.shape)))
    node = helper.make_node("QLinearConcat", names, ["y"], domain="com.microsoft", axis=axis)
    s = ort_session([node], ins, [vinfo("y", xs[0].dtype, None)], qparams(vals, xs[0].dtype))
    return s.run(None, {f"x{i}": x for i, x in enumerate(xs)})[0]


def scales(rng, sx):
    return F32(rng.choice([1 / 256, 1 / 255, rng.uniform(0.001, 0.05), sx, sx * 2]))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_activation_tables_match_onnxruntime(dtype):
    rng = np.random.default_rng(31)
    codes = np.arange(256, dtype=np.uint8).view(dtype).copy()
    for _ in range(100):
        sx = F32(rng.uniform(0.002, 0.2))
        sy = scales(rng, sx)
        zx, zy = zp_pick(rng, dtype), zp_pick(rng, dtype)
        got = np.empty_like(codes)
        L.apply_table(codes, L.build_table_sigmoid(sx, zx, sy, zy, dtype, dtype), got)
        assert np.array_equal(got, ort_qpool("QLinearSigmoid", codes, sx, zx, sy, zy))
        alpha = F32(rng.choice([0.01, 0.1, 0.2, rng.uniform(0, 1)]))
        L.apply_table(codes, L.build_table_leaky_relu(alpha, sx, zx, sy, zy, dtype, dtype), got)
        assert np.array_equal(got, ort_qpool("QLinearLeakyRelu", codes, sx, zx, sy, zy, alpha=float(alpha)))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_concat_requant_tables_match_onnxruntime(dtype):
    rng = np.random.default_rng(32)
    info = np.iinfo(dtype)
    codes = np.arange(256, dtype=np.uint8).view(dtype).reshape(1, 256)
    for _ in range(60):
        sy, zy = F32(rng.uniform(0.002, 0.1)), zp_pick(rng, dtype)
        params = [(F32(rng.uniform(0.002, 0.2)), zp_pick(rng, dtype)), (F32(sy * rng.choice([1, 2, 0.5, 3])),
                  int(rng.integers(info.min, info.max + 1))), (sy, zy)]
        xs = [codes, rng.integers(info.min, info.max + 1, (1, 77)).astype(dtype), codes]
        want = ort_concat(xs, params, sy, zy, 1)
        parts = []
        for x, (s, z) in zip(xs, params):
            if F32(s) == F32(sy) and z == zy:
                parts.append(x)
                continue
            part = np.empty_like(x)
            L.apply_table(x, L.build_table_requant(s, z, sy, zy, dtype, dtype), part)
            parts.append(part)
        assert np.array_equal(np.concatenate(parts, 1), want)


def test_logistic_uses_fma():
    """The FMA3 polynomial and the same polynomial without FMA give different float results
    on some inputs; the table test above is what pins the FMA form against ORT."""
    v = np.linspace(-18, 18, 20001).astype(F32)
    c = L._LOGISTIC
    v2 = (v * v).astype(F32)
    p = (v2 * c["a9"] + c["a7"]).astype(F32)
    for k in ("a5", "a3", "a1"):
        p = (p * v2 + c[k]).astype(F32)
    q_nofma = (v2 * c["b10"] + c["b8"]).astype(F32)
    for k in ("b6", "b4", "b2", "b0"):
        q_nofma = (q_nofma * v2 + c[k]).astype(F32)
    r_nofma = np.clip((((p * v).astype(F32) / q_nofma).astype(F32) + F32(0.5)).astype(F32), 0, 1)
    assert np.any(r_nofma != L.mlas_logistic(v))


@settings(max_examples=100, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8]), out=st.sampled_from([np.uint8, np.int8]),
       n=st.integers(1, 300))
def test_apply_table_equals_twin(data, dtype, out, n):
    """8-bit tables of either signedness (apply_table looks an int8 table up through its uint8
    view: the same bits) and edge codes."""
    x = data.draw(int_array((n,), dtype))
    x[0] = np.iinfo(dtype).min
    x[-1] = np.iinfo(dtype).max
    table = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).integers(0, 256, 256).astype(np.uint8)
    table = table.view(out)
    got, want = np.empty(n, out), np.empty(n, out)
    L.apply_table(x, table, got)
    L.apply_table_ref(x, table, want)
    assert np.array_equal(got, want)
    assert np.array_equal(want, table[x.astype(np.int64) % 256])


@pytest.mark.parametrize("vbmi", [False] + ([True] if L.VBMI else []))
@settings(max_examples=100, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8, np.int16]), out=st.sampled_from([np.uint8, np.int8]),
       rows=st.integers(1, 40), ci=st.integers(1, 200), extra=st.integers(0, 9))
def test_apply_table_rows_equals_twin(vbmi, data, dtype, out, rows, ci, extra):
    """Rows of x looked up into a column range of a wider out (a concat's channels), by the scalar
    loop and (VBMI hosts) the 64-byte vpermi2b lookups with a scalar tail; edge codes drawn, the
    columns outside the range left untouched."""
    import unittest.mock as mock
    with mock.patch.object(L, "VBMI", vbmi):
        _rows_case(data, dtype, out, rows, ci, extra)


def _rows_case(data, dtype, out, rows, ci, extra):
    x = data.draw(int_array((rows, ci), dtype))
    x[0, 0], x[-1, -1] = np.iinfo(dtype).min, np.iinfo(dtype).max
    n = 1 << (8 * np.dtype(dtype).itemsize)
    table = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).integers(0, 256, n).astype(np.uint8).view(out)
    c0 = data.draw(st.integers(0, extra))
    got = np.full((rows, ci + extra), 7, out)
    want = got.copy()
    L.apply_table_rows(x, table, got, c0)
    L.apply_table_rows_ref(x, table, want, c0)
    assert np.array_equal(got, want)
    assert np.array_equal(want[:, c0:c0 + ci], table[x.astype(np.int64) % n])
    assert (np.delete(want, np.s_[c0:c0 + ci], axis=1) == 7).all()
    with pytest.raises(ValueError, match="apply_table_rows"):
        L.apply_table_rows(x, table, got, extra + 1)


def test_apply_table_rows_every_code():
    """All 256 codes in one row of 256 (four 64-byte lookups), a table of distinct bytes."""
    x = np.arange(256, dtype=np.uint8).reshape(1, 256)
    table = np.random.default_rng(5).permutation(256).astype(np.uint8)
    got = np.zeros((1, 260), np.uint8)
    L.apply_table_rows(x, table, got, 3)
    assert np.array_equal(got[0, 3:259], table) and not got[0, :3].any() and not got[0, 259:].any()


@settings(max_examples=50, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint16, np.int16]), n=st.integers(1, 300))
def test_apply_table_16bit_equals_twin(data, dtype, n):
    """A 16-bit input indexes a (65536,) table by its unsigned view (edge codes drawn)."""
    x = data.draw(int_array((n,), dtype))
    x[0] = np.iinfo(dtype).min
    x[-1] = np.iinfo(dtype).max
    table = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).integers(-32768, 32768, 65536).astype(np.int16)
    got, want = np.empty(n, np.int16), np.empty(n, np.int16)
    L.apply_table(x, table, got)
    L.apply_table_ref(x, table, want)
    assert np.array_equal(got, want)
    assert np.array_equal(want, table[x.astype(np.int64) % 65536])


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="scale"):
        L.build_table_sigmoid(0.0, 0, 0.1, 0, np.uint8, np.uint8)
    with pytest.raises(ValueError, match="zero point"):
        L.build_table_requant(0.1, -1, 0.1, 0, np.uint8, np.uint8)
    with pytest.raises(ValueError, match="table"):
        L.apply_table(np.zeros(3, np.uint8), np.zeros(10, np.uint8), np.empty(3, np.uint8))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8]), out=st.sampled_from([np.uint8, np.int8]),
       n=st.integers(0, 1000))
def test_byte_lookup_loops_agree(data, dtype, out, n):
    """The AVX-512 VBMI loop (64 codes a step, then the tail; used by apply_table and bind_table
    on hosts that have it) equals the plain loop and the twin: every code, both halves of the
    table, lengths around the 64-byte steps."""
    x = data.draw(int_array((n,), dtype))
    if n >= 256:
        x[:256] = np.arange(256, dtype=np.uint8).view(dtype)
    table = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).integers(0, 256, 256).astype(np.uint8)
    xu = x.view(np.uint8)
    plain, want = np.empty(n, np.uint8), np.empty(n, out)
    L._apply_table_impl(xu, table, plain)
    L.apply_table_ref(x, table.view(out), want)
    assert np.array_equal(plain.view(out), want)
    got = np.empty(n, out)
    L.bind_table(x, table.view(out), got)()
    assert np.array_equal(got, want)
    if L.VBMI:
        vbmi = np.empty(n, np.uint8)
        L._apply_table_vbmi(xu, table, vbmi)
        assert np.array_equal(vbmi.view(out), want)


def test_byte_lookup_uses_vbmi_where_the_host_has_it():
    from kernels import cpu
    want = {"avx512f", "avx512bw", "avx512vbmi"} <= cpu.host_features() and not FORCE_PORTABLE
    assert L.VBMI == want
    x, t = np.zeros(64, np.uint8), np.zeros(256, np.uint8)
    assert (L._table_kernel(x, t) is L._apply_table_vbmi) == want
    assert L._table_kernel(x.view(np.uint16)[:1], np.zeros(65536, np.uint16)) is L._apply_table_impl
