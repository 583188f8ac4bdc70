"""Provenance figures: one pixel traced to its source, one sample's parts, one sample's pyramid levels (drawn with
`npgen.analysis.drawing`).

Images are upscaled by nearest neighbour so single pixels stay visible; grayscale (H, W, 1) and RGB
(H, W, 3) images are both accepted and drawn in RGB so outlines and part colours can be coloured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw

from npgen.analysis.drawing import (
    CONTEXT_COLOUR,
    PIXEL_COLOUR,
    as_rgb,
    compose_panels,
    outline_outside,
    part_colour,
    stack_rows,
    upscale,
)
from npgen.wording import plural

if TYPE_CHECKING:
    from npgen.analysis.tracer import PixelTrace

UNINFORMATIVE_DIM = 0.35  # brightness of parts without any informative pixel in the parts map


def _boundaries(ids: np.ndarray) -> np.ndarray:
    """Boolean mask of pixels whose right or lower neighbour has another id (lines between regions)."""
    edge = np.zeros(ids.shape, dtype=bool)
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    edge[:-1, :] |= ids[:-1, :] != ids[1:, :]
    return edge


def _outline_context(
    draw: ImageDraw.ImageDraw, y: int, x: int, half_window: int, scale: int, size: tuple[int, int]
) -> None:
    """Outline pixel (y, x) and its causal context: the h rows above (2h+1 wide) and the h pixels to its left.

    The context polygon is clipped to the image (the sampler reads padding outside it).
    """
    h, (height, width) = half_window, size

    def point(py: int, px: int) -> tuple[int, int]:
        return min(max(px, 0), width) * scale, min(max(py, 0), height) * scale

    corners = [(y - h, x - h), (y - h, x + h + 1), (y, x + h + 1), (y, x), (y + 1, x), (y + 1, x - h)]
    polygon = [point(py, px) for py, px in corners]
    polygon = [(min(px, width * scale - 1), min(py, height * scale - 1)) for px, py in polygon]
    draw.line(polygon + [polygon[0]], fill=CONTEXT_COLOUR, width=2)
    left, top = x * scale, y * scale
    draw.rectangle([left, top, left + scale - 1, top + scale - 1], outline=PIXEL_COLOUR, width=2)


def _traced_panel(
    image: np.ndarray, y: int, x: int, half_window: int, scale: int, labels: list[str]
) -> tuple[Image.Image, list[str]]:
    """An image enlarged `scale` times with pixel (y, x) and its causal context outlined, and its label lines."""
    rgb = as_rgb(image)
    panel = Image.fromarray(upscale(rgb, scale))
    _outline_context(ImageDraw.Draw(panel), y, x, half_window, scale, rgb.shape[:2])
    return panel, labels


def pixel_figure(
    trace: PixelTrace,
    sample_image: np.ndarray,
    source_image: np.ndarray,
    half_window: int,
    scale: int = 8,
    ancestor_images: Sequence[tuple[np.ndarray, np.ndarray]] = (),
) -> Image.Image:
    """The generated sample and the training image its pixel was copied from, side by side.

    On both the copied pixel is outlined in red and its causal context (the window the sampler matched:
    h rows above and h pixels to the left, inside a (2h+1) x (h+1) box) in yellow; a caption gives the
    source image, its class, location, displacement, window distance and admissible-set size.
    With pyramid levels, `ancestor_images` holds (the sample at level k, the ancestor's source at level k) for
    each of `trace.ancestors`, drawn in a second row, each level 2^k times larger so it lines up with the first.
    """
    panels = [
        _traced_panel(
            sample_image,
            trace.y,
            trace.x,
            half_window,
            scale,
            [f"generated sample {trace.sample}", f"pixel (y={trace.y}, x={trace.x})"],
        ),
        _traced_panel(
            source_image,
            trace.src_y,
            trace.src_x,
            half_window,
            scale,
            [
                f"training image {trace.src_image}, class {trace.src_class_name}",
                f"pixel (y={trace.src_y}, x={trace.src_x})",
            ],
        ),
    ]
    dy, dx = trace.displacement
    kind = "informative" if trace.informative else "a large tie: its source carries little information"
    caption = [
        f"Pixel (y={trace.y}, x={trace.x}) of sample {trace.sample} was copied from training image {trace.src_image} "
        f"(class {trace.src_class} '{trace.src_class_name}') at (y={trace.src_y}, x={trace.src_x}), displacement ({dy}, {dx}).",
        f"Window distance {trace.distance:.2f} (Gaussian-weighted SSD); {plural(trace.n_candidates, 'admissible candidate')} ({kind}).",
        f"Red: the pixel. Yellow: its causal context (h={half_window} rows above, h pixels to the left).",
    ]
    figure = compose_panels(panels, caption)
    if not trace.ancestors:
        return figure
    return stack_rows([figure, _ancestors_row(trace.ancestors, ancestor_images, half_window, scale)])


def _ancestors_row(
    ancestors: Sequence[PixelTrace],
    ancestor_images: Sequence[tuple[np.ndarray, np.ndarray]],
    half_window: int,
    scale: int,
) -> Image.Image:
    """The row of a pixel's ancestors: at each coarser level k, the level-k sample and the ancestor's source."""
    if len(ancestor_images) != len(ancestors):
        raise ValueError(f"{len(ancestors)} ancestors but {len(ancestor_images)} pairs of their images")
    panels, caption = [], []
    for ancestor, (level_sample, level_source) in zip(ancestors, ancestor_images):
        k, (height, width) = ancestor.level, np.shape(level_sample)[:2]
        panels.append(
            _traced_panel(
                level_sample,
                ancestor.y,
                ancestor.x,
                half_window,
                scale << k,
                [f"sample {ancestor.sample}, level {k} ({height}x{width})", f"pixel (y={ancestor.y}, x={ancestor.x})"],
            )
        )
        panels.append(
            _traced_panel(
                level_source,
                ancestor.src_y,
                ancestor.src_x,
                half_window,
                scale << k,
                [
                    f"training image {ancestor.src_image} at level {k}, class {ancestor.src_class_name}",
                    f"pixel (y={ancestor.src_y}, x={ancestor.src_x})",
                ],
            )
        )
        caption.append(
            f"Level {k}: pixel (y={ancestor.y}, x={ancestor.x}) was copied from training image {ancestor.src_image} "
            f"at (y={ancestor.src_y}, x={ancestor.src_x}) of its {height}x{width} box-mean image; window distance "
            f"{ancestor.distance:.2f}; {plural(ancestor.n_candidates, 'admissible candidate')}."
        )
    caption.append(
        "This row: the pixel's ancestors, pixel (y >> k, x >> k) of the sample at each coarser pyramid level k, "
        "copied from the training images' level-k images (means of 2^k x 2^k blocks) and drawn 2^k times larger "
        "so they line up with the row above."
    )
    return compose_panels(panels, caption)


def levels_figure(level_samples: Sequence[np.ndarray], sample: int | None = None, scale: int = 6) -> Image.Image:
    """A sample's pyramid levels side by side, finest (level 0, the sample) first, each coarser level k enlarged
    by pixel repetition 2^k times more so every level is drawn at the sample's size."""
    panels = []
    for k, image in enumerate(level_samples):
        height, width = np.shape(image)[:2]
        title = (
            f"level {k} ({height}x{width})" if sample is None or k else f"sample {sample}, level 0 ({height}x{width})"
        )
        detail = "the sample" if k == 0 else f"each pixel a {1 << k}x{1 << k} block"
        panels.append((Image.fromarray(upscale(as_rgb(image), scale << k)), [title, detail]))
    return compose_panels(panels)


def _part_map(part_ids: np.ndarray, informative_size: np.ndarray | None, scale: int) -> np.ndarray:
    """(H*scale, W*scale, 3) map of the parts in their palette colours, dimmed where uninformative, with boundaries."""
    n_parts = int(part_ids.max(initial=-1)) + 1
    palette = np.array([part_colour(i) for i in range(n_parts)], dtype=np.float64).reshape(-1, 3)
    if informative_size is not None and len(informative_size) == n_parts:
        palette[np.asarray(informative_size) == 0] *= UNINFORMATIVE_DIM
    ids = upscale(part_ids, scale)
    picture = palette[ids].astype(np.uint8)
    picture[_boundaries(ids)] = (40, 40, 40)
    return picture


def parts_figure(
    sample_image: np.ndarray,
    part_ids: np.ndarray,
    parts_table: pa.Table,
    dataset_images: np.ndarray,
    top: int = 6,
    *,
    labels: np.ndarray | None = None,
    class_names: tuple[str, ...] | None = None,
    scale: int = 6,
    sample: int | None = None,
) -> Image.Image:
    """The sample, a map of its parts, and its top source images with the regions each contributed.

    Sources are ranked by the informative pixels they gave, then by all pixels. On each source the pixels
    that were copied are tinted with their part's colour (the same colour as in the parts map) and the
    region is outlined. Parts with no informative pixel are drawn dim in the map.
    """
    part_ids = np.asarray(part_ids)
    columns = {
        name: parts_table.column(name).to_numpy()
        for name in ("part", "src_image", "dy", "dx", "size", "informative_size")
    }
    order = np.argsort(columns["part"], kind="stable")
    columns = {name: values[order] for name, values in columns.items()}  # row i describes part i
    height, width = part_ids.shape
    title = "sample" if sample is None else f"sample {sample}"
    panels = [
        (Image.fromarray(upscale(as_rgb(sample_image), scale)), [title]),
        (
            Image.fromarray(_part_map(part_ids, columns["informative_size"], scale)),
            [
                f"{len(columns['part'])} parts",
                f"{int((columns['informative_size'] > 0).sum())} with informative pixels",
            ],
        ),
    ]

    images, first = np.unique(columns["src_image"], return_inverse=True)
    pixels = np.bincount(first, columns["size"], len(images))
    informative = np.bincount(first, columns["informative_size"], len(images))
    ranked = images[np.lexsort((images, -pixels, -informative))][:top]
    ys, xs = np.mgrid[0:height, 0:width]
    for image_index in ranked:
        rgb = as_rgb(dataset_images[image_index]).astype(np.float64)
        region = np.full(rgb.shape[:2], -1, dtype=np.int64)  # part id given to each source pixel, -1 none
        for part in np.flatnonzero(columns["src_image"] == image_index):
            mask = part_ids == part
            region[ys[mask] + columns["dy"][part], xs[mask] + columns["dx"][part]] = part
        tinted = region >= 0
        colours = np.array([part_colour(int(p)) for p in region[tinted]], dtype=np.float64).reshape(-1, 3)
        rgb[tinted] = 0.35 * rgb[tinted] + 0.65 * colours
        picture = upscale(rgb.astype(np.uint8), scale)
        picture[outline_outside(upscale(tinted, scale))] = CONTEXT_COLOUR
        k = int(np.searchsorted(images, image_index))
        label = f"training image {image_index}"
        if labels is not None:
            label_of = int(labels[image_index])
            label += f", class {class_names[label_of] if class_names is not None else label_of}"
        panels.append((Image.fromarray(picture), [label, f"{int(pixels[k])} px ({int(informative[k])} informative)"]))
    caption = [
        "Parts: 4-connected pixels copied from one training image with one displacement; each part has its own colour "
        "(dim: no informative pixel, its source was a large tie). Right: the sources that gave the most informative pixels, "
        "the copied pixels tinted in their part's colour and outlined in yellow."
    ]
    return compose_panels(panels, caption)
