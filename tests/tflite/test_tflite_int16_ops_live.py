"""TFLite's int16 SOFTMAX, RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR, 16x8 TRANSPOSE_CONV and
int8, uint8 and int16 SUM under `tflite`, `tflite-builtin` and `tflite-xnnpack`, live against the interpreter
(ai-edge-litert) on one-op models with hypothesis-drawn scales, shapes and codes (int16 zero
points are 0, as TFLite quantizes int16 symmetrically); each model also runs on intsim's NumPy
int64 twins (`check`). The kernels equal their twins (hypothesis, edge codes -32768 / 32767)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import intsim
from intsim.targets.rules import TargetRefusal
from kernels import tflite_softmax16 as sk16
from kernels import tflite_sum as sk

from .flatbuf import reducer_options, single_op, table_options
from .test_tflite_ops_live import KERNEL_PATHS, SAME, VALID, _i16, check, paths, scales16, transpose_conv_model

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# SUM: sy = sx * tie puts many sums on halves (None: sy drawn freely)
TIES = st.sampled_from([None, None, 0.5, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0])


@paths
@SETTINGS
@given(lead=st.lists(st.integers(1, 3), min_size=0, max_size=2), d=st.integers(1, 300),
       sx=st.floats(2.0**-16, 2.0**-2, width=32), beta=st.sampled_from([1.0, 0.5, 2.0, 0.1]),
       sy=st.sampled_from([2.0**-15, 2.0**-15 * 1.0005]), seed=st.integers(0, 2**31 - 1))
def test_softmax_int16(path, lead, d, sx, beta, sy, seed):
    """int16 SOFTMAX over the last axis (output zero point 0, output scale near 2**-15)."""
    shape = [1] + lead + [d]
    rng = np.random.default_rng(seed)
    tensors = [{"name": "x", "shape": shape, "type": "int16", "scale": sx, "zero_point": 0},
               {"name": "y", "shape": shape, "type": "int16", "scale": sy, "zero_point": 0}]
    data = single_op("SOFTMAX", tensors, [0], [1], [0], table_options("SoftmaxOptions", Beta=beta), version=3)
    feeds = [[_i16(rng, shape)], [np.full(shape, 32767, np.int16)],
             [(rng.integers(-300, 300, shape) + int(rng.integers(-32000, 32000))).astype(np.int16)]]
    check(data, feeds, path)


def test_softmax_int16_output_scale_tflite_refuses():
    """The interpreter fails to prepare an int16 SOFTMAX whose output scale is not near 2**-15:
    refused by name, never computed."""
    tensors = [{"name": "x", "shape": [1, 8], "type": "int16", "scale": 0.01, "zero_point": 0},
               {"name": "y", "shape": [1, 8], "type": "int16", "scale": 1e-4, "zero_point": 0}]
    data = single_op("SOFTMAX", tensors, [0], [1], [0], table_options("SoftmaxOptions", Beta=1.0), version=3)
    with pytest.raises(TargetRefusal, match="has no rule for SOFTMAX.*output scale 2\\*\\*-15"):
        intsim.load(data, target="tflite").run({"x": np.zeros((1, 8), np.int16)})


@paths
@SETTINGS
@given(op=st.sampled_from(["RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"]), h=st.integers(1, 9), w=st.integers(1, 9),
       c=st.integers(1, 4), oh=st.integers(1, 17), ow=st.integers(1, 17),
       corners=st.sampled_from([(False, False), (True, False), (False, True)]), s=scales16,
       seed=st.integers(0, 2**31 - 1))
def test_resize_int16(path, op, h, w, c, oh, ow, corners, s, seed):
    """int16 up- and down-sampling, align_corners / half_pixel_centers (the reference
    arithmetic on every path: XNNPACK does not take int16)."""
    rng = np.random.default_rng(seed)
    tensors = [{"name": "x", "shape": [1, h, w, c], "type": "int16", "scale": s, "zero_point": 0},
               {"name": "size", "shape": [2], "type": "int32", "data": np.array([oh, ow], np.int32)},
               {"name": "y", "shape": [1, oh, ow, c], "type": "int16", "scale": s, "zero_point": 0}]
    opts = "ResizeBilinearOptions" if op == "RESIZE_BILINEAR" else "ResizeNearestNeighborOptions"
    data = single_op(op, tensors, [0], [2], [0, 1], table_options(opts, AlignCorners=corners[0],
                                                                  HalfPixelCenters=corners[1]), version=4)
    check(data, [[_i16(rng, (1, h, w, c))], [np.full((1, h, w, c), -32768, np.int16)]], path)


@paths
@SETTINGS
@given(h=st.integers(1, 6), w=st.integers(1, 6), ci=st.integers(1, 5), co=st.integers(1, 5), kh=st.integers(1, 4),
       kw=st.integers(1, 4), stride=st.integers(1, 3), padding=st.sampled_from([SAME, VALID]), sx=scales16,
       sy=scales16, act=st.sampled_from([0, 1, 3]), per_tensor=st.booleans(), bias=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_transpose_conv_16x8(path, h, w, ci, co, kh, kw, stride, padding, sx, sy, act, per_tensor, bias, seed):
    """16x8 TRANSPOSE_CONV: int16 input (zero point 0), int8 per-channel (or per-tensor)
    weights, optional int64 bias, an int64 accumulator requantized by MultiplyByQuantizedMultiplier's
    int64 overload (reduced 16-bit multiplier); fused RELU / RELU6."""
    rng = np.random.default_rng(seed)
    data = transpose_conv_model(rng, h, w, ci, co, kh, kw, stride, padding, (sx, 0), (sy, 0), act, per_tensor, bias,
                                wide=True)
    check(data, [[_i16(rng, (1, h, w, ci))], [np.full((1, h, w, ci), -32768, np.int16)]], path)


@settings(max_examples=30, deadline=None)
@given(r=st.integers(1, 4), d=st.integers(1, 70), sx=st.floats(2.0**-16, 2.0**-2, width=32),
       beta=st.floats(0.0625, 4.0, width=32), seed=st.integers(0, 2**31 - 1),
       mode=st.sampled_from(["random", "ends", "flat"]))
def test_softmax16_equals_twin(r, d, sx, beta, seed, mode):
    rng = np.random.default_rng(seed)
    if mode == "ends":
        x = rng.choice(np.array([-32768, 32767, 0], np.int16), (r, d))
    elif mode == "flat":
        x = np.full((r, d), int(rng.integers(-32768, 32768)), np.int16)
    else:
        x = rng.integers(-32768, 32768, (r, d)).astype(np.int16)
    got, want = np.empty((r, d), np.int16), np.empty((r, d), np.int16)
    sk16.softmax16_rows(x, sx, beta, got)
    sk16.softmax16_rows_ref(x, sx, beta, want)
    np.testing.assert_array_equal(got, want)


def test_gen_lut_ends():
    """exp over [-10, 0] ends at exp(0) * 32768 clamped to 32767; 1/(1+x) starts at 32767."""
    exp_lut, rec_lut = sk16.tables()
    assert exp_lut.shape == rec_lut.shape == (513,)
    assert exp_lut[512] == 32767 and rec_lut[0] == 32767 and rec_lut[512] == 16384
    assert np.all(np.diff(exp_lut.astype(np.int64)) >= 0) and np.all(np.diff(rec_lut.astype(np.int64)) <= 0)


@paths
@SETTINGS
@given(shape=st.lists(st.integers(1, 7), min_size=2, max_size=4), axes_pick=st.integers(1, 7), keep=st.booleans(),
       sx=st.floats(2.0**-10, 0.5, width=32), zx=st.sampled_from([-128, 127, 0]) | st.integers(-128, 127),
       sy=st.floats(2.0**-10, 4.0, width=32), zy=st.sampled_from([-128, 127, 0]) | st.integers(-128, 127),
       tie=TIES, seed=st.integers(0, 2**31 - 1))
def test_sum_int8(path, shape, axes_pick, keep, sx, zx, sy, zy, tie, seed):
    """int8 SUM over constant axes (not the batch axis), keep_dims either way: the builtin
    path's float32 requantization exact (saturating), XNNPACK's float32 conversion (rules.XnnpackSum);
    the reference path refused by name (its dispatch reads int8 codes as uint8). `tie`: sy a small
    multiple of sx, so that sums land on halves (where the two optimized paths differ)."""
    sy = float(np.float32(sx * tie)) if tie else sy
    shape = [1] + shape
    axes = [a for a in range(1, len(shape)) if axes_pick >> (a - 1) & 1] or [len(shape) - 1]
    out = [1 if i in axes else d for i, d in enumerate(shape)] if keep else \
        [d for i, d in enumerate(shape) if i not in axes]
    tensors = [{"name": "x", "shape": shape, "type": "int8", "scale": sx, "zero_point": zx},
               {"name": "axes", "shape": [len(axes)], "type": "int32", "data": np.array(axes, np.int32)},
               {"name": "y", "shape": out, "type": "int8", "scale": sy, "zero_point": zy}]
    data = single_op("SUM", tensors, [0], [2], [0, 1], reducer_options(keep))
    rng = np.random.default_rng(seed)
    feeds = [[rng.integers(-128, 128, shape).astype(np.int8)], [np.full(shape, 127, np.int8)],
             [np.full(shape, -128, np.int8)]]
    if path[0] == "reference":
        with pytest.raises(TargetRefusal, match="target tflite has no rule for SUM .* reads int8|hands int8 data"):
            intsim.load(data, target="tflite").run({"x": feeds[0][0]})
        return
    check(data, feeds, path)


@paths
@SETTINGS
@given(shape=st.lists(st.integers(1, 7), min_size=2, max_size=4), axes_pick=st.integers(1, 7), keep=st.booleans(),
       wide=st.booleans(), sx=st.floats(2.0**-10, 0.5, width=32), z=st.integers(0, 255),
       sy=st.floats(2.0**-10, 64.0, width=32), tie=TIES, seed=st.integers(0, 2**31 - 1))
def test_sum_uint8_and_int16(path, shape, axes_pick, keep, wide, sx, z, sy, tie, seed):
    """uint8 SUM (zero points drawn) and int16 SUM (zero points 0, as the kernel's prepare
    requires): the builtin path's float32 requantization, as for int8; XNNPACK's uint8 SUM its
    float32 conversion (rules.XnnpackSum; int16 is not delegated: the builtin kernel's); the
    reference path's uint8 SUM its MultiplyByQuantizedMultiplier (rules.FoldedSum), its int16 SUM
    refused by name (read as bytes, an interpreter defect). `tie` as in test_sum_int8."""
    sy = float(np.float32(sx * tie)) if tie else sy
    shape = [1] + shape
    axes = [a for a in range(1, len(shape)) if axes_pick >> (a - 1) & 1] or [len(shape) - 1]
    out = [1 if i in axes else d for i, d in enumerate(shape)] if keep else \
        [d for i, d in enumerate(shape) if i not in axes]
    name, dtype, zx, zy = ("int16", np.int16, 0, 0) if wide else ("uint8", np.uint8, z, 255 - z)
    tensors = [{"name": "x", "shape": shape, "type": name, "scale": sx, "zero_point": zx},
               {"name": "axes", "shape": [len(axes)], "type": "int32", "data": np.array(axes, np.int32)},
               {"name": "y", "shape": out, "type": name, "scale": sy, "zero_point": zy}]
    data = single_op("SUM", tensors, [0], [2], [0, 1], reducer_options(keep))
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    feeds = [[rng.integers(info.min, info.max + 1, shape).astype(dtype)], [np.full(shape, info.max, dtype)],
             [np.full(shape, info.min, dtype)]]
    if path[0] == "reference" and wide:
        with pytest.raises(TargetRefusal, match="target tflite has no rule for SUM .* hands int8 data"):
            intsim.load(data, target="tflite").run({"x": feeds[0][0]})
        return
    check(data, feeds, path)


@pytest.mark.parametrize("rank", [6, 7])
@pytest.mark.parametrize("name", ["int8", "uint8"])
def test_xnnpack_sum_of_more_than_6_dims_is_refused(rank, name):
    """XNNPACK takes tensors of at most 6 dims, yet the delegate claims a 7-D SUM and then fails
    to prepare it (measured: "failed to delegate SUM node"): tflite-xnnpack refuses it by name; a
    6-D one is XNNPACK's (XnnpackSum, sy = 2 sx: halves everywhere, where TfliteSum differs)."""
    shape = [1, 2, 3, 2, 1, 3, 5][:rank]
    dtype = np.dtype(name)
    tensors = [{"name": "x", "shape": shape, "type": name, "scale": 0.02, "zero_point": 3},
               {"name": "axes", "shape": [2], "type": "int32", "data": np.array([2, rank - 1], np.int32)},
               {"name": "y", "shape": [d if i not in (2, rank - 1) else 1 for i, d in enumerate(shape)], "type": name,
                "scale": 0.04, "zero_point": 5}]
    data = single_op("SUM", tensors, [0], [2], [0, 1], reducer_options(True))
    info = np.iinfo(dtype)
    rng = np.random.default_rng(rank)
    feeds = [[rng.integers(info.min, info.max + 1, shape).astype(dtype)] for _ in range(3)]
    if rank > 6:
        from models.build_tflite import interpreter
        with pytest.raises(RuntimeError, match="failed to delegate SUM"):
            interpreter(data, "xnnpack").allocate_tensors()
        with pytest.raises(TargetRefusal, match="target tflite-xnnpack has no rule for SUM .* fails to prepare"):
            intsim.load(data, target="tflite-xnnpack").run({"x": feeds[0][0]})
        return
    check(data, feeds, KERNEL_PATHS[2])


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 5000), sx=st.floats(2.0**-12, 1.0, width=32), zx=st.integers(-128, 127),
       sy=st.floats(2.0**-12, 8.0, width=32), zy=st.integers(-128, 127), seed=st.integers(0, 2**31 - 1))
def test_sum_requant_equals_twin(n, sx, zx, sy, zy, seed):
    rng = np.random.default_rng(seed)
    sums = np.concatenate([rng.integers(-128 * n, 127 * n + 1, 40), [-128 * n, 127 * n, 0]]).astype(np.int64)
    got, want = np.empty(sums.size, np.int8), np.empty(sums.size, np.int8)
    sk.sum_requant(sums, sx, zx, sy, zy, n, got)
    sk.sum_requant_ref(sums, sx, zx, sy, zy, n, want)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5000), sx=st.floats(2.0**-16, 1.0, width=32), sy=st.floats(2.0**-16, 8.0, width=32),
       seed=st.integers(0, 2**31 - 1))
def test_sum_requant_int16_equals_twin(n, sx, sy, seed):
    rng = np.random.default_rng(seed)
    sums = np.concatenate([rng.integers(-32768 * n, 32767 * n + 1, 40), [-32768 * n, 32767 * n, 0]]).astype(np.int64)
    got, want = np.empty(sums.size, np.int16), np.empty(sums.size, np.int16)
    sk.sum_requant(sums, sx, 0, sy, 0, n, got)
    sk.sum_requant_ref(sums, sx, 0, sy, 0, n, want)
    np.testing.assert_array_equal(got, want)


def test_sum_that_can_leave_int32_is_refused():
    """65537 int16 codes of 32767 sum past int32 in the interpreter's accumulator: refused by name."""
    tensors = [{"name": "x", "shape": [1, 65537], "type": "int16", "scale": 0.01, "zero_point": 0},
               {"name": "axes", "shape": [1], "type": "int32", "data": np.array([1], np.int32)},
               {"name": "y", "shape": [1, 1], "type": "int16", "scale": 0.5, "zero_point": 0}]
    prog = intsim.load(single_op("SUM", tensors, [0], [2], [0, 1], reducer_options(True)), target="tflite-builtin")
    with pytest.raises(TargetRefusal, match="SUM .* can leave the interpreter's int32 accumulator"):
        prog.run({"x": np.zeros((1, 65537), np.int16)})


@paths
@SETTINGS
@given(shape=st.lists(st.integers(1, 6), min_size=4, max_size=4), shared=st.integers(1, 3), sx=scales16,
       sa=st.floats(2.0**-12, 0.5, width=32), za=st.sampled_from([-128, 127, 0]) | st.integers(-128, 127),
       sy=scales16, seed=st.integers(0, 2**31 - 1))
def test_prelu_int16(path, shape, shared, sx, sa, za, sy, seed):
    """16x8 PRELU (int16 input and output, zero point 0; int8 alpha, its own quantization;
    the converter has no 16x8 PRELU, the interpreter runs it): constant alpha over the trailing axes."""
    shape[0] = 1
    a_shape = shape[shared:]
    rng = np.random.default_rng(seed)
    alpha = rng.integers(-128, 128, a_shape)
    alpha.reshape(-1)[:2] = [-128, 127][:alpha.size]
    data = single_op("PRELU", _prelu16_tensors(shape, a_shape, "int8", alpha, sx, sa, za, sy), [0], [2], [0, 1])
    check(data, [[_i16(rng, shape)] for _ in range(2)], path)


def _prelu16_tensors(shape, a_shape, alpha_t, alpha, sx, sa, za, sy):
    return [{"name": "x", "shape": shape, "type": "int16", "scale": sx, "zero_point": 0},
            {"name": "alpha", "shape": a_shape, "type": alpha_t, "data": alpha, "scale": sa, "zero_point": za},
            {"name": "y", "shape": shape, "type": "int16", "scale": sy, "zero_point": 0}]


def test_prelu_int16_alpha_is_refused():
    """The interpreter reads an int16 PRELU's int16 alpha as int8 bytes (measured): refused by name."""
    from intsim.errors import UnsupportedOpError

    t = _prelu16_tensors([1, 2, 2, 3], [3], "int16", np.array([-300, 5, 30000]), 0.001, 0.01, 0, 0.001)
    with pytest.raises(UnsupportedOpError, match="PRELU .*alpha 'alpha' is int16.*reads alpha as int8 bytes"):
        intsim.load(single_op("PRELU", t, [0], [2], [0, 1]), target="tflite")


@paths
@SETTINGS
@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2), m=st.integers(1, 6), k=st.integers(1, 40),
       n=st.integers(1, 6), adj_x=st.booleans(), adj_y=st.booleans(), const_rhs=st.booleans(), sa=scales16,
       sb=scales16, sy=scales16, seed=st.integers(0, 2**31 - 1))
def test_batch_matmul_int16(path, batch, m, k, n, adj_x, adj_y, const_rhs, sa, sb, sy, seed):
    """int16 x int16 BATCH_MATMUL (zero points 0): an int64 sum requantized by
    MultiplyByQuantizedMultiplier's int64 overload, on every path (XNNPACK does not take int16)."""
    rng = np.random.default_rng(seed)
    a_shape = batch + ([k, m] if adj_x else [m, k])
    b_shape = batch + ([n, k] if adj_y else [k, n])
    b = {"name": "b", "shape": b_shape, "type": "int16", "scale": sb, "zero_point": 0}
    if const_rhs:
        b["data"] = _i16(rng, b_shape)
    tensors = [{"name": "a", "shape": a_shape, "type": "int16", "scale": sa, "zero_point": 0}, b,
               {"name": "y", "shape": batch + [m, n], "type": "int16", "scale": sy, "zero_point": 0}]
    inputs = [0] if const_rhs else [0, 1]
    data = single_op("BATCH_MATMUL", tensors, inputs, [2], [0, 1],
                     table_options("BatchMatMulOptions", AdjX=adj_x, AdjY=adj_y), version=4)
    feeds = [[_i16(rng, a_shape)] + ([] if const_rhs else [_i16(rng, b_shape)]) for _ in range(2)]
    check(data, feeds, path)


@pytest.mark.parametrize("fn", [sk.sum_requant, sk.sum_requant_ref])
def test_sum_requant_refuses_bad_arrays(fn):
    """The output is checked before the jitted loop writes one element per sum: fewer outputs
    than sums, a 32-bit or non-contiguous output are ValueErrors, never an out-of-bounds write."""
    sums = np.zeros(6, np.int64)
    for out, why in [(np.zeros(5, np.int8), "6 sums for 5 outputs"), (np.zeros(6, np.int32), "int8, uint8 or int16"),
                     (np.zeros((6, 2), np.int8)[:, 0], "C-contiguous")]:
        with pytest.raises(ValueError, match=why):
            fn(sums, 0.5, 0, 0.5, 0, 4, out)


@settings(SETTINGS, max_examples=40)
@given(h=st.integers(1, 6), c=st.integers(1, 16), n=st.integers(1, 8), sx=st.floats(2.0**-10, 0.5, width=32),
       ratio=st.floats(1.0, 32.0, width=32), zx=st.integers(0, 255), zy=st.integers(0, 255),
       seed=st.integers(0, 2**31 - 1))
def test_reference_sum_uint8(h, c, n, sx, ratio, zx, zy, seed):
    """The reference path's uint8 SUM of n codes over the last axis, sy / sx in [1, 32] (few
    outputs saturate): MultiplyByQuantizedMultiplier of sum - zx*n (rules.FoldedSum)."""
    shape = [1, h, c, n]
    tensors = [{"name": "x", "shape": shape, "type": "uint8", "scale": sx, "zero_point": zx},
               {"name": "axes", "shape": [1], "type": "int32", "data": np.array([3], np.int32)},
               {"name": "y", "shape": shape[:3], "type": "uint8", "scale": float(np.float32(sx * ratio)),
                "zero_point": zy}]
    rng = np.random.default_rng(seed)
    data = single_op("SUM", tensors, [0], [2], [0, 1], reducer_options(False))
    lo, hi = sorted(int(v) for v in rng.integers(0, 256, 2))
    check(data, [[rng.integers(lo, hi + 1, shape).astype(np.uint8)] for _ in range(4)], KERNEL_PATHS[0])
