"""A flat folder of unlabelled shapes (28 circles, 14 squares; varied size and position, drawn with pillow), and how
npgen's flat-folder clusters split it: `python benchmarks/studies/shapes.py OUT_FOLDER`.

Writes OUT_FOLDER/shape-NN.png (no class subfolders: a flat folder) and prints the contingency table of the true
shapes against `npgen.data.clusters.cluster_labels` (the number of clusters chosen by silhouette) and the chosen
number of clusters. `tests/test_flat_folder.py` uses `draw_shapes` as its fixture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 32
N_CIRCLES, N_SQUARES = 28, 14


def draw_shapes(folder: Path, n_circles: int = N_CIRCLES, n_squares: int = N_SQUARES, seed: int = 0) -> list[str]:
    """Draw n_circles white circles and n_squares white squares on black, SIZE x SIZE grey PNGs with random sizes
    (diameter or side 10-22 pixels) and positions, in a shuffled order; return each file's shape in file order."""
    rng = np.random.default_rng(seed)
    shapes = ["circle"] * n_circles + ["square"] * n_squares
    rng.shuffle(shapes)
    folder.mkdir(parents=True, exist_ok=True)
    for i, shape in enumerate(shapes):
        side = int(rng.integers(10, 23))
        y, x = (int(v) for v in rng.integers(0, SIZE - side + 1, size=2))
        picture = Image.new("L", (SIZE, SIZE), 0)
        draw = ImageDraw.Draw(picture)
        box = (x, y, x + side - 1, y + side - 1)
        (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=255)
        picture.save(folder / f"shape-{i:02d}.png")
    return shapes


def contingency(shapes: list[str], clusters: np.ndarray) -> dict[str, list[int]]:
    """Images of each shape in each cluster: {shape: [count in cluster 0, cluster 1, ...]}."""
    k = int(clusters.max()) + 1
    return {s: [int(((np.array(shapes) == s) & (clusters == c)).sum()) for c in range(k)] for s in sorted(set(shapes))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from npgen.data.folders import read_image

    from npgen.data.clusters import cluster_labels

    shapes = draw_shapes(args.folder, seed=args.seed)
    images = np.stack([read_image(args.folder / f"shape-{i:02d}.png") for i in range(len(shapes))])[..., None]
    clusters = cluster_labels(images)
    table = contingency(shapes, clusters)
    k = int(clusters.max()) + 1
    print(f"{len(shapes)} images, {k} clusters chosen")
    print("shape   " + "".join(f"{'cluster-' + str(c):>11}" for c in range(k)))
    for shape, counts in table.items():
        print(f"{shape:<8}" + "".join(f"{n:>11}" for n in counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
