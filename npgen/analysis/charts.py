"""Charts drawn with pillow alone, with `npgen.analysis.drawing`: bar charts and line charts as PIL images.

`bar_chart` draws one or several series of bars (grouped, with a legend), `line_chart` several series
over shared xs (linear or logarithmic). Both size their axes from the data (integer ticks for counts,
shares never past 1) and return an image of exactly the requested size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from npgen.analysis.drawing import BACKGROUND, TEXT, font, part_colour, wrap_text
from npgen.errors import NpgenError

AXIS = (90, 90, 90)
GRID = (225, 225, 225)


def series_colour(index: int) -> tuple[int, int, int]:
    """Colour of the index-th series of a chart: the trace figures' part palette, darkened a little for contrast on white."""
    return tuple(int(c * 0.85) for c in part_colour(index))


def nice_step(span: float, n_ticks: int = 5, integer: bool = False) -> float:
    """A 1, 2 or 5 times a power of ten step that cuts `span` into about n_ticks intervals."""
    raw = max(span, 1e-12) / n_ticks
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return max(1.0, round(step)) if integer else step


def _tick_text(value: float, step: float) -> str:
    if step >= 1 and float(value).is_integer():
        return f"{int(value):,}"
    decimals = max(0, -math.floor(math.log10(step)))
    return f"{value:.{decimals}f}"


def _value_text(value: float) -> str:
    """Short label of one bar's value: integers as they are (12.3k from 10,000 on), fractions with 3 decimals."""
    if float(value).is_integer():
        return f"{value / 1000:.3g}k" if abs(value) >= 10_000 else f"{int(value):,}"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.3g}"


def _integer_valued(values: np.ndarray) -> bool:
    """Counts (integer ticks) rather than fractions: all finite values whole and some above 1."""
    finite = values[np.isfinite(values)]
    return bool(finite.size) and bool(np.all(finite == np.round(finite))) and float(finite.max()) > 1


class _Canvas:
    """A chart frame: title, legend, axes with ticks and labels; maps data coordinates to pixels."""

    def __init__(
        self,
        width: int,
        height: int,
        title: str,
        x_label: str,
        y_label: str,
        y_range: tuple[float, float],
        integer_ticks: bool,
        legend: Sequence[str],
    ) -> None:
        self.image = Image.new("RGB", (int(width), int(height)), BACKGROUND)
        self.draw = ImageDraw.Draw(self.image)
        self.font, self.title_font = font(12), font(14)
        line = int(self.font.getbbox("Ag")[3]) + 3
        title_line = int(self.title_font.getbbox("Ag")[3]) + 4
        title_lines = wrap_text(self.draw, title, self.title_font, width - 20)[:3]
        for i, text in enumerate(title_lines):
            self.draw.text((width / 2, 8 + i * title_line), text, fill=TEXT, font=self.title_font, anchor="ma")
        top = 8 + len(title_lines) * title_line + 4
        if len(legend) > 1:
            top = self._legend(legend, top, width) + 4
        low, high = y_range
        step = nice_step(high - low, 5, integer_ticks)
        self.ticks = [low + i * step for i in range(int(math.floor((high - low) / step + 1e-9)) + 1)]
        labels = [_tick_text(t, step) for t in self.ticks]
        tick_width = max(self.draw.textlength(t, font=self.font) for t in labels)
        self.left = int(8 + line + 6 + tick_width + 6)
        self.right = int(width - 16)
        self.top = int(top + 6)
        self.bottom = int(height - 8 - line - 6 - line - 6)
        if self.bottom - self.top < 40 or self.right - self.left < 60:
            raise NpgenError(f"a chart of {width}x{height} pixels is too small for its text; make it larger")
        self.low, self.high, self.line = low, high, line
        for tick, label in zip(self.ticks, labels):
            y = self.y(tick)
            self.draw.line([(self.left, y), (self.right, y)], fill=GRID)
            self.draw.text((self.left - 6, y), label, fill=TEXT, font=self.font, anchor="rm")
        self.draw.text(((self.left + self.right) / 2, height - 8), x_label, fill=TEXT, font=self.font, anchor="md")
        self._y_label(y_label)

    def _legend(self, names: Sequence[str], top: int, width: int) -> int:
        """Colour swatches and names, centred in rows under the title; returns the y below them."""
        entries = [(name, 14 + 4 + self.draw.textlength(name, font=self.font)) for name in names]
        rows, row, used = [], [], 0.0
        for index, (name, size) in enumerate(entries):
            if row and used + 16 + size > width - 20:
                rows.append(row)
                row, used = [], 0.0
            row.append((index, name, size))
            used += size + (16 if len(row) > 1 else 0)
        rows.append(row)
        for row in rows:
            x = (width - (sum(size for _, _, size in row) + 16 * (len(row) - 1))) / 2
            for index, name, size in row:
                self.draw.rectangle([x, top + 2, x + 12, top + 12], fill=series_colour(index))
                self.draw.text((x + 18, top + 7), name, fill=TEXT, font=self.font, anchor="lm")
                x += size + 16
            top += 18
        return top

    def _y_label(self, text: str) -> None:
        size = (int(self.draw.textlength(text, font=self.font)) + 4, self.line + 2)
        label = Image.new("RGB", size, BACKGROUND)
        ImageDraw.Draw(label).text((2, 0), text, fill=TEXT, font=self.font)
        label = label.rotate(90, expand=True)
        middle = (self.top + self.bottom) // 2
        self.image.paste(label, (8, max(0, min(middle - label.height // 2, self.image.height - label.height))))

    def y(self, value: float) -> float:
        share = (value - self.low) / (self.high - self.low)
        return self.bottom - share * (self.bottom - self.top)

    def axes(self) -> None:
        self.draw.line([(self.left, self.top), (self.left, self.bottom), (self.right, self.bottom)], fill=AXIS, width=1)

    def x_tick(self, x: float, label: str, room: float) -> None:
        self.draw.line([(x, self.bottom), (x, self.bottom + 4)], fill=AXIS)
        if self.draw.textlength(label, font=self.font) <= room:
            self.draw.text((x, self.bottom + 6), label, fill=TEXT, font=self.font, anchor="ma")


def _as_series(values) -> dict[str, np.ndarray]:
    if isinstance(values, dict):
        series = {str(name): np.asarray(v, dtype=np.float64).ravel() for name, v in values.items()}
    else:
        series = {"": np.asarray(values, dtype=np.float64).ravel()}
    if not series:
        raise NpgenError("a chart needs at least one series of values")
    return series


def _y_range(values: np.ndarray, y_range, integer: bool, headroom: float = 1.0) -> tuple[float, float]:
    if y_range is not None:
        low, high = float(y_range[0]), float(y_range[1])
    else:
        finite = values[np.isfinite(values)]
        low = min(0.0, float(finite.min(initial=0.0)))
        most = float(finite.max(initial=0.0))
        high = most * headroom
        if 0 <= low and most <= 1 < high:  # shares: never past 1
            high = 1.0
        if high <= low:
            high = low + 1.0
        step = nice_step(high - low, 5, integer)
        high = low + math.ceil((high - low) / step - 1e-9) * step
    if not high > low:
        raise NpgenError(f"a chart's y range must be increasing, got {y_range}")
    return low, high


def bar_chart(
    values,
    labels: Sequence[str],
    title: str,
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 360,
    y_range: tuple[float, float] | None = None,
) -> Image.Image:
    """A bar chart as a PIL image of exactly width x height pixels.

    values: one sequence (one bar per label) or a dict {series name: sequence} (grouped bars, with a legend);
    fractions and counts both work (integer values get integer ticks). Each bar carries its value when
    there is room; x tick labels that do not fit are left out.
    """
    series = _as_series(values)
    labels = [str(label) for label in labels]
    if any(len(v) != len(labels) for v in series.values()):
        raise NpgenError(
            f"a bar chart needs one value per label: {len(labels)} labels, series of {[len(v) for v in series.values()]}"
        )
    every = np.concatenate(list(series.values())) if labels else np.zeros(0)
    integer = _integer_valued(every)
    canvas = _Canvas(
        width,
        height,
        title,
        x_label,
        y_label,
        _y_range(every, y_range, integer, headroom=1.12),
        integer,
        list(series) if len(series) > 1 else [],
    )
    n_groups, n_series = max(len(labels), 1), len(series)
    slot = (canvas.right - canvas.left) / n_groups
    bar = max(1.0, min(slot * 0.8 / n_series, 72.0))
    zero = canvas.y(max(canvas.low, 0.0))
    texts = [[_value_text(v) for v in values_of] for values_of in series.values()]
    # values on the bars only when every one fits (a partial set reads as missing data); zeros stay unlabelled
    labelled = all(canvas.draw.textlength(t, font=canvas.font) <= bar + 2 for column in texts for t in column)
    for g, label in enumerate(labels):
        start = canvas.left + (g + 0.5) * slot - n_series * bar / 2
        for s, values_of in enumerate(series.values()):
            value = values_of[g]
            if not np.isfinite(value):
                continue
            x0, x1 = start + s * bar, start + (s + 1) * bar - (1 if bar > 3 else 0)
            y = min(max(canvas.y(value), canvas.top), canvas.bottom)
            canvas.draw.rectangle([x0, min(y, zero), x1, max(y, zero)], fill=series_colour(s))
            if labelled and value != 0:
                if y - canvas.line >= canvas.top - 6:  # above the bar, or inside its top when the bar is full height
                    canvas.draw.text(((x0 + x1) / 2, y - 2), texts[s][g], fill=TEXT, font=canvas.font, anchor="md")
                elif abs(zero - y) > canvas.line + 4:
                    canvas.draw.text(
                        ((x0 + x1) / 2, y + 3), texts[s][g], fill=BACKGROUND, font=canvas.font, anchor="ma"
                    )
        canvas.x_tick(canvas.left + (g + 0.5) * slot, label, slot - 2)
    canvas.axes()
    return canvas.image


def line_chart(
    xs: Sequence[float],
    series: dict[str, Sequence[float]],
    title: str,
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 360,
    y_range: tuple[float, float] | None = None,
    log_x: bool = False,
) -> Image.Image:
    """A line chart of several series over the same xs as a PIL image of exactly width x height pixels.

    Each series gets its colour, point markers and a legend entry; NaN points are skipped (the line breaks).
    The x axis is numeric (logarithmic with log_x) with a tick at every x when there are at most 12.
    """
    xs = np.asarray(xs, dtype=np.float64).ravel()
    data = _as_series(dict(series))
    if len(xs) == 0 or any(len(v) != len(xs) for v in data.values()):
        raise NpgenError(
            f"a line chart needs one value per x in every series: {len(xs)} xs, series of {[len(v) for v in data.values()]}"
        )
    if log_x and (xs <= 0).any():
        raise NpgenError("a logarithmic x axis needs positive xs")
    every = np.concatenate(list(data.values()))
    integer = _integer_valued(every)
    canvas = _Canvas(width, height, title, x_label, y_label, _y_range(every, y_range, integer), integer, list(data))
    position = np.log10(xs) if log_x else xs
    low, high = float(position.min()), float(position.max())
    if high == low:
        low, high = low - 1, high + 1
    pad = 0.05 * (high - low)
    span = canvas.right - canvas.left

    def x_of(p: float) -> float:
        return canvas.left + (p - low + pad) / (high - low + 2 * pad) * span

    if len(xs) <= 12:
        ticks = [(x_of(p), _value_text(x)) for p, x in zip(position, xs)]
    else:
        step = nice_step(xs.max() - xs.min(), 6)
        values = np.arange(math.ceil(xs.min() / step) * step, xs.max() + step / 2, step)
        ticks = [(x_of(np.log10(v) if log_x else v), _tick_text(v, step)) for v in values if not log_x or v > 0]
    room = span / max(len(ticks), 1) - 2
    for x, label in ticks:
        canvas.x_tick(x, label, room)
    for s, values in enumerate(data.values()):
        colour = series_colour(s)
        points = [(x_of(p), canvas.y(v)) if np.isfinite(v) else None for p, v in zip(position, values)]
        for a, b in zip(points, points[1:]):
            if a is not None and b is not None:
                canvas.draw.line([a, b], fill=colour, width=2)
        for point in points:
            if point is not None:
                canvas.draw.ellipse([point[0] - 3, point[1] - 3, point[0] + 3, point[1] + 3], fill=colour)
    canvas.axes()
    return canvas.image
