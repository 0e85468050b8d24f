"""TFLite's QUANTIZE of integer codes to another scale (one type in and out: int8 -> int8, uint8 ->
uint8; or a type change: int8 <-> uint8, int16 -> int8, int8 / uint8 -> int16) under `tflite`,
`tflite-builtin` and `tflite-xnnpack`, live against the interpreter
(ai-edge-litert) on one-op models with hypothesis-drawn scales, zero points and shapes: the
reference kernel's MultiplyByQuantizedMultiplier of every code, the optimized kernel's 16-lane
blocks of the flat tensor (q31 high multiply then a rounding shift) and its scalar tail, and
XNNPACK's convert where the delegate takes the ratio (the builtin kernel elsewhere: ratios drawn
on both sides of [2**-8, 2**7]). A batch of several samples puts the 16-lane split inside the
tensor. The XNNPACK table equals its one-entry-at-a-time twin, and the builtin mode's table its
twin."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import intsim
from intsim.errors import UnsupportedOpError
from kernels import tflite_act as tk
from kernels import xnnpack_unary as xu

from .flatbuf import single_op
from .test_tflite_act16_live import check_codes
from .test_tflite_act_live import paths

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
scales = st.floats(2.0**-12, 0.5, allow_nan=False, allow_infinity=False, width=32)
# sy / sx: inside the delegate's range, near its ends and outside it
ratios = st.sampled_from([2.0**-7, 2.0**-7 * 1.01, 2.0**-7 * 0.99, 2.0**8, 2.0**8 * 1.01, 2.0**8 * 0.99, 1000.0,
                          0.001]) | st.floats(0.0625, 16.0, width=32)
TYPES = {"int8": np.int8, "uint8": np.uint8}


def _model(shape, sx, zx, sy, zy, dtype="int8", out_dtype=None):
    tensors = [{"name": "x", "shape": shape, "type": dtype, "scale": sx, "zero_point": zx},
               {"name": "y", "shape": shape, "type": out_dtype or dtype, "scale": sy, "zero_point": zy}]
    return single_op("QUANTIZE", tensors, [0], [1], [0])


@paths
@SETTINGS
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=4), dtype=st.sampled_from(sorted(TYPES)),
       sx=scales, ratio=ratios, zx=st.integers(-128, 255), zy=st.integers(-128, 255), seed=st.integers(0, 2**31 - 1))
def test_requantize_8bit(path, shape, dtype, sx, ratio, zx, zy, seed):
    info = np.iinfo(TYPES[dtype])
    zx, zy = (min(max(z, int(info.min)), int(info.max)) for z in (zx, zy))
    sy = float(np.float32(sx * ratio))
    if np.float32(sy) == np.float32(sx) or not 1e-30 < sy < 1e30:
        return      # the same scale: the zero point shift (test_tflite_movement)
    check_codes(_model(shape, sx, zx, sy, zy, dtype), shape, path, seed, TYPES[dtype])


@paths
@pytest.mark.parametrize("shape", [[1, 15], [1, 16], [1, 17], [3, 21], [2, 8, 8, 3], [16, 33, 35, 15]])
def test_lane_split_positions(path, shape):
    """Sizes around one 16-lane block, and a batch whose flat split falls inside a sample; the last
    a batch large enough for intsim to run it in slices (runtime.batch_split), which would end a
    16-lane block inside the tensor (found by hypothesis: a graph whose target computes by flat
    position is not split)."""
    check_codes(_model(shape, 0.0173, 5, 0.0411, -3), shape, path, 0, np.int8)


PAIRS = [("int8", "uint8"), ("uint8", "int8"), ("int16", "int8"), ("int8", "int16"), ("uint8", "int16")]
ALL_TYPES = {**TYPES, "int16": np.int16}


@paths
@SETTINGS
@given(pair=st.sampled_from(PAIRS), rows=st.integers(1, 3), cols=st.integers(1, 300), sx=scales,
       ratio=ratios | st.sampled_from([2.0**-9, 2.0**-12, 0.01, 0.3]), zx=st.integers(-32768, 32767),
       zy=st.integers(-32768, 32767), ends=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_requantize_that_changes_the_type(path, pair, rows, cols, sx, ratio, zx, zy, ends, seed):
    """int8 <-> uint8 (the optimized kernels' 16-lane blocks and tail; never delegated to XNNPACK),
    int16 -> int8 and int8 / uint8 -> int16 (MultiplyByQuantizedMultiplier of every code on every
    path); zero points drawn over the type, or at its ends; an int16 input feeds all 65536 codes."""
    src, dst = (ALL_TYPES[t] for t in pair)
    zx, zy = ((int(np.iinfo(d).min if z % 2 else np.iinfo(d).max) if ends else
               min(max(z, int(np.iinfo(d).min)), int(np.iinfo(d).max))) for z, d in ((zx, src), (zy, dst)))
    sy = float(np.float32(sx * ratio))
    if np.float32(sy) == np.float32(sx) or not 1e-30 < sy < 1e30:
        return
    shape = [rows, 65536 + cols] if src == np.int16 else [rows, cols]
    check_codes(_model(shape, sx, zx, sy, zy, pair[0], pair[1]), shape, path, seed, src)


def test_requantize_int16_to_uint8_is_refused():
    """int16 -> uint8 fails the interpreter's prepare (quantize.cc): refused by the reader."""
    with pytest.raises(UnsupportedOpError, match="QUANTIZE of integer input that changes the scale from"):
        intsim.load(_model([1, 8], 0.01, 0, 0.02, 0, "int16", "uint8"), target="tflite")


@settings(max_examples=30, deadline=None)
@given(dtype=st.sampled_from(sorted(TYPES)), sx=scales, ratio=st.floats(2.0**-7, 2.0**8, width=32),
       zx=st.integers(-128, 255), zy=st.integers(-128, 255))
def test_xnnpack_convert_table_equals_twin(dtype, sx, ratio, zx, zy):
    info = np.iinfo(TYPES[dtype])
    zx, zy = (min(max(z, int(info.min)), int(info.max)) for z in (zx, zy))
    sy = float(np.float32(sx * ratio))
    np.testing.assert_array_equal(xu.cvt_table(sx, zx, sy, zy, TYPES[dtype]), xu.cvt_table_ref(sx, zx, sy, zy, TYPES[dtype]))


@settings(max_examples=20, deadline=None)
@given(pair=st.sampled_from([(t, t) for t in sorted(TYPES)] + PAIRS), sx=scales, sy=scales,
       zx=st.integers(-32768, 32767), zy=st.integers(-32768, 32767), mode=st.sampled_from(["builtin", "double"]))
def test_requantize_tables_equal_twins(pair, sx, sy, zx, zy, mode):
    src, dst = (ALL_TYPES[t] for t in pair)
    zx, zy = (min(max(z, int(np.iinfo(d).min)), int(np.iinfo(d).max)) for z, d in ((zx, src), (zy, dst)))
    np.testing.assert_array_equal(tk.requantize_table(sx, zx, sy, zy, src, mode, dst),
                                  tk.requantize_table_ref(sx, zx, sy, zy, src, mode, dst))
