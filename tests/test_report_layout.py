"""Issue 20, reports and newcomer papercuts: what can be checked without a browser.

The three HTML reports fit a 1200 px page (chart widths, max-width:100%), the verify report
says in words that there is nothing to chart when every element is exact, the overflow sweep
chart and quantize's histograms carry numbered axes; `info` names the ONNX op of nodes left as
ONNX and counts the same MACs on a QOperator model as on its QDQ twin; the verify progress bar
is redrawn at most every PROGRESS_INTERVAL seconds and honours --quiet."""
from __future__ import annotations

import argparse
import base64
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from intsim.overflow import report as overflow_report
from intsim.verify import core as verify_core
from intsim.verify import report as verify_report

MODELS = Path(__file__).resolve().parent.parent / "models"
PAGE = 1200


def _tensor(i: int, exact: float, lsb: int) -> dict:
    hist = {"0": 100} if lsb == 0 else {"0": 90, "1": 8, "-1": 2}
    return {"tensor": f"/features/features.{i}/body/body.0/body.0.0/Conv_output_0", "node": f"/features.{i}/Conv",
            "op": "conv", "elements": 1000, "exact_fraction": exact, "max_abs_lsb": lsb, "histogram": hist,
            "isolated": {"exact_fraction": exact, "max_abs_lsb": lsb, "histogram": hist}}


def _verify_dict(n: int, exact: bool) -> dict:
    tensors = [_tensor(i, 1.0 if exact else 0.9 - i / (10 * n), 0 if exact else 1 + i % 5) for i in range(n)]
    classes = {c: {"count": 0 if exact else 3, "share": 0.0 if exact else 0.5} for c in ("tie", "propagated")}
    return {"model": "m.onnx", "target": "ort", "reference": "ort-fakequant", "samples": 8, "passed": exact,
            "outputs": {"y": {"elements": 80, "exact_fraction": 1.0 if exact else 0.5, "max_abs_lsb": 0 if exact else 3}},
            "tensors": tensors, "first_divergence": None,
            "explanations": {"whole_model": {"classes": classes}}, "criteria": {}}


def _png_widths(page: str) -> list:
    """Pixel widths of the embedded PNGs (from each IHDR chunk)."""
    out = []
    for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        head = base64.b64decode(b64[:64])
        out.append(struct.unpack(">I", head[16:20])[0])
    return out


@pytest.mark.parametrize("layers", [3, 67, 250])
def test_verify_charts_fit_a_1200px_page(layers):
    pytest.importorskip("matplotlib")
    page = verify_report.render(_verify_dict(layers, exact=False))
    widths = _png_widths(page)
    assert len(widths) >= 3                       # two bar charts and histograms
    assert max(widths) <= PAGE - 100, widths      # the body margins and a scroll bar still fit
    assert "max-width:100%" in page
    assert verify_report.NOTHING_TO_CHART not in page


def test_verify_report_on_an_exact_run_says_there_is_nothing_to_chart():
    page = verify_report.render(_verify_dict(20, exact=True))
    assert page.count(verify_report.NOTHING_TO_CHART) == 2     # per-layer charts and histograms
    assert "<img" not in page
    assert "/features.19/Conv" in page                        # the per-layer table stays


def _overflow_dict(sweep: bool) -> dict:
    layers = [{"node": f"/features/features.{i}/features.{i}.0/Conv" * 2, "op": "conv", "k": 144,
               "bits": {"datatype": 25, "weights": 23, "a2q": 24, "observed": 19}, "observed_min": -1,
               "observed_max": 1, "overflow_events": 0, "headroom_bits": 13} for i in range(4)]
    rep = {"model": "m.onnx", "acc_bits": 32, "acc_overflow": "wrap", "target": "ort", "samples": 64,
           "summary": {"datatype": 25, "weights": 23, "a2q": 24, "observed": 19}, "layers": layers}
    if sweep:
        rows = [{"mode": m, "bits": b, "mismatch": max(0.0, min(1.0, (19 - b) / 4)), "events": 0,
                 "accuracy": 0.9} for m in ("wrap", "saturate") for b in range(12, 25)]
        rep["sweep"] = {"samples": 64, "rows": rows, "narrowest": {"wrap": 19, "saturate": 19},
                        "reference_accuracy": 0.9}
    return rep


def test_overflow_report_charts_fit_and_the_sweep_has_y_numbers():
    page = overflow_report.render(_overflow_dict(sweep=True))
    svgs = re.findall(r"<svg[^>]*>", page)
    assert len(svgs) == 3
    for tag in svgs:
        assert int(re.search(r' width="(\d+)"', tag).group(1)) <= PAGE - 100
        assert "viewBox" in tag
    assert "svg{max-width:100%" in page
    for chart in re.findall(r'<svg class="sweep".*?</svg>', page):
        yt = re.findall(r'class="ytick"[^>]*>([^<]+)<', chart)
        assert yt == ["0", "0.25", "0.5", "0.75", "1"]
        assert "accumulator width (bits)" in chart and ">wrap<" in chart and ">saturate<" in chart
    # two sweep charts side by side still fit the page's content box (1200 - 2 x 2em margins)
    w = sum(int(re.search(r' width="(\d+)"', t).group(1)) for t in svgs if 'class="sweep"' in t)
    assert w + 2 * 16 <= PAGE - 2 * 28


def test_info_names_onnx_ops_and_counts_qoperator_macs_like_qdq():
    from intsim.info import describe, layers
    from intsim.pipeline import import_onnx
    g = import_onnx(MODELS / "digits_cnn.qdq_u8_pc.onnx")
    text = describe(g)
    assert "MaxPool (uint8, moves integers)  /features/features.2/MaxPool" in text
    assert "Flatten (uint8, moves integers)  /Flatten" in text
    assert "inputs: input [?, 1, 8, 8] float32" in text
    assert " onnx " not in text
    qop, qdq = (import_onnx(MODELS / f"mobilenetv2_s.{k}.onnx") for k in ("qop_u8", "qdq_u8_pc"))
    macs = [[r["macs"] for r in layers(g) if "macs" in r] for g in (qop, qdq)]
    assert None not in macs[0] and len(macs[0]) == len(macs[1])
    assert sum(macs[0]) == sum(macs[1]) == 10_666_928
    assert "inputs: input [?, 3, 96, 96] float32" in describe(qop)
    assert describe(qop).splitlines()[0].endswith("10,666,928 MACs per sample")


def test_info_float_model_labels_float_islands():
    from intsim.info import describe
    from intsim.pipeline import import_onnx
    text = describe(import_onnx(MODELS / "digits_cnn.onnx"))
    assert "Conv (float32, float island)" in text


def test_progress_bar_is_redrawn_at_most_every_interval(capsys, monkeypatch):
    clock = iter(np.arange(0.0, 100.0, 0.1))
    monkeypatch.setattr(verify_core.time, "monotonic", lambda: float(next(clock)))
    bar = verify_core.progress_bar(100, True)
    for _ in range(100):
        bar.step(1)                  # 0.1 s apart: a redraw every 5th step, and the last one
    err = capsys.readouterr().err
    draws = err.count("\rverify [")
    assert 18 <= draws <= 22, err
    assert err.endswith("\n") and "100/100 samples" in err
    quiet = verify_core.progress_bar(10, False)
    quiet.step(10)
    assert capsys.readouterr().err == ""


def test_progress_run_gives_the_same_report_and_moves_per_sample(capsys, monkeypatch):
    monkeypatch.setattr(verify_core, "PROGRESS_INTERVAL", 0.0)      # every chunk redraws
    model = MODELS / "digits_cnn.qdq_s8_pt.onnx"
    a = verify_core.verify(model, random=12, reference="ort-fakequant").as_dict()
    capsys.readouterr()
    b = verify_core.verify(model, random=12, reference="ort-fakequant", progress=True).as_dict()
    err = capsys.readouterr().err
    assert a == b
    assert "\rverify [" in err and "1/12 samples" in err and "12/12 samples" in err


@pytest.mark.parametrize("argv,tty,want", [
    ([], True, True), ([], False, False), (["--quiet"], True, False), (["--no-progress"], True, False),
    (["--progress"], False, True), (["--progress", "--quiet"], False, False)])
def test_verify_progress_only_on_a_terminal_and_not_with_quiet(argv, tty, want, monkeypatch):
    from intsim.cli import common
    monkeypatch.setattr(common.sys.stderr, "isatty", lambda: tty, raising=False)
    p = argparse.ArgumentParser()
    p.add_argument("--progress", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    common.add_common(p)
    assert common.show_progress(p.parse_args(argv)) is want


CHROMIUM = "/usr/bin/chromium"
_MEASURE = """<script>window.addEventListener('load', function () {
  document.body.setAttribute('data-scroll-width', document.documentElement.scrollWidth);
  var w = 0, els = document.querySelectorAll('img, svg');
  for (var i = 0; i < els.length; i++) w = Math.max(w, els[i].getBoundingClientRect().right);
  document.body.setAttribute('data-chart-right', Math.ceil(w));
});</script>"""


def _layout_in_chromium(tmp_path, name: str, page: str) -> tuple:
    """(document scroll width, right edge of the rightmost chart) of `page` in headless
    Chromium with a 1200 px wide window."""
    import subprocess
    path = tmp_path / f"{name}.html"
    path.write_text(page.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", f"--user-data-dir={tmp_path / ('profile-' + name)}",
                        f"--window-size={PAGE},2000", "--dump-dom", path.as_uri()],
                       capture_output=True, text=True, timeout=120, check=False)
    m = re.search(r'data-scroll-width="(\d+)" data-chart-right="(\d+)"', r.stdout)
    assert m, r.stdout[:500] + r.stderr[-500:]
    return int(m.group(1)), int(m.group(2))


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
def test_the_three_reports_fit_1200px_in_chromium(tmp_path):
    pytest.importorskip("matplotlib")
    from intsim.quantize import quantize
    from intsim.quantize import report as quantize_report
    from tests.quantize import nets
    res = quantize(nets.conv_net(depthwise=True), nets.calib(16), learn_scales=True, lsq_steps=5)
    pages = {"verify": verify_report.render(_verify_dict(120, exact=False)),
             "overflow": overflow_report.render(_overflow_dict(sweep=True)),
             "quantize": quantize_report.render(res)}
    for name, page in pages.items():
        scroll, right = _layout_in_chromium(tmp_path, name, page)
        assert scroll <= PAGE and right <= PAGE, (name, scroll, right)
        assert right > 200, (name, right)          # the charts are there
