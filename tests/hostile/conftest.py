"""Fixtures of the hostile suite: the CLI run in-process, small models written to tmp_path."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QDQ = os.path.join(ROOT, "models", "digits_cnn.qdq_s8_pt.onnx")
FLOAT = os.path.join(ROOT, "models", "digits_cnn.onnx")


@pytest.fixture
def cli(capsys):
    """cli(*args) -> (exit code, stdout, stderr) of `intsim ARGS`, run in this process."""
    from intsim.cli import main

    def run(*args):
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err
    return run


def one_line_error(err: str) -> str:
    """The single stderr line of a refused command, without the 'intsim: error: ' prefix."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "internal error" not in lines[0], lines[0]
    return lines[0].split(": ", 2)[-1] if lines[0].startswith("intsim: error: ") else lines[0]


@pytest.fixture
def digits(tmp_path):
    """Paths: the committed QDQ digits model and .npz inputs with 2 and 0 samples."""
    rng = np.random.default_rng(0)
    two, zero = tmp_path / "x2.npz", tmp_path / "x0.npz"
    np.savez(two, input=rng.random((2, 1, 8, 8), dtype=np.float32))
    np.savez(zero, input=np.zeros((0, 1, 8, 8), np.float32))
    return {"model": QDQ, "float": FLOAT, "x2": str(two), "x0": str(zero), "dir": tmp_path}


def save(model: onnx.ModelProto, path) -> str:
    onnx.save(model, str(path))
    return str(path)
