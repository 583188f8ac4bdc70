"""A learned, label-free retrieval representation: whitened-patch k-means codes (Coates & Ng, 2011).

Learned from the training images alone (never their labels, never a pretrained network):

1. sample p x p patches, each lying inside one block row of s pixel rows (p <= s);
2. normalise each patch's brightness and contrast, (x - mean) / sqrt(var + 10) on the 0..255 scale;
3. ZCA-whiten them (eps 0.1) and learn K centroids with FAISS k-means (`index.kmeans`);
4. encode a patch by the triangle activation f_k = max(0, mean_j(d_j) - d_k), d_k its Euclidean
   distance to centroid k, and mean-pool, for each s x s block, the activations of the patches
   centred in it and in its `reach` neighbouring blocks left and right (same block row only);
5. take the square root of each block's K activations (it tempers the few large ones), project
   onto the top D principal directions of the training blocks' codes, scale, and round to int32.

The result has the layout of `semantics.block_sums`: (N, H // s, (W // s) * D) int32, block row r
depending only on pixel rows r*s .. r*s + s - 1, so a canvas can be encoded row by row as it is
generated (`encode_row`) and the exact integer prefix distances of `semantics.CanvasPools` apply
unchanged. Every kernel works one image at a time in a fixed order, so the codes of an image do
not depend on the batch it is encoded in.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from npgen.data.index import kmeans
from npgen.errors import NpgenError

FORMAT = "npgen-patch-codes"
FORMAT_VERSION = 1
CONTRAST_EPS = 10.0  # Coates & Ng's variance floor for 0..255 pixels
ZCA_EPS = 0.1
TARGET_STD = 64.0  # the int32 codes' overall standard deviation: rounding error is negligible against it
_ARRAYS = ("patch_mean", "whiten", "centroids", "code_mean", "basis")


# --- kernels (numba; their plain-numpy definitions are in tests/kernel_references.py) -------------


def patch_columns(width: int, patch: int, block: int) -> np.ndarray:
    """Block column of each horizontal patch position x = 0 .. W - p: the block holding its centre."""
    return np.minimum((np.arange(width - patch + 1) + patch // 2) // block, width // block - 1).astype(np.int64)


@numba.njit(parallel=True, cache=True)
def row_patches(slab: np.ndarray, patch: int) -> np.ndarray:
    """(B, s, W, C) uint8 -> (B, (s-p+1)*(W-p+1), p*p*C) float32 contrast-normalised patches, dy-major."""
    n, rows, width, channels = slab.shape
    nx, ny, size = width - patch + 1, rows - patch + 1, patch * patch * channels
    out = np.empty((n, ny * nx, size), dtype=np.float32)
    for b in numba.prange(n):
        for dy in range(ny):
            for x in range(nx):
                v = out[b, dy * nx + x]
                i = 0
                for py in range(patch):
                    for px in range(patch):
                        for c in range(channels):
                            v[i] = np.float32(slab[b, dy + py, x + px, c])
                            i += 1
                mean = np.float32(0.0)
                for i in range(size):
                    mean += v[i]
                mean /= size
                var = np.float32(0.0)
                for i in range(size):
                    v[i] -= mean
                    var += v[i] * v[i]
                inv = np.float32(1.0) / np.sqrt(var / max(size - 1, 1) + np.float32(CONTRAST_EPS))
                for i in range(size):
                    v[i] *= inv
    return out


@numba.njit(parallel=True, cache=True)
def triangle_pool(
    patches: np.ndarray,
    patch_mean: np.ndarray,
    whiten: np.ndarray,
    centroids_t: np.ndarray,
    columns: np.ndarray,
    n_columns: int,
    reach: int,
) -> np.ndarray:
    """(B, n_pos, P) patches -> (B, n_columns, K) float32 triangle activations, mean-pooled per block.

    Each patch is whitened, z = (x - patch_mean) @ whiten, then f_k = max(0, mean_j d_j - d_k) with
    d_k = |z - centroid_k|; patch position i lies in block column columns[i % len(columns)] and is
    pooled into the block columns within `reach` of it.
    """
    n, n_pos, size = patches.shape
    k_codes = centroids_t.shape[1]
    nx = columns.shape[0]
    counts = np.zeros(n_columns, dtype=np.float32)
    for i in range(n_pos):
        col = columns[i % nx]
        for c in range(max(col - reach, 0), min(col + reach + 1, n_columns)):
            counts[c] += 1
    c_sq = np.zeros(k_codes, dtype=np.float32)
    for j in range(size):
        for k in range(k_codes):
            c_sq[k] += centroids_t[j, k] * centroids_t[j, k]
    out = np.zeros((n, n_columns, k_codes), dtype=np.float32)
    for b in numba.prange(n):
        sums = np.zeros((n_columns, k_codes), dtype=np.float32)
        x = np.empty(size, dtype=np.float32)
        z = np.empty(size, dtype=np.float32)
        dot = np.empty(k_codes, dtype=np.float32)
        for i in range(n_pos):
            for j in range(size):
                x[j] = patches[b, i, j] - patch_mean[j]
                z[j] = 0.0
            for j in range(size):
                xj = x[j]
                for m in range(size):
                    z[m] += xj * whiten[j, m]
            z_sq = np.float32(0.0)
            for j in range(size):
                z_sq += z[j] * z[j]
            dot[:] = 0.0
            for j in range(size):
                zj = z[j]
                for k in range(k_codes):
                    dot[k] += zj * centroids_t[j, k]
            mean_d = np.float32(0.0)
            for k in range(k_codes):
                dot[k] = np.sqrt(max(z_sq + c_sq[k] - np.float32(2.0) * dot[k], np.float32(0.0)))
                mean_d += dot[k]
            mean_d /= k_codes
            col = columns[i % nx]
            for k in range(k_codes):
                act = mean_d - dot[k]
                if act > 0:
                    sums[col, k] += act
        for col in range(n_columns):
            for c in range(max(col - reach, 0), min(col + reach + 1, n_columns)):
                for k in range(k_codes):
                    out[b, c, k] += sums[col, k]
        for col in range(n_columns):
            for k in range(k_codes):
                out[b, col, k] /= counts[col]
    return out


@numba.njit(parallel=True, cache=True)
def project_codes(codes: np.ndarray, code_mean: np.ndarray, basis: np.ndarray, scale: float) -> np.ndarray:
    """(B, n_columns, K) float32 activations -> (B, n_columns * D) int32: round(scale * (sqrt(a) - code_mean) @ basis)."""
    n, n_columns, k_codes = codes.shape
    dims = basis.shape[1]
    out = np.empty((n, n_columns * dims), dtype=np.int32)
    for b in numba.prange(n):
        acc = np.empty(dims, dtype=np.float64)
        for col in range(n_columns):
            acc[:] = 0.0
            for k in range(k_codes):
                ck = np.sqrt(np.float64(codes[b, col, k])) - code_mean[k]
                for d in range(dims):
                    acc[d] += ck * basis[k, d]
            for d in range(dims):
                out[b, col * dims + d] = np.int32(np.round(acc[d] * scale))
    return out


# --- the representation -------------------------------------------------------------------------


def _save_array(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


@dataclass(frozen=True, eq=False)
class PatchCodes:
    """Learned patch codes: `learn` once from training images, then `encode` / `encode_row`."""

    block: int
    patch: int
    reach: int
    patch_mean: np.ndarray  # (P,) float32, P = patch * patch * channels
    whiten: np.ndarray  # (P, P) float32, ZCA
    centroids: np.ndarray  # (K, P) float32, in whitened space
    code_mean: np.ndarray  # (K,) float64, mean of sqrt(activations)
    basis: np.ndarray  # (K, D) float64, principal directions of sqrt(activations)
    scale: float

    n_codes = property(lambda self: len(self.centroids))
    dims = property(lambda self: self.basis.shape[1])
    channels = property(lambda self: len(self.patch_mean) // (self.patch * self.patch))

    def params(self) -> dict:
        """The learned settings, as plain JSON values."""
        return {
            "block": self.block,
            "patch": self.patch,
            "reach": self.reach,
            "n_codes": self.n_codes,
            "dims": self.dims,
            "channels": self.channels,
            "scale": self.scale,
        }

    @classmethod
    def learn(
        cls,
        images: np.ndarray,
        block: int,
        n_codes: int = 128,
        dims: int | None = 16,
        patch: int | None = None,
        reach: int = 1,
        seed: int = 0,
        n_patches: int = 100_000,
        n_pool_images: int = 2_000,
        niter: int = 25,
    ) -> "PatchCodes":
        """Learn from (N, H, W, C) uint8 training images (no labels): whitening, centroids, projection.

        patch defaults to min(3, block); dims None keeps all n_codes activations (no projection);
        reach is how many neighbouring blocks on each side of a block pool into its code. The
        defaults won a short sweep on CIFAR-10 (benchmarks/studies/representation.py).
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.dtype != np.uint8:
            raise NpgenError(f"PatchCodes.learn needs (N, H, W, C) uint8 images, got {images.dtype} {images.shape}")
        patch = min(3, block) if patch is None else patch
        n, height, width, channels = images.shape
        if not 1 <= patch <= block <= min(height, width) or patch * patch * channels < 2:
            raise NpgenError(
                f"patch codes need 1 <= patch <= block <= image side and patches of >= 2 values, got patch {patch}, block {block}"
            )
        if (dims is not None and dims < 1) or reach < 0:
            raise NpgenError(f"dims must be >= 1 or None and reach >= 0, got dims {dims}, reach {reach}")
        rng = np.random.default_rng(seed)
        n_rows = height // block
        per_slab = (block - patch + 1) * (width - patch + 1)
        n_slabs = min(n * n_rows, -(-2 * n_patches // per_slab))
        slabs = np.sort(rng.choice(n * n_rows, n_slabs, replace=False))
        patches = np.concatenate(
            [row_patches(_slabs(images, slabs[i : i + 4096], block), patch) for i in range(0, len(slabs), 4096)]
        ).reshape(-1, patch * patch * channels)
        patches = patches[np.sort(rng.choice(len(patches), min(n_patches, len(patches)), replace=False))]
        patch_mean = patches.mean(0, dtype=np.float64)
        eigenvalues, vectors = np.linalg.eigh(np.cov(patches, rowvar=False, dtype=np.float64))
        whiten = (vectors * (1.0 / np.sqrt(np.maximum(eigenvalues, 0.0) + ZCA_EPS))) @ vectors.T
        white = (patches - patch_mean) @ whiten
        centroids = kmeans(white, n_codes, seed=seed, niter=niter)
        codes = cls(
            block,
            patch,
            reach,
            patch_mean.astype(np.float32),
            whiten.astype(np.float32),
            centroids,
            np.zeros(n_codes),
            np.eye(n_codes),
            1.0,
        )
        # projection: principal directions of the pooled block codes of a sample of training images
        sample = images[np.sort(rng.choice(n, min(n, n_pool_images), replace=False))]
        pooled = np.concatenate([codes._activations(sample[:, r * block : (r + 1) * block]) for r in range(n_rows)])
        pooled = np.sqrt(pooled.reshape(-1, n_codes).astype(np.float64))
        code_mean = pooled.mean(0)
        if dims is None or dims >= n_codes:
            basis = np.eye(n_codes)
        else:
            eigenvalues, vectors = np.linalg.eigh(np.cov(pooled, rowvar=False))
            top = np.argsort(eigenvalues)[::-1][:dims]
            basis = vectors[:, top].copy()
            basis *= np.where(basis[np.abs(basis).argmax(0), np.arange(dims)] < 0, -1.0, 1.0)  # a fixed sign
        spread = float(np.sqrt((((pooled - code_mean) @ basis) ** 2).mean()))
        return cls(
            block,
            patch,
            reach,
            codes.patch_mean,
            codes.whiten,
            centroids,
            code_mean,
            np.ascontiguousarray(basis),
            TARGET_STD / max(spread, 1e-12),
        )

    def _activations(self, slab: np.ndarray) -> np.ndarray:
        width = slab.shape[2]
        columns = patch_columns(width, self.patch, self.block)
        return triangle_pool(
            row_patches(slab, self.patch),
            self.patch_mean,
            self.whiten,
            np.ascontiguousarray(self.centroids.T),
            columns,
            width // self.block,
            self.reach,
        )

    def columns(self, width: int) -> int:
        """Blocks per row of an image `width` pixels wide (a partial last block is not encoded)."""
        return width // self.block

    def encode_row(self, slab: np.ndarray) -> np.ndarray:
        """(B, s, W, C) uint8 pixels of one block row -> (B, (W // s) * D) int32 codes."""
        slab = np.ascontiguousarray(slab)
        if slab.ndim != 4 or slab.shape[1] != self.block or slab.shape[3] != self.channels or slab.dtype != np.uint8:
            raise NpgenError(
                f"encode_row needs (B, {self.block}, W, {self.channels}) uint8 block rows, got {slab.dtype} {slab.shape}"
            )
        return project_codes(self._activations(slab), self.code_mean, self.basis, self.scale)

    def encode(self, images: np.ndarray, batch: int = 2048) -> np.ndarray:
        """(N, H, W, C) uint8 -> (N, H // s, (W // s) * D) int32; row r is encode_row of pixel rows r*s .. r*s+s-1."""
        n, height, width, _ = images.shape
        s = self.block
        out = np.empty((n, height // s, (width // s) * self.dims), dtype=np.int32)
        for first in range(0, n, batch):
            chunk = np.asarray(images[first : first + batch])
            for r in range(height // s):
                out[first : first + batch, r] = self.encode_row(chunk[:, r * s : (r + 1) * s])
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the folder `path`: params.json and one .npy per learned array (each written atomically)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name in _ARRAYS:
            _save_array(path / f"{name}.npy", getattr(self, name))
        tmp = path / f".params.json.tmp-{os.getpid()}"
        tmp.write_text(
            json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **self.params()}, indent=2) + "\n"
        )
        os.replace(tmp, path / "params.json")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PatchCodes":
        """Read a folder written by `save`."""
        path = Path(path)
        try:
            meta = json.loads((path / "params.json").read_text())
            if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
                raise NpgenError(f"{path} does not hold npgen patch codes of format version {FORMAT_VERSION}")
            arrays = {name: np.load(path / f"{name}.npy") for name in _ARRAYS}
        except NpgenError:
            raise
        except (OSError, ValueError, EOFError, KeyError) as err:
            raise NpgenError(f"patch codes at {path} are missing or corrupt ({type(err).__name__})") from err
        codes = cls(int(meta["block"]), int(meta["patch"]), int(meta["reach"]), scale=float(meta["scale"]), **arrays)
        if codes.params() != {k: meta[k] for k in codes.params()}:
            raise NpgenError(f"patch codes at {path} have arrays that do not match params.json")
        return codes


def _slabs(images: np.ndarray, slab_ids: np.ndarray, block: int) -> np.ndarray:
    """Block rows slab_ids (image * rows + row) of the images, as (len, s, W, C)."""
    rows = images.shape[1] // block
    image, row = np.divmod(slab_ids, rows)
    offsets = row[:, None] * block + np.arange(block)
    return images[image[:, None], offsets]


def block_sums(images: np.ndarray, block: int) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, ceil(H/s), ceil(W/s)*C) int32 sums over s x s blocks (zero-padded)."""
    if block < 1:
        raise NpgenError(f"retrieval_block must be >= 1, got {block}")
    n, height, width, channels = images.shape
    hb, wb = -(-height // block), -(-width // block)
    padded = np.zeros((n, hb * block, wb * block, channels), dtype=np.int32)
    padded[:, :height, :width] = images
    sums = padded.reshape(n, hb, block, wb, block, channels).sum(axis=(2, 4), dtype=np.int32)
    return sums.reshape(n, hb, wb * channels)


@dataclass(frozen=True)
class BlockSums:
    """The block-sum representation, with the interface of `PatchCodes`: encode images, or one block row."""

    block: int

    def encode(self, images: np.ndarray) -> np.ndarray:
        return block_sums(images, self.block)

    def encode_row(self, slab: np.ndarray) -> np.ndarray:
        """(B, s, W, C) uint8, one block row of canvases -> (B, ceil(W/s)*C) int32."""
        return block_sums(slab, self.block)[:, 0]

    def columns(self, width: int) -> int:
        """Blocks per row of an image `width` pixels wide (the last one zero-padded)."""
        return -(-width // self.block)
