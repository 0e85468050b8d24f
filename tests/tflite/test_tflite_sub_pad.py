"""TFLite SUB int8 (kernels.tflite_sub): the vectorized kernel equals its Python-int twin, and
intsim under `tflite` equals the interpreter's reference kernel (live, one-op models,
hypothesis-drawn scales, zero points and broadcast shapes); `tflite-xnnpack` and `ort`
refuse it by name. PAD of int8 codes on both kernel paths."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import intsim
from intsim.targets.rules import TargetRefusal
from kernels import fixedpoint as fk
from kernels import tflite_sub as tsub

from .flatbuf import binary_options, single_op

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
scales = st.floats(2.0**-13, 0.5, allow_nan=False, allow_infinity=False, width=32)
zps = st.sampled_from([-128, 127, 0]) | st.integers(-128, 127)


@SETTINGS
@given(sa=scales, za=zps, sb=scales, zb=zps, sy=scales, zy=zps, mode=st.sampled_from(["double", "single"]),
       seed=st.integers(0, 2**31 - 1))
def test_kernel_equals_twin(sa, za, sb, zb, sy, zy, mode, seed):
    try:
        m, s = fk.tflite_add_params(sa, sb, sy, 20, single_rounding=mode == "single")
    except ValueError:
        return
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(-128, 128, 64).astype(np.int8) for _ in range(2))
    got, want = np.empty(64, np.int8), np.empty(64, np.int8)
    tsub.tflite_sub(a, b, za, zb, m, s, 20, mode, zy, -128, 127, got)
    tsub.tflite_sub_ref(a, b, za, zb, m, s, 20, mode, zy, -128, 127, want)
    np.testing.assert_array_equal(got, want)


def _model(shape_a, shape_b, shape, sa, za, sb, zb, sy, zy, act=0):
    tensors = [{"name": "a", "shape": shape_a, "type": "int8", "scale": sa, "zero_point": za},
               {"name": "b", "shape": shape_b, "type": "int8", "scale": sb, "zero_point": zb},
               {"name": "y", "shape": shape, "type": "int8", "scale": sy, "zero_point": zy}]
    return single_op("SUB", tensors, [0, 1], [2], [0, 1], binary_options("SUB", act), version=2)


@SETTINGS
@given(shape=st.lists(st.integers(1, 6), min_size=4, max_size=4), ones=st.lists(st.booleans(), min_size=4, max_size=4),
       swap=st.booleans(), sa=scales, za=zps, sb=scales, zb=zps, sy=scales, zy=zps, act=st.sampled_from([0, 1, 2, 3]),
       equal_scales=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_sub_equals_reference_kernel(shape, ones, swap, sa, za, sb, zb, sy, zy, act, equal_scales, seed):
    """Equal input scales included (every shifted difference lands on the same grid: ties)."""
    pytest.importorskip("ai_edge_litert")
    from models.build_tflite import interpreter

    shape[0] = 1
    sb = sa if equal_scales else sb
    other = [1 if o else d for d, o in zip(shape, ones)]
    a_shape, b_shape = (other, shape) if swap else (shape, other)
    data = _model(a_shape, b_shape, shape, sa, za, sb, zb, sy, zy, act)
    it = interpreter(data, "reference")
    it.allocate_tensors()
    prog = intsim.load(data, target="tflite")
    rng = np.random.default_rng(seed)
    for _ in range(3):
        a, b = rng.integers(-128, 128, a_shape).astype(np.int8), rng.integers(-128, 128, b_shape).astype(np.int8)
        for d, x in zip(it.get_input_details(), (a, b)):
            it.set_tensor(d["index"], x)
        it.invoke()
        want = it.get_tensor(it.get_output_details()[0]["index"])
        np.testing.assert_array_equal(prog.run({"a": a, "b": b})["y"], want)


@pytest.mark.parametrize("target", ["ort", "pow2"])   # tflite-builtin and tflite-xnnpack compute SUB (test_tflite_ops_live)
def test_other_targets_refuse_sub(target):
    data = _model([1, 4], [1, 4], [1, 4], 0.05, 0, 0.05, 0, 0.1, 0)
    with pytest.raises(TargetRefusal, match=f"target {target} has no rule for SUB"):
        intsim.load(data, target=target).run({"a": np.zeros((1, 4), np.int8), "b": np.zeros((1, 4), np.int8)})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), pads=st.lists(st.integers(0, 3), min_size=8, max_size=8),
       s=scales, z=zps, seed=st.integers(0, 2**31 - 1), path=st.sampled_from([("reference", "tflite"),
                                                                              ("builtin", "tflite-builtin")]))
def test_pad_equals_interpreter(shape, pads, s, z, seed, path):
    """PAD of int8 codes: the padding holds the zero point (TFLite pad.cc)."""
    pytest.importorskip("ai_edge_litert")
    from models.build_tflite import interpreter

    p = np.array(pads[:2 * len(shape)], np.int32).reshape(len(shape), 2)
    out = [d + int(a) + int(b) for d, (a, b) in zip(shape, p)]
    tensors = [{"name": "x", "shape": shape, "type": "int8", "scale": s, "zero_point": z},
               {"name": "paddings", "shape": list(p.shape), "type": "int32", "data": p},
               {"name": "y", "shape": out, "type": "int8", "scale": s, "zero_point": z}]
    data = single_op("PAD", tensors, [0], [2], [0, 1])
    it = interpreter(data, path[0])
    it.allocate_tensors()
    x = np.random.default_rng(seed).integers(-128, 128, shape).astype(np.int8)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    want = it.get_tensor(it.get_output_details()[0]["index"])
    np.testing.assert_array_equal(intsim.load(data, target=path[1]).run({"x": x})["y"], want)
