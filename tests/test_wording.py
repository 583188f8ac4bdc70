"""Counts are printed with the right plural: "1 training image excluded", "1 admissible candidate"."""

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
