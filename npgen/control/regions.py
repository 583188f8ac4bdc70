"""Region steering and completion masks: per-pixel maps parsed from what the user writes.

A class map gives each pixel the class its candidates must come from (-1: any training image), so
that, say, the top half of a sample is copied from horses and the bottom half from ships. A mask
says which pixels of an input are given (kept) when completing it. Both are (H, W) arrays of the
dataset's image size, named by a region (`top`, `bottom`, `left`, `right`, the quarters
`top-left` ... `bottom-right`, `all`) or read from an image file of that size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from npgen.errors import NpgenError

REGIONS = ("all", "top", "bottom", "left", "right", "top-left", "top-right", "bottom-left", "bottom-right")

CLASS_MAP_HELP = (
    "Steer regions to classes: 'top=horse,bottom=ship' (regions: all, top, bottom, left, right, top-left, top-right, "
    "bottom-left, bottom-right; later ones win; the rest draws from any class), or 'file:MAP.png:COLOUR=CLASS,...' "
    "(COLOUR a grey level 0..255 or #rrggbb of MAP.png, an image of the samples' size)."
)
MASK_HELP = (
    "The given (kept) pixels: top, bottom, left or right half (top: keep the top half, generate the bottom), "
    "or an image file of the inputs' size whose non-black pixels are given."
)


def region(name: str, height: int, width: int) -> np.ndarray:
    """(H, W) bool: the pixels of a named region; halves split at H//2 and W//2."""
    if name not in REGIONS:
        raise NpgenError(f"unknown region {name!r}; choose one of: {', '.join(REGIONS)}")
    top = np.broadcast_to(np.arange(height)[:, None] < height // 2, (height, width))
    left = np.broadcast_to(np.arange(width)[None, :] < width // 2, (height, width))
    parts = {
        "all": np.ones((height, width), bool),
        "top": top,
        "bottom": ~top,
        "left": left,
        "right": ~left,
        "top-left": top & left,
        "top-right": top & ~left,
        "bottom-left": ~top & left,
        "bottom-right": ~top & ~left,
    }
    return np.array(parts[name])


def _read_map_image(path: Path, height: int, width: int, what: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file that must be the samples' size."""
    from PIL import Image

    if not path.is_file():
        raise NpgenError(f"{what} {path}: no such file")
    try:
        with Image.open(path) as img:
            if img.size != (width, height):  # from the header, before any pixel is decoded
                raise NpgenError(
                    f"{what} {path} is {img.size[0]}x{img.size[1]} pixels; it must be {width}x{height} like the images"
                )
            pixels = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except NpgenError:
        raise
    except Exception as err:
        raise NpgenError(f"{what} {path}: not a readable image ({str(err).splitlines()[0][:80]})") from None
    if pixels.shape[:2] != (height, width):
        raise NpgenError(
            f"{what} {path} is {pixels.shape[1]}x{pixels.shape[0]} pixels; it must be {width}x{height} like the images"
        )
    return pixels


def _colour(text: str, where: str) -> tuple[int, int, int]:
    text = text.strip()
    try:
        if text.startswith("#") and len(text) == 7:
            return tuple(int(text[i : i + 2], 16) for i in (1, 3, 5))
        level = int(text)
    except ValueError:
        level = -1
    if not 0 <= level <= 255:
        raise NpgenError(f"{where}: {text!r} is not a grey level 0..255 or a colour #rrggbb")
    return level, level, level


def parse_class_map(spec: str, class_names: tuple[str, ...], height: int, width: int) -> np.ndarray:
    """(H, W) int64 class of each pixel (-1: any class) from a --class-map spec (see CLASS_MAP_HELP)."""
    from npgen.control.classes import resolve_class

    class_map = np.full((height, width), -1, dtype=np.int64)
    if spec.startswith("file:"):
        path_text, colon, pairs = spec[len("file:") :].rpartition(":")
        if not colon or "=" not in pairs:
            raise NpgenError(
                f"--class-map {spec}: write file:MAP.png:COLOUR=CLASS,... e.g. file:map.png:0=horse,255=ship"
            )
        pixels = _read_map_image(Path(path_text), height, width, "--class-map")
        for pair in pairs.split(","):
            colour, _, name = pair.partition("=")
            where = (pixels == np.array(_colour(colour, f"--class-map {spec}"), np.uint8)).all(axis=2)
            if not where.any():
                raise NpgenError(f"--class-map {spec}: no pixel of {path_text} has colour {colour.strip()}")
            class_map[where] = resolve_class(class_names, name.strip())
        return class_map
    for pair in spec.split(","):
        name, equals, value = pair.partition("=")
        if not equals:
            raise NpgenError(f"--class-map {spec}: write REGION=CLASS pairs, e.g. top=horse,bottom=ship")
        class_map[region(name.strip(), height, width)] = resolve_class(class_names, value.strip())
    return class_map


def parse_mask(spec: str, height: int, width: int) -> np.ndarray:
    """(H, W) bool: the given pixels of a completion, from a --mask spec (see MASK_HELP)."""
    if spec in REGIONS:
        if spec == "all":
            raise NpgenError("--mask all would leave nothing to generate; choose top, bottom, left, right or a file")
        return region(spec, height, width)
    if not Path(spec).is_file():
        regions = ", ".join(name for name in REGIONS if name != "all")
        raise NpgenError(f"--mask {spec}: no such region or file; choose a region ({regions}) or an image file")
    known = _read_map_image(Path(spec), height, width, "--mask").any(axis=2)
    if known.all():
        raise NpgenError(f"--mask {spec}: every pixel is given, so there is nothing to generate")
    return known
