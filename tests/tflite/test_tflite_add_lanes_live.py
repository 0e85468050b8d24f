"""Live tests of tflite-builtin's 8-bit ADD / SUB against the interpreter's optimized kernel
(ai-edge-litert, BUILTIN_WITHOUT_DEFAULT_DELEGATES): optimized_integer_ops::AddElementwise
runs 16-element vector blocks whose rounding differs from the scalar tail's (issue 18), so
the shapes span several blocks plus tails and the scales are tie-prone. Broadcasts of 5 to 7
dims and int16 ADD / SUB (equal shapes and broadcasts) run on every kernel path."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import fixedpoint as fk

from .flatbuf import binary_options, single_op, table_options
from .test_tflite_ops_live import KERNEL_PATHS, SETTINGS, _builtin_leaves_int16, _i8, _i16, check, paths

pytest.importorskip("ai_edge_litert")

BUILTIN = KERNEL_PATHS[1]
# ratios with exact halves: s / (2 max(sa, sb)) and 2 max / (2**20 sy) hit ties often
tie_scales = st.sampled_from([0.5, 0.25, 1.0, 0.3333333432674408, 0.1, 0.2, 0.75, 2.0 ** -7, 2.0 ** -8, 0.375]) | \
    st.floats(2.0 ** -8, 0.5, allow_nan=False, allow_infinity=False, width=32)
zps = st.sampled_from([-128, 127, 0, -1, 1]) | st.integers(-128, 127)


def _model(op, a_shape, b_shape, shape, sa, za, sb, zb, sy, zy, act=0):
    tensors = [{"name": "a", "shape": a_shape, "type": "int8", "scale": sa, "zero_point": za},
               {"name": "b", "shape": b_shape, "type": "int8", "scale": sb, "zero_point": zb},
               {"name": "y", "shape": shape, "type": "int8", "scale": sy, "zero_point": zy}]
    return single_op(op, tensors, [0, 1], [2], [0, 1], binary_options(op, act), version=2)


@settings(SETTINGS, max_examples=120)
@given(op=st.sampled_from(["ADD", "SUB"]), h=st.integers(1, 5), w=st.integers(1, 7), c=st.integers(1, 19),
       sa=tie_scales, za=zps, sb=tie_scales, zb=zps, sy=tie_scales, zy=zps, act=st.sampled_from([0, 0, 1, 3]),
       seed=st.integers(0, 2 ** 31 - 1))
def test_builtin_add_blocks_and_tail(op, h, w, c, sa, za, sb, zb, sy, zy, act, seed):
    """Equal shapes of 1..665 elements: whole 16-lane blocks and a 0..15 element tail."""
    shape = [1, h, w, c]
    rng = np.random.default_rng(seed)
    check(_model(op, shape, shape, shape, sa, za, sb, zb, sy, zy, act),
          [[_i8(rng, shape), _i8(rng, shape)] for _ in range(3)], BUILTIN,
          refused_on_builtin=_builtin_leaves_int16(op, sa, za, sb, zb, sy, zy))


@pytest.mark.parametrize("op", ["ADD", "SUB"])
@pytest.mark.parametrize("sa,za,sb,zb,sy,zy", [
    (0.5, -128, 0.3333333432674408, -128, 0.3333333432674408, -128),   # issue 18 repro (tf2onnx patterns)
    (0.5, 0, 0.25, 0, 0.25, 0),
    (0.1, 3, 0.3, -5, 0.2, 1),
])
def test_builtin_add_every_code_pair(op, sa, za, sb, zb, sy, zy):
    """Every int8 pair (a, b) in the vector blocks, and again in a 15-element tail (n = 65536 + 15
    and the pairs shifted by 15), so each pair meets both arithmetics."""
    codes = np.arange(-128, 128, dtype=np.int8)
    a, b = np.repeat(codes, 256), np.tile(codes, 256)
    for shift in (0, 15):
        x0, x1 = np.roll(np.r_[a, a[:15]], shift), np.roll(np.r_[b, b[:15]], shift)
        shape = [1, 1, 1, x0.size]
        check(_model(op, shape, shape, shape, sa, za, sb, zb, sy, zy), [[x0.reshape(shape), x1.reshape(shape)]],
              BUILTIN, refused_on_builtin=_builtin_leaves_int16(op, sa, za, sb, zb, sy, zy))


BCAST = [([1, 1, 1, 35], [1, 64, 1, 35]), ([1, 8, 8, 35], [1, 1, 1, 1]), ([1, 1, 1, 1], [1, 8, 8, 35]),
         ([1, 8, 1, 35], [1, 1, 8, 35]), ([1, 64, 1, 35], [1, 1, 1, 35]), ([1, 8, 8, 1], [1, 8, 8, 35]),
         ([2, 1, 3, 1], [1, 4, 1, 5]), ([4, 1, 17, 1], [1, 6, 1, 18])]     # last two: kGenericBroadcast


@pytest.mark.parametrize("a_shape,b_shape", BCAST)
def test_builtin_broadcast_add(a_shape, b_shape):
    """Broadcast int8 ADD on the optimized kernel (BroadcastAddFivefold: AddElementwise per inner
    run, AddScalarBroadcast's truncating input shift) at the issue-18 scales, where the
    reference fixed point differed in 900-3,500 elements: kernels.fixedpoint.tflite_add_broadcast;
    kGenericBroadcast shapes take BroadcastAdd4DSlow, the reference fixed point."""
    shape = list(np.broadcast_shapes(a_shape, b_shape))
    rng = np.random.default_rng(0)
    check(_model("ADD", a_shape, b_shape, shape, 0.5, -128, 0.3333333432674408, -128, 0.3333333432674408, -128),
          [[_i8(rng, a_shape), _i8(rng, b_shape)] for _ in range(3)], BUILTIN)


def _bshapes(draw_dims, mask_a, mask_b):
    return ([1 if m else d for d, m in zip(draw_dims, mask_a)], [1 if m else d for d, m in zip(draw_dims, mask_b)])


@settings(SETTINGS, max_examples=40)
@given(dims=st.lists(st.integers(1, 40), min_size=4, max_size=4), mask_a=st.lists(st.booleans(), min_size=4,
       max_size=4), mask_b=st.lists(st.booleans(), min_size=4, max_size=4), sa=tie_scales, za=zps, sb=tie_scales,
       zb=zps, sy=tie_scales, zy=zps, act=st.sampled_from([0, 0, 1, 3]), seed=st.integers(0, 2 ** 31 - 1))
def test_builtin_broadcast_add_shapes(dims, mask_a, mask_b, sa, za, sb, zb, sy, zy, act, seed):
    """Drawn 4-D broadcasts (each dim kept or set to 1 per side): fivefold patterns match the
    interpreter, and so do kGenericBroadcast ones (BroadcastAdd4DSlow, the reference fixed point)."""
    dims[0] = min(dims[0], 2)
    a_shape, b_shape = _bshapes(dims, mask_a, mask_b)
    shape = list(np.broadcast_shapes(a_shape, b_shape))
    rng = np.random.default_rng(seed)
    check(_model("ADD", a_shape, b_shape, shape, sa, za, sb, zb, sy, zy, act),
          [[_i8(rng, a_shape), _i8(rng, b_shape)] for _ in range(2)], BUILTIN,
          refused_on_builtin=_builtin_leaves_int16("ADD", sa, za, sb, zb, sy, zy))


@settings(SETTINGS, max_examples=100)
@given(dims=st.lists(st.integers(1, 20), min_size=1, max_size=5), mask_a=st.lists(st.booleans(), min_size=5,
       max_size=5), mask_b=st.lists(st.booleans(), min_size=5, max_size=5), sa=tie_scales, sb=tie_scales,
       sy=tie_scales, za=zps, zb=zps, zy=zps, seed=st.integers(0, 2 ** 31 - 1))
def test_add_broadcast_kernel_matches_reference(dims, mask_a, mask_b, sa, sb, sy, za, zb, zy, seed):
    """kernels.fixedpoint.tflite_add_broadcast (Numba) equals its Python-int twin (the fivefold
    loops written out), edge codes included."""
    a_shape, b_shape = _bshapes(dims, mask_a, mask_b)
    if a_shape == b_shape or fk.tflite_fivefold(a_shape, b_shape) is None:
        return
    rng = np.random.default_rng(seed)
    a, b = _i8(rng, a_shape), _i8(rng, b_shape)
    a.reshape(-1)[:1], b.reshape(-1)[:1] = -128, 127
    m, s = fk.tflite_add_params(sa, sb, sy, 20)
    shape = np.broadcast_shapes(a.shape, b.shape)
    outs = [np.empty(shape, np.int8) for _ in range(2)]
    fk.tflite_add_broadcast(a, b, za, zb, m, s, 20, zy, -128, 127, outs[0])
    fk.tflite_add_broadcast_ref(a, b, za, zb, m, s, 20, zy, -128, 127, outs[1])
    np.testing.assert_array_equal(outs[0], outs[1])


@settings(SETTINGS, max_examples=200)
@given(n=st.integers(2, 70), lanes=st.sampled_from([0, 16, 8]), sa=tie_scales, sb=tie_scales, sy=tie_scales,
       za=zps, zb=zps, zy=zps, wide=st.booleans(), seed=st.integers(0, 2 ** 31 - 1))
def test_add_lanes_kernel_matches_reference(n, lanes, sa, sb, sy, za, zb, zy, wide, seed):
    """kernels.fixedpoint.tflite_add_lanes (Numba) equals its Python-int twin, edge codes included;
    lanes = 0 equals tflite_add in mode "double". wide: int16 codes, left shift 15, zero points 0
    (AddElementwiseInt16)."""
    rng = np.random.default_rng(seed)
    if wide:
        a, b, left, (lo, hi), za, zb, zy = _i16(rng, n), _i16(rng, n), 15, (-32768, 32767), 0, 0, 0
        sa, sb, sy = (v * 2.0 ** -8 for v in (sa, sb, sy))
    else:
        a, b, left, (lo, hi) = _i8(rng, n), _i8(rng, n), 20, (-128, 127)
    a[:2], b[:2] = (lo, hi), (hi, lo)
    m, s = fk.tflite_add_params(sa, sb, sy, left)
    if np.any(left + s[:2] < 0):
        return      # refused by the step (an input shifted right before the high multiply)
    outs = [np.empty(n, a.dtype) for _ in range(3)]
    fk.tflite_add_lanes(a, b, za, zb, m, s, left, lanes, zy, lo, hi, outs[0])
    fk.tflite_add_lanes_ref(a, b, za, zb, m, s, left, lanes, zy, lo, hi, outs[1])
    np.testing.assert_array_equal(outs[0], outs[1])
    if lanes == 0:
        fk.tflite_add(a, b, za, zb, m, s, left, "double", zy, lo, hi, outs[2])
        np.testing.assert_array_equal(outs[0], outs[2])


def _ranked_model(op, a_shape, b_shape, sa, za, sb, zb, sy, zy, dtype="int8", act=0):
    shape = list(np.broadcast_shapes(a_shape, b_shape))
    tensors = [{"name": "a", "shape": a_shape, "type": dtype, "scale": sa, "zero_point": za},
               {"name": "b", "shape": b_shape, "type": dtype, "scale": sb, "zero_point": zb},
               {"name": "y", "shape": shape, "type": dtype, "scale": sy, "zero_point": zy}]
    if dtype == "int8":
        return single_op(op, tensors, [0, 1], [2], [0, 1], binary_options(op, act), version=2)
    return single_op(op, tensors, [0, 1], [2], [0, 1], table_options(f"{op.title()}Options",
                     FusedActivationFunction=act, PotScaleInt16=False), version=3)


@paths
@settings(SETTINGS, max_examples=60)
@given(op=st.sampled_from(["ADD", "SUB"]), dims=st.lists(st.integers(1, 5), min_size=5, max_size=7),
       mask_a=st.lists(st.booleans(), min_size=7, max_size=7), mask_b=st.lists(st.booleans(), min_size=7, max_size=7),
       sa=tie_scales, za=zps, sb=tie_scales, zb=zps, sy=tie_scales, zy=zps, act=st.sampled_from([0, 0, 1, 3]),
       seed=st.integers(0, 2 ** 31 - 1))
def test_broadcast_add_sub_of_5_to_7_dims(path, op, dims, mask_a, mask_b, sa, za, sb, zb, sy, zy, act, seed):
    """int8 ADD / SUB broadcasts of 5, 6 and 7 dims on every path: fivefold patterns
    (BroadcastAddFivefold) and kGenericBroadcast ones (optimized_integer_ops::BroadcastAddDispatch
    -> reference_integer_ops::BroadcastAdd6DSlow: the reference fixed point, measured to 7 dims);
    XNNPACK takes at most 6 dims (VisitBinaryNode), the builtin kernel runs a 7-D one."""
    a_shape, b_shape = _bshapes(dims, mask_a, mask_b)
    rng = np.random.default_rng(seed)
    wraps = _builtin_leaves_int16(op, sa, za, sb, zb, sy, zy)      # the builtin kernel's refusal
    check(_ranked_model(op, a_shape, b_shape, sa, za, sb, zb, sy, zy, act=act),
          [[_i8(rng, a_shape), _i8(rng, b_shape)] for _ in range(2)], path,
          refused_on_builtin=wraps, refused_on_xnnpack=wraps and len(dims) > 6)


# int16 scales whose ratios s / (2 max(sa, sb)) and 2 max / (2**15 sy) hit ties often
tie_scales16 = st.sampled_from([2.0 ** -12, 3 * 2.0 ** -12, 1.5 * 2.0 ** -13, 5 * 2.0 ** -14, 2.0 ** -10,
                                0.75 * 2.0 ** -11]) | st.floats(2.0 ** -16, 2.0 ** -8, width=32)


@paths
@settings(SETTINGS, max_examples=60)
@given(op=st.sampled_from(["ADD", "SUB"]), lead=st.lists(st.integers(1, 4), min_size=0, max_size=5),
       n=st.integers(1, 700), ones=st.lists(st.booleans(), min_size=7, max_size=7), sa=tie_scales16,
       sb=tie_scales16, sy=tie_scales16, act=st.sampled_from([0, 0, 1]), seed=st.integers(0, 2 ** 31 - 1))
def test_int16_add_sub_blocks_and_broadcasts(path, op, lead, n, ones, sa, sb, sy, act, seed):
    """int16 ADD / SUB (general scales, zero points 0) beyond the zoo: equal shapes of up to 700
    x lead elements (ADD: optimized_integer_ops::Add -> AddElementwiseInt16's 16-lane blocks on the
    builtin and XNNPACK paths, found here: differs from the reference at ties; SUB the reference)
    and broadcasts of up to 7 dims (reference_ops::BroadcastAdd6DSlow), tie-prone scales."""
    if all(np.log2(np.float32(v)) == int(np.log2(np.float32(v))) for v in (sa, sb, sy)):
        sy = float(np.float32(sy * 1.5))    # not the pot_scale_int16 path (refused by the reader)
    shape = [1] + lead + [n]
    other = [1 if o else d for d, o in zip(shape, ones)]      # ones[:len(shape)] all False: equal shapes
    rng = np.random.default_rng(seed)
    codes = np.resize(np.arange(-32768, 32768, 97, dtype=np.int16), int(np.prod(shape))).reshape(shape)
    check(_ranked_model(op, shape, other, sa, 0, sb, 0, sy, 0, dtype="int16", act=act),
          [[_i16(rng, shape), _i16(rng, other)], [codes, _i16(rng, other)]], path)


@paths
@pytest.mark.parametrize("op", ["ADD", "SUB"])
@pytest.mark.parametrize("sa,sb,sy", [(2.0 ** -12, 1.5 * 2.0 ** -12, 2.0 ** -12),     # hypothesis's repro
                                      (3 * 2.0 ** -12, 2.0 ** -12, 1.5 * 2.0 ** -13)])
def test_int16_add_ties_in_blocks_and_tail(path, op, sa, sb, sy):
    """65536 + 15 int16 pairs (a spread over every 97th code, b a shifted copy) at tie-prone scales:
    ADD's 16-lane blocks and its 15-element tail both meet ties (hypothesis found 1 of 30 differing
    from the reference at the first scales); SUB stays the reference fixed point."""
    n = 65536 + 15
    a = np.resize(np.arange(-32768, 32768, 97, dtype=np.int16), n).reshape(1, n)
    b = np.roll(np.resize(np.arange(-32768, 32768, 89, dtype=np.int16), n), 7).reshape(1, n)
    check(_ranked_model(op, [1, n], [1, n], sa, 0, sb, 0, sy, 0, dtype="int16"), [[a, b]], path)
