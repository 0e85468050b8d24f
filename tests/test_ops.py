"""The op table: every IR op has a row, a registered step and a reference, and nothing else."""
from __future__ import annotations

import ast
import importlib
import inspect

import numpy as np
import pytest

from intsim import ops
from intsim.ir import Node
from intsim.steps import load_all

STEPS = load_all()


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_every_step_op_has_a_row_and_every_row_a_step():
    assert set(STEPS) == set(ops.OPS)


@pytest.mark.parametrize("op", sorted(ops.OPS))
def test_row_names_its_step_and_reference(op):
    row = ops.OPS[op]
    assert row.op == op
    assert STEPS[op].__module__ == row.step
    if row.movement:
        assert not row.integer_arith
        return
    if row.reference == ops.STEP_IS_REFERENCE:
        # the step itself is plain NumPy: it calls no Numba kernel
        src = inspect.getsource(STEPS[op])
        assert "kernels" not in src and "ek." not in src
        return
    ref = _resolve(row.reference)
    assert callable(ref)
    if row.reference.startswith("kernels."):
        assert row.reference.endswith("_ref"), "a kernel's reference is its NumPy `_ref` twin"


@pytest.mark.parametrize("op", sorted(ops.OPS))
def test_row_facts_use_known_kinds(op):
    row = ops.OPS[op]
    assert row.batch in ops.BATCH_KINDS
    assert row.qdq_rule in ops.QDQ_KINDS + ("",)
    assert bool(row.qdq_rule) == bool(row.qdq_from)
    assert row.weights in ops.WEIGHT_LAYOUTS + (None,)
    assert all(isinstance(i, int) for i in row.scale_inputs)


def test_qdq_forms_lower_to_one_op_each():
    seen = [t for r in ops.OPS.values() for t in r.qdq_from]
    assert len(seen) == len(set(seen))
    assert ops.qdq_target("Conv") == "conv" and ops.qdq_target("Gemm") == "matmul"
    assert ops.qdq_target("Reshape") is None


def test_scale_positions():
    assert ops.OPS["conv"].scale_positions(9) == (1, 4, 6)
    assert ops.OPS["conv"].zp_positions(9) == (2, 5, 7)
    assert ops.OPS["quantize"].scale_positions(2) == (1,)
    # concat: y_scale, y_zp, then (x, x_scale, x_zp) per input
    assert ops.OPS["concat"].scale_positions(8) == (0, 3, 6)
    assert ops.OPS["concat"].zp_positions(8) == (1, 4, 7)
    assert ops.OPS["onnx"].scale_positions(3) == ()


def test_k_and_channel_axes():
    conv = Node("conv", "c", (), (), {}, "")
    w = np.zeros((8, 3, 3, 3), np.int8)
    assert ops.products_per_output(conv, w) == 27
    assert ops.w_channel_axis(conv, w) == 0 and ops.out_channel_axis(conv, 4) == 1
    mm = Node("matmul", "m", (), (), {"transB": 1}, "")
    w = np.zeros((10, 5), np.int8)                     # N x K
    assert ops.products_per_output(mm, w) == 5 and ops.w_channel_axis(mm, w) == 0
    mm = Node("matmul", "m", (), (), {}, "")
    assert ops.products_per_output(mm, w) == 10 and ops.w_channel_axis(mm, w) == 1
    assert ops.out_channel_axis(mm, 3) == 2


def test_quantization_ops_are_not_dumped():
    assert {op for op, r in ops.OPS.items() if not r.dumped} == {"quantize", "dequantize", "dynamic_quantize"}


def test_accumulating_ops_are_conv_and_matmul():
    assert {op for op in ops.OPS if ops.accumulates(op)} == {"conv", "matmul"}


def test_nhwc_readers():
    assert ops.reads_nhwc(Node("conv", "c", (), (), {}, ""))
    assert ops.reads_nhwc(Node("add", "a", (), (), {}, ""))
    for op in ("mul", "lut", "global_avgpool"):     # elementwise/table steps keep their input's layout
        assert ops.reads_nhwc(Node(op, "m", (), (), {}, ""))
    for op in ("concat", "matmul", "dequantize", "quantize"):
        assert not ops.reads_nhwc(Node(op, "n", (), (), {}, ""))
    assert ops.reads_nhwc(Node("onnx", "p", (), (), {"op_type": "MaxPool"}, ""))
    assert not ops.reads_nhwc(Node("onnx", "r", (), (), {"op_type": "Reshape"}, ""))


def test_ops_module_imports_no_steps_or_targets():
    tree = ast.parse(open(ops.__file__).read())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert modules <= {"__future__", "dataclasses", "typing"}


def _lowerings() -> dict:
    import intsim.importer  # noqa: F401 - registers every lowering
    from intsim.importer.registry import LOWERINGS
    return LOWERINGS


def test_every_lowering_is_named_by_the_rows_it_emits():
    lowerings = _lowerings()
    named = {t for r in ops.OPS.values() for t in r.lowered_from}
    assert {op_type for _, op_type in lowerings} == named


@pytest.mark.parametrize("op", sorted(ops.OPS))
def test_lowered_from_lowerings_emit_the_op(op):
    lowerings = _lowerings()
    for op_type in ops.OPS[op].lowered_from:
        fns = {fn for (_, t), fn in lowerings.items() if t == op_type}
        assert fns, f"{op_type} has no lowering"
        assert all(f'"{op}"' in inspect.getsource(inspect.getmodule(fn)) for fn in fns)
