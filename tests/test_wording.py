"""Counts are printed with the right plural: "1 training image excluded", "1 admissible candidate"."""

import re

import numpy as np
import pyarrow.parquet as pq
from click.testing import CliRunner

from npgen.cli import main
from npgen.wording import plural


def test_plural_adds_s_unless_the_count_is_one():
    assert plural(1, "training image") == "1 training image"
    assert plural(0, "training image") == "0 training images"
    assert plural(2_000, "admissible candidate") == "2,000 admissible candidates"
    assert plural(3, "child", "children") == "3 children"


def test_a_run_excluding_one_image_and_a_pixel_with_one_candidate_are_worded_in_the_singular(cache, tmp_path):
    run = tmp_path / "run"
    args = ["sample", "--dataset", "mnist", "--class", "3", "-n", "1", "--k-min", "1", "--exclude", "7"]
    result = CliRunner().invoke(main, [*args, "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "; 1 training image excluded;" in result.output and "1 training images" not in result.output
    table = pq.read_table(run / "provenance").to_pydict()
    one = int(np.flatnonzero(np.asarray(table["n_candidates"]) == 1)[0])
    pixel = f"{table['y'][one]},{table['x'][one]}"
    result = CliRunner().invoke(main, ["trace", str(run), "--sample", "0", "--pixel", pixel])
    assert result.exit_code == 0, result.output
    assert "; 1 admissible candidate" in result.output and "1 admissible candidates" not in result.output


def test_options_no_preset_sets_say_their_actual_default():
    text = " ".join(CliRunner().invoke(main, ["sample", "--help"], terminal_width=200).output.split())
    assert "default: the dataset's preset, else" not in text
    for option, default in (("--seed", "0"), ("--batch-size", "100"), ("--device", "cpu")):
        found = re.search(re.escape(option) + r" .*?; (default: [^\]]*)\]", text)
        assert found and found.group(1) == f"default: {default}", option
    k_min = text[text.index("--k-min ") :]
    assert (
        "default: the dataset's preset (mnist 2, cifar10 1, an image file: the single-image preset), else 1]" in k_min
    )


def test_data_import_and_download_of_an_unknown_name_say_what_they_take(tmp_path):
    for command in ("import", "download"):
        args = ["data", command, "shapes", *([str(tmp_path)] if command == "import" else [])]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "Invalid value" not in result.output, result.output
        assert f"error: data {command} takes a dataset npgen has a card for (mnist or cifar10), not 'shapes'" in (
            result.output
        )
        assert "pass its path to --dataset" in result.output and len(result.output.strip().splitlines()) == 1


def test_install_hints_name_the_extra_of_the_checkout_not_a_package_index_name():
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    sources = [p.read_text() for p in (repo / "npgen").rglob("*.py")] + [(repo / "datasets" / "README.md").read_text()]
    assert not [s for s in sources if "npgen[" in s]  # npgen is not on PyPI under that name
    assert "pip install -e '.[download]'" in (repo / "npgen" / "data" / "datasets.py").read_text()
