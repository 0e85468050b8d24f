"""TFLite ops that move codes, read directly: TRANSPOSE, STRIDED_SLICE (begin/end masks,
negative strides, shrink axes), SLICE (importer.tflite_movement) and QUANTIZE between uint8
and int8 at one scale (a zero-point shift) equal the interpreter on every kernel path (live,
one-op models with hypothesis-drawn shapes, slices and zero points) and NumPy; quantization
that changes across them, and non-constant slices, are refused by name."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import intsim
from intsim.errors import UnsupportedOpError

from .flatbuf import single_op, table_options

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4)
Q = {"type": "int8", "scale": 0.03, "zero_point": -5}


def _const(name, values):
    v = np.asarray(values, np.int32)
    return {"name": name, "shape": list(v.shape), "type": "int32", "data": v}


def _check(data, x, want):
    prog = intsim.load(data, target="tflite")
    got = prog.run({"x": x})["y"]
    np.testing.assert_array_equal(got, want)
    pytest.importorskip("ai_edge_litert")
    from models.build_tflite import interpreter

    for path in ("reference", "builtin", "xnnpack"):
        it = interpreter(data, path)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        np.testing.assert_array_equal(it.get_tensor(it.get_output_details()[0]["index"]), want, err_msg=path)


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_transpose(shape, seed):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(shape))
    x = rng.integers(-128, 128, shape).astype(np.int8)
    want = x.transpose(perm)
    t = [{"name": "x", "shape": shape, **Q}, _const("perm", perm), {"name": "y", "shape": list(want.shape), **Q}]
    _check(single_op("TRANSPOSE", t, [0], [2], [0, 1]), x, want)


@st.composite
def strided(draw):
    shape = draw(shapes)
    begin, end, strides, bm, em, sm = [], [], [], 0, 0, 0
    for a, d in enumerate(shape):
        s = draw(st.sampled_from([1, 1, 2, 3, -1, -2]))
        begin.append(draw(st.integers(-d, d - 1)))
        end.append(draw(st.integers(-d - 1, d)))
        strides.append(s)
        bm |= draw(st.booleans()) << a
        em |= draw(st.booleans()) << a
        sm |= (s > 0 and draw(st.booleans())) << a     # negative stride + shrink: refused (test below)
    return shape, begin, end, strides, bm, em, sm


def _numpy_strided(x, begin, end, strides, bm, em, sm):
    idx = []
    for a, (b, e, s) in enumerate(zip(begin, end, strides)):
        if sm >> a & 1:     # TFLite takes the start, begin_mask honoured (not TF's "begin[i]")
            idx.append(0 if bm >> a & 1 else b)
            continue
        idx.append(slice(None if bm >> a & 1 else b, None if em >> a & 1 else e, s))
    return np.asarray(x[tuple(idx)])


@SETTINGS
@given(case=strided(), seed=st.integers(0, 2**31 - 1))
def test_strided_slice(case, seed):
    shape, begin, end, strides, bm, em, sm = case
    x = np.random.default_rng(seed).integers(-128, 128, shape).astype(np.int8)
    want = _numpy_strided(x, begin, end, strides, bm, em, sm)
    if want.size == 0:
        return          # an empty output: nothing to compare (TFLite allocates no data)
    t = [{"name": "x", "shape": shape, **Q}, _const("begin", begin), _const("end", end),
         _const("strides", strides), {"name": "y", "shape": list(want.shape), **Q}]
    opts = table_options("StridedSliceOptions", BeginMask=bm, EndMask=em, ShrinkAxisMask=sm)
    _check(single_op("STRIDED_SLICE", t, [0], [4], [0, 1, 2, 3], opts), x, want)


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_slice(shape, seed):
    rng = np.random.default_rng(seed)
    begin = [int(rng.integers(0, d)) for d in shape]
    size = [int(rng.integers(1, d - b + 1)) if rng.random() < 0.7 else -1 for b, d in zip(begin, shape)]
    x = rng.integers(-128, 128, shape).astype(np.int8)
    want = x[tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin, size))]
    t = [{"name": "x", "shape": shape, **Q}, _const("begin", begin), _const("size", size),
         {"name": "y", "shape": list(want.shape), **Q}]
    _check(single_op("SLICE", t, [0], [3], [0, 1, 2]), x, want)


def test_refusals_name_the_op():
    x = {"name": "x", "shape": [2, 3], **Q}
    y = {"name": "y", "shape": [3, 2], "type": "int8", "scale": 0.05, "zero_point": -5}
    with pytest.raises(UnsupportedOpError, match=r"TRANSPOSE.*operator 0.*'y'.*quantization differ"):
        intsim.import_onnx(single_op("TRANSPOSE", [x, _const("perm", [1, 0]), y], [0], [2], [0, 1]))
    t = [x, _const("begin", [0, 2]), _const("end", [1, 0]), _const("strides", [1, -1]), {"name": "y", "shape": [1], **Q}]
    with pytest.raises(UnsupportedOpError, match=r"STRIDED_SLICE.*operator 0.*negative stride"):
        intsim.import_onnx(single_op("STRIDED_SLICE", t, [0], [4], [0, 1, 2, 3],
                                     table_options("StridedSliceOptions", ShrinkAxisMask=2)))
    begin = {"name": "begin", "shape": [2], "type": "int32"}
    t = [x, begin, _const("size", [1, 1]), {"name": "y", "shape": [1, 1], **Q}]
    with pytest.raises(UnsupportedOpError, match=r"SLICE.*operator 0.*begin 'begin' is not constant"):
        intsim.import_onnx(single_op("SLICE", t, [0, 1], [3], [0, 1, 2]))


@SETTINGS
@given(zx=st.integers(0, 255), zy=st.integers(-128, 127), back=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_quantize_that_moves_the_zero_point(zx, zy, back, seed):
    """QUANTIZE uint8 <-> int8 at one scale (the converter's uint8 model ends): y = clamp(x - zx
    + zy), on every kernel path of the interpreter."""
    rng = np.random.default_rng(seed)
    (tx, qx), (ty, qy) = (("uint8", zx), ("int8", zy)) if not back else (("int8", zy), ("uint8", zx))
    x = rng.integers(np.iinfo(tx).min, np.iinfo(tx).max + 1, (1, 5, 3)).astype(tx)
    info = np.iinfo(ty)
    want = np.clip(x.astype(np.int64) - qx + qy, info.min, info.max).astype(ty)
    t = [{"name": "x", "shape": [1, 5, 3], "type": tx, "scale": 0.02, "zero_point": qx},
         {"name": "y", "shape": [1, 5, 3], "type": ty, "scale": 0.02, "zero_point": qy}]
    _check(single_op("QUANTIZE", t, [0], [1], [0]), x, want)


def test_quantize_that_changes_the_scale_is_refused():
    """int16 -> uint8 (which the interpreter fails to prepare; uint8 -> int8 with a new scale is a
    requantize now: test_tflite_requantize_live)."""
    t = [{"name": "x", "shape": [1, 4], "type": "int16", "scale": 0.02, "zero_point": 0},
         {"name": "y", "shape": [1, 4], "type": "uint8", "scale": 0.03, "zero_point": 0}]
    with pytest.raises(UnsupportedOpError, match=r"QUANTIZE.*operator 0.*'y'.*changes the scale"):
        intsim.import_onnx(single_op("QUANTIZE", t, [0], [1], [0]))
