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
from kernels.jit import kernel_array
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
