"""``tagtool plot RUN``: a run's learning curves as one PNG, from its metrics alone.

Panels: the cost per epoch (training, and validation where recorded), the validation
figure per epoch (Tagger: AMI; classifiers: error), and for Tagger runs the validation
AMI after each iteration (the view of the paper's Table 1a and Fig. 6) at a few epochs, and
the rms of z per true layer per epoch where recorded (the owner group's, ``LayerErrors``).
Drawn with Pillow, so plotting needs nothing beyond the toolkit's own dependencies.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from tagdata.errors import UserError
from tagdata.render import palette, side_by_side

PANEL = (380, 280)  # width, height in pixels
MARGIN = (58, 30, 14, 36)  # left, top, right, bottom
TICKS = 5
Series = tuple[str, Sequence[float], Sequence[float]]  # name, x, y


def _ticks(low: float, high: float) -> list[float]:
    """About TICKS round values, the first at or below ``low``, the last at or above ``high``."""
    step = (high - low) / (TICKS - 1)
    magnitude = 10 ** math.floor(math.log10(step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= step)
    first, last = math.floor(low / step), math.ceil(high / step)
    return [i * step for i in range(first, last + 1)]


def line_panel(title: str, xlabel: str, series: list[Series]) -> np.ndarray:
    """uint8 (H, W, 3) line chart of ``series`` with axes, ticks and a legend."""
    width, height = PANEL
    left, top, right, bottom = MARGIN
    image = Image.new("RGB", PANEL, "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 8), title, fill="black")
    points = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
    if not points:
        draw.text((left, height // 2), "nothing recorded", fill="grey")
        return np.asarray(image)
    xs, ys = zip(*points)
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y_ticks = _ticks(min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1)
    y0, y1 = y_ticks[0], y_ticks[-1]

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (width - left - right),
                height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom))

    draw.rectangle((left, top, width - right, height - bottom), outline="black")
    for y in y_ticks:
        _, py = at(x0, y)
        draw.line((left - 3, py, left, py), fill="black")
        draw.text((4, py - 5), f"{y:.3g}", fill="black")
    for x in sorted({round(x) for x in np.linspace(x0, x1, TICKS)}):  # epochs and iterations
        px, _ = at(x, y0)
        draw.line((px, height - bottom, px, height - bottom + 3), fill="black")
        draw.text((px - 6, height - bottom + 5), f"{x:g}", fill="black")
    draw.text((width // 2 - 3 * len(xlabel), height - 14), xlabel, fill="black")
    colours = [tuple(int(c) for c in colour) for colour in palette(len(series) + 1)[1:]]
    # The legend's right edge meets the frame's, however long the run names are.
    key = max(left + 4, width - right - 16 - max(draw.textlength(name) for name, _, _ in series))
    for i, ((name, sx, sy), colour) in enumerate(zip(series, colours)):
        line = [at(x, y) for x, y in zip(sx, sy) if y is not None and math.isfinite(y)]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for px, py in line:
            draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=colour)
        draw.rectangle((key, top + 6 + 13 * i, key + 8, top + 14 + 13 * i), fill=colour)
        draw.text((key + 12, top + 4 + 13 * i), name, fill="black")
    return np.asarray(image)


def _column(history: list[dict[str, Any]], key: str) -> Series:
    rows = [row for row in history if key in row]
    return key, [row["epoch"] for row in rows], [row[key] for row in rows]


def _iteration_series(history: list[dict[str, Any]]) -> list[Series]:
    """Validation AMI per iteration at the first, middle and last epochs that record it."""
    rows = [row for row in history if row.get("valid_ami_iterations")]
    chosen = sorted({0, len(rows) // 2, len(rows) - 1}) if rows else []
    return [
        (f"epoch {rows[i]['epoch']}", list(range(1, len(rows[i]["valid_ami_iterations"]) + 1)),
         rows[i]["valid_ami_iterations"])
        for i in chosen
    ]


def training_figure(history: list[dict[str, Any]]) -> np.ndarray:
    """uint8 (H, W, 3): the panels of a run's history, side by side."""
    if not history:
        raise UserError("the run has no finished epoch yet: nothing to plot")
    costs = [_column(history, key) for key in ("cost", "valid_cost") if any(key in row for row in history)]
    panels = [line_panel("cost per epoch", "epoch", costs)]
    for key, title in (("valid_ami", "validation AMI per epoch"), ("valid_error", "validation error (%) per epoch")):
        if any(key in row for row in history):
            panels.append(line_panel(title, "epoch", [_column(history, key)]))
    iterations = _iteration_series(history)
    if iterations:
        panels.append(line_panel("validation AMI per iteration", "iteration", iterations))
    layers = _layer_series(history)
    if layers:
        panels.append(line_panel("validation rms of z per true layer", "epoch", layers))
    return side_by_side(*panels, gap=6)


def _layer_series(history: list[dict[str, Any]]) -> list[Series]:
    """The owner's rms of z per true layer and epoch (``valid_layer_rms_owner``): whether the
    groups' z explain each object, which the AMI, reading m only, cannot tell."""
    rows = [row for row in history if row.get("valid_layer_rms_owner")]
    if not rows:
        return []
    epochs = [row["epoch"] for row in rows]
    # Every epoch scores the same validation images, so every row has the same layers.
    per_layer = zip(*(row["valid_layer_rms_owner"] for row in rows))
    return [(f"layer {layer}", epochs, list(values)) for layer, values in enumerate(per_layer)
            if any(value is not None for value in values)]  # a label no example has: no line


def comparison_figure(histories: dict[str, list[dict[str, Any]]]) -> np.ndarray:
    """uint8 (H, W, 3): several runs on shared axes (validation cost and AMI per epoch, the
    owner's rms of z per true layer and epoch where recorded, and the last epoch's AMI per
    iteration), e.g. fp32 against bf16 on the same seed and data."""
    empty = [name for name, history in histories.items() if not history]
    if empty:
        raise UserError(f"{', '.join(empty)} has no finished epoch yet: nothing to compare")
    panels = []
    for key, title in (("valid_cost", "validation cost per epoch"), ("valid_ami", "validation AMI per epoch"),
                       ("valid_error", "validation error (%) per epoch")):
        series = [(name, *_column(history, key)[1:]) for name, history in histories.items()
                  if any(key in row for row in history)]
        if series:
            panels.append(line_panel(title, "epoch", series))
    layer_series = {name: _layer_series(history) for name, history in histories.items()}
    for layer in sorted({label for series in layer_series.values() for label, _, _ in series}):
        panels.append(line_panel(f"validation rms of z, {layer}", "epoch",
                                 [(name, xs, ys) for name, series in layer_series.items()
                                  for label, xs, ys in series if label == layer]))
    last = [(name, history[-1]["valid_ami_iterations"]) for name, history in histories.items()
            if history[-1].get("valid_ami_iterations")]
    if last:
        panels.append(line_panel("last epoch: AMI per iteration", "iteration",
                                 [(name, list(range(1, len(ami) + 1)), ami) for name, ami in last]))
    return side_by_side(*panels, gap=6)
