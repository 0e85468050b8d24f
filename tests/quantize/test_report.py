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
    assert "max-width:100%" in text
    assert "AdaRound: output error nearest" in text
    for rep in res.layers:                       # MSQE never above min-max's in the report
        assert rep.methods["msqe"]["msqe"] <= rep.methods["minmax"]["msqe"]


def test_histogram_draws_clip_lines():
    svg = report.svg_histogram(*np.histogram(np.linspace(-1, 1, 50), bins=5), {"minmax": 1.0, "msqe": 0.5})
    assert svg.count('<line class="clip"') == 4 and svg.count('<rect class="bar"') == 5


def test_histogram_has_numbered_axes_and_fits_the_page():
    """Issue 20: the histograms had no axis ticks. Weight values below, counts at the left."""
    import re
    counts, edges = np.histogram(np.random.default_rng(0).standard_normal(5000) * 0.3, bins=40)
    svg = report.svg_histogram(counts, edges, {"minmax": 1.2})
    xt = re.findall(r'class="xtick"[^>]*>([^<]+)<', svg)
    yt = re.findall(r'class="ytick"[^>]*>([^<]+)<', svg)
    assert len(xt) >= 3 and "0" in xt and all(float(v) for v in xt if v != "0")
    assert "1" in yt and "100" in yt
    assert int(re.search(r'<svg[^>]* width="(\d+)"', svg).group(1)) <= 1100
    lines = report.svg_lines({"loss": np.linspace(3, 1, 50)}, ylabel="loss")
    assert re.findall(r'class="xtick"[^>]*>([^<]+)<', lines)[0] == "0"
    assert len(re.findall(r'class="ytick"', lines)) >= 2
