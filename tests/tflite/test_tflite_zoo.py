"""The TFLite zoo (models/tflite, built by models/build_tflite.py): every model, read directly
as a .tflite flatbuffer and as its tf2onnx .onnx copy, equals the stored outputs of each of the
interpreter's kernel paths bit for bit under the intsim target that models the path
(reference kernels, OpResolverType.BUILTIN_REF -> `tflite`; builtin -> `tflite-builtin`;
xnnpack -> `tflite-xnnpack`), or fails as zoo_expected states (strict xfails keyed off the
exact refusal; skips where the .onnx states other arithmetic); live against
the installed interpreter (ai-edge-litert) layer by layer."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import intsim
from intsim.errors import UnsupportedOpError
from intsim.importer.tflite_model import activation_range, import_tflite, is_tflite, same_pads
from intsim.ir import INT8, QParams
from models.build_tflite import HERE, NAMES, PATHS

from .table import FORMS, TARGETS, outputs, run_samples, stored_outputs
from .zoo_expected import Differs, Impossible, Refused, expected

# models whose .tflite runs under `tflite` (the reference kernels' target)
RUN = [n for n in NAMES if expected(n, "tflite", "reference") is None]
ROOT = Path(__file__).resolve().parents[2]
# every builtin op of the issue's list (TFLite names); MEAN/SUM and RESIZE_* count each
ISSUE_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "AVERAGE_POOL_2D",
             "MAX_POOL_2D", "MEAN", "SUM", "CONCATENATION", "QUANTIZE", "DEQUANTIZE", "LOGISTIC", "TANH",
             "HARD_SWISH", "RELU", "RELU6", "LEAKY_RELU", "PRELU", "SOFTMAX", "PAD", "RESIZE_NEAREST_NEIGHBOR",
             "RESIZE_BILINEAR", "TRANSPOSE_CONV", "BATCH_MATMUL", "RESHAPE", "TRANSPOSE", "STRIDED_SLICE"}


def _path(name):
    return HERE / f"{name}.tflite"


def _case(name, form, kind):
    exp = expected(name, form, kind)
    if isinstance(exp, Refused):
        mark = pytest.mark.xfail(strict=True, raises=exp.error, reason=f"refused: {exp.text}")
    elif isinstance(exp, Differs):
        mark = pytest.mark.xfail(strict=True, raises=AssertionError, reason=exp.reason)
    else:
        mark = ()
    return pytest.param(name, form, kind, marks=mark, id=f"{name}.{form}-{kind}")


@pytest.mark.parametrize("name,form,kind", [_case(n, f, k) for n in NAMES for f in FORMS for k in PATHS])
def test_equals_stored_interpreter_outputs(name, form, kind):
    exp = expected(name, form, kind)
    if isinstance(exp, Impossible):
        pytest.skip(exp.reason)
    x = np.load(HERE / f"{name}.npz")["input"]
    try:
        got = outputs(name, form, TARGETS[kind], x)
    except Exception as e:
        # an expected refusal must be the exact one: any other message fails the test
        if isinstance(exp, Refused) and isinstance(e, exp.error):
            assert exp.text in str(e), f"refused otherwise than expected ({exp.text!r}): {e}"
        raise
    ref = stored_outputs(name, kind)
    assert len(got) == len(ref)
    for v, r in zip(got, ref):
        np.testing.assert_array_equal(v, r, err_msg=f"{name}.{form} under {TARGETS[kind]}")


@pytest.mark.parametrize("name", RUN)
def test_reference_kernel_set_equals_stored_reference_kernels(name):
    """The .tflite under `tflite` on intsim's NumPy int64 kernels (kernels="reference") too."""
    stored = np.load(HERE / f"{name}.npz")
    prog = intsim.load(_path(name), target="tflite", kernels="reference")
    got = run_samples(prog, stored["input"])
    assert set(got) == {k.split("/", 1)[1] for k in stored if k.startswith("reference/")}
    for out, v in got.items():
        np.testing.assert_array_equal(v, stored[f"reference/{out}"], err_msg=f"{name}: {out}")


def test_every_zoo_file_is_small_and_has_outputs():
    for name in NAMES:
        assert _path(name).stat().st_size < 200_000 and (HERE / f"{name}.onnx").stat().st_size < 200_000
        keys = set(np.load(HERE / f"{name}.npz"))
        assert {"input"} | {k.split("/")[0] for k in keys if "/" in k} == {"input", "reference", "builtin", "xnnpack"}


def zoo_ops() -> dict:
    """{TFLite builtin op name: [zoo models using it]}, read from each committed .tflite's
    operator codes with the `tflite` schema package."""
    import tflite

    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    seen: dict = {}
    for name in NAMES:
        m = tflite.Model.GetRootAsModel(_path(name).read_bytes(), 0)
        for i in range(m.OperatorCodesLength()):
            c = m.OperatorCodes(i)
            seen.setdefault(names[max(c.BuiltinCode(), c.DeprecatedBuiltinCode())], []).append(name)
    return seen


def test_zoo_covers_the_ops():
    seen = zoo_ops()
    assert not ISSUE_OPS - set(seen), f"ops of the issue's list missing from the zoo: {sorted(ISSUE_OPS - set(seen))}"
    # RELU6 and RELU arrive fused into CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED too: the
    # reader keeps their float bounds, which the target turns into lo/hi clamps at prepare
    # (activation_range: TFLite's rule; test_tflite_fused_act_live: XNNPACK's)
    assert {1, 3} <= _fused_activations("conv_relu6") and 3 in _fused_activations("fc_float_io")


def test_zoo_has_int8_and_16x8_variants_and_both_weight_granularities():
    """QUANTIZE as a requantize (integer in and out), 16x8 (int16 activations) for every
    computing op of the 16x8 models, per-tensor and per-channel FULLY_CONNECTED weights."""
    import tflite

    kinds: dict = {}
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    for name in NAMES:
        m = tflite.Model.GetRootAsModel(_path(name).read_bytes(), 0)
        sg = m.Subgraphs(0)
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            c = m.OperatorCodes(op.OpcodeIndex())
            x, y = sg.Tensors(op.Inputs(0)), sg.Tensors(op.Outputs(0))
            w = sg.Tensors(op.Inputs(1)) if op.InputsLength() > 1 and op.Inputs(1) >= 0 else None
            kinds.setdefault(names[max(c.BuiltinCode(), c.DeprecatedBuiltinCode())], set()).add(
                (x.Type(), y.Type(), None if w is None or w.Quantization() is None else w.Quantization().ScaleLength() > 1))
    i8, u8, i16, f32 = tflite.TensorType.INT8, tflite.TensorType.UINT8, tflite.TensorType.INT16, tflite.TensorType.FLOAT32
    assert {(u8, i8), (i8, u8), (i16, i16)} <= {k[:2] for k in kinds["QUANTIZE"]}
    assert (f32, i8) in {k[:2] for k in kinds["QUANTIZE"]} and (i8, f32) in {k[:2] for k in kinds["DEQUANTIZE"]}
    assert {(i8, i8, True), (i8, i8, False), (i16, i16, True)} <= kinds["FULLY_CONNECTED"]
    # 16x8: every op of the list that the converter quantizes to 16x8 (not HARD_SWISH, PRELU:
    # "Quantization to 16x8-bit not yet supported"; TRANSPOSE_CONV reads an int32 output shape first)
    for op in ISSUE_OPS - {"HARD_SWISH", "PRELU", "RELU6", "SUM", "DEQUANTIZE", "TRANSPOSE_CONV"}:
        assert (i16, i16) in {k[:2] for k in kinds[op]}, op
    assert any(k[1] == i16 for k in kinds["TRANSPOSE_CONV"])


def test_every_onnx_copy_is_tf2onnx_of_its_tflite():
    """Each zoo model has its tf2onnx copy, with the .tflite's input and output names."""
    import onnx
    import tflite

    for name in NAMES:
        m = onnx.load(str(HERE / f"{name}.onnx"))
        assert m.producer_name == "tf2onnx", name
        sg = tflite.Model.GetRootAsModel(_path(name).read_bytes(), 0).Subgraphs(0)
        io = [[sg.Tensors(int(i)).Name().decode() for i in v] for v in (sg.InputsAsNumpy(), sg.OutputsAsNumpy())]
        assert [[i.name for i in m.graph.input], [o.name for o in m.graph.output]] == io, name


def _fused_activations(name) -> set:
    import tflite

    m = tflite.Model.GetRootAsModel(_path(name).read_bytes(), 0)
    sg, acts = m.Subgraphs(0), set()
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        for cls in (tflite.Conv2DOptions, tflite.DepthwiseConv2DOptions, tflite.FullyConnectedOptions):
            if op.BuiltinOptionsType() == getattr(tflite.BuiltinOptions, cls.__name__):
                o = cls()
                o.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
                acts.add(o.FusedActivationFunction())
    return acts


def test_names_shapes_and_types_as_stored():
    g = import_tflite(_path("conv_relu6"))
    stored = np.load(HERE / "conv_relu6.npz")
    (inp,), (out,) = g.inputs, g.outputs
    assert g.tensors[inp].shape == stored["input"].shape[1:]           # NHWC, as stored
    assert g.tensors[inp].dtype == INT8 and g.tensors[inp].qparams is not None
    assert g.tensors[out].shape == stored[f"reference/{out}"].shape[1:]
    w = [g.tensors[n.inputs[3]] for n in g.nodes if n.op == "conv"]
    assert all(t.qparams.per_channel and t.qparams.axis == 0 for t in w)   # OIHW, channel axis 0


def test_bytes_and_paths_are_recognized():
    data = _path("fc").read_bytes()
    assert is_tflite(data) and is_tflite(_path("fc")) and not is_tflite(b"\x08\x07" + data[2:4] + b"ONNX")
    g = intsim.import_onnx(data)
    assert g.outputs == import_tflite(_path("fc")).outputs


@pytest.mark.parametrize("op", ["LOG_SOFTMAX", "GELU"])
def test_unsupported_builtin_is_refused_by_name(op):
    from .flatbuf import single_op

    data = single_op(op, [{"name": "x", "shape": [1, 8], "type": "int8", "scale": 0.05, "zero_point": 0},
                          {"name": "y", "shape": [1, 8], "type": "int8", "scale": 0.05, "zero_point": 0}], [0], [1], [0])
    with pytest.raises(UnsupportedOpError) as e:
        import_tflite(data)
    msg = str(e.value)
    assert op in msg and "operator 0" in msg and "'y'" in msg


def test_int16_activations_are_refused_by_name():
    """An int16 activation the interpreter cannot run (HARD_SWISH; int16 TANH is modelled now:
    test_tflite_act16_live) is refused by the reader by name."""
    from .flatbuf import single_op

    t = [{"name": n, "shape": [1, 4], "type": "int16", "scale": 0.01, "zero_point": 0} for n in ("a", "y")]
    with pytest.raises(UnsupportedOpError, match=r"HARD_SWISH .*operator 0.*'y'.*int16"):
        import_tflite(single_op("HARD_SWISH", t, [0], [1], [0]))


def test_corrupt_file_is_invalid(tmp_path):
    p = tmp_path / "bad.tflite"
    p.write_bytes(b"\x00\x00\x00\x00TFL3" + b"\xff" * 12)
    with pytest.raises(intsim.IntsimError):
        import_tflite(p)


@pytest.mark.parametrize("name", ["mean_fc", "conv_relu6", "concat", "fc_float_io", "avgpool"])
def test_corrupted_flatbuffers_fail_with_intsim_errors_only(name):
    """Random byte flips and truncations: load + run either works or raises an IntsimError
    (InvalidModelError, QuantParamError, ...), never a raw flatbuffers/NumPy exception."""
    data = _path(name).read_bytes()
    rng = np.random.default_rng(11)
    for i in range(60):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 8))):
            b[int(rng.integers(8, len(b)))] = int(rng.integers(0, 256))
        if i % 4 == 0:
            b = b[:int(rng.integers(8, len(b)))]
        try:
            prog = intsim.load(bytes(b), target="tflite")
            g = prog.graph
            prog.run({n: np.zeros([d or 1 for d in g.tensors[n].shape], g.tensors[n].dtype.storage) for n in g.inputs})
        except intsim.IntsimError:
            pass


def test_activation_range_and_same_pads():
    qp = QParams.make(np.float32(6 / 255), np.int64(-128))
    assert activation_range(0, qp, INT8) == (-128, 127)
    assert activation_range(1, qp, INT8) == (-128, 127)
    assert activation_range(3, qp, INT8) == (-128, 127)        # 6 / (6/255) = 255 -> -128 + 255, capped
    qp = QParams.make(np.float32(0.05), np.int64(3))
    assert activation_range(3, qp, INT8) == (3, 123)
    assert activation_range(2, qp, INT8) == (-17, 23)
    assert activation_range(4, qp, INT8) is None               # TANH: not a clamp
    assert same_pads((12, 12), (3, 3), (2, 2), (1, 1)) == [0, 0, 1, 1]   # the odd pixel goes after
    assert same_pads((5, 5), (3, 3), (1, 1), (1, 1)) == [1, 1, 1, 1]


def test_cli_info_and_run(tmp_path):
    stored = np.load(HERE / "mean_fc.npz")
    g = import_tflite(_path("mean_fc"))
    np.savez(tmp_path / "in.npz", **{g.inputs[0]: stored["input"][0]})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "intsim", "info", str(_path("mean_fc"))], capture_output=True,
                       text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "intsim", "run", str(_path("mean_fc")), "--input",
                        str(tmp_path / "in.npz"), "--output", str(tmp_path / "out.npz"), "--target", "tflite"],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = np.load(tmp_path / "out.npz")[g.outputs[0]]
    np.testing.assert_array_equal(out, stored[f"reference/{g.outputs[0]}"][0])
    for args in (["overflow", str(_path("mean_fc"))],
                 ["dump", str(_path("mean_fc")), "--input", str(tmp_path / "in.npz"), "--out", str(tmp_path / "d"),
                  "--target", "tflite"]):
        r = subprocess.run([sys.executable, "-m", "intsim", *args], capture_output=True, text=True, env=env, cwd=ROOT)
        assert r.returncode == 0, (args, r.stderr)
    if importlib.util.find_spec("ai_edge_litert") is not None:   # verify: the interpreter is its reference
        r = subprocess.run([sys.executable, "-m", "intsim", "verify", str(_path("mean_fc")), "--random", "2",
                            "--fail-on-mismatch"], capture_output=True, text=True, env=env, cwd=ROOT)
        assert r.returncode == 0 and "PASSED" in r.stdout and "vs tflite (reference)" in r.stdout, r.stderr


# ------------------------------------------------------------------------ live, the interpreter
@pytest.mark.parametrize("name", RUN)
def test_live_reference_kernels_layer_by_layer(name):
    pytest.importorskip("ai_edge_litert")
    from models.build_tflite import sample_inputs

    from .layers import compare_layers

    x = sample_inputs(_path(name), 24, seed=2024)
    prog = intsim.load(_path(name), target="tflite")
    stats = compare_layers(_path(name), prog, x, "reference")
    assert stats, name
    bad = {k: v for k, v in stats.items() if v[2]}
    assert not bad, f"{name}: layers differing from TFLite's reference kernels: {bad}"


def test_resize_scales_give_onnxruntimes_sizes():
    """resize_bilinear.onnx: tf2onnx writes scale 9/5 = 1.79999995f for 5 -> 9 rows;
    onnxruntime's float32 product gives 9 rows (TFLite's), the reference evaluator's double
    floor 8: intsim runs onnxruntime's sizes and says so."""
    stored = stored_outputs("resize_bilinear", "reference")[0]
    with pytest.warns(UserWarning, match=r"give \[4, 9, 11\] after the batch in onnxruntime .*, \[4, 8, 11\] in double"):
        prog = intsim.load(HERE / "resize_bilinear.onnx", target="tflite")
    (out,) = run_samples(prog, np.load(HERE / "resize_bilinear.npz")["input"][:1]).values()
    assert out.shape[1:] == stored.shape[1:]
    rep = intsim.verify(HERE / "resize_bilinear.onnx", random=4, target="ort")   # = onnxruntime, 9 rows
    assert rep.passed, rep.as_dict()["outputs"]


def test_tf_half_pixel_for_nn_is_accepted_with_a_warning():
    """tf2onnx writes Resize coordinate_transformation_mode tf_half_pixel_for_nn at opset 15;
    intsim runs it as half_pixel + round_prefer_ceil (same indices) and says so."""
    with pytest.warns(UserWarning, match=r"Resize .*'tf_half_pixel_for_nn' is not in opset 15"):
        intsim.load(HERE / "resize_nearest.onnx", target="tflite")


def test_shared_bias_is_named_as_the_cause():
    """binary_16x8.onnx states another bias for its second conv than TFLite computes (the
    skipped cells above): loading it, and so `verify`, names the bias and both scales; the
    models without a shared bias load without that warning."""
    import warnings

    cause = r"bias 'arith.constant' is dequantized at scale 2.18162754e-07, x_scale\*w_scale is 7.33775494e-08"
    with pytest.warns(UserWarning, match=cause):
        intsim.import_onnx(HERE / "binary_16x8.onnx")
    with pytest.warns(UserWarning, match=cause), pytest.raises(intsim.IntsimError, match="onnxruntime cannot load"):
        intsim.verify(HERE / "binary_16x8.onnx", random=1)      # onnxruntime refuses tf2onnx's int16 QDQ
    for name in ("conv_relu6", "pool_fc_16x8", "mean_fc"):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            intsim.import_onnx(HERE / f"{name}.onnx")
        assert not [x for x in w if "x_scale*w_scale is" in str(x.message)], name
