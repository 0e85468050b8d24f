"""Read-only arguments (an onnx initializer read by np.frombuffer, a broadcast multiplier) reach
the SIMD engine's drivers as writable C-contiguous copies (kernels.jit.kernel_array):
the same values, and no second machine-code specialization of a driver. Numba types a read-only
array apart from a writable one, and each extra specialization of a driver is a compile of
tens of seconds on a cold cache. Results are checked against the NumPy int64 twins."""
from __future__ import annotations

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from kernels import cpu
from benchmarks.compile_profile import cache_specializations
from kernels.jit import cache_dir, kernel_array
from kernels.simd import drivers, packing, wrappers

ISA = cpu.best_isa()
pytestmark = pytest.mark.skipif(ISA == "portable", reason="no SIMD engine on this host: no drivers to compile")


def _driver_signatures() -> set:
    return {(name, sig) for name, f in vars(drivers).items() if isinstance(f, CPUDispatcher) for sig in f.signatures}


def _read_only(a: np.ndarray) -> np.ndarray:
    r = np.frombuffer(a.tobytes(), a.dtype).reshape(a.shape)
    assert not r.flags.writeable
    return r


def _case(seed=5, m=7, k=24, n=40):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (m, k)).astype(np.uint8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    bias = rng.integers(-1000, 1000, n).astype(np.int64)
    mult = (rng.random(n) * 0.01).astype(np.float32)
    return a, b, bias, mult


def test_kernel_array_copies_only_read_only_or_strided():
    w = np.arange(6, dtype=np.int64)
    assert kernel_array(w) is w
    r = kernel_array(_read_only(w))
    assert r.flags.writeable and r.flags.c_contiguous
    np.testing.assert_array_equal(r, w)
    s = kernel_array(w[::2], np.int32)
    assert s.dtype == np.int32 and s.flags.c_contiguous
    np.testing.assert_array_equal(s, [0, 2, 4])


def test_read_only_requant_arguments_compile_no_second_driver():
    a, b, bias, mult = _case()
    packed = packing.pack_b(b, 3)
    want = np.empty((a.shape[0], b.shape[1]), np.uint8)
    wrappers.gemm_packed_requant_ref(a, 9, packed, bias, mult, 3, 0, 255, want)
    out = np.empty_like(want)
    wrappers.gemm_packed_requant(a, 9, packed, bias, mult, 3, 0, 255, out)
    np.testing.assert_array_equal(out, want)
    before = _driver_signatures()
    out_ro = np.empty_like(want)
    wrappers.gemm_packed_requant(_read_only(a), 9, packed, _read_only(bias), _read_only(mult), 3, 0, 255, out_ro)
    np.testing.assert_array_equal(out_ro, want)
    assert _driver_signatures() == before


def test_read_only_exact_arguments_compile_no_second_driver():
    a, b, bias, _ = _case(seed=6)
    packed = packing.pack_b(b, -4)
    want = np.empty((a.shape[0], b.shape[1]), np.int64)
    wrappers.gemm_packed_ref(a, 200, packed, bias, want)
    acc = np.empty_like(want)
    wrappers.gemm_packed(a, 200, packed, bias, acc)
    np.testing.assert_array_equal(acc, want)
    before = _driver_signatures()
    acc_ro = np.empty_like(want)
    wrappers.gemm_packed(_read_only(a), 200, packed, _read_only(bias), acc_ro)
    np.testing.assert_array_equal(acc_ro, want)
    assert _driver_signatures() == before


def test_dynamic_chain_reuses_the_drivers_int64_specialization():
    """kernels.simd.dynamic_chain calls the serial driver with np.int64 item bounds: a constant 0
    would type as Literal[int](0) and compile a second copy of the driver (~300 KB of machine
    code) for the chain alone. The chain's result equals the three NumPy twins. (The cache may
    hold specializations from other tests too: none of them may have a literal argument.)"""
    from kernels import dynamic_quant as D
    from kernels.simd.dynamic_chain import bind_dynamic_chain
    rng = np.random.default_rng(11)
    m, k, n = 5, 37, 33
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.integers(-128, 128, (k, n)).astype(np.int8)
    w[0, 0] = -128
    ws = rng.uniform(1e-3, 0.05, n).astype(np.float32)
    packed = packing.pack_b(w, np.full(n, 3, np.int64), ISA)
    col_sum = np.ascontiguousarray(packed.col_sum, np.int64)
    codes, params, raw = np.empty((m, k), np.uint8), np.empty(2, np.float32), np.empty((m, n), np.int32)
    out = np.full((m, n), np.nan, np.float32)
    call = bind_dynamic_chain(x, codes, params, True, packed, raw, col_sum, ws, np.zeros(0, np.float32), out)
    assert call is not None and call(x) == 0
    want_codes, want_params = np.empty((m, k), np.uint8), np.empty(2, np.float32)
    assert D.dynamic_quantize_rows_ref(x, want_codes, want_params) == 0
    want_raw = np.empty((m, n), np.int32)
    wrappers.gemm_packed_ref(want_codes, 0, packed, 0, want_raw)
    want = np.empty((m, n), np.float32)
    D.dequantize_int_matmul_ref(want_raw, int(want_params[1]), col_sum, want_params[0], ws, np.zeros(0, np.float32),
                                want)
    np.testing.assert_array_equal(codes, want_codes)
    np.testing.assert_array_equal(out, want)
    # the driver's signatures as the Numba cache holds them (the chain links a driver loaded
    # from the cache without compiling it in this process, so its dispatcher may list none)
    # (and those of the A packing it calls: the drivers pass their tile shape as np.int64, not
    # as the literals 4, 6 or 32, one specialization for every driver)
    name = f"drivers.{drivers.SERIAL_DRIVERS[packed.isa].py_func.__name__}-"
    specs = cache_specializations(cache_dir())
    found = {sig for kernel_, sigs in specs.items() if kernel_.startswith(name) for sig in sigs}
    packs = {sig for kernel_, sigs in specs.items() if kernel_.startswith(("packing.pack_block-",
                                                                           "conv_rows.pack_conv_tiles-")) for sig in sigs}
    assert found and not [sig for sig in found | packs if "Literal" in sig]


def test_plans_hold_writable_scales():
    """quantize_plan / dequantize_plan keep a read-only scale (an initializer) as a writable copy:
    the element kernels then see one array type for every plan."""
    from kernels import eltwise
    scale = _read_only(np.array([0.5, 0.25], np.float32))
    for plan in (eltwise.quantize_plan(scale, np.array([0, 3]), 0, 255, np.uint8), eltwise.dequantize_plan(scale, 3)):
        assert plan.scale.flags.writeable and plan.scale.flags.c_contiguous
        np.testing.assert_array_equal(plan.scale, scale)
