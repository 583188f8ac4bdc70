"""Exclusion: the training images a run may not copy from, named by the user and resolved against the split.

An exclusion is a search parameter, not a new database: the sampler leaves the excluded images out
of every candidate set, every semantic pool and the class shares of the mixture. The run records the
resolved set (`controls/excluded.npy`) and its SHA-256, and `npgen verify` proves that no pixel came
from it. Each `--exclude` value is one of:

- `3`, `3,17,40-49`: training-image indices (ranges inclusive);
- `file:PATH`: a text file of indices (one per line or separated by commas or spaces, `#` comments), or a .npy array;
- `image:PATH`: an image file, or a folder of them, matched by content (its decoded pixels, as the
  split stores them) against the split; every copy of a matched image is excluded, and an image
  that is not in the split is an error;
- `class:NAME`: every image of a class (name or index);
- `near:D:SPEC`: the images SPEC names and every training image within Euclidean distance D
  (pixel values 0..255, all channels) of one of them: their near-duplicates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npgen.data.files import array_sha256
from npgen.errors import NpgenError

SPEC_HELP = (
    "Training images to leave out (repeatable): indices '3,17,40-49', 'file:PATH' (indices), 'image:PATH' "
    "(image files matched by content), 'class:NAME', or 'near:D:SPEC' (SPEC's images and all within L2 distance D)."
)


@dataclass(frozen=True)
class Exclusion:
    """The resolved exclusion: the specs as given and the sorted, distinct training-image indices they name."""

    specs: tuple[str, ...]
    images: np.ndarray  # int64, sorted, distinct

    def record(self) -> dict:
        """What the run manifest keeps: the specs, how many images they resolved to, and the set's SHA-256."""
        return {"specs": list(self.specs), "n_images": int(len(self.images)), "sha256": array_sha256(self.images)}


def _indices(text: str, n_images: int, where: str) -> list[int]:
    out: list[int] = []
    for token in text.replace(",", " ").split():
        first, dash, last = token.partition("-")
        try:
            low, high = int(first), int(last) if dash else int(first)
        except ValueError:
            raise NpgenError(
                f"{where}: {token!r} is not a training-image index or range like 40-49; see --help for --exclude"
            ) from None
        if not 0 <= low <= high < n_images:
            raise NpgenError(f"{where}: {token!r} is outside the training split's indices 0..{n_images - 1}")
        out.extend(range(low, high + 1))
    return out


def _index_file(path: Path, n_images: int) -> list[int]:
    if not path.is_file():
        raise NpgenError(f"--exclude file:{path}: no such file")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise NpgenError(f"--exclude file:{path}: not a readable .npy array ({err})") from None
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise NpgenError(f"--exclude file:{path}: must hold a 1-D array of integer indices")
        return _indices(" ".join(map(str, array.tolist())), n_images, f"--exclude file:{path}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise NpgenError(f"--exclude file:{path}: cannot read it as text ({err})") from None
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    return _indices(" ".join(lines), n_images, f"--exclude file:{path}")


def _image_files(path: Path) -> list[Path]:
    from npgen.data.readers import image_suffixes

    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in image_suffixes())
        if files:
            return files
        raise NpgenError(f"--exclude image:{path}: the folder holds no image files")
    raise NpgenError(f"--exclude image:{path}: no such file or folder")


def _matching_images(path: Path, dataset) -> list[int]:
    from npgen.data.datasets import read_image_like

    digests: dict[bytes, list[int]] = {}
    for i, image in enumerate(dataset.images):
        digests.setdefault(hashlib.sha256(image.tobytes()).digest(), []).append(i)
    found: list[int] = []
    for file in _image_files(path):
        matches = digests.get(hashlib.sha256(read_image_like(file, dataset).tobytes()).digest())
        if matches is None:
            raise NpgenError(
                f"--exclude image:{file}: no training image of {dataset.name} has exactly these pixels; "
                "use near:D:image:PATH to exclude images within distance D"
            )
        found.extend(matches)
    return found


def _near(distance: str, inner: list[int], dataset, database) -> list[int]:
    from npgen.data.index import within

    try:
        radius = float(distance)
    except ValueError:
        raise NpgenError(f"--exclude near:{distance}:...: the distance must be a number >= 0") from None
    if not np.isfinite(radius) or radius < 0:
        raise NpgenError(f"--exclude near:{distance}:...: the distance must be a number >= 0")
    if not inner:
        return []
    images = dataset.images
    radius = min(radius, 255.0 * np.sqrt(images[0].size) + 1.0)  # no two images are farther apart
    candidates = np.unique(np.concatenate(within(database.nearest_index(), images[inner], radius)))
    # FAISS sums in float32: confirm each candidate with exact integer distances
    queries = images[inner].reshape(len(inner), -1).astype(np.int64)
    keep = [
        int(c)
        for c in candidates
        if (((images[c].reshape(-1).astype(np.int64) - queries) ** 2).sum(axis=1) <= radius * radius).any()
    ]
    return sorted(set(keep) | set(inner))


def _resolve_one(spec: str, dataset, database) -> list[int]:
    kind, colon, rest = spec.partition(":")
    if not colon:
        return _indices(spec, dataset.n_images, f"--exclude {spec}")
    if kind == "file":
        return _index_file(Path(rest), dataset.n_images)
    if kind == "image":
        return _matching_images(Path(rest), dataset)
    if kind == "class":
        from npgen.control.classes import resolve_class

        label = resolve_class(dataset.class_names, rest)
        return np.flatnonzero(dataset.labels == label).tolist()
    if kind == "near":
        distance, colon, inner = rest.partition(":")
        if not colon or not inner:
            raise NpgenError(f"--exclude {spec}: write near:D:SPEC, e.g. near:500:image:contested.png")
        return _near(distance, _resolve_one(inner, dataset, database), dataset, database)
    raise NpgenError(f"--exclude {spec}: unknown kind {kind!r}; use indices, file:, image:, class: or near:D:")


def resolve_exclusion(specs: list[str] | tuple[str, ...], dataset, database) -> Exclusion:
    """The training images the specs name, against this split (`database` answers near:D: searches)."""
    found: set[int] = set()
    for spec in specs:
        found.update(_resolve_one(str(spec).strip(), dataset, database))
    return Exclusion(tuple(specs), np.array(sorted(found), dtype=np.int64))
