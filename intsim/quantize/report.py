"""The HTML report of `intsim quantize --report F.html`: per layer, the float weight
distribution (histogram, log counts) with each range method's clipping range drawn on it,
and a table of the clipping range and weight MSQE per method; learned-scale trajectories and
AdaRound errors when those steps ran. Plain HTML + inline SVG, no dependencies."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np

COLORS = {"minmax": "#d62728", "msqe": "#1f77b4", "percentile:99.9": "#2ca02c", "mse-output": "#9467bd"}


def svg_histogram(counts, edges, clips: dict, width: int = 420, height: int = 140) -> str:
    """Bars of log(1+count) over the weight range, with +/- clip lines per method."""
    counts, edges = np.asarray(counts, float), np.asarray(edges, float)
    lo, hi = float(edges[0]), float(edges[-1])
    for c in clips.values():
        lo, hi = min(lo, -c), max(hi, c)
    span = (hi - lo) or 1.0
    x = lambda v: 10 + (v - lo) / span * (width - 20)  # noqa: E731
    top = np.log1p(counts).max() or 1.0
    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        h = np.log1p(c) / top * (height - 20)
        parts.append(f'<rect x="{x(a):.1f}" y="{height - 10 - h:.1f}" width="{max(x(b) - x(a) - 0.5, 0.5):.1f}" '
                     f'height="{h:.1f}" fill="#888"/>')
    for name, c in clips.items():
        for v in (-c, c):
            parts.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="5" y2="{height - 10}" '
                         f'stroke="{COLORS.get(name, "#000")}" stroke-width="1.5"><title>{html.escape(name)} '
                         f'{v:.4g}</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def svg_lines(series: dict, width: int = 420, height: int = 140, ylabel: str = "") -> str:
    """Polylines of name -> 1-D array over their index (steps)."""
    ys = np.concatenate([np.asarray(v, float).ravel() for v in series.values()])
    lo, hi = float(ys.min()), float(ys.max())
    hi = hi if hi > lo else lo + 1.0
    n = max(len(v) for v in series.values())
    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="2" y="12" font-size="10">{html.escape(ylabel)} [{lo:.3g}, {hi:.3g}]</text>']
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for k, (name, v) in enumerate(series.items()):
        v = np.asarray(v, float)
        pts = " ".join(f"{10 + i / max(n - 1, 1) * (width - 20):.1f},{height - 10 - (y - lo) / (hi - lo) * (height - 30):.1f}"
                       for i, y in enumerate(v))
        parts.append(f'<polyline fill="none" stroke="{palette[k % len(palette)]}" points="{pts}">'
                     f'<title>{html.escape(str(name))}</title></polyline>')
    parts.append("</svg>")
    return "".join(parts)


def _layer_html(rep) -> str:
    clips = {m: max(v["clip"]) for m, v in rep.methods.items()}
    rows = "".join(
        f'<tr><td style="color:{COLORS.get(m, "#000")}">{html.escape(m)}</td>'
        f"<td>{min(v['clip']):.5g}" + (f" .. {max(v['clip']):.5g}" if len(v["clip"]) > 1 else "")
        + f"</td><td>{v['msqe']:.4e}</td></tr>" for m, v in rep.methods.items())
    out = [f"<h2>{html.escape(rep.name)} <small>({rep.kind}, weight {rep.shape})</small></h2>",
           svg_histogram(*rep.hist, clips),
           "<table><tr><th>method</th><th>clipping range max|w|</th><th>weight MSQE</th></tr>",
           rows, "</table>",
           f"<p>written with <b>{html.escape(rep.chosen)}</b>: weight MSQE {rep.msqe:.4e}</p>"]
    if rep.trajectory is not None:
        t = rep.trajectory["log2_scale"]
        series = {f"ch{c}": t[:, c] for c in range(min(t.shape[1], 6))}
        out += ["<p>learned log2(scale) per step (first channels):</p>", svg_lines(series, ylabel="log2 s"),
                svg_lines({"loss": rep.trajectory["loss"]}, ylabel="normalized output error")]
    if rep.adaround is not None:
        a = rep.adaround
        out.append(f"<p>AdaRound: output error nearest {a['nearest']:.4e}, adaround {a['adaround']:.4e}, "
                   f"kept {a['kept']}</p>")
    return "\n".join(out)


def render(result) -> str:
    o = result.options
    head = (f"<h1>intsim quantize report</h1><p>weights {o.weight_bits}-bit {o.scale} per {o.granularity}, "
            f"activations {o.act_bits}-bit{' symmetric' if o.symmetric else ''}, range {html.escape(o.range_method)}"
            f"{', CLE' if o.cle else ''}{', bias correction' if o.bias_correction else ''}"
            f"{', AdaRound' if o.adaround else ''}{', learned scales' if o.learn_scales else ''}</p>"
            + "".join(f"<p>{html.escape(n)}</p>" for n in result.notes))
    body = "\n".join(_layer_html(r) for r in result.layers)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>intsim quantize</title>"
            f"<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px}}</style></head>"
            f"<body>{head}{body}</body></html>")


def write_report(result, path) -> Path:
    p = Path(path)
    p.write_text(render(result), encoding="utf-8")
    return p
