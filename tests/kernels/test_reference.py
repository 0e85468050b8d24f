"""kernels.reference: every listed kernel has a NumPy twin with its signature, reachable by name
and by the kernel itself; one conv reference (the depthwise twins are conv2d_acc_ref)."""
import importlib
import inspect

import numpy as np
import pytest

from kernels import reference
from kernels.conv import ConvGeom, conv2d_acc_ref
from kernels.depthwise_nhwc import depthwise_nhwc_ref
from kernels.fast_depthwise import depthwise_ref


@pytest.mark.parametrize("name", reference.KERNELS)
def test_every_kernel_has_a_twin_with_its_signature(name):
    mod, _, fn = name.rpartition(".")
    kernel = getattr(importlib.import_module(f"kernels.{mod}"), fn)
    ref = reference.twin(kernel)
    assert ref is reference.TWINS[name] and ref.__name__ == f"{fn}_ref"
    if not hasattr(kernel, "py_func"):        # a Numba dispatcher's signature is its py_func's
        assert list(inspect.signature(ref).parameters) == list(inspect.signature(kernel).parameters)


def test_unknown_kernel_is_named():
    with pytest.raises(KeyError, match="no twin for .*len"):
        reference.twin(len)


def test_depthwise_twins_are_the_conv_reference():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 3, 7, 6)).astype(np.uint8)
    wz = rng.integers(-255, 256, (6, 9)).astype(np.int32)
    bias = rng.integers(-1000, 1000, 6)
    geo = np.array([3, 3, 2, 1, 1, 1, 1, 1], np.int64)
    rq = (False, np.ones(1, np.float32), 0, 0, 0)
    got = np.zeros((2, 6, 4, 6), np.int64)
    depthwise_ref(x, 5, wz, bias, geo, got, rq)
    want = np.zeros_like(got)
    conv2d_acc_ref(x, wz.reshape(6, 1, 3, 3), 5, np.zeros(6, np.int64), bias, ConvGeom(2, 1, 1, 1, 1, 1, 1, 1, 3), want)
    assert np.array_equal(got, want)
    nhwc = np.zeros((2, 4, 6, 6), np.int64)
    depthwise_nhwc_ref(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), 5, wz, bias, geo, nhwc, rq)
    assert np.array_equal(nhwc, want.transpose(0, 2, 3, 1))
