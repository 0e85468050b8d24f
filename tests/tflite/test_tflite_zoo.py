"""The TFLite zoo (models/tflite, built by models/build_tflite.py), read directly as .tflite
flatbuffers: under target `tflite` every model equals the stored outputs of the interpreter's
reference kernels (OpResolverType.BUILTIN_REF) bit for bit, on both intsim kernel sets; live
against the installed interpreter (ai-edge-litert) whole model and layer by layer."""
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
from models.build_tflite import HERE, NAMES, REFUSED

RUN = [n for n in NAMES if n not in REFUSED]
ROOT = Path(__file__).resolve().parents[2]


def _path(name):
    return HERE / f"{name}.tflite"


def run_samples(prog, x: np.ndarray) -> dict:
    """{output: (S, *shape)} of prog on each sample of x (S, *input_shape) (batch-1 models)."""
    g = prog.graph
    outs = [prog.run({g.inputs[0]: s}) for s in x]
    return {o: np.stack([r[o] for r in outs]) for o in g.outputs}


@pytest.mark.parametrize("kernels", ["fast", "reference"])
@pytest.mark.parametrize("name", RUN)
def test_equals_stored_reference_kernels(name, kernels):
    stored = np.load(HERE / f"{name}.npz")
    prog = intsim.load(_path(name), target="tflite", kernels=kernels)
    got = run_samples(prog, stored["input"])
    assert set(got) == {k.split("/", 1)[1] for k in stored if k.startswith("reference/")}
    for out, v in got.items():
        np.testing.assert_array_equal(v, stored[f"reference/{out}"], err_msg=f"{name}: {out}")


# zoo models whose every op has a tflite-builtin rule; the others are refused by name
BUILTIN_RUN = {"avgpool", "maxpool", "concat", "fc", "logistic", "residual_add"}


@pytest.mark.parametrize("name", RUN)
def test_builtin_target_equals_stored_builtin_kernels_or_refuses(name):
    from intsim.targets.rules import TargetRefusal

    stored = np.load(HERE / f"{name}.npz")
    if name not in BUILTIN_RUN:
        with pytest.raises(TargetRefusal, match="target tflite-builtin has no rule for"):
            run_samples(intsim.load(_path(name), target="tflite-builtin"), stored["input"][:1])
        return
    got = run_samples(intsim.load(_path(name), target="tflite-builtin"), stored["input"])
    for out, v in got.items():
        np.testing.assert_array_equal(v, stored[f"builtin/{out}"], err_msg=f"{name}: {out}")


def test_every_zoo_file_is_small_and_has_outputs():
    for name in NAMES:
        assert _path(name).stat().st_size < 200_000
        keys = set(np.load(HERE / f"{name}.npz"))
        assert {"input"} | {k.split("/")[0] for k in keys if "/" in k} == {"input", "reference", "builtin", "xnnpack"}


def test_zoo_covers_the_ops():
    import tflite

    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    seen = set()
    for name in NAMES:
        m = tflite.Model.GetRootAsModel(_path(name).read_bytes(), 0)
        for i in range(m.OperatorCodesLength()):
            c = m.OperatorCodes(i)
            seen.add(names[max(c.BuiltinCode(), c.DeprecatedBuiltinCode())])
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "AVERAGE_POOL_2D", "MAX_POOL_2D",
            "MEAN", "CONCATENATION", "RESHAPE", "QUANTIZE", "DEQUANTIZE"} <= seen
    # RELU6 and RELU arrive fused into CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: the reader
    # turns them into lo/hi clamps (activation_range)
    assert {1, 3} <= _fused_activations("conv_relu6") and 3 in _fused_activations("fc_float_io")


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
    from .flatbuf import single_op

    t = [{"name": n, "shape": [1, 4], "type": "int16", "scale": 0.01, "zero_point": 0} for n in ("a", "y")]
    with pytest.raises(UnsupportedOpError, match=r"TANH .*operator 0.*'y'.*int16"):
        import_tflite(single_op("TANH", t, [0], [1], [0]))


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
