"""Issue 20: every CLI command checks its output paths before any work starts. The model
given here does not exist, so a command that loaded it first would name the model instead."""
from __future__ import annotations

import pytest

from tests.hostile.conftest import one_line_error

CASES = [  # (command args before the output flag, flag)
    (["info", "{model}"], "--json"),
    (["run", "{model}", "--input", "{x}"], "--output"),
    (["verify", "{model}", "--random", "2"], "--json"),
    (["verify", "{model}", "--random", "2"], "--report"),
    (["overflow", "{model}"], "--json"),
    (["overflow", "{model}"], "--report"),
    (["overflow", "{model}", "--sweep", "20:24", "--input", "{x}"], "--plot"),
    (["bench", "--suite", "gemm"], "--json"),
    (["quantize", "{model}", "--calib", "{x}"], "--out"),
]


def _args(cmd, tmp_path):
    return [a.format(model=tmp_path / "missing.onnx", x=tmp_path / "x.npz") for a in cmd]


@pytest.mark.parametrize("cmd,flag", CASES, ids=[f"{c[0]}{f}" for c, f in CASES])
def test_missing_output_folder_is_refused_first(cli, tmp_path, cmd, flag):
    dest = tmp_path / "nope" / "out.file"
    extra = ["--out", tmp_path / "q.onnx"] if cmd[0] == "quantize" and flag != "--out" else []
    rc, _, err = cli(*_args(cmd, tmp_path), flag, dest, *extra)
    assert rc == 2
    msg = f"{flag} '{dest}': folder '{tmp_path / 'nope'}' does not exist"
    assert (err.strip() == f"intsim quantize: {msg}") if cmd[0] == "quantize" else one_line_error(err) == msg


@pytest.mark.parametrize("cmd,flag", CASES, ids=[f"{c[0]}{f}" for c, f in CASES])
def test_output_that_is_a_folder_is_refused_first(cli, tmp_path, cmd, flag):
    rc, _, err = cli(*_args(cmd, tmp_path), flag, tmp_path)
    assert rc == 2
    msg = f"{flag} '{tmp_path}' is a folder, not a file"
    assert (err.strip() == f"intsim quantize: {msg}") if cmd[0] == "quantize" else one_line_error(err) == msg


def test_quantize_report_checked_first(cli, tmp_path):
    dest = tmp_path / "nope" / "r.html"
    rc, _, err = cli("quantize", tmp_path / "missing.onnx", "--calib", tmp_path / "x.npz",
                     "--out", tmp_path / "q.onnx", "--report", dest)
    assert rc == 2
    assert err.strip() == f"intsim quantize: --report '{dest}': folder '{tmp_path / 'nope'}' does not exist"


def test_dump_out_that_is_a_file_is_refused_first(cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    rc, _, err = cli("dump", tmp_path / "missing.onnx", "--input", tmp_path / "x.npz", "--out", f)
    assert rc == 2
    assert one_line_error(err) == f"--out '{f}' exists and is not a folder"


def test_verify_report_folder_after_a_real_model(cli, digits):
    """The case of the issue: a real model and inputs, --report pointed at a folder."""
    rc, _, err = cli("verify", digits["model"], "--input", digits["x2"], "--report", digits["dir"])
    assert rc == 2
    assert one_line_error(err) == f"--report '{digits['dir']}' is a folder, not a file"
