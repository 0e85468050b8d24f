"""Acceptance 1: every ONNX backend node case of the integer quantization ops runs through
intsim.load(...).run(...) and matches the expected outputs exactly."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest

import intsim

OPS = ("quantizelinear", "dequantizelinear", "qlinearconv", "qlinearmatmul", "convinteger",
       "matmulinteger", "dynamicquantizelinear")
FLOAT_FORMATS = ("e4m3fn", "e5m2", "float4e2m1", "float8")


def _cases():
    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    out = []
    for c in cases:
        base = c.name[len("test_"):]
        if not any(base == op or base.startswith(op + "_") for op in OPS):
            continue
        if base.endswith("_expanded") or any(f in base for f in FLOAT_FORMATS):
            continue
        out.append(c)
    return out


CASES = _cases()


def _arr(v):
    """Data sets hold arrays, or TensorProtos for the sub-byte types."""
    if isinstance(v, onnx.TensorProto):
        from intsim.importer.context import to_numpy
        return to_numpy(v)
    return np.asarray(v)


def test_the_case_list_covers_every_op():
    names = {c.name for c in CASES}
    for op in OPS:
        assert any(n == f"test_{op}" or n.startswith(f"test_{op}_") for n in names), op
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_backend_case(case):
    prog = intsim.load(case.model)
    ins = [i.name for i in case.model.graph.input]
    outs = [o.name for o in case.model.graph.output]
    for inputs, expected in case.data_sets:
        inputs, expected = [_arr(i) for i in inputs], [_arr(e) for e in expected]
        got = prog.run(dict(zip(ins, inputs)))
        for name, exp in zip(outs, expected):
            exp = np.asarray(exp)
            g = got[name]
            if exp.dtype.kind not in "iufb":  # int4/uint4/int2 are ml_dtypes arrays
                exp = exp.astype(np.int16)
            assert g.shape == exp.shape, (name, g.shape, exp.shape)
            if exp.dtype.kind == "f":
                assert g.dtype == exp.dtype, (name, g.dtype, exp.dtype)
            np.testing.assert_array_equal(g.astype(exp.dtype) if exp.dtype.kind != "f" else g, exp)
            if exp.dtype.kind in "iu":
                assert np.array_equal(g.astype(np.int64), exp.astype(np.int64))
