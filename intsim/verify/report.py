"""The `intsim verify --report F.html` page: one self-contained HTML file (charts are PNGs
drawn by matplotlib and embedded as base64 data URIs; no external resource is loaded).

Contents: the summary, the first-divergence node with its inputs' quant params, per-layer bar
charts of the exact fraction and max |d| (whole-model and layer-isolated views), the class
shares of the mismatches, and a histogram of d for every tensor that has mismatches.
An inline script writes, once the page has loaded, the number of charts whose image decoded
(naturalWidth > 0) into `body[data-charts-loaded]` (and `data-charts-total`).
"""
from __future__ import annotations

import base64
import html
import io

MAX_HISTOGRAMS = 24
DPI = 80
MAX_FIG_WIDTH_IN = 13.5      # 1080 px at DPI: a chart fits a 1200 px page with its margins
NOTHING_TO_CHART = ("Every element of every compared tensor is exact (whole model and layer isolated): "
                    "there are no differences to chart.")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.1)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img class="chart" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _bars(tensors: list, key: str, title: str, ylabel: str) -> str:
    import matplotlib.pyplot as plt
    n = max(len(tensors), 1)
    fig, ax = plt.subplots(figsize=(min(max(6.0, 2 + 0.18 * n), MAX_FIG_WIDTH_IN - 0.5), 3.2))
    xs = range(len(tensors))
    whole = [t[key] for t in tensors]
    iso = [(t["isolated"] or {}).get(key, 0) for t in tensors]
    ax.bar([x - 0.2 for x in xs], whole, width=0.4, label="whole model")
    ax.bar([x + 0.2 for x in xs], iso, width=0.4, label="layer isolated")
    ax.set_ylabel(ylabel)
    ax.set_xlabel("layer (topological order)")
    if key == "exact_fraction":
        lo = min(whole + iso + [1.0])
        ax.set_ylim(max(0.0, lo - 0.05 * (1 - lo) - 1e-4), 1.0 + 1e-4)
        ax.ticklabel_format(axis="y", useOffset=False)
    else:
        ax.set_ylim(0, max(whole + iso + [1]) * 1.1)
    # above the axes, outside the bars; bbox_inches="tight" keeps it in the image
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.01), ncol=2, fontsize=8, frameon=False)
    ax.set_title(title, loc="left")
    return _png(fig)


def _histogram(entry: dict) -> str:
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(3.6, 2.4))
    for label, h in (("whole", entry["histogram"]), ("isolated", (entry["isolated"] or {}).get("histogram", {}))):
        if h:
            ks = sorted(int(k) for k in h)
            ax.bar([k + (-0.2 if label == "whole" else 0.2) for k in ks], [h[str(k)] for k in ks], width=0.4,
                   label=label, log=True)
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))     # d is a whole number of LSB
    name = entry["tensor"]
    ax.set_title(name if len(name) <= 40 else "…" + name[-39:], fontsize=8, pad=16)
    ax.set_xlabel("d = intsim - reference (LSB)", fontsize=8)
    # between the title and the axes: never over a bar
    ax.legend(fontsize=7, ncol=2, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False,
              borderaxespad=0.1)
    return _png(fig)


def _table(rows: list, head: list) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _first_divergence(fd) -> str:
    if fd is None:
        return "<p>No divergence: every compared tensor agrees.</p>"
    rows = [[i["tensor"], i["dtype"], _short(i.get("scale")), _short(i.get("zero_point")), i.get("axis")]
            for i in fd["inputs"]]
    return (f"<p id='first-divergence'>Node <b>{html.escape(fd['node'])}</b> ({html.escape(fd['op'])}, "
            f"{html.escape(fd['origin'])}) output <code>{html.escape(fd['tensor'])}</code>: "
            f"{fd['mismatches']} mismatches, max |d| {fd['max_abs_lsb']} LSB.</p>"
            + _table(rows, ["input", "dtype", "scale", "zero point", "axis"]))


def _consistency(rc) -> str:
    if not rc or rc.get("consistent", True):
        return ""
    rows = [[k, v["elements"], f"{v['exact_fraction']:.6f}", v["max_abs_lsb"]] for k, v in rc["outputs"].items()]
    return ("<p class='fail' id='reference-consistency'>The reference session with intermediate outputs exposed "
            "computes other final outputs than the plain (deployed) session: outputs are judged against the plain "
            "session, intermediate tensors only localize.</p>"
            + _table(rows, ["output", "elements", "exact fraction (tapped vs plain)", "max |d| (LSB)"]))


def _short(v) -> str:
    if v is None:
        return "-"
    return ", ".join(f"{x:.9g}" if isinstance(x, float) else str(x) for x in v[:4]) + (" ..." if len(v) > 4 else "")


def _shares(ex: dict) -> str:
    rows = []
    for view, d in ex.items():
        for cls, c in d["classes"].items():
            if c["count"]:
                rows.append([view, cls, c["count"], f"{100 * c['share']:.2f}%"])
    return _table(rows, ["view", "class", "mismatches", "share"]) if rows else "<p>No mismatches.</p>"


_SCRIPT = """<script>
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.chart'), ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    imgs[i].setAttribute('data-natural-width', imgs[i].naturalWidth);
    if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  }
  document.body.setAttribute('data-charts-loaded', ok);
  document.body.setAttribute('data-charts-total', imgs.length);
});
</script>"""

_STYLE = """<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}.pass{color:#070}.fail{color:#b00}
img.chart{display:block;margin:.5em 0;max-width:100%;height:auto}.hists img.chart{display:inline-block}
.nothing{font-style:italic}</style>"""


def all_exact(tensors: list) -> bool:
    """Every element of every compared tensor exact, in both views (nothing to chart)."""
    return all(t["exact_fraction"] == 1 and t["max_abs_lsb"] == 0
               and (not t["isolated"] or (t["isolated"]["exact_fraction"] == 1 and t["isolated"]["max_abs_lsb"] == 0))
               for t in tensors)


def render(rep: dict) -> str:
    """The report dict (VerifyReport.as_dict()) as a self-contained HTML page."""
    import matplotlib   # deferred (here and below): optional, and heavy to import
    matplotlib.use("Agg")
    tensors = rep["tensors"]
    status = "<span class='pass'>PASSED</span>" if rep["passed"] else "<span class='fail'>FAILED</span>"
    outs = [[k, v["elements"], f"{v['exact_fraction']:.6f}", v["max_abs_lsb"]] for k, v in rep["outputs"].items()]
    parts = [f"<h1>intsim verify: {html.escape(str(rep['model']))}</h1>",
             f"<p>{status} &middot; target <b>{html.escape(rep['target'])}</b> &middot; reference "
             f"<b>{html.escape(rep['reference'])}</b> &middot; {rep['samples']} samples</p>",
             "<h2>Outputs</h2>", _table(outs, ["output", "elements", "exact fraction", "max |d| (LSB)"]),
             _consistency(rep.get("reference_consistency")),
             "<h2>First divergence</h2>",
             _first_divergence(rep["first_divergence"]) if tensors else
             "<p>Nothing compared: the reference computes no intermediate tensor intsim holds.</p>",
             "<h2>Per layer</h2>"]
    exact = all_exact(tensors)
    if exact:
        parts.append(f"<p class='nothing'>{NOTHING_TO_CHART}</p>")
    elif tensors:
        parts.append(_img(_bars(tensors, "exact_fraction", "exact fraction per layer", "exact fraction"),
                          "exact fraction per layer"))
        parts.append(_img(_bars(tensors, "max_abs_lsb", "max |d| per layer", "LSB"), "max |d| per layer"))
    rows = [[i, t["node"], t["op"], t["elements"], f"{t['exact_fraction']:.6f}", t["max_abs_lsb"],
             f"{t['isolated']['exact_fraction']:.6f}" if t["isolated"] else "-",
             t["isolated"]["max_abs_lsb"] if t["isolated"] else "-"] for i, t in enumerate(tensors)]
    parts.append(_table(rows, ["#", "node", "op", "elements", "exact (whole)", "max |d| (whole)",
                               "exact (isolated)", "max |d| (isolated)"]))
    parts += ["<h2>Explanations</h2>", _shares(rep["explanations"]), "<h2>Histograms of d</h2>"]
    if exact:
        parts.append(f"<p class='nothing'>{NOTHING_TO_CHART}</p>")
    bad = [t for t in tensors if t["exact_fraction"] < 1 or (t["isolated"] and t["isolated"]["exact_fraction"] < 1)]
    parts.append("<div class='hists'>" + "".join(_img(_histogram(t), "histogram " + t["tensor"])
                                                for t in bad[:MAX_HISTOGRAMS]) + "</div>")
    if len(bad) > MAX_HISTOGRAMS:
        parts.append(f"<p>{len(bad) - MAX_HISTOGRAMS} more tensors with mismatches are in the JSON report.</p>")
    if not bad and not exact:
        parts.append("<p>No tensor has mismatches.</p>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>intsim verify</title>" + _STYLE
            + "</head><body>" + "".join(parts) + _SCRIPT + "</body></html>")
