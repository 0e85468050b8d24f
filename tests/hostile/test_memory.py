"""Issue 20, memory before limits: a step that allocates estimates its output first, so a
hostile shape is refused before anything large exists."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import intsim
from intsim import errors, limits
from tests.hostile import models as M
from tests.hostile.conftest import ROOT


def test_integer_pad_is_refused_before_np_pad():
    m = M.qdq_pad([0, 0, 0, 0, 0, 0, 40000, 40000])
    with limits.limited(max_elements=1 << 20):
        prog = intsim.load(m.SerializeToString())
    with pytest.raises(errors.ResourceLimitError) as e:
        prog.run({"x": np.zeros((1, 1, 4, 4), np.float32)})
    assert str(e.value) == ("Pad (node 'pad', opset 13): output 'pq' of Pad: shape [1, 1, 40004, 40004] has "
                            "1600320016 elements, above the limit of 1048576 (INTSIM_MAX_ELEMENTS)")


def test_integer_pad_within_limits_still_runs():
    m = M.qdq_pad([0, 0, 1, 2, 0, 0, 3, 4])
    out = intsim.load(m.SerializeToString()).run({"x": np.ones((2, 1, 4, 4), np.float32)})
    assert out["y"].shape == (2, 1, 8, 10)


CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {root!r})
    import intsim
    from intsim import errors
    from tests.hostile import models as M
    m = M.qdq_pad([0, 0, 0, 0, 0, 0, 60000, 60000])      # 3.6e9 int8 elements: 13x the limit
    try:
        intsim.load(m.SerializeToString()).run({{"x": np.zeros((1, 1, 4, 4), np.float32)}})
        print("ran")
    except errors.ResourceLimitError as e:
        print("refused", e)
    # peak RSS of this process only: ru_maxrss would carry over the parent's peak through fork+exec
    print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) * 1024)
""")


def test_pad_peak_rss_stays_under_the_limit():
    limit = 1 << 28            # elements of int8: 256 MiB
    env = dict(os.environ, INTSIM_MAX_ELEMENTS=str(limit), PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT)], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("refused Pad (node 'pad', opset 13): output 'pq' of Pad: shape [1, 1, 60004, 60004]")
    assert int(lines[-1]) < 1.5 * limit, f"peak RSS {int(lines[-1]) >> 20} MiB"


def test_integer_add_broadcast_is_refused_before_allocating():
    m = M.qdq_add([None, 1], [1, None])
    with limits.limited(max_elements=1 << 20):
        prog = intsim.load(m.SerializeToString())
    assert prog.run({"a": np.ones((3, 1), np.float32), "b": np.ones((1, 5), np.float32)})["y"].shape == (3, 5)
    with pytest.raises(errors.ResourceLimitError) as e:
        prog.run({"a": np.ones((4096, 1), np.float32), "b": np.ones((1, 4096), np.float32)})
    assert str(e.value) == ("node 'add': broadcast of [4096, 1] and [1, 4096] to 'yq': shape [4096, 4096] has "
                            "16777216 elements, above the limit of 1048576 (INTSIM_MAX_ELEMENTS)")


@pytest.mark.parametrize("target", ["pow2", "tflite"])
def test_integer_add_broadcast_is_refused_on_the_target_rule_paths(target):
    # pow2's shift-aligned add (int64 accumulator) and TFLite's fixed-point ADD broadcast too
    m = M.qdq_add([None, 1], [1, None])
    with limits.limited(max_elements=1 << 20):
        prog = intsim.load(m.SerializeToString(), target=target)
    assert prog.run({"a": np.ones((3, 1), np.float32), "b": np.ones((1, 5), np.float32)})["y"].shape == (3, 5)
    with pytest.raises(errors.ResourceLimitError) as e:
        prog.run({"a": np.ones((4096, 1), np.float32), "b": np.ones((1, 4096), np.float32)})
    assert str(e.value) == ("node 'add': broadcast of [4096, 1] and [1, 4096] to 'yq': shape [4096, 4096] has "
                            "16777216 elements, above the limit of 1048576 (INTSIM_MAX_ELEMENTS)")


def test_batched_matmul_broadcast_of_b_is_refused_before_copying():
    m = M.qdq_matmul((1, 512, 512))
    with limits.limited(max_elements=1 << 24):
        prog = intsim.load(m.SerializeToString())
    assert prog.run({"x": np.ones((3, 1, 512), np.float32)})["y"].shape == (3, 1, 512)
    with pytest.raises(errors.ResourceLimitError) as e:
        prog.run({"x": np.ones((4096, 1, 512), np.float32)})
    assert str(e.value) == ("node 'matmul': B 'w' broadcast: shape [4096, 512, 512] has 1073741824 elements, "
                            "above the limit of 16777216 (INTSIM_MAX_ELEMENTS)")


def test_dequantize_to_float_is_refused_before_allocating():
    """DequantizeLinear widens 1-byte codes to 4-byte floats: its output is checked against the
    byte limit before it exists (the input itself is within the limit)."""
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq")], "dq",
                          [helper.make_tensor_value_info("q", TensorProto.UINT8, [1, 1000, 1000])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1000, 1000])],
                          [helper.make_tensor("s", TensorProto.FLOAT, [], [0.5]),
                           helper.make_tensor("z", TensorProto.UINT8, [], [3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    q = np.zeros((1, 1000, 1000), np.uint8)
    with limits.limited(max_bytes=2_000_000):
        prog = intsim.load(m.SerializeToString())
        with pytest.raises(errors.ResourceLimitError) as e:
            prog.run({"q": q})
    # (the check after a step would name it "DequantizeLinear (node 'dq', opset 13): output 'y'")
    assert str(e.value) == "node 'dq': output 'y': 4000000 bytes, above the limit of 2000000 (INTSIM_MAX_BYTES)"
