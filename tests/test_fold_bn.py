"""BatchNormalization after a float Conv is folded into it; the folded float model agrees with
onnxruntime's float result to float32 rounding, and the BN node is gone from the IR."""
from __future__ import annotations

import numpy as np
from onnx import helper

import intsim
from tests.ortutil import float_model, run_ort


def test_conv_bn_is_folded_and_equivalent():
    rng = np.random.default_rng(3)
    c = 5
    inits = {"w": rng.normal(0, 1, (c, 3, 3, 3)).astype(np.float32), "b": rng.normal(0, 1, c).astype(np.float32),
             "g": rng.uniform(0.5, 2, c).astype(np.float32), "be": rng.normal(0, 1, c).astype(np.float32),
             "m": rng.normal(0, 1, c).astype(np.float32), "v": rng.uniform(0.1, 2, c).astype(np.float32)}
    m = float_model([helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                     helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["y"], epsilon=1e-3)],
                    [("x", [2, 3, 6, 6])], [("y", [2, c, 6, 6])], inits)
    g = intsim.import_onnx(m)
    assert [n.attrs["op_type"] for n in g.nodes] == ["Conv"]
    x = rng.normal(0, 1, (2, 3, 6, 6)).astype(np.float32)
    got = intsim.Program(g).run({"x": x})["y"]
    want = run_ort(m, {"x": x}, optimized=False)["y"]
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 1e-5 * scale  # float re-association only


def test_quantizer_fold_and_ir_fold_give_the_same_weights():
    """One formula (passes.fold_bn.fold_bn_params) behind both folds: the IR pass and the
    quantizer's float-graph fold store bit-identical weights and bias."""
    from intsim.quantize.graph import FloatGraph, fold_batchnorm
    from tests.quantize import nets
    m = nets.conv_net(seed=4)
    fg = FloatGraph(m)
    assert fold_batchnorm(fg) == 1
    g = intsim.import_onnx(m)
    conv = next(n for n in g.nodes if n.op == "onnx" and n.inputs[1] == "w1__bnfold")
    np.testing.assert_array_equal(g.constants["w1__bnfold"], fg.inits["w1"])
    np.testing.assert_array_equal(g.constants[conv.inputs[2]], fg.inits["conv1_bias"])
