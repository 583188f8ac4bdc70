"""The PNGs of a run: a plain 8-bit PNG encoder for many small pictures, and image grids."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from npgen.data.files import atomic_write, write_in_place
from npgen.errors import NpgenError


def grid_pixels(images: np.ndarray, columns: int | None = None, scale: int = 2, gap: int = 2) -> np.ndarray:
    """Tile (N, H, W, C) uint8 images into one (rows, columns, C) uint8 picture, upscaled by nearest neighbour
    (each pixel repeated scale x scale times), on a grey background with `gap` pixels between tiles."""
    n, height, width, channels = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = -(-n // columns)
    grid = np.full((rows * (height + gap) + gap, columns * (width + gap) + gap, channels), 128, dtype=np.uint8)
    for i, image in enumerate(images):
        top, left = gap + (i // columns) * (height + gap), gap + (i % columns) * (width + gap)
        grid[top : top + height, left : left + width] = image
    return grid.repeat(scale, axis=0).repeat(scale, axis=1)


def image_grid(images: np.ndarray, columns: int | None = None, scale: int = 2, gap: int = 2) -> Image.Image:
    """`grid_pixels` as a PIL image (grey-level for one channel)."""
    grid = grid_pixels(images, columns, scale, gap)
    return Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)


def save_png(picture: Image.Image, path: Path) -> None:
    """A PIL picture (a figure) written to `path` as PNG by Pillow, atomically."""
    atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"))


PNG_COLOUR_TYPES = {1: 0, 3: 2}  # channels -> PNG colour type: grey, RGB
PNG_LEVEL = 3  # zlib level of the run's PNGs: about Pillow's default size (level 6) at a third of the time
PNG_STORE_LIMIT = 4000  # scanline bytes up to which a picture is stored uncompressed (zlib level 0), see png_level


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_BATCH = 256  # pictures whose filtered rows `encode_pngs` builds at once (bounds its scratch memory)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_rows(pictures: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, H, 1 + W * C) the PNG scanlines of each picture: filter byte, then the row.

    A row is stored unfiltered, or as filter "Up" (all zeros) when it repeats the row above, which the upscaled
    pictures of a run mostly do."""
    n, height, width, channels = pictures.shape
    rows = np.zeros((n, height, 1 + width * channels), np.uint8)
    rows[:, :, 1:] = pictures.reshape(n, height, -1)
    repeats = np.zeros((n, height), bool)
    repeats[:, 1:] = (rows[:, 1:, 1:] == rows[:, :-1, 1:]).all(axis=2)
    rows[repeats] = 0
    rows[repeats, 0] = 2  # filter Up: each byte plus the one above it, here zero
    return rows


def png_level(height: int, width: int, channels: int) -> int:
    """The zlib level for a picture of this size: 0 (stored) when its scanlines fit PNG_STORE_LIMIT bytes, else
    PNG_LEVEL. Such a file fits one 4 KiB file-system block compressed or not, so compressing it saves no disk,
    while zlib's fixed cost per call (about 40 us) was most of a 100-sample CIFAR-10 run's PNG time."""
    return 0 if height * (1 + width * channels) <= PNG_STORE_LIMIT else PNG_LEVEL


def encode_pngs(pictures: np.ndarray, level: int | None = None) -> Iterator[bytes]:
    """A plain 8-bit PNG (grey or RGB) of each of (N, H, W, C) uint8 pictures, in order: `encode_png` of each.

    The scanlines of up to PNG_BATCH pictures are built by one set of array operations, and the header is
    packed once, so that a run's many small PNGs cost little more than writing them. `level`: zlib's, by default
    `png_level` of their size."""
    if pictures.ndim != 4 or pictures.dtype != np.uint8 or pictures.shape[3] not in PNG_COLOUR_TYPES:
        raise NpgenError(f"a PNG takes (H, W, 1 or 3) uint8 pixels, got {pictures.dtype} {pictures.shape[1:]}")
    _, height, width, channels = pictures.shape
    level = png_level(height, width, channels) if level is None else level
    header = struct.pack(">IIBBBBB", width, height, 8, PNG_COLOUR_TYPES[channels], 0, 0, 0)
    head, tail = PNG_SIGNATURE + _png_chunk(b"IHDR", header), _png_chunk(b"IEND", b"")
    idat_crc = zlib.crc32(b"IDAT")
    for first in range(0, len(pictures), PNG_BATCH):
        for rows in png_rows(pictures[first : first + PNG_BATCH]):
            data = zlib.compress(rows, level)  # rows: one C-contiguous picture, read in place
            yield b"".join(
                [head, struct.pack(">I", len(data)), b"IDAT", data, struct.pack(">I", zlib.crc32(data, idat_crc)), tail]
            )


def encode_png(pixels: np.ndarray, level: int | None = None) -> bytes:
    """A plain 8-bit PNG (grey or RGB) of (H, W, C) uint8 pixels.

    Each row is stored unfiltered, or as filter "Up" (all zeros) when it repeats the row above (`png_rows`):
    this writes a run's PNGs several times faster than Pillow, at about the size of Pillow's default (small
    pictures are stored uncompressed, `png_level`). Any PNG reader decodes exactly these pixels."""
    if pixels.ndim != 3 or pixels.dtype != np.uint8 or pixels.shape[2] not in PNG_COLOUR_TYPES:
        raise NpgenError(f"a PNG takes (H, W, 1 or 3) uint8 pixels, got {pixels.dtype} {pixels.shape}")
    return next(encode_pngs(pixels[None], level))


def write_png(pixels: np.ndarray, path: Path, atomic: bool = True) -> None:
    """`encode_png(pixels)` written to `path`: atomically, or in place (`files.write_in_place`)."""
    data = encode_png(pixels)
    if atomic:
        atomic_write(path, lambda tmp: tmp.write_bytes(data))
    else:
        write_in_place(path, data)
