"""A run's PNGs (npgen/runs/png.py `encode_png`): valid files that any reader decodes to exactly the samples' pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from npgen import api
from npgen.data.datasets import load_dataset
from npgen.errors import NpgenError
from npgen.runs.png import PNG_LEVEL, encode_png, encode_pngs, grid_pixels, image_grid, png_level


def decode(data: bytes) -> np.ndarray:
    picture = Image.open(io.BytesIO(data))
    picture.load()  # decodes every row and checks the chunks' CRCs
    return np.asarray(picture)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_encoded_pngs_decode_to_the_same_pixels(name, all_data_root):
    images = load_dataset(name, data_root=all_data_root).images[:20]
    for pixels in (images[0], images[1].repeat(4, axis=0).repeat(4, axis=1), grid_pixels(images)):
        decoded = decode(encode_png(pixels))
        assert decoded.shape[:2] == pixels.shape[:2]
        assert np.array_equal(decoded.reshape(pixels.shape), pixels)
    # the pictures are the ones Pillow drew before: grid_pixels is image_grid's array
    assert np.array_equal(np.asarray(image_grid(images)).reshape(grid_pixels(images).shape), grid_pixels(images))


def test_a_run_writes_pngs_of_its_samples(cache, data_root, tmp_path):
    run = api.sample_run(tmp_path / "run", "mnist", 3, 5, data_root, sampler_options={"seed": 2})
    samples = np.load(run / "samples.npy")
    for i, sample in enumerate(samples):
        decoded = decode((run / "png" / f"sample-{i:05d}.png").read_bytes())
        assert np.array_equal(decoded, sample[..., 0])  # the sample itself, pixel for pixel
    assert np.array_equal(decode((run / "grid.png").read_bytes()), grid_pixels(samples)[..., 0])


def test_encode_png_refuses_what_png_cannot_hold():
    with pytest.raises(NpgenError, match="uint8"):
        encode_png(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(NpgenError, match="uint8"):
        encode_png(np.zeros((4, 4, 3), np.float32))


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_a_batch_of_pngs_is_each_picture_encoded_alone(name, all_data_root):
    """`encode_pngs` (a run's per-sample PNGs) gives, byte for byte, `encode_png` of each picture; a sample is
    small enough to be stored uncompressed (one 4 KiB block either way), a grid is compressed, and both
    decode to exactly their pixels."""
    images = load_dataset(name, data_root=all_data_root).images[:300]  # more than one PNG_BATCH
    encoded = list(encode_pngs(images))
    assert len(encoded) == len(images)
    assert encoded == [encode_png(image) for image in images]
    assert png_level(*images.shape[1:]) == 0 and max(map(len, encoded)) <= 4096
    for data, image in zip(encoded[::37], images[::37]):
        assert np.array_equal(decode(data).reshape(image.shape), image)
    grid = grid_pixels(images[:64])
    assert png_level(*grid.shape) == PNG_LEVEL and len(encode_png(grid)) < grid.size / 2
    assert np.array_equal(decode(encode_png(grid)).reshape(grid.shape), grid)
