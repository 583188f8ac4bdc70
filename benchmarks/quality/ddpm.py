"""A small, time-boxed DDPM: the neural baseline that npgen's non-parametric generator is compared with.

    python benchmarks/quality/ddpm.py train mnist --minutes 60            # resumable; rerun to continue
    python benchmarks/quality/ddpm.py train cifar10 --minutes 120 --out DIR
    python benchmarks/quality/ddpm.py sample mnist --n 1000 --steps 100 --class-conditional
    python benchmarks/quality/ddpm.py sample cifar10 --n 1000 --unconditional
    python benchmarks/quality/ddpm.py time cifar10 --n 20 --device cpu  # sampling cost on this machine only
    python benchmarks/quality/ddpm.py nll cifar10 --n 200                # bound on the test bits/dim
    python benchmarks/quality/ddpm.py weights cifar10                    # EMA weights alone, to sample elsewhere

Model: a class-conditional UNet (residual blocks with GroupNorm + SiLU, sinusoidal time embedding
plus a label embedding; label 10 is the "null" label, used with probability 0.1 in training so the
same network also samples unconditionally). `--model small` has two resolution levels and ~0.4M
parameters, for a CPU; `--model medium` has three levels of two blocks and self-attention in the
middle, ~4.1M parameters, for a GPU. DDPM training with T=1000, a linear beta schedule 1e-4..0.02,
epsilon prediction, Adam (lr 2e-4) and an EMA of the weights; sampling is deterministic DDIM
(eta=0) with the EMA weights. `--device` picks where it runs (default: cuda when torch sees a GPU);
on cuda the network runs in bfloat16 autocast.

`train` stops when the total training wall time, accumulated across resumes, reaches --minutes; it
checkpoints atomically to DIR/checkpoint.pt every ~2 minutes and at the end. `sample` writes
DIR/samples-{conditional,unconditional}.npz (images uint8 (N, H, W, C) as in the dataset, labels
int64, -1 when unconditional) and a .json with timings. `time` samples --n images without keeping
them and writes DIR/timing-{conditional,unconditional}-{device}.json, so that the sampling cost is
measured on the machine npgen is measured on even when the model was trained and sampled elsewhere.
`nll` writes benchmarks/results/ddpm-nll-<dataset>.json. DIR defaults to $NPGEN_CACHE/ddpm/<dataset>
($NPGEN_CACHE defaults to ~/.cache/npgen). Images and weights are never written into the repository.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import machine, save_result

from npgen.data.files import atomic_write, cache_root, write_json

T = 1000
DATASETS = ("cifar10", "mnist")
# UNet sizes: base channels, channel multiplier per level, res blocks per level. "small" is chosen for
# speed on a 2-core CPU (~370k parameters, roughly 1.3-2.6 s per step at batch 128 there).
MODELS = {
    "small": {"base": 32, "mults": (1, 2), "blocks": 1, "attention": False},
    "medium": {"base": 64, "mults": (1, 2, 2), "blocks": 2, "attention": True},
}
CHECKPOINT_SECONDS, PROGRESS_SECONDS = 120.0, 30.0


class UsageError(Exception):
    """A problem the user can fix; printed as one `error:` line, exit status 2."""


# ---- model ----


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps t (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, cout)
        self.norm2, self.conv2 = nn.GroupNorm(8, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class Attention(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm, self.qkv, self.proj = nn.GroupNorm(8, ch), nn.Conv2d(ch, 3 * ch, 1), nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(2, 3).unbind(1)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """Epsilon predictor eps(x_t, t, y); y == n_classes is the null label."""

    def __init__(
        self, channels: int, n_classes: int, base: int, mults: tuple[int, ...], blocks: int, attention: bool
    ) -> None:
        super().__init__()
        emb, widths = 4 * base, [base * m for m in mults]
        self.base = base
        self.time_mlp = nn.Sequential(nn.Linear(base, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.label_emb = nn.Embedding(n_classes + 1, emb)
        self.stem = nn.Conv2d(channels, base, 3, padding=1)
        self.down, self.downsample, ch = nn.ModuleList(), nn.ModuleList(), base
        for i, w in enumerate(widths):
            self.down.append(nn.ModuleList([ResBlock(ch if j == 0 else w, w, emb) for j in range(blocks)]))
            ch = w
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb)] + ([Attention(ch)] if attention else []))
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            self.up.append(nn.ModuleList([ResBlock(ch + w if j == 0 else w, w, emb) for j in range(blocks)]))
            ch = w
            if i > 0:
                self.upsample.append(nn.ConvTranspose2d(ch, widths[i - 1], 2, stride=2))
                ch = widths[i - 1]
        self.out = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.base)) + self.label_emb(y)
        h, skips = self.stem(x), []
        for i, level in enumerate(self.down):
            for block in level:
                h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        for block in self.mid:
            h = block(h, emb)
        for i, level in enumerate(self.up):
            if i > 0:
                h = self.upsample[i - 1](h)
            h = torch.cat([h, skips.pop()], dim=1)
            for block in level:
                h = block(h, emb)
        return self.out(h)


def build_model(meta: dict, device: torch.device) -> UNet:
    cfg = meta["config"]  # channels_last: about 30% faster convolutions on CPU
    return UNet(
        meta["channels"], meta["n_classes"], cfg["base"], tuple(cfg["mults"]), cfg["blocks"], cfg["attention"]
    ).to(device=device, memory_format=torch.channels_last)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no GPU here; pass --device cpu")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return machine()


def autocast(device: torch.device):
    """bfloat16 autocast on a GPU (tensor cores); plain float32 on the CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def betas() -> torch.Tensor:
    return torch.linspace(1e-4, 0.02, T, dtype=torch.float64)


def alpha_bars() -> torch.Tensor:
    return torch.cumprod(1.0 - betas(), 0).float()


# ---- files ----


def default_dir(dataset: str) -> Path:
    return cache_root() / "ddpm" / dataset


def load_checkpoint(out: Path, dataset: str, weights_only: bool = False) -> dict | None:
    """DIR/checkpoint.pt, or for sampling (weights_only) DIR/weights.pt when there is no full checkpoint."""
    path = out / "checkpoint.pt"
    if weights_only and not path.is_file():
        path = out / "weights.pt"
    if not path.is_file():
        return None
    # tensors and plain data only, never pickled code (older checkpoints hold torch's version string class)
    with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt["dataset"] != dataset:
        raise UsageError(f"{path} is a {ckpt['dataset']} checkpoint, not {dataset}: pass another --out")
    return ckpt


# ---- train ----


def train(args: argparse.Namespace) -> None:
    from npgen.data.datasets import load_dataset

    device = pick_device(args.device)
    ds = load_dataset(args.dataset, split="train", data_root=args.data_root, verify=not args.no_verify)
    if args.first is not None:
        if not 10 <= args.first <= ds.n_images:
            raise UsageError(f"--first must lie in 10..{ds.n_images} (the {args.dataset} training images here)")
        ds = ds.subset(slice(0, args.first))
    ckpt = load_checkpoint(args.out, args.dataset)
    if ckpt is not None and ckpt["images_sha256"] != ds.images_sha256:
        raise UsageError(f"{args.out}/checkpoint.pt was trained on other {args.dataset} images: pass another --out")
    model_size = args.model if args.model != "auto" else ("medium" if device.type == "cuda" else "small")
    meta = (
        ckpt["meta"]
        if ckpt
        else {
            "config": {**MODELS[model_size], **({"base": args.base} if args.base else {})},
            "model": model_size,
            "channels": ds.channels,
            "n_classes": ds.n_classes,
            "shape": [ds.height, ds.width, ds.channels],
            "train_images": ds.n_images,
        }
    )
    torch.manual_seed(args.seed)
    model = build_model(meta, device)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    step, seconds, losses, devices = 0, 0.0, [], []
    if ckpt:
        model.load_state_dict(ckpt["model"]), ema.load_state_dict(ckpt["ema"]), opt.load_state_dict(ckpt["optimizer"])
        step, seconds, losses, devices = ckpt["step"], ckpt["training_seconds"], ckpt["losses"], ckpt["devices"]
        torch.set_rng_state(ckpt["rng_state"])
        print(f"resuming from step {step} ({seconds / 60:.1f} min trained)", file=sys.stderr)
    budget = args.minutes * 60.0
    if seconds >= budget:
        print(f"already trained {seconds / 60:.1f} min >= --minutes {args.minutes}; nothing to do", file=sys.stderr)
        return
    if device_name(device) not in devices:
        devices.append(device_name(device))

    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        state = {
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "training_seconds": seconds,
            "losses": losses,
            "rng_state": torch.get_rng_state(),
            "meta": meta,
            "devices": devices,
            "args": {k: str(v) for k, v in vars(args).items() if k != "func"},
            "dataset": args.dataset,
            "images_sha256": ds.images_sha256,
            "torch": str(torch.__version__),
        }
        atomic_write(args.out / "checkpoint.pt", lambda tmp: torch.save(state, tmp))

    images = torch.from_numpy(np.array(ds.images)).permute(0, 3, 1, 2).to(device)  # uint8 (N, C, H, W)
    labels = torch.from_numpy(np.array(ds.labels, dtype=np.int64)).to(device)
    sqrt_ab, sqrt_1mab = alpha_bars().sqrt().to(device), (1 - alpha_bars()).sqrt().to(device)
    null, flip = meta["n_classes"], ds.channels == 3
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"training {args.dataset} ({ds.n_images} images) on {device_name(device)}: {meta['model']} UNet, "
        f"{n_params:,} parameters, batch {args.batch_size}, until {args.minutes} min -> {args.out}/checkpoint.pt",
        file=sys.stderr,
    )
    loss_ema, last_log, last_save, log_step = None, time.perf_counter(), time.perf_counter(), step
    try:
        while seconds < budget:
            t0 = time.perf_counter()
            idx = torch.randint(len(images), (args.batch_size,)).to(device)
            x = (images[idx].float() / 127.5 - 1.0).contiguous(memory_format=torch.channels_last)
            if flip:
                x = torch.where(torch.rand(len(x), 1, 1, 1, device=device) < 0.5, x.flip(3), x)
            y = torch.where(torch.rand(len(x), device=device) < 0.1, null, labels[idx])
            t = torch.randint(T, (len(x),), device=device)
            noise = torch.randn_like(x)
            xt = sqrt_ab[t].view(-1, 1, 1, 1) * x + sqrt_1mab[t].view(-1, 1, 1, 1) * noise
            with autocast(device):
                loss = F.mse_loss(model(xt, t, y).float(), noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            decay = min(0.999, (1 + step) / (10 + step))
            with torch.no_grad():
                torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)
            step += 1
            if step % 25 == 0 or device.type == "cpu":  # .item() waits for the GPU: not every step there
                loss_ema = loss.item() if loss_ema is None else 0.9 * loss_ema + 0.1 * loss.item()
            now = time.perf_counter()
            seconds += now - t0
            if now - last_log >= PROGRESS_SECONDS or seconds >= budget:
                rate = (step - log_step) / (now - last_log)
                losses.append([step, round(seconds, 1), round(loss_ema or loss.item(), 5)])
                print(
                    f"step {step}  loss {losses[-1][2]:.4f}  {seconds / 60:.1f}/{args.minutes} min  {rate:.2f} it/s",
                    file=sys.stderr,
                    flush=True,
                )
                last_log, log_step = now, step
            if now - last_save >= CHECKPOINT_SECONDS:
                save()
                last_save = time.perf_counter()
    except KeyboardInterrupt:
        save()
        print(f"interrupted: saved step {step} to {args.out}/checkpoint.pt", file=sys.stderr)
        raise SystemExit(130)
    save()
    print(f"done: step {step}, {seconds / 60:.1f} min trained, saved {args.out}/checkpoint.pt", file=sys.stderr)


# ---- sample ----


@torch.no_grad()
def ddim(model: UNet, x: torch.Tensor, y: torch.Tensor, steps: int, guidance: float, null: int) -> torch.Tensor:
    """Deterministic DDIM (eta=0) from noise x over `steps` evenly spaced timesteps; predicted x0 clipped to [-1, 1]."""
    ab = alpha_bars().to(x.device)
    ts = np.linspace(0, T - 1, steps).round().astype(np.int64)[::-1]
    for i, t in enumerate(ts):
        tt = torch.full((len(x),), int(t), dtype=torch.long, device=x.device)
        with autocast(x.device):
            eps = model(x, tt, y).float()
            if guidance != 1.0:
                eps_u = model(x, tt, torch.full_like(y, null)).float()
                eps = eps_u + guidance * (eps - eps_u)
        a, a_prev = ab[t], (ab[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, device=x.device))
        x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x


def generate(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, dict]:
    """Sample args.n images with the EMA weights: (images uint8 NHWC, labels, record of the run)."""
    ckpt = load_checkpoint(args.out, args.dataset, weights_only=True)
    if ckpt is None:
        raise UsageError(
            f"no checkpoint in {args.out}: run `python benchmarks/quality/ddpm.py train {args.dataset} "
            f"--minutes M{'' if args.out == default_dir(args.dataset) else f' --out {args.out}'}` first"
        )
    meta, null = ckpt["meta"], ckpt["meta"]["n_classes"]
    if args.n < 1 or args.steps < 1 or args.steps > T or args.batch_size < 1:
        raise UsageError(f"need --n >= 1, 1 <= --steps <= {T} and --batch-size >= 1")
    if args.conditional and args.n % null:
        raise UsageError(f"--n must be a multiple of {null} with --class-conditional (n/{null} images per class)")
    device = pick_device(args.device)
    model = build_model(meta, device)
    model.load_state_dict(ckpt["ema"])
    model.eval()
    labels = np.repeat(np.arange(null), args.n // null) if args.conditional else np.full(args.n, -1)
    gen = torch.Generator().manual_seed(args.seed)  # noise drawn on the CPU: the same on every device
    h, w, c = meta["shape"]
    out, start = [], time.perf_counter()
    for lo in range(0, args.n, args.batch_size):
        y = torch.from_numpy(labels[lo : lo + args.batch_size]).long()
        y = torch.where(y < 0, null, y).to(device)
        noise = torch.randn(len(y), c, h, w, generator=gen).to(device).contiguous(memory_format=torch.channels_last)
        x = ddim(model, noise, y, args.steps, args.guidance if args.conditional else 1.0, null)
        out.append(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        print(f"sampled {lo + len(y)}/{args.n}  {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start
    peak = (
        torch.cuda.max_memory_allocated(device)
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ) / 2**20
    record = {
        "dataset": args.dataset,
        "kind": "conditional" if args.conditional else "unconditional",
        "n": args.n,
        "steps": args.steps,
        "guidance": args.guidance,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "device": device_name(device),
        "sampling_seconds": round(elapsed, 3),
        "seconds_per_image": elapsed / args.n,
        "peak_memory_mb": peak,
        "peak_memory": "GPU memory allocated" if device.type == "cuda" else "process RSS",
        "training_seconds": ckpt["training_seconds"],
        "training_steps": ckpt["step"],
        "training_devices": ckpt["devices"],
        "train_images": meta["train_images"],
        "model": meta["model"],
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join(sys.argv),
    }
    return np.concatenate(out), labels.astype(np.int64), record


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    with path.open("wb") as f:  # through a file object, as np.savez would rename a temporary path
        np.savez(f, **arrays)


def sample(args: argparse.Namespace) -> None:
    images, labels, record = generate(args)
    kind = record["kind"]
    atomic_write(args.out / f"samples-{kind}.npz", lambda tmp: save_npz(tmp, images=images, labels=labels))
    write_json(args.out / f"samples-{kind}.json", record)
    print(
        f"wrote {args.out}/samples-{kind}.npz: {images.shape} uint8, {record['seconds_per_image']:.4f} s/image",
        file=sys.stderr,
    )


def export_weights(args: argparse.Namespace) -> None:
    ckpt = load_checkpoint(args.out, args.dataset)
    if ckpt is None:
        raise UsageError(f"no checkpoint.pt in {args.out}: nothing to export")
    weights = {key: value for key, value in ckpt.items() if key not in ("model", "optimizer", "rng_state")}
    atomic_write(args.out / "weights.pt", lambda tmp: torch.save(weights, tmp))
    print(f"wrote {args.out}/weights.pt (EMA weights and metadata; enough to sample, not to resume)", file=sys.stderr)


@torch.no_grad()
def negative_elbo(model: UNet, x0: torch.Tensor, null: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-image terms of the DDPM variational bound in nats (Ho et al. 2020, eq. 5), unconditional (null label).

    x0 is scaled to [-1, 1]. Reverse variances are the posterior's (beta-tilde) for t >= 2, so each KL
    term is the squared error of the predicted mean; the t = 1 term is the discretised Gaussian decoder
    (sigma^2 = beta_1) over the 256 levels. One noise draw per image and step: an unbiased estimate of the bound.
    """
    beta = betas()
    alpha, ab = 1 - beta, torch.cumprod(1 - beta, 0)
    device, n = x0.device, len(x0)
    y = torch.full((n,), null, dtype=torch.long, device=device)
    x0d = x0.double()
    prior = 0.5 * (ab[-1] * x0d**2 + (1 - ab[-1]) - 1 - torch.log(1 - ab[-1])).flatten(1).sum(1)
    diffusion = torch.zeros(n, dtype=torch.float64, device=device)
    for t in range(T - 1, -1, -1):
        noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64).to(device)
        xt = ab[t].sqrt() * x0d + (1 - ab[t]).sqrt() * noise
        eps = model(
            xt.float().contiguous(memory_format=torch.channels_last), torch.full((n,), t, device=device), y
        ).double()
        mean = (xt - beta[t] / (1 - ab[t]).sqrt() * eps) / alpha[t].sqrt()
        if t == 0:  # decoder: probability of each pixel's bin under N(mean, beta_1)
            sigma = beta[0].sqrt()
            upper = torch.where(x0d > 0.999, torch.inf, x0d + 1 / 255)
            lower = torch.where(x0d < -0.999, -torch.inf, x0d - 1 / 255)
            normal = torch.distributions.Normal(mean, sigma)
            mass = (normal.cdf(upper) - normal.cdf(lower)).clamp_min(1e-12)
            decoder = -torch.log(mass).flatten(1).sum(1)
        else:
            posterior = (ab[t - 1].sqrt() * beta[t] / (1 - ab[t])) * x0d + (
                alpha[t].sqrt() * (1 - ab[t - 1]) / (1 - ab[t])
            ) * xt
            variance = (1 - ab[t - 1]) / (1 - ab[t]) * beta[t]
            diffusion += ((posterior - mean) ** 2).flatten(1).sum(1) / (2 * variance)
    return {"prior": prior, "diffusion": diffusion, "decoder": decoder}


def test_nll(args: argparse.Namespace) -> None:
    from npgen.data.datasets import load_dataset

    ckpt = load_checkpoint(args.out, args.dataset, weights_only=True)
    if ckpt is None:
        raise UsageError(f"no checkpoint in {args.out}: train the DDPM first")
    test = load_dataset(args.dataset, split="test", data_root=args.data_root)
    if not 1 <= args.n <= test.n_images:
        raise UsageError(f"--n must lie in 1..{test.n_images}")
    ids = np.sort(np.random.default_rng(0).choice(test.n_images, size=args.n, replace=False))
    device = pick_device(args.device)
    model = build_model(ckpt["meta"], device)
    model.load_state_dict(ckpt["ema"])
    model.eval()
    generator = torch.Generator().manual_seed(args.seed)
    dims = int(np.prod(test.images.shape[1:]))
    terms, start = {}, time.perf_counter()
    for lo in range(0, args.n, args.batch_size):
        x0 = (
            torch.from_numpy(np.array(test.images[ids[lo : lo + args.batch_size]])).permute(0, 3, 1, 2).float() / 127.5
            - 1
        )
        for name, value in negative_elbo(model, x0.to(device), ckpt["meta"]["n_classes"], generator).items():
            terms.setdefault(name, []).append(value.cpu().numpy())
        print(
            f"scored {min(lo + args.batch_size, args.n)}/{args.n} test images  {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    bits = {name: np.concatenate(value) / (dims * np.log(2)) for name, value in terms.items()}
    total = sum(bits.values())
    record = {
        "dataset": args.dataset,
        "n_test": args.n,
        "seed": args.seed,
        "test_bits_per_dim_bound": float(total.mean()),
        "stderr": float(total.std(ddof=1) / np.sqrt(args.n)),
        "terms_bits_per_dim": {name: float(value.mean()) for name, value in bits.items()},
        "seconds_per_test_image": round((time.perf_counter() - start) / args.n, 3),
        "device": device_name(device),
        "training_steps": ckpt["step"],
        "training_devices": ckpt["devices"],
        "torch": torch.__version__,
    }
    save_result(f"ddpm-nll-{args.dataset}", record)
    print(
        f"{args.dataset}: test NLL <= {record['test_bits_per_dim_bound']:.3f} ± {record['stderr']:.3f} bits/dim "
        f"({args.n} test images); wrote benchmarks/results/ddpm-nll-{args.dataset}.json",
        file=sys.stderr,
    )


def time_sampling(args: argparse.Namespace) -> None:
    _, _, record = generate(args)
    path = args.out / f"timing-{record['kind']}-{pick_device(args.device).type}.json"
    write_json(path, record)
    print(f"{record['seconds_per_image']:.3f} s/image on {record['device']}; wrote {path}", file=sys.stderr)


# ---- CLI ----


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train (or resume) until --minutes of total training time")
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("--minutes", type=float, required=True, help="total training wall time, across resumes")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data-root", default=None, help="folder with <dataset>.npz (default: $NPGEN_DATA)")
    p.add_argument("--no-verify", action="store_true", help="skip the dataset card's checksums (a partial copy)")
    p.add_argument("--first", type=int, default=None, help="train on the first N training images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--model",
        choices=["auto", *MODELS],
        default="auto",
        help="UNet size for a new run (default: medium on a GPU, small on the CPU)",
    )
    p.add_argument("--base", type=int, default=None, help="UNet base width, a multiple of 8 (new runs only)")
    p.set_defaults(func=train)
    s = sub.add_parser("sample", help="sample with DDIM from the EMA weights")
    t = sub.add_parser("time", help="time sampling on this machine without keeping the images")
    for q, n in ((s, 1000), (t, 20)):
        q.add_argument("dataset", choices=DATASETS)
        q.add_argument("--n", type=int, default=n)
        q.add_argument("--steps", type=int, default=100, help="DDIM steps (evenly spaced over T=1000)")
        group = q.add_mutually_exclusive_group()
        group.add_argument(
            "--class-conditional",
            dest="conditional",
            action="store_true",
            default=True,
            help="n/10 images per class, classes in order (default)",
        )
        group.add_argument("--unconditional", dest="conditional", action="store_false", help="null label")
        q.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale (1 = none)")
        q.add_argument("--batch-size", type=int, default=250)
        q.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=sample)
    t.set_defaults(func=time_sampling)
    bound = sub.add_parser("nll", help="upper bound on the test negative log-likelihood (bits/dim), unconditional")
    bound.add_argument("dataset", choices=DATASETS)
    bound.add_argument("--n", type=int, default=200, help="test images, a fixed random subset (default 200)")
    bound.add_argument("--batch-size", type=int, default=100)
    bound.add_argument("--data-root", default=None, help="folder with <dataset>.npz (default: $NPGEN_DATA)")
    bound.add_argument("--seed", type=int, default=0)
    bound.set_defaults(func=test_nll)
    e = sub.add_parser("weights", help="write DIR/weights.pt: the EMA weights and metadata alone, to sample elsewhere")
    e.add_argument("dataset", choices=DATASETS)
    e.set_defaults(func=export_weights)
    for q in (p, s, t, bound, e):
        q.add_argument(
            "--device", choices=["auto", "cpu", "cuda"], default="auto", help="default: cuda if torch sees a GPU"
        )
        q.add_argument(
            "--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads (default: all cores)"
        )
        q.add_argument(
            "--out", type=Path, default=None, help="checkpoint folder (default: $NPGEN_CACHE/ddpm/<dataset>)"
        )
    args = parser.parse_args(argv)
    args.out = (args.out or default_dir(args.dataset)).expanduser()
    torch.set_num_threads(max(1, args.threads))
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        if args.command == "train" and (
            args.minutes <= 0 or args.batch_size < 1 or (args.base is not None and (args.base < 8 or args.base % 8))
        ):
            raise UsageError("need --minutes > 0, --batch-size >= 1 and --base a positive multiple of 8")
        args.func(args)
    except Exception as exc:
        if not (isinstance(exc, UsageError) or type(exc).__name__ == "NpgenError"):
            raise
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
