import numpy as np

from intsim.quantize import quantize, report
from tests.quantize import nets


def test_report_shows_every_layer_and_method(tmp_path):
    path = tmp_path / "r.html"
    res = quantize(nets.conv_net(depthwise=True), nets.calib(32), weight_bits=4, scale="pow2",
                   learn_scales=True, lsq_steps=10, adaround=True, adaround_steps=20, report=path)
    text = path.read_text()
    for layer in ("conv1", "dw2", "pw3", "fc"):
        assert f"<h2>{layer} " in text
    for m in ("minmax", "msqe", "percentile:99.9", "mse-output"):
        assert text.count(f">{m}</td>") == 4
    assert text.count("<svg") == 4 * 3          # histogram + trajectory + loss per layer
    assert "AdaRound: output error nearest" in text
    for rep in res.layers:                       # MSQE never above min-max's in the report
        assert rep.methods["msqe"]["msqe"] <= rep.methods["minmax"]["msqe"]


def test_histogram_draws_clip_lines():
    svg = report.svg_histogram(*np.histogram(np.linspace(-1, 1, 50), bins=5), {"minmax": 1.0, "msqe": 0.5})
    assert svg.count("<line") == 4 and svg.count("<rect") == 5
