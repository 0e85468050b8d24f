"""A self-contained HTML page for `intsim overflow --report F.html`: per-layer bars of the bits
each bound needs against the chosen width (inline SVG), the layer table, and the sweep (a
table and an SVG line chart) when one was run. No scripts, no external files."""
from __future__ import annotations

import html

BOUNDS = (("datatype", "#9ca3af"), ("weights", "#2563eb"), ("a2q", "#7c3aed"), ("observed", "#16a34a"))
_CSS = ("body{font:14px sans-serif;margin:2em;color:#111}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}td:first-child{text-align:left}"
        ".bad{color:#b91c1c;font-weight:bold}svg{max-width:100%;height:auto;display:block;margin:.5em 0}"
        "svg.sweep{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}")


def _e(v) -> str:
    return html.escape("-" if v is None else str(v))


def _bits_chart(rep: dict) -> str:
    """One group of horizontal bars per layer; a red line at the chosen width."""
    layers = rep["layers"]
    top = max([rep["acc_bits"]] + [v for l in layers for v in l["bits"].values() if v is not None]) + 2
    scale, left, bar = 560 / top, 300, 7
    rows = []
    y = 24
    for l in layers:
        rows.append(f'<text x="{left - 6}" y="{y + 2 * bar}" text-anchor="end" font-size="11">{_e(l["node"][-42:])}</text>')
        for i, (key, colour) in enumerate(BOUNDS):
            v = l["bits"].get(key)
            if v is not None:
                rows.append(f'<rect x="{left}" y="{y + i * bar}" width="{v * scale:.1f}" height="{bar - 1}" '
                            f'fill="{colour}"><title>{key}: {v} bits</title></rect>')
        y += 4 * bar + 10
    x_w = left + rep["acc_bits"] * scale
    legend = "".join(f'<rect x="{left + 110 * i}" y="4" width="10" height="10" fill="{c}"/>'
                     f'<text x="{left + 110 * i + 14}" y="13" font-size="11">{k}</text>' for i, (k, c) in enumerate(BOUNDS))
    ticks = "".join(f'<text x="{left + b * scale:.1f}" y="{y + 12}" font-size="10" text-anchor="middle">{b}</text>'
                    for b in range(0, top + 1, 4))
    ticks += (f'<text x="{left + 280}" y="{y + 28}" font-size="11" text-anchor="middle">bits needed '
              f'(red line: the chosen width, {rep["acc_bits"]} bits)</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + 600}" height="{y + 34}" '
            f'viewBox="0 0 {left + 600} {y + 34}">{legend}{"".join(rows)}'
            f'<line x1="{x_w:.1f}" y1="18" x2="{x_w:.1f}" y2="{y}" stroke="#dc2626" stroke-width="2">'
            f'<title>accumulator width {rep["acc_bits"]} bits</title></line>{ticks}</svg>')


def _layer_table(rep: dict) -> str:
    head = ("<tr><th>layer</th><th>op</th><th>K</th><th>datatype</th><th>weights</th><th>a2q</th>"
            "<th>observed</th><th>observed min</th><th>observed max</th><th>events</th><th>headroom</th></tr>")
    body = []
    for l in rep["layers"]:
        b = l["bits"]
        cls = ' class="bad"' if (l["headroom_bits"] is not None and l["headroom_bits"] < 0) else ""
        body.append(f"<tr><td>{_e(l['node'])}</td><td>{_e(l['op'])}</td><td>{_e(l['k'])}</td>"
                    f"<td>{_e(b['datatype'])}</td><td>{_e(b['weights'])}</td><td>{_e(b['a2q'])}</td>"
                    f"<td>{_e(b['observed'])}</td><td>{_e(l['observed_min'])}</td><td>{_e(l['observed_max'])}</td>"
                    f"<td>{_e(l['overflow_events'])}</td><td{cls}>{_e(l['headroom_bits'])}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


SWEEP_Y_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _sweep_chart(sw: dict, key: str, label: str) -> str:
    """A line per mode of `key` (a fraction in [0, 1]) over the accumulator width, with numbered
    axes (bits below, the fraction at the left) and a legend."""
    rows = [r for r in sw["rows"] if r[key] is not None]
    if not rows:
        return ""
    bits = [r["bits"] for r in rows]
    b0, b1 = min(bits), max(bits)
    w, h, left, right, top, bottom = 540, 240, 52, 16, 30, 40
    sx = lambda b: left + (b - b0) * (w - left - right) / max(1, b1 - b0)  # noqa: E731
    sy = lambda v: h - bottom - v * (h - top - bottom)  # noqa: E731  (values in [0, 1])
    colours = {"wrap": "#dc2626", "saturate": "#2563eb"}
    lines = []
    for mode in sw["narrowest"]:
        pts = " ".join(f"{sx(r['bits']):.1f},{sy(r[key]):.1f}" for r in rows if r["mode"] == mode)
        lines.append(f'<polyline points="{pts}" fill="none" stroke="{colours.get(mode, "#111")}" stroke-width="2">'
                     f"<title>{_e(mode)}</title></polyline>")
    step = max(1, -(-(b1 - b0) // 12))
    axis = (f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="#555"/>'
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="#555"/>'
            + "".join(f'<text class="xtick" x="{sx(b):.1f}" y="{h - bottom + 14}" font-size="10" '
                      f'text-anchor="middle">{b}</text>' for b in range(b0, b1 + 1, step))
            + "".join(f'<line x1="{left - 4}" y1="{sy(v):.1f}" x2="{w - right}" y2="{sy(v):.1f}" stroke="#e5e7eb"/>'
                      f'<text class="ytick" x="{left - 6}" y="{sy(v) + 3:.1f}" font-size="10" '
                      f'text-anchor="end">{v:g}</text>' for v in SWEEP_Y_TICKS)
            + f'<text x="{(left + w - right) / 2:.0f}" y="{h - 6}" font-size="11" text-anchor="middle">'
              f"accumulator width (bits)</text>"
            + f'<text x="{left}" y="{top - 12}" font-size="11">{_e(label)}</text>'
            + "".join(f'<rect x="{w - right - 150 + 80 * i}" y="{top - 21}" width="10" height="10" '
                      f'fill="{colours.get(m, "#111")}"/><text x="{w - right - 136 + 80 * i}" y="{top - 12}" '
                      f'font-size="11">{_e(m)}</text>' for i, m in enumerate(sw["narrowest"])))
    return (f'<svg class="sweep" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}">{axis}{"".join(lines)}</svg>')


def _acc(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def _sweep(sw: dict) -> str:
    rows = "".join(f"<tr><td>{_e(r['mode'])}</td><td>{r['bits']}</td><td>{r['mismatch']:.6f}</td>"
                   f"<td>{r['events']}</td><td>{_acc(r['accuracy'])}</td></tr>" for r in sw["rows"])
    narrow = ", ".join(f"{_e(m)}: {_e(b)} bits" for m, b in sw["narrowest"].items())
    return (f"<h2>Cost of overflow (sweep, {sw['samples']} samples)</h2><p>Narrowest width with no output "
            f"mismatch against the 32-bit result: {narrow}. 32-bit accuracy: {_acc(sw['reference_accuracy'])}</p>"
            + _sweep_chart(sw, "mismatch", "output mismatch") + _sweep_chart(sw, "accuracy", "top-1 accuracy")
            + "<table><tr><th>mode</th><th>bits</th><th>mismatch</th><th>events</th><th>accuracy</th></tr>"
            + rows + "</table>")


def render(rep: dict) -> str:
    """The whole page for an `analyze` result (with an optional "sweep" entry)."""
    s = rep["summary"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>overflow: {_e(rep['model'])}</title>"
             f"<style>{_CSS}</style></head><body><h1>Accumulator overflow: {_e(rep['model'])}</h1>",
             f"<p>Chosen width {rep['acc_bits']} bits ({_e(rep['acc_overflow'])}), target {_e(rep['target'])}, "
             f"{rep['samples']} samples. Worst layer needs: datatype {_e(s['datatype'])}, weights "
             f"{_e(s['weights'])}, A2Q {_e(s['a2q'])}, observed {_e(s['observed'])} bits.</p>",
             "<h2>Bits needed per layer</h2>", _bits_chart(rep), _layer_table(rep)]
    if "sweep" in rep:
        parts.append(_sweep(rep["sweep"]))
    parts.append("</body></html>")
    return "\n".join(parts)
