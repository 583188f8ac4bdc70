"""A run's PNGs (npgen/store.py `encode_png`): valid files that any reader decodes to exactly the samples' pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from npgen import api
from npgen.datasets import load_dataset
from npgen.errors import NpgenError
from npgen.store import encode_png, grid_pixels, image_grid


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
