"""The CUDA row kernel (npgen/rule/cuda.py) against the CPU kernel `sample_row`, bit for bit, on real MNIST and CIFAR-10.

Without a GPU the kernel runs in numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, set here unless the
variable is given): slow, so these tests compare a few rows of two samples, from canvases the CPU
sampler generated up to there. With NUMBA_ENABLE_CUDASIM=0 on a GPU machine they run on the GPU;
benchmarks/speed/gpu_check.py compares whole batches there.
"""

import json
import os
import subprocess
import sys

import numba

if "numba.cuda" not in sys.modules and "NUMBA_ENABLE_CUDASIM" not in os.environ:
    numba.config.ENABLE_CUDASIM = 1  # in this process only: other tests' subprocesses keep the real CUDA target

import numpy as np
import pytest
from conftest import REPO
from cuda_harness import RECORD_TYPES, compare_rows_with_cpu

from npgen.control.completion import Completion
from npgen.data.database import Database, WindowParams
from npgen.data.datasets import Dataset, load_dataset
from npgen.errors import NpgenError
from npgen.rule.batch import RowBatch
from npgen.rule.cpu import sample_row
from npgen.rule.cuda import RECORD, CudaSampler, cuda_sample_row, resolve_device
from npgen.rule.sampler import Sampler

SIMULATED = bool(numba.config.ENABLE_CUDASIM)
THREADS = 4 if SIMULATED else 128  # the simulator runs a Python thread per CUDA thread


@pytest.fixture
def fast_switching():
    """The simulator's threads meet at every syncthreads; switching threads often makes that 5-10x faster."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(interval)


def compare_rows(db, options: dict, class_label: int, rows: range, pixels: int | None = None) -> dict:
    seen = compare_rows_with_cpu(db, options, class_label, rows, n_samples=2, threads=THREADS)
    assert seen["mismatches"] == []
    assert seen["pixels"] == (2 * len(rows) * db.width if pixels is None else pixels) and seen["windows"] > 0
    return seen


def test_cuda_row_kernel_is_bit_identical_to_sample_row_on_mnist(mnist_db, fast_switching):
    # k_min 3 widens most admissible sets, radius 1 gives 9 positions per image, a 2% budget exhausts images
    options = {"k_min": 3, "radius": 1, "max_source_share": 0.02, "pool_size": 6}
    seen = compare_rows(mnist_db, options, class_label=3, rows=range(12, 14))
    sizes = np.array(seen["n_candidates"])
    assert (sizes == 3).any() and (sizes > 3).any(), "the rows must include widened and wide admissible sets"
    assert seen["exhausted"] > 0, "the rows must include pool images over their source budget"


@pytest.fixture(scope="module")
def cifar_db(all_data_root, tmp_path_factory):
    subset = load_dataset("cifar10", data_root=all_data_root).subset(np.arange(1500))
    return Database.build(
        subset, tmp_path_factory.mktemp("db") / "cifar", WindowParams(half_window=2, retrieval_block=4)
    )


def test_cuda_row_kernel_is_bit_identical_to_sample_row_on_cifar10(cifar_db, fast_switching):
    # colour, the preset's rule (k_min 1, 20% budget) with a small pool; rows 12-13 hold the object;
    # sigma 0.5: weights over many binary orders of magnitude, so that the float64 sums round (with the
    # default sigma they are exact whatever the order) and only the CPU's summation order reproduces them
    options = {"pool_size": 12, "max_source_share": 0.2, "sigma": 0.5}
    seen = compare_rows(cifar_db, options, class_label=3, rows=range(12, 14))
    assert (np.array(seen["n_candidates"]) > 1).any(), "the rows must include ties among admissible windows"


def test_cuda_row_kernel_is_bit_identical_with_a_class_map_excluded_images_and_given_pixels(mnist_db, fast_switching):
    """Regions (left half 3s, right half 7s) with all 7s but five excluded, so the 7s' pool (those five) is
    padded with -1 to the 3s' (eight), and a completion whose input gives the left 10 columns of every row."""
    labels = np.asarray(mnist_db.labels)
    sevens = np.flatnonzero(labels == 7)
    inputs = np.asarray(mnist_db.images())[[7, 50]]
    known = np.zeros(inputs.shape[:3], bool)
    known[:, :, :10] = True
    class_map = np.where(np.arange(28)[None, :] < 14, 3, 7).repeat(28, axis=0)
    options = {
        "class_map": class_map,
        "excluded": sevens[5:],
        "completion": Completion(inputs, known, 1),
        "pool_size": 8,
        "k_min": 2,
        "max_source_share": 0.2,
    }
    seen = compare_rows(mnist_db, options, class_label=-1, rows=range(12, 14), pixels=2 * 2 * 18)
    assert (np.array(seen["n_candidates"]) > 0).all()
    assert seen["padding"] == 2 * 2 * 3  # each compared row: the 7s' pool padded by 3 slots in both samples


def test_cuda_sampler_is_bit_identical_to_the_cpu_sampler(mnist_subset, tmp_path, fast_switching):
    """The whole batch loop (pools refreshed per row, state kept on the device) on 10x10 crops of real digits."""
    crops = mnist_subset.subset(np.arange(600))
    small = Dataset("mnist-crops", "train", crops.images[:, 9:19, 9:19], crops.labels, crops.class_names, "test")
    db = Database.build(small, tmp_path / "db", WindowParams(half_window=2))
    options = {"k_min": 2, "pool_size": 8, "max_source_share": 0.2, "seed": 5, "batch_size": 2}
    cpu = Sampler(db, **options).sample(2, class_label=7)
    gpu = CudaSampler(db, **options)
    gpu.threads = THREADS
    out = gpu.sample(2, class_label=7)
    for name in ("images", "sample_index", "class_label", *RECORD):
        np.testing.assert_array_equal(getattr(out, name), getattr(cpu, name), err_msg=name)
    assert (out.n_candidates > 0).all()


def test_a_pixel_without_candidates_is_left_unwritten_by_both_kernels(mnist_db, fast_switching):
    sampler = Sampler(mnist_db, pool_size=4)
    batch = RowBatch.start(mnist_db, 0, np.arange(2), mnist_db.class_members(5), sampler.pool_size)
    y, pool = next(batch.rows())
    used = np.zeros((2, mnist_db.n_images), np.int32)
    used[0, pool[0]] = sampler.budget  # every pool image of sample 0 has given its budget
    shape = (2, mnist_db.height, mnist_db.width)
    states = []
    for kernel in (sample_row, cuda_sample_row):
        state = (
            batch.flat_canvas.copy(),
            used.copy(),
            tuple(np.zeros(shape, t) for t in RECORD_TYPES),
        )
        args = (
            state[0],
            mnist_db.sources,
            pool[:, None],  # one region
            np.zeros((2, 1, pool.shape[1], 0)),  # no semantic filter
            np.zeros(mnist_db.height * mnist_db.width, np.int64),
            np.zeros((2, mnist_db.height * mnist_db.width), np.bool_),  # no given pixels
            state[1],
            sampler.budget,
            y,
            sampler.geometry(),
            sampler.canvas_geometry(),
            sampler.rule(),
            batch.keys,
            state[2],
        )
        kernel(*args, THREADS) if kernel is cuda_sample_row else kernel(*args)
        states.append(state)
    (cpu_canvas, cpu_used, cpu_record), (gpu_canvas, gpu_used, gpu_record) = states
    assert (cpu_record[3][0, 0] == 0).all() and (cpu_record[3][1, 0] > 0).all()
    np.testing.assert_array_equal(cpu_canvas[0], batch.flat_canvas[0])  # sample 0 untouched
    np.testing.assert_array_equal(gpu_canvas, cpu_canvas)
    np.testing.assert_array_equal(gpu_used, cpu_used)
    for name, gpu, cpu in zip(RECORD, gpu_record, cpu_record):
        np.testing.assert_array_equal(gpu[:, 0], cpu[:, 0], err_msg=name)


def run_resolve(device: str, simulator: str) -> subprocess.CompletedProcess:
    code = (
        "from npgen.errors import NpgenError\nfrom npgen.rule.cuda import resolve_device\n"
        f"try:\n    print(resolve_device({device!r}))\nexcept NpgenError as err:\n    print('error:', err)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_ENABLE_CUDASIM": simulator}
    return subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=120
    )


def test_device_cuda_without_a_gpu_is_a_one_line_error_and_auto_falls_back_to_the_cpu():
    from npgen.rule.cuda import cuda_status

    probe = run_resolve("auto", "0")
    has_gpu = probe.stdout.strip() == "cuda"
    cuda = run_resolve("cuda", "0").stdout.strip().splitlines()
    assert len(cuda) == 1
    if has_gpu:
        assert cuda == ["cuda"]
    else:
        assert probe.stdout.strip() == "cpu"
        assert cuda[0].startswith("error: device=cuda (--device cuda) needs a CUDA GPU") and "--device cpu" in cuda[0]
    assert run_resolve("cuda", "1").stdout.strip() == "cuda"  # the simulator counts as a device
    assert cuda_status()[0]
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(NpgenError, match="invalid device='gpu'.*auto, cpu, cuda"):
        resolve_device("gpu")


def test_npgen_sample_with_device_cuda_needs_a_gpu_and_otherwise_writes_what_the_cpu_writes(tmp_path, cache):
    env = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_ENABLE_CUDASIM": "0"}
    has_gpu = run_resolve("auto", "0").stdout.strip() == "cuda"
    runs = {}
    for device in ("cuda", "cpu") if has_gpu else ("cuda",):
        out = tmp_path / device
        args = ["sample", "--dataset", "mnist", "--class", "3", "-n", "2", "--levels", "1", "--device", device]
        args += ["--out", str(out)]
        done = subprocess.run(
            [sys.executable, "-m", "npgen", *args], check=False, capture_output=True, text=True, env=env, timeout=300
        )
        runs[device] = (done, out)
    done, out = runs["cuda"]
    if has_gpu:
        assert done.returncode == 0, done.stderr
        np.testing.assert_array_equal(np.load(out / "samples.npy"), np.load(runs["cpu"][1] / "samples.npy"))
    else:
        assert done.returncode == 2 and not out.exists()
        assert done.stderr.startswith("error: device=cuda (--device cuda) needs a CUDA GPU")
        assert done.stderr.count("\n") == 1, done.stderr


def test_the_mnist_pyramid_runs_on_the_cpu_with_device_auto_and_cuda_asks_for_one_level(tmp_path, cache):
    """MNIST's preset samples two pyramid levels, which the CUDA sampler does not: --device auto samples it on the
    CPU, and --device cuda says in one line to add --levels 1 (the CUDA simulator stands in for a GPU)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_ENABLE_CUDASIM": "1"}
    done = {}
    for device in ("auto", "cuda"):
        args = ["sample", "--dataset", "mnist", "--class", "3", "-n", "2", "--device", device]
        done[device] = subprocess.run(
            [sys.executable, "-m", "npgen", *args, "--out", str(tmp_path / device)],
            check=False, capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
    assert done["auto"].returncode == 0, done["auto"].stderr
    assert json.loads((tmp_path / "auto" / "manifest.json").read_text())["params"]["levels"] == 2
    assert done["cuda"].returncode == 2 and not (tmp_path / "cuda").exists()
    assert done["cuda"].stderr.startswith("error: the CUDA sampler samples one level only; add --levels 1")
    assert done["cuda"].stderr.count("\n") == 1, done["cuda"].stderr


def first_row_on_the_gpu(db, sampler: Sampler, semantic_columns: int) -> None:
    """`cuda_sample_row` on row 0 of one class-5 canvas with `sampler`'s rule and `semantic_columns` columns."""
    batch = RowBatch.start(db, 0, np.arange(1), db.class_members(5), sampler.pool_size)
    _, pool = next(batch.rows())
    cuda_sample_row(
        batch.flat_canvas, db.sources, pool[:, None], np.zeros((1, 1, 4, semantic_columns)), None, None, None,
        sampler.budget, 0, sampler.geometry(), sampler.geometry(), sampler.rule(), batch.keys, None,
    )  # fmt: skip


def test_the_semantic_filter_is_refused_on_the_gpu_with_one_line(mnist_db):
    with pytest.raises(NpgenError, match=r"no semantic filter \(--semantic-eps\); use --device cpu"):
        CudaSampler(mnist_db, semantic_eps=1.0)
    with pytest.raises(NpgenError, match="no semantic filter"):
        first_row_on_the_gpu(mnist_db, Sampler(mnist_db, pool_size=4), semantic_columns=7)


def test_rules_the_gpu_does_not_apply_are_refused_with_one_line(mnist_db, one_image_db):
    """Context outside the sample ignored, bounded copied parts and bounded reuse run on the CPU only: the CUDA
    sampler and its row kernel refuse them instead of sampling another rule."""
    with pytest.raises(NpgenError, match=r"--outside-canvas ignored on the CPU \(--device cpu\)$"):
        CudaSampler(mnist_db, outside_canvas="ignored")
    with pytest.raises(NpgenError, match="does not bound copied parts"):
        CudaSampler(mnist_db, max_part_share=0.5)
    with pytest.raises(NpgenError, match=r"does not bound reuse yet; sample --max-reuse on the CPU \(--device cpu\)$"):
        CudaSampler(one_image_db, max_reuse=1.0, pool_size=0, max_source_share=1.0)
    with pytest.raises(NpgenError, match="--outside-canvas ignored"):
        first_row_on_the_gpu(mnist_db, Sampler(mnist_db, pool_size=4, outside_canvas="ignored"), semantic_columns=0)
