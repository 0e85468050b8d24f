"""The HTML report of `intsim quantize --report F.html`: per layer, the float weight
distribution (histogram, log counts) with each range method's clipping range drawn on it,
and a table of the clipping range and weight MSQE per method; learned-scale trajectories and
AdaRound errors when those steps ran. Plain HTML + inline SVG, no dependencies."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np

COLORS = {"minmax": "#d62728", "msqe": "#1f77b4", "percentile:99.9": "#2ca02c", "mse-output": "#9467bd"}


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list:
    """About n round numbers (1, 2, 2.5 or 5 x 10^k apart) in [lo, hi]."""
    span = hi - lo
    if not np.isfinite(span) or span <= 0:
        return [lo]
    raw = span / max(n - 1, 1)
    mag = 10.0 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = np.ceil(lo / step) * step
    return [float(v) for v in np.arange(first, hi + step * 1e-9, step)]


def _axes(width, height, left, bottom, xticks, yticks) -> list:
    """An x and a y axis with tick marks and numbers: ticks are (pixel, label) pairs."""
    y0 = height - bottom
    out = [f'<line class="axis" x1="{left}" x2="{width - 6}" y1="{y0}" y2="{y0}" stroke="#555"/>',
           f'<line class="axis" x1="{left}" x2="{left}" y1="6" y2="{y0}" stroke="#555"/>']
    for px, lab in xticks:
        out.append(f'<line class="tick" x1="{px:.1f}" x2="{px:.1f}" y1="{y0}" y2="{y0 + 4}" stroke="#555"/>'
                   f'<text class="xtick" x="{px:.1f}" y="{y0 + 15}" font-size="10" text-anchor="middle">'
                   f"{html.escape(lab)}</text>")
    for py, lab in yticks:
        out.append(f'<line class="tick" x1="{left - 4}" x2="{left}" y1="{py:.1f}" y2="{py:.1f}" stroke="#555"/>'
                   f'<text class="ytick" x="{left - 6}" y="{py + 3:.1f}" font-size="10" text-anchor="end">'
                   f"{html.escape(lab)}</text>")
    return out


def svg_histogram(counts, edges, clips: dict, width: int = 460, height: int = 170) -> str:
    """Bars of the weight count (log scale) over the weight range, with +/- clip lines per
    method; numbered axes: weight value below, count at the left."""
    counts, edges = np.asarray(counts, float), np.asarray(edges, float)
    lo, hi = float(edges[0]), float(edges[-1])
    for c in clips.values():
        lo, hi = min(lo, -c), max(hi, c)
    span = (hi - lo) or 1.0
    left, bottom, top_pad = 46, 34, 8
    x = lambda v: left + 4 + (v - lo) / span * (width - left - 14)  # noqa: E731
    top = np.log1p(counts).max() or 1.0
    plot_h = height - bottom - top_pad
    y = lambda n: height - bottom - np.log1p(n) / top * plot_h  # noqa: E731
    parts = [f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        h = np.log1p(c) / top * plot_h
        parts.append(f'<rect class="bar" x="{x(a):.1f}" y="{height - bottom - h:.1f}" '
                     f'width="{max(x(b) - x(a) - 0.5, 0.5):.1f}" height="{h:.1f}" fill="#888"/>')
    for name, c in clips.items():
        for v in (-c, c):
            parts.append(f'<line class="clip" x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top_pad}" '
                         f'y2="{height - bottom}" stroke="{COLORS.get(name, "#000")}" stroke-width="1.5">'
                         f"<title>{html.escape(name)} {v:.4g}</title></line>")
    nmax = float(counts.max()) if counts.size else 0.0
    ycounts = [0] + [10 ** k for k in range(0, int(np.floor(np.log10(nmax))) + 1)] if nmax >= 1 else [0]
    xt = [(x(v), f"{v:.3g}") for v in _nice_ticks(lo, hi)]
    parts += _axes(width, height, left, bottom, xt, [(y(n), f"{n:,}") for n in ycounts])
    parts.append(f'<text x="{(left + width) / 2:.0f}" y="{height - 3}" font-size="10" text-anchor="middle">'
                 f"weight value</text>"
                 f'<text x="10" y="{(height - bottom) / 2:.0f}" font-size="10" text-anchor="middle" '
                 f'transform="rotate(-90 10 {(height - bottom) / 2:.0f})">count (log)</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_lines(series: dict, width: int = 460, height: int = 160, ylabel: str = "") -> str:
    """Polylines of name -> 1-D array over their index (steps), with numbered axes."""
    ys = np.concatenate([np.asarray(v, float).ravel() for v in series.values()])
    lo, hi = float(ys.min()), float(ys.max())
    hi = hi if hi > lo else lo + 1.0
    n = max(len(v) for v in series.values())
    left, bottom, top_pad = 52, 30, 18
    px = lambda i: left + 4 + i / max(n - 1, 1) * (width - left - 14)  # noqa: E731
    py = lambda v: height - bottom - (v - lo) / (hi - lo) * (height - bottom - top_pad)  # noqa: E731
    parts = [f'<svg class="lines" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{left + 8}" y="11" font-size="10">{html.escape(ylabel)}</text>']
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for k, (name, v) in enumerate(series.items()):
        v = np.asarray(v, float)
        pts = " ".join(f"{px(i):.1f},{py(y):.1f}" for i, y in enumerate(v))
        parts.append(f'<polyline fill="none" stroke="{palette[k % len(palette)]}" points="{pts}">'
                     f'<title>{html.escape(str(name))}</title></polyline>')
    xt = [(px(i), f"{int(i)}") for i in _nice_ticks(0, max(n - 1, 1)) if float(i).is_integer()]
    parts += _axes(width, height, left, bottom, xt, [(py(v), f"{v:.3g}") for v in _nice_ticks(lo, hi, 4)])
    parts.append(f'<text x="{(left + width) / 2:.0f}" y="{height - 2}" font-size="10" text-anchor="middle">'
                 f"step</text></svg>")
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
            f"<style>body{{font-family:sans-serif;margin:1.5em}} td,th{{padding:2px 8px}} svg{{max-width:100%;height:auto;display:block;margin:.4em 0}}</style></head>"
            f"<body>{head}{body}</body></html>")


def write_report(result, path) -> Path:
    p = Path(path)
    p.write_text(render(result), encoding="utf-8")
    return p
