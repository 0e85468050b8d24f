"""Issue 20, internal errors turned into clean ones: each case below once ended in
"internal error (...)"; now it works (batch of 0) or is refused with a named error."""
from __future__ import annotations

import numpy as np
import pytest

import intsim
from intsim import errors
from intsim.quantize.pipeline import read_calibration
from tests.hostile import models as M
from tests.hostile.conftest import one_line_error


# ------------------------------------------------------------------ a batch of 0
def test_batch_of_zero_returns_empty_outputs_like_onnxruntime(digits):
    from tests.ortutil import run_ort
    import onnx
    x = np.zeros((0, 1, 8, 8), np.float32)
    got = intsim.load(digits["model"]).run({"input": x})
    want = run_ort(onnx.load(digits["model"]), {"input": x})
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in want.items()} == {"logits": (0, 10)}
    assert got["logits"].dtype == want["logits"].dtype


def test_batch_of_zero_with_taps(digits):
    outs, taps = intsim.load(digits["model"]).run({"input": np.zeros((0, 1, 8, 8), np.float32)}, taps=True)
    assert outs["logits"].shape == (0, 10)
    assert all(v.shape[:1] == (0,) for t in taps.values() for v in t["outputs"].values() if v.ndim)
    assert all(not t.get("acc_max", np.zeros(1)).any() for t in taps.values())


def test_zero_size_off_the_batch_axis_is_refused():
    m = M.qdq_conv()
    with pytest.raises(errors.ShapeError) as e:
        intsim.load(m.SerializeToString()).run({"x": np.zeros((2, 1, 0, 4), np.float32)})
    assert str(e.value).startswith("input 'x' has shape (2, 1, 0, 4)")


def test_batch_of_zero_on_the_cli(cli, digits):
    out = digits["dir"] / "o.npz"
    rc, stdout, _ = cli("run", digits["model"], "--input", digits["x0"], "--output", out)
    assert rc == 0 and stdout.strip() == "logits: float32 [0, 10]"
    assert np.load(out)["logits"].shape == (0, 10)


@pytest.mark.parametrize("cmd", ["dump", "overflow", "verify"])
def test_dump_overflow_verify_refuse_zero_samples(cli, digits, cmd):
    extra = ["--out", digits["dir"] / "d"] if cmd == "dump" else []
    rc, stdout, err = cli(cmd, digits["model"], "--input", digits["x0"], *extra)
    assert rc == 2 and "PASSED" not in stdout
    assert one_line_error(err) == f"'{digits['x0']}' holds 0 samples: input 'input' has shape (0, 1, 8, 8)"


def test_verify_library_refuses_zero_samples(digits):
    with pytest.raises(errors.IntsimError) as e:
        intsim.verify(digits["model"], {"input": np.zeros((0, 1, 8, 8), np.float32)})
    assert str(e.value) == "no samples to compare: input 'input' has shape (0, 1, 8, 8)"


# ------------------------------------------------------------------ verify inputs
def test_verify_random_huge_is_limited_before_allocating(cli, digits):
    rc, _, err = cli("verify", digits["model"], "--random", 1000000000)
    assert rc == 2
    assert one_line_error(err) == ("--random 1000000000: samples of input 'input': shape [1000000000, 1, 8, 8] has "
                                   "64000000000 elements, above the limit of 268435456 (INTSIM_MAX_ELEMENTS)")


@pytest.mark.parametrize("second,msg", [
    ({"input": (2, 1, 9, 8)}, "folder '{d}': input 'input' has sample shape (1, 9, 8) in 'b.npz' but (1, 8, 8) in 'a.npz'"),
    ({"other": (2, 1, 8, 8)}, "folder '{d}': 'b.npz' holds inputs ['other'], 'a.npz' holds ['input']"),
], ids=["shapes", "keys"])
def test_verify_input_folder_whose_files_differ(cli, digits, tmp_path, second, msg):
    d = tmp_path / "f"
    d.mkdir()
    np.savez(d / "a.npz", input=np.zeros((2, 1, 8, 8), np.float32))
    np.savez(d / "b.npz", **{k: np.zeros(v, np.float32) for k, v in second.items()})
    rc, _, err = cli("verify", digits["model"], "--input", d)
    assert rc == 2
    assert one_line_error(err) == msg.format(d=d)


# ------------------------------------------------------------------ NaN parameters and data
def test_qonnx_bit_width_nan():
    with pytest.raises(errors.QuantParamError) as e:
        intsim.load(M.qonnx_quant(float("nan")).SerializeToString())
    assert str(e.value) == "node 'quant': bit width nan must be an integer in 1..32"


def test_quantize_calibration_with_nan():
    x = np.ones((4, 1, 8, 8), np.float32)
    x[1, 0, 2, 3] = np.nan
    with pytest.raises(errors.IntsimError) as e:
        read_calibration({"input": x}, ["input"])
    assert str(e.value) == ("calibration data for input 'input' holds 1 NaN or infinite value(s) "
                            "(the first at index (1, 0, 2, 3))")


def test_quantize_cli_calibration_with_nan(cli, digits, tmp_path):
    x = np.ones((4, 1, 8, 8), np.float32)
    x[0, 0, 0, 1] = np.inf
    np.savez(tmp_path / "c.npz", input=x)
    rc, _, err = cli("quantize", digits["float"], "--calib", tmp_path / "c.npz", "--out", tmp_path / "q.onnx")
    assert rc == 2 and not (tmp_path / "q.onnx").exists()
    assert err.strip() == ("intsim quantize: calibration data for input 'input' holds 1 NaN or infinite value(s) "
                           "(the first at index (0, 0, 0, 1))")
