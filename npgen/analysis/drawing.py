"""Drawing primitives shared by npgen's pictures (pillow alone): colours, the font, word wrap, grey-to-RGB,
nearest-neighbour upscaling, outlines, and a row of labelled panels with a caption.

The trace figures (`npgen.analysis.trace_figures`), the charts (`npgen.analysis.charts`), the audit's image
figure and the information maps are all drawn with these, so they share one look.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
PIXEL_COLOUR = (255, 40, 40)
CONTEXT_COLOUR = (255, 200, 0)
GAP = 12


def font(size: int = 12) -> ImageFont.ImageFont:
    """Pillow's default font at `size` pixels (the fixed bitmap font on pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def part_colour(part_id: int) -> tuple[int, int, int]:
    """A fixed colour per part id: hues a golden-ratio step apart, so neighbouring ids differ clearly."""
    hue = (0.07 + part_id * 0.6180339887) % 1.0
    saturation = (0.85, 0.6, 0.95)[part_id % 3]
    value = (0.95, 0.8)[(part_id // 3) % 2]
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, saturation, value))


def as_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3) uint8 -> (H, W, 3) uint8."""
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., :3]


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """An image (or mask) enlarged `scale` times by nearest neighbour, so single pixels stay visible."""
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def wrap_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    """Greedy word wrap of one line of text to `width` pixels."""
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and draw.textlength(candidate, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return lines + ([line] if line else [])


def compose_panels(panels: list[tuple[Image.Image, list[str]]], caption: list[str] = ()) -> Image.Image:
    """Panels in one row, each with its label lines under it, then caption lines across the bottom."""
    text_font = font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_height = int(text_font.getbbox("Ag")[3]) + 4
    width = GAP + sum(panel.width + GAP for panel, _ in panels)
    label_lines = [
        [w for line in labels for w in wrap_text(measure, line, text_font, panel.width + GAP - 2)]
        for panel, labels in panels
    ]
    caption_lines = [w for line in caption for w in wrap_text(measure, line, text_font, width - 2 * GAP)]
    panel_height = max(panel.height for panel, _ in panels)
    labels_height = max(len(lines) for lines in label_lines) * line_height
    height = (
        GAP + panel_height + 6 + labels_height + (GAP + len(caption_lines) * line_height if caption_lines else 0) + GAP
    )
    figure = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(figure)
    left = GAP
    for (panel, _), lines in zip(panels, label_lines):
        figure.paste(panel, (left, GAP))
        for i, line in enumerate(lines):
            draw.text((left, GAP + panel_height + 6 + i * line_height), line, fill=TEXT, font=text_font)
        left += panel.width + GAP
    top = GAP + panel_height + 6 + labels_height + GAP
    for i, line in enumerate(caption_lines):
        draw.text((GAP, top + i * line_height), line, fill=TEXT, font=text_font)
    return figure


def stack_rows(rows: list[Image.Image]) -> Image.Image:
    """Figures one under another, left-aligned, on the background colour."""
    figure = Image.new("RGB", (max(row.width for row in rows), sum(row.height for row in rows)), BACKGROUND)
    top = 0
    for row in rows:
        figure.paste(row, (0, top))
        top += row.height
    return figure


def outline_outside(mask: np.ndarray) -> np.ndarray:
    """Pixels just outside a boolean mask (4-neighbours of it): an outline that leaves the region's tint visible."""
    near = np.zeros(mask.shape, dtype=bool)
    near[:, :-1] |= mask[:, 1:]
    near[:, 1:] |= mask[:, :-1]
    near[:-1, :] |= mask[1:, :]
    near[1:, :] |= mask[:-1, :]
    return near & ~mask
