"""Region steering: each pixel's source comes from its region's class, and verify checks it."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from npgen.api import sample_run, verify_run
from npgen.cli import main
from npgen.control.regions import parse_class_map, region
from npgen.data.datasets import load_dataset
from npgen.data.files import array_sha256


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def steered(module_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("steered") / "run"
    return sample_run(out, "mnist", 6, class_map="top=7,bottom=1")


def test_regions_split_the_image():
    assert region("top", 4, 6)[:2].all() and not region("top", 4, 6)[2:].any()
    assert (region("top-left", 4, 6) == (region("top", 4, 6) & region("left", 4, 6))).all()
    class_map = parse_class_map("all=3,bottom-right=5", tuple("0123456789"), 4, 6)
    assert class_map[3, 5] == 5 and class_map[0, 0] == 3 and (class_map == 5).sum() == 6


def test_every_pixel_comes_from_its_regions_class(steered):
    labels = load_dataset("mnist").labels
    table = pq.read_table(steered / "provenance", columns=["y", "src_image"])
    y, src = table.column("y").to_numpy(), table.column("src_image").to_numpy()
    assert (labels[src[y < 14]] == 7).all() and (labels[src[y >= 14]] == 1).all()
    manifest = json.loads((steered / "manifest.json").read_text())
    assert manifest["class_map"] == {"spec": "top=7,bottom=1", "pixels": {"1": 392, "7": 392}}
    assert verify_run(steered).ok


def test_verify_catches_a_source_outside_its_region(steered, tmp_path):
    run = tmp_path / "tampered"
    shutil.copytree(steered, run)
    swapped = parse_class_map("top=1,bottom=7", tuple("0123456789"), 28, 28)
    np.save(run / "controls" / "class_map.npy", swapped)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["controls"]["class_map"] = array_sha256(swapped)
    (run / "manifest.json").write_text(json.dumps(manifest))
    report = verify_run(run)
    assert report.wrong_class == 6 * 28 * 28 and not report.ok


def test_a_class_map_image_with_a_class_per_colour(module_cache, tmp_path):
    picture = np.zeros((28, 28, 3), np.uint8)
    picture[:, 14:] = (255, 0, 0)
    Image.fromarray(picture).save(tmp_path / "map.png")
    result = cli(
        "sample",
        "--dataset",
        "mnist",
        "-n",
        "2",
        "--class-map",
        f"file:{tmp_path / 'map.png'}:0=0,#ff0000=4",
        "--out",
        tmp_path / "run",
    )
    assert result.exit_code == 0, result.output
    labels = load_dataset("mnist").labels
    table = pq.read_table(tmp_path / "run" / "provenance", columns=["x", "src_image"])
    x, src = table.column("x").to_numpy(), table.column("src_image").to_numpy()
    assert (labels[src[x < 14]] == 0).all() and (labels[src[x >= 14]] == 4).all()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--class-map", "middle=3"], "unknown region"),
        (["--class-map", "top=dragon"], "unknown class"),
        (["--class-map", "top"], "REGION=CLASS"),
        (["--class-map", "top=3", "--class", "3"], "exclude each other"),
        (["--class-map", "file:/no/map.png:0=3"], "no such file"),
    ],
)
def test_bad_class_maps_give_one_line_errors(args, message, module_cache, tmp_path):
    result = cli("sample", "--dataset", "mnist", "-n", "2", *args, "--out", tmp_path / "run")
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
