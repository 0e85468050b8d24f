"""kernels.int4 against ONNX's own INT4/UINT4 storage (onnx.helper / onnx.numpy_helper) and
the plain-Python twins: low nibble first, odd counts padded with a zero nibble."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

from kernels.int4 import pack_int4, pack_int4_ref, unpack_int4, unpack_int4_ref


def values(signed):
    lo, hi = (-8, 7) if signed else (0, 15)
    ends = st.sampled_from([lo, hi, 0 if signed else lo])
    return st.lists(ends | st.integers(lo, hi), min_size=0, max_size=41)


def onnx_tensor(vals, signed, dims=None):
    kind = TensorProto.INT4 if signed else TensorProto.UINT4
    return helper.make_tensor("t", kind, [len(vals)] if dims is None else dims, vals)


@settings(max_examples=100, deadline=None)
@given(st.booleans(), st.data())
def test_pack_matches_onnx_make_tensor(signed, data):
    vals = data.draw(values(signed))
    packed = pack_int4(np.array(vals, np.int8 if signed else np.uint8), signed)
    assert packed.dtype == np.uint8 and packed.size == (len(vals) + 1) // 2
    assert packed.tolist() == list(onnx_tensor(vals, signed).int32_data)   # ONNX packs into int32_data
    assert np.array_equal(packed, pack_int4_ref(vals, signed))


@settings(max_examples=100, deadline=None)
@given(st.booleans(), st.data())
def test_unpack_matches_onnx_to_array_of_raw_data(signed, data):
    vals = data.draw(values(signed))
    t = onnx_tensor(vals, signed)
    raw = TensorProto(name="r", data_type=t.data_type, dims=[len(vals)],
                      raw_data=pack_int4(np.array(vals, np.int64), signed).tobytes())
    want = numpy_helper.to_array(raw).astype(np.int64).tolist()
    assert want == vals                                                      # ONNX reads our bytes back
    got = unpack_int4(np.array(list(t.int32_data), np.uint8), len(vals), signed)   # we read ONNX's
    assert got.dtype == (np.int8 if signed else np.uint8)
    assert got.tolist() == vals
    assert np.array_equal(got, unpack_int4_ref(np.array(list(t.int32_data), np.uint8), len(vals), signed))


def test_from_array_raw_data_and_two_d_shape():
    """numpy_helper.from_array writes raw_data; a (3, 3) tensor packs in C order."""
    vals = np.array([[-8, 7, 1], [-1, 3, 0], [5, -2, -8]])
    t = onnx_tensor(vals.ravel().tolist(), True, dims=[3, 3])
    arr = numpy_helper.to_array(t)
    raw = numpy_helper.from_array(arr, "x").raw_data
    assert pack_int4(vals, True).tobytes() == raw
    assert unpack_int4(np.frombuffer(raw, np.uint8), 9, True).reshape(3, 3).tolist() == vals.tolist()


def test_nibble_order_by_hand():
    assert pack_int4(np.array([-8, 7, 1], np.int8), True).tolist() == [0x78, 0x01]
    assert pack_int4(np.array([15, 0, 9], np.uint8), False).tolist() == [0x0F, 0x09]
    assert unpack_int4(np.array([0x9F], np.uint8), 2, True).tolist() == [-1, -7]
    assert unpack_int4(np.array([0x9F], np.uint8), 2, False).tolist() == [15, 9]


@pytest.mark.parametrize("vals, signed", [([8], True), ([-9], True), ([16], False), ([-1], False)])
def test_out_of_range_values_raise(vals, signed):
    with pytest.raises(ValueError, match="outside"):
        pack_int4(np.array(vals), signed)


def test_bad_unpack_input_raises():
    with pytest.raises(ValueError, match="bytes"):
        unpack_int4(np.zeros(2, np.uint8), 5, True)
    with pytest.raises(ValueError, match="bytes"):
        unpack_int4(np.zeros(2, np.uint8), 2, True)
    with pytest.raises(ValueError, match="uint8"):
        unpack_int4(np.zeros(1, np.int8), 2, True)
    with pytest.raises(ValueError, match="integers"):
        pack_int4(np.zeros(2, np.float32), True)
