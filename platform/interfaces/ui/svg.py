"""Small charts drawn by the server as SVG text: paired bars (selected vs pool) and histograms.

No plotting library and no script: the page embeds the markup, so a chart costs one string join
and shows without JavaScript. All text goes through :func:`html.escape`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

WIDTH = 560
BAR = 14
COLOURS = ("#3b6ea8", "#e0a030")
MAX_BARS = 30


def bars(rows: Sequence[dict[str, Any]], keys: tuple[str, ...], *, title: str, shares: bool = True) -> str:
    """A bar per key (one or two) for each row, as shares of the key's column total or as counts."""
    rows = list(rows)[:MAX_BARS]
    if not rows:
        return ""
    totals = [sum(r[k] for r in rows) or 1 for k in keys]
    values = [[(r[k] / totals[i] if shares else r[k]) for i, k in enumerate(keys)] for r in rows]
    top = max(max(v) for v in values) or 1
    label_w, plot_w = 170, WIDTH - 230
    height = 30 + len(rows) * (len(keys) * BAR + 6) + 20
    parts = [_head(height, title)]
    for j, key in enumerate(keys):
        parts.append(f'<rect x="{WIDTH - 150 + j * 75}" y="6" width="10" height="10" fill="{COLOURS[j]}"/>'
                     f'<text x="{WIDTH - 136 + j * 75}" y="15">{escape(key)}</text>')
    for i, (row, pair) in enumerate(zip(rows, values, strict=True)):
        y = 30 + i * (len(keys) * BAR + 6)
        parts.append(f'<text x="{label_w - 6}" y="{y + len(keys) * BAR // 2 + 4}" text-anchor="end">{escape(str(row["name"])[:28])}</text>')
        for j, value in enumerate(pair):
            width = max(1.0, plot_w * value / top)
            shown = f"{value:.1%}" if shares else f"{value:,}"
            parts.append(f'<rect class="bar" x="{label_w}" y="{y + j * BAR}" width="{width:.1f}" height="{BAR - 2}" '
                         f'fill="{COLOURS[j]}"><title>{escape(key_label(keys[j]))}: {shown}</title></rect>'
                         f'<text x="{label_w + width + 4:.1f}" y="{y + j * BAR + BAR - 3}" class="value">{shown}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _head(height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{height}" '
            f'role="img" aria-label="{escape(title)}"><text x="4" y="16" class="title">{escape(title)}</text>')


def key_label(key: str) -> str:
    return key.replace("_", " ")


def histogram(values: Sequence[float], *, title: str, bins: int = 20) -> str:
    """Counts of ``values`` in ``bins`` equal-width bins between their least and largest value."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    counts = [0] * bins
    for v in finite:
        counts[min(bins - 1, int((v - low) / span * bins))] += 1
    top = max(counts)
    plot_h, bar_w = 140, (WIDTH - 60) / bins
    parts = [_head(plot_h + 60, title)]
    for i, count in enumerate(counts):
        h = plot_h * count / top
        x = 40 + i * bar_w
        edge = low + span * i / bins
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{30 + plot_h - h:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" '
                     f'fill="{COLOURS[0]}"><title>{edge:.3g}…{edge + span / bins:.3g}: {count}</title></rect>')
    parts.append(f'<text x="40" y="{plot_h + 46}">{low:.3g}</text>'
                 f'<text x="{WIDTH - 20}" y="{plot_h + 46}" text-anchor="end">{high:.3g}</text>'
                 f'<text x="4" y="36">{top}</text></svg>')
    return "".join(parts)


def evaluation(figure: dict[str, Any], *, title: str) -> str:
    """One figure of an evaluation: the base model, each random seed, the random mean and the
    version as points on one axis, then the version's difference to the random mean with its
    95% interval against zero (the verdict)."""
    points = [("base model", figure["base"]), *((f"random seed {i}", v) for i, v in enumerate(figure["random_seeds"])),
              ("random mean", figure["random"]), ("version", figure["version"])]
    points = [(name, v) for name, v in points if v is not None]
    d = figure["difference"]
    if not points:
        return ""
    label_w, plot_w, row = 140, WIDTH - 200, 18

    def scale(values: Sequence[float]) -> Any:
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        return lambda v: label_w + plot_w * (v - low + span * 0.05) / (span * 1.1)

    x = scale([v for _, v in points])
    height = 40 + row * (len(points) + 2)
    parts = [_head(height, title)]
    for i, (name, value) in enumerate(points):
        y = 34 + i * row
        colour = COLOURS[1] if name == "version" else COLOURS[0]
        parts.append(f'<text x="{label_w - 6}" y="{y + 4}" text-anchor="end">{escape(name)}</text>'
                     f'<circle cx="{x(value):.1f}" cy="{y}" r="4" fill="{colour}"><title>{value:.4g}</title></circle>'
                     f'<text x="{x(value) + 8:.1f}" y="{y + 4}" class="value">{value:.4g}</text>')
    y = 34 + (len(points) + 1) * row
    dx = scale([d["low"], d["high"], 0.0])
    parts.append(f'<text x="{label_w - 6}" y="{y + 4}" text-anchor="end">version − random</text>'
                 f'<line x1="{dx(0.0):.1f}" y1="{y - 8}" x2="{dx(0.0):.1f}" y2="{y + 8}" stroke="#888"/>'
                 f'<line class="interval" x1="{dx(d["low"]):.1f}" y1="{y}" x2="{dx(d["high"]):.1f}" y2="{y}" '
                 f'stroke="{COLOURS[1]}" stroke-width="3"><title>95% interval {d["low"]:.4g} … {d["high"]:.4g}</title></line>'
                 f'<circle cx="{dx(d["mean"]):.1f}" cy="{y}" r="4" fill="{COLOURS[1]}"/>'
                 f'<text x="{WIDTH - 4}" y="{y + 4}" text-anchor="end" class="value">{escape(d["verdict"])}</text></svg>')
    return "".join(parts)
