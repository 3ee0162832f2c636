"""Server-side SVG charts: the findings-by-severity summary and the per-image layer chart.

The geometry is computed here and drawn by small templates (``templates/cases/charts/``) with presentation
attributes only (no ``style=``: the CSP forbids inline styles), so the same SVG can go into the
post-mortem PDF: ``severity_svg(counts)`` and ``layer_chart_svg(image, layers, flagged)`` return strings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.template.loader import render_to_string

SEVERITIES = ("critical", "high", "medium", "low", "info")
COLOURS = {"critical": "#a4161a", "high": "#d9480f", "medium": "#b7791f", "low": "#2b6cb0", "info": "#8792a2"}
CHANGE_COLOURS = {"added": "#2f855a", "modified": "#b7791f", "deleted": "#a4161a"}


@dataclass
class Bar:
    label: str
    count: int
    x: float
    y: float
    width: float
    height: float
    colour: str
    text_x: float = 0
    text_y: float = 0


def severity_chart(counts: dict[str, int], *, width: int = 360) -> dict:
    """Horizontal bars, one per severity, lengths proportional to the counts."""
    row, label_w, count_w = 22, 70, 60
    span = width - label_w - count_w
    top = max([counts.get(s, 0) for s in SEVERITIES] + [1])
    bars = []
    for n, severity in enumerate(SEVERITIES):
        count = counts.get(severity, 0)
        length = 0 if not count else max(2.0, span * count / top)
        bars.append(
            Bar(
                label=severity,
                count=count,
                x=label_w,
                y=n * row + 4,
                width=round(length, 1),
                height=row - 8,
                colour=COLOURS[severity],
                text_x=label_w + length + 6,
                text_y=n * row + row / 2 + 4,
            )
        )
    return {
        "width": width,
        "height": row * len(SEVERITIES),
        "bars": bars,
        "total": sum(counts.values()),
        "label_w": label_w,
        "span": span,
    }


def _scale(value: int, top: int, height: float) -> float:
    """Square-root scale: a 2 MB layer stays visible beside a 700 MB one."""
    if value <= 0 or top <= 0:
        return 0.0
    return max(1.5, height * math.sqrt(value) / math.sqrt(top))


def layer_chart(layers, flagged: dict[int, str] | None = None) -> dict:
    """One column per layer: its size on top (sqrt scale), files added/modified/deleted below, and a marker
    over layers with high or critical findings. ``flagged`` maps layer id to its worst severity."""
    flagged = flagged or {}
    col, gap, size_h, files_h, top_pad, label_h = 34, 10, 110, 44, 20, 18
    layers = list(layers)
    width = max(320, len(layers) * (col + gap) + gap + 40)
    height = top_pad + size_h + 8 + files_h + label_h
    max_size = max([layer.uncompressed_size or layer.size for layer in layers] + [1])
    max_files = max(
        [max(layer.files_added, layer.files_modified, layer.files_deleted) for layer in layers] + [1]
    )
    columns = []
    for n, layer in enumerate(layers):
        x = 40 + gap + n * (col + gap)
        size = layer.uncompressed_size or layer.size
        h = _scale(size, max_size, size_h)
        files = []
        third = (col - 4) / 3
        for k, (kind, count) in enumerate(
            (
                ("added", layer.files_added),
                ("modified", layer.files_modified),
                ("deleted", layer.files_deleted),
            )
        ):
            fh = _scale(count, max_files, files_h)
            files.append(
                Bar(
                    label=kind,
                    count=count,
                    x=round(x + 2 + k * third, 1),
                    y=round(top_pad + size_h + 8 + files_h - fh, 1),
                    width=round(third - 1, 1),
                    height=round(fh, 1),
                    colour=CHANGE_COLOURS[kind],
                )
            )
        severity = flagged.get(layer.pk, "")
        columns.append(
            {
                "layer": layer,
                "x": x,
                "cx": x + col / 2,
                "size": size,
                "bar": Bar(
                    label=f"layer {layer.index}",
                    count=size,
                    x=x,
                    y=round(top_pad + size_h - h, 1),
                    width=col,
                    height=round(h, 1),
                    colour="#c53030" if not layer.trusted else "#4a5d7e",
                ),
                "files": files,
                "severity": severity,
                "marker_colour": COLOURS.get(severity, ""),
                "label_y": top_pad + size_h + 8 + files_h + 13,
            }
        )
    return {
        "width": width,
        "height": height,
        "columns": columns,
        "col": col,
        "top_pad": top_pad,
        "size_base": top_pad + size_h,
        "files_base": top_pad + size_h + 8 + files_h,
        "files_top": top_pad + size_h + 8,
    }


def severity_svg(counts: dict[str, int]) -> str:
    return render_to_string("cases/charts/severity.svg", {"chart": severity_chart(counts)})


def layer_chart_svg(image, layers, flagged: dict[int, str] | None = None) -> str:
    return render_to_string(
        "cases/charts/layers.svg", {"chart": layer_chart(layers, flagged), "image": image}
    )
