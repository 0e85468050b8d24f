import numpy as np
import onnx
import pytest

from intsim import cli
from intsim.quantize import pow2
from tests.quantize import nets


@pytest.fixture
def files(tmp_path):
    f = tmp_path / "f.onnx"
    onnx.save(nets.conv_net(), str(f))
    c = tmp_path / "c.npz"
    np.savez(c, x=nets.calib(16))
    return f, c, tmp_path


def test_cli_writes_model_and_report(files):
    f, c, d = files
    rc = cli.main(["quantize", str(f), "--calib", str(c), "--out", str(d / "q.onnx"), "--weight-bits", "4",
                   "--scale", "pow2", "--granularity", "tensor", "--range", "msqe", "--cle",
                   "--bias-correction", "--report", str(d / "r.html"), "--quiet"])
    assert rc == 0
    m = onnx.load(str(d / "q.onnx"))
    scales = [t for t in m.graph.initializer if t.name.endswith("_scale")]
    assert scales and all(pow2.is_pow2(onnx.numpy_helper.to_array(t)) for t in scales)
    assert (d / "r.html").read_text().startswith("<!doctype html>")


@pytest.mark.parametrize("extra", [["--range", "bogus"], ["--weight-bits", "1"]])
def test_cli_bad_options_exit_2(files, extra, capsys):
    f, c, d = files
    assert cli.main(["quantize", str(f), "--calib", str(c), "--out", str(d / "q.onnx"), "--quiet"] + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("intsim quantize:")


def test_cli_missing_files_exit_2(files):
    f, c, d = files
    assert cli.main(["quantize", str(d / "nope.onnx"), "--calib", str(c), "--out", str(d / "q.onnx")]) == 2
    assert cli.main(["quantize", str(f), "--calib", str(d / "nope.npz"), "--out", str(d / "q.onnx")]) == 2
