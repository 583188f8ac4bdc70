"""The tables of benchmarks/RESULTS.md, made from the JSON files in benchmarks/results/.

    python benchmarks/tables.py            # print every table
    python benchmarks/tables.py --write    # rewrite each table of RESULTS.md from the JSON
    python benchmarks/tables.py --check    # exit 1 if a table of RESULTS.md differs from what the JSON gives

In RESULTS.md a generated table sits between `<!-- table: NAME -->` and `<!-- /table -->`, NAME a key of
TABLES; the text between the markers is replaced by TABLES[NAME](). Everything else in RESULTS.md is prose.
Commands inside the tables are the ones each script recorded; they ran before the scripts were sorted into
benchmarks/quality/, speed/ and studies/ (see benchmarks/README.md for where each script lives now).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "results"
RESULTS_MD = BENCHMARKS / "RESULTS.md"
MARKED = re.compile(r"^<!-- table: ([\w-]+) -->\n(.*?)^<!-- /table -->", re.S | re.M)


def load(name: str) -> dict | None:
    """benchmarks/results/<name>.json, or None when it is missing."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def pct(value) -> str:
    """A share as a percentage with one decimal; – for None."""
    return "–" if value is None else f"{100 * value:.1f}%"


def recorded(r: dict, *notes: str) -> str:
    """How a record was made: "Command: `...`; NOTES; machine; date."."""
    return f"Command: `{r['command']}`; " + "; ".join([*notes, r["machine"], r["date"]]) + "."


def _num(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _training(name: str, row: dict) -> str:
    if name == "training set" or "train_seconds" not in row:
        return "–"
    if "train_device" in row:  # a DDPM: where it trained, on how many images, for how many steps
        return f"{_duration(row['train_seconds'])} on {row['train_device']} ({row['training_steps']:,} steps, {row['train_images']:,} images)"
    return f"{_duration(row['train_seconds'])} (database build)"


def _method(dataset: str, name: str) -> dict:
    """One method's scores in evaluate.py's comparison, DDPM rows from the recorded DDPM evaluation."""
    source = load(f"evaluate-{dataset}-ddpm" if name.startswith("DDPM") else f"evaluate-{dataset}")
    return source["tables"]["comparison"][name]["scores"]


def _met(condition: bool) -> str:
    return "yes" if condition else "**no**"


def seeds_of(setting: str, dataset: str = "cifar10") -> list[dict]:
    """The scores of one seeds.py setting, one per seed."""
    return list(load(f"seeds-{dataset}")["rows"][setting]["scores"].values())


def targets_table() -> str:
    """The targets the presets were chosen for, each against what the JSON records."""
    c, c_ddpm, c_floor = (
        _method("cifar10", n) for n in ("npgen class-conditional", "DDPM class-conditional", "training set")
    )
    m, m_floor, m_uncond = (
        _method("mnist", n) for n in ("npgen class-conditional", "training set", "npgen unconditional")
    )
    cifar, mnist = load("evaluate-cifar10"), load("mnist-unconditional")
    seeds = load("seeds-cifar10")["rows"]["preset"]["scores"]
    seed_mean = statistics.mean(s["class_accuracy"] for s in seeds.values())
    quality = load("cifar10-conditional")
    verified = [load(f"ablation-{d}-{n}") for d in ("mnist", "cifar10") for n in (500, 1000)]
    failing = sum(row["runs_failing_verify"] for r in verified for row in r["rows"].values())
    settings = sum(len(r["rows"]) for r in verified)
    shares = m_uncond["predicted_class_share"]
    speed = load("speed")["results"]
    cost, work = load("budget_cost")["results"], load("budget_work-cifar10")
    loose = next(b for b in load("budget_cost-shares")["results"]["cifar10"]["budgets"] if b["max_source_share"] == 0.4)
    loose_copies = [s["near_copy_rate"] for s in seeds_of("preset, max_source_share=0.4")]
    share, throttled = load("run_share")["results"], load("run_share-check")["results"]["cifar10"]
    budget_cost = {name: 1 - v["budgets"][0]["median_ratio"] for name, v in cost.items()}
    low, high = cost["cifar10"]["budgets"][0]["quartiles"]
    rows = [
        "| target | measured | met |",
        "|---|---|---|",
        f"| CIFAR-10 class-conditional: the project's classifier recognises ≥ 80% | {pct(c['class_accuracy'])} (real test "
        f"images: {pct(cifar['classifier_test_accuracy'])}); the same preset at seeds 1 and 2: "
        f"{pct(seeds['1']['class_accuracy'])}, {pct(seeds['2']['class_accuracy'])} (`seeds.py`), mean of three seeds "
        f"{pct(seed_mean)} | {_met(c['class_accuracy'] >= 0.8)} at seed 0, by {100 * (c['class_accuracy'] - 0.8):.1f} point; "
        f"{'yes' if seed_mean >= 0.8 else 'not'} on the mean of three seeds |",
        f"| … feature FID ≤ 10 and below the DDPM's | {c['fid']:.2f} ± {c['fid_bootstrap_sd']:.2f} (DDPM {c_ddpm['fid']:.1f}; "
        f"train floor {c_floor['fid']:.2f}) | {_met(c['fid'] <= 10 and c['fid'] < c_ddpm['fid'])} |",
        f"| … recall ≥ 0.55 | {c['recall']:.3f} (DDPM {c_ddpm['recall']:.3f}) | {_met(c['recall'] >= 0.55)} |",
        f"| … near-copies ≤ 1% | {pct(c['near_copy_rate'])} | {_met(c['near_copy_rate'] <= 0.01)} |",
        f"| … no sample takes more than the budget from one image (verify) | largest share of any sample from one image "
        f"{quality['max_top_source_share']:.3f} (budget 0.3, `quality.py`); runs failing `npgen verify`: "
        f"{quality['runs_failing_verify']} there, {failing} in the {settings} ablation settings | "
        f"{_met(quality['max_top_source_share'] <= 0.3 and quality['runs_failing_verify'] == failing == 0)} |",
        f"| MNIST class-conditional: ≥ 98% recognised | {pct(m['class_accuracy'])} | {_met(m['class_accuracy'] >= 0.98)} |",
        f"| … FID within 2× the train floor | {m['fid']:.2f} (floor {m_floor['fid']:.2f}) | {_met(m['fid'] <= 2 * m_floor['fid'])} |",
        f"| … near-copies ≤ 1% | {pct(m['near_copy_rate'])} (training images themselves: {pct(m_floor['near_copy_rate'])}) | "
        f"{_met(m['near_copy_rate'] <= 0.01)}{' (at the limit)' if m['near_copy_rate'] == 0.01 else ''} |",
        f"| MNIST unconditional: every digit's share within 7–13% | {pct(min(shares))}–{pct(max(shares))} (classifier) | "
        f"{_met(0.07 <= min(shares) and max(shares) <= 0.13)} |",
        f"| … FID ≤ 3× the train floor | {m_uncond['fid']:.2f} (floor {m_floor['fid']:.2f}) | {_met(m_uncond['fid'] <= 3 * m_floor['fid'])} |",
        f"| … ≥ 9/10-vote share ≥ 90% | {pct(mnist['share_9_of_10_votes'])} (real test images: {pct(mnist['knn_test_share_9_of_10'])}) | "
        f"{_met(mnist['share_9_of_10_votes'] >= 0.9)} |",
        f"| … near-copies ≤ 1% | {pct(m_uncond['near_copy_rate'])} | {_met(m_uncond['near_copy_rate'] <= 0.01)} |",
        f"| Sampler: CIFAR-10 class-conditional ≥ 50 images/s | {speed['sampler-cifar10']['images_per_second']:.0f} images/s "
        f"(`speed.py`) | {_met(speed['sampler-cifar10']['images_per_second'] >= 50)} |",
        f"| … MNIST ≥ 100 images/s | {speed['sampler-mnist']['images_per_second']:.0f} images/s | "
        f"{_met(speed['sampler-mnist']['images_per_second'] >= 100)} |",
        f"| … the budget costs ≤ 20% of throughput | with / without the budget in alternating pairs (`budget_cost.py`): MNIST "
        f"{1 - budget_cost['mnist']:.2f}×, CIFAR-10 {1 - budget_cost['cifar10']:.2f}× (quartiles {low:.2f}–{high:.2f}). An exact "
        f"search needs {work['ratio']:.2f}× the window terms with the budget (`budget_work.py`); a 40% budget costs "
        f"{loose['median_ratio']:.2f}× but leaves {pct(min(loose_copies))}–{pct(max(loose_copies))} near-copies | MNIST "
        f"{_met(budget_cost['mnist'] <= 0.2)}; CIFAR-10 {_met(budget_cost['cifar10'] <= 0.2)} ({100 * budget_cost['cifar10']:.0f}%) |",
        f"| … a whole `npgen sample` run ≥ 75% of the sampler's throughput | quiet disk (`run_share.py`): MNIST "
        f"{pct(share['mnist']['median_share'])}, CIFAR-10 {pct(share['cifar10']['median_share'])}; while the disk throttled "
        f"(finish {throttled['stage_ms_per_100_sample_run']['finish']:.0f} ms per 100 samples, an earlier, slower sampler): "
        f"CIFAR-10 {pct(throttled['median_share'])} | {_met(min(v['median_share'] for v in share.values()) >= 0.75)} on a quiet "
        f"disk; {'yes' if throttled['median_share'] >= 0.75 else 'not'} while it throttles |",
        f"| CIFAR-10 database build, learned representation included, ≤ 10 min | {speed['build-cifar10']['median_seconds']:.1f} s "
        f"(block sums), {speed['build-cifar10-codes']['median_seconds']:.1f} s (patch codes) | "
        f"{_met(speed['build-cifar10-codes']['median_seconds'] <= 600)} |",
    ]
    return "\n".join(rows)


MNIST_PRESET = "levels 2, coarse chooses the pool, pool 200"  # its pyramid.py variant


def targets_any_size_table() -> str:
    """The targets of coarse-to-fine generation, single images and other sizes, each against what measured it."""
    cifar, mnist = load("pyramid-cifar10-1000")["rows"], load("pyramid-mnist-1000")["rows"]
    tight = {name: r for name, r in cifar.items() if r["setting"]["max_source_share"] <= 0.15}
    best_name = max(tight, key=lambda name: tight[name]["scores"]["class_accuracy"])
    best = tight[best_name]["scores"]
    variants: dict[str, dict[float, float]] = {}
    for name, r in cifar.items():
        variants.setdefault(name.rsplit(", budget ", 1)[0], {})[r["setting"]["max_source_share"]] = r["scores"][
            "class_accuracy"
        ]
    whole = [v for v in variants.values() if len(v) == 4]  # measured at 10, 15, 20 and 30%
    one_level_ahead = all(
        variants["one level"][b] >= max(v.get(b, 0) for v in variants.values()) for b in (0.1, 0.15, 0.2, 0.3)
    )
    conditional = mnist[f"{MNIST_PRESET}, budget 10%"]["scores"]["class_accuracy"]
    preset = [load("mnist-unconditional" + ("" if seed == 0 else f"-seed{seed}")) for seed in (0, 1, 2)]
    one_level = [load("mnist-unconditional-onelevel" + ("" if seed == 0 else f"-seed{seed}")) for seed in (0, 1, 2)]
    votes = [r["share_9_of_10_votes"] for r in preset]
    one_level_votes = [r["share_9_of_10_votes"] for r in one_level]
    bands = [(min(r["classifier"]["class_shares"]), max(r["classifier"]["class_shares"])) for r in preset]
    drawn = [(min(r["classifier"]["drawn_class_shares"]), max(r["classifier"]["drawn_class_shares"])) for r in preset]
    within = sum(0.08 <= low and high <= 0.12 for low, high in bands)
    cost = load("size-cost")
    ratio = cost["sample"]["sizes"]["256"]["ratio_to_smallest"]
    photo_ratio = cost["sample-photo-crops"]["sizes"]["256"]["ratio_to_smallest"]
    build = cost["build"]
    npgen, gpnn = load("single-image-npgen-128"), load("single-image-gpnn-128")
    big, ivf = load("single-image-npgen"), load("single-image-gpnn-ivf")
    names = list(gpnn["rows"])
    close = sum(npgen["rows"][n]["patch_distance"] <= 1.2 * gpnn["rows"][n]["patch_distance"] for n in names)
    diverse = sum(npgen["rows"][n]["diversity"] >= gpnn["rows"][n]["diversity"] for n in names)
    distance_ratio = npgen["mean"]["patch_distance"] / gpnn["mean"]["patch_distance"]
    reused = load("single-image-npgen-128-max_reuse1")
    reused_close = sum(reused["rows"][n]["patch_distance"] <= 1.2 * gpnn["rows"][n]["patch_distance"] for n in names)
    reused_diverse = sum(reused["rows"][n]["diversity"] >= gpnn["rows"][n]["diversity"] for n in names)
    reused_ratio = reused["mean"]["patch_distance"] / gpnn["mean"]["patch_distance"]
    bound = int(npgen["run"]["settings"]["max_part_share"] * 128 * 128)
    largest = max(npgen["run"]["largest_part"].values())
    rows = [
        "| target | measured | met |",
        "|---|---|---|",
        f"| CIFAR-10 class-conditional, defaults: ≥ 85% recognised with a source budget ≤ 15% | best at ≤ 15%: "
        f"{pct(best['class_accuracy'])} ({best_name}; real test images 86.6%); the frontier of {len(variants)} variants, "
        f"{len(whole)} of them at all four budgets (10, 15, 20, 30%), one level ahead "
        f"{'at every budget' if one_level_ahead else 'not everywhere'} (`pyramid.py`, Coarse to fine) | "
        f"{_met(best['class_accuracy'] >= 0.85)}: the frontier instead |",
        f"| MNIST class-conditional ≥ 99% | {pct(conditional)} (the preset: levels 2, pool 200) | {_met(conditional >= 0.99)} |",
        "| MNIST unconditional: every digit within 8–12% | preset at seeds 0, 1, 2: "
        + ", ".join(f"{pct(low)}–{pct(high)}" for low, high in bands)
        + " (the stratified class draw gave "
        + ", ".join(f"{pct(low)}–{pct(high)}" for low, high in drawn)
        + f") | {_met(within == 3)}, at {within} of 3 seeds |",
        f"| … ≥ 9/10-vote share ≥ 95% | preset {pct(sum(votes) / 3)} (mean of 3 seeds, {pct(min(votes))}–"
        f"{pct(max(votes))}); one level, the preset until 2026-12-05: {pct(sum(one_level_votes) / 3)} "
        f"({pct(min(one_level_votes))}–{pct(max(one_level_votes))}) | {_met(min(votes) >= 0.95)}, at every seed |",
        f"| Per-pixel throughput at 256 px ≥ 0.5× that at 32 px | {ratio:.2f}× (`size_cost.py`, CIFAR-10 enlarged); "
        f"{photo_ratio:.2f}× on crops of photos | {_met(min(ratio, photo_ratio) >= 0.5)} |",
        f"| A 10,000-image 128×128 collection builds in ≤ 5 min, memory-mapped | {build['build_seconds']:.0f} s, "
        f"{build['build_peak_anon_gb']:.1f} GB allocated | {_met(build['build_seconds'] <= 300)} |",
        f"| `npgen sample` at 128 px: progress bar, whole-run share ≥ 75% | "
        f"{pct(cost['sample']['run_share_128']['share'])} | {_met(cost['sample']['run_share_128']['share'] >= 0.75)} |",
        f"| Single image: patch distance ≤ 1.2× Efficient-GPNN's | mean {distance_ratio:.2f}× GPNN's at 128 px; within "
        f"1.2× on {close} of {len(names)} pictures; with `--max-reuse 1` {reused_ratio:.2f}×, {reused_close} of "
        f"{len(names)} | on the mean; per picture {close} of {len(names)} ({reused_close} with `--max-reuse 1`) |",
        f"| … diversity ≥ GPNN's | mean {npgen['mean']['diversity']:.3f} against {gpnn['mean']['diversity']:.3f}; at "
        f"least GPNN's on {diverse} of {len(names)} pictures; with `--max-reuse 1` {reused['mean']['diversity']:.3f}, "
        f"{reused_diverse} of {len(names)} | on the mean; per picture {diverse} of {len(names)} ({reused_diverse} with "
        "`--max-reuse 1`) |",
        f"| … faster per image on the same 2 cores | {npgen['mean']['cpu_seconds_per_image']:.1f} against "
        f"{gpnn['mean']['cpu_seconds_per_image']:.0f} CPU-s at 128 px; {big['mean']['cpu_seconds_per_image']:.1f} "
        f"against {ivf['mean']['cpu_seconds_per_image']:.0f} (GPNN's Faiss-IVF) at 256 px | yes |",
        f"| … every output verified, largest copied part within the bound | every run verified at every level; "
        f"largest part {largest} pixels, bound {bound} | {_met(largest <= bound)} |",
    ]
    return "\n".join(rows)


def evaluation_table(dataset: str, table: str) -> str:
    """One of evaluate.py's tables: method x (quality, class fidelity, novelty, likelihood, cost).

    The comparison adds the DDPM rows recorded in evaluate-<dataset>-ddpm.json when this evaluation
    had no DDPM samples to score (they were made on a GPU machine and are not kept).
    """
    r = load(f"evaluate-{dataset}")
    if r is None:
        return ""
    previous = load(f"evaluate-{dataset}-ddpm")
    if (
        table == "comparison"
        and previous is not None
        and not any(name.startswith("DDPM") for name in r["tables"][table])
    ):
        for name, row in previous["tables"]["comparison"].items():
            if name.startswith("DDPM"):
                r["tables"][table][f"{name} (scored {previous['date']})"] = row
    likelihood, ddpm_bound = load(f"likelihood-{dataset}"), load(f"ddpm-nll-{dataset}")
    cost = table == "comparison"
    head = (
        "| method | n | FID (features) | precision | recall | class acc. | class conf. | near-copies "
        "| NN dist. pixels p1 / p50 | NN dist. features p1 / p50 |"
    )
    rows = [head + (" bits/dim | training | sampling s/image | peak RSS (MB) |" if cost else " sampling s/image |")]
    rows.append("|---" * (rows[0].count("|") - 1) + "|")
    for name, row in r["tables"][table].items():
        s = row["scores"]
        conditional = "unconditional" not in name
        cells = [
            name,
            str(s["n"]),
            f"{s['fid']:.2f} ± {s['fid_bootstrap_sd']:.2f}",
            _num(s["precision"]),
            _num(s["recall"]),
            pct(s.get("class_accuracy")) if conditional else "–",
            _num(s.get("class_confidence")) if conditional else "–",
            pct(s["near_copy_rate"]),
            f"{s['pixel_nn_distance']['p1']:.0f} / {s['pixel_nn_distance']['p50']:.0f}",
            f"{s['feature_nn_distance']['p1']:.2f} / {s['feature_nn_distance']['p50']:.2f}",
        ]
        sampling = "–" if "sample_seconds_per_image" not in row else f"{row['sample_seconds_per_image']:.3f}"
        if cost:
            bits = "–"
            if name.startswith("npgen unconditional") and likelihood is not None:
                bits = f"{likelihood['test_bits_per_dim']:.2f} (one level)"  # the likelihood scores the one-level rule
            elif name.startswith("DDPM unconditional") and ddpm_bound is not None:
                bits = f"≤ {ddpm_bound['test_bits_per_dim_bound']:.2f}"
            memory = "–" if "peak_rss_mb" not in row else f"{row['peak_rss_mb']:.0f}"
            cells += [bits, _training(name, row), sampling, memory]
        else:
            cells.append(sampling)
        rows.append("| " + " | ".join(cells) + " |")
    commands = [
        f"- {name}: `{row['command']}`"
        + (f"; sampling timed here by `{row['timing_command']}`" if "timing_command" in row else "")
        for name, row in r["tables"][table].items()
        if "command" in row
    ]
    made_elsewhere = [
        f"{name}: {row['samples_made_on']['seconds_per_image']:.4f} s/image on {row['samples_made_on']['device']}"
        for name, row in r["tables"][table].items()
        if "samples_made_on" in row and row["samples_made_on"]["device"] != row["sample_device"]
    ]
    return (
        "\n".join(rows) + f"\n\nScored by `{r['command']}` ({r['machine']}; {r['date']}); classifier test accuracy "
        f"{pct(r['classifier_test_accuracy'])}. Samples made by:\n"
        + "\n".join(commands)
        + (
            "\n\nThe DDPM samples scored here were made on the GPU (" + "; ".join(made_elsewhere) + ")."
            if made_elsewhere
            else ""
        )
    )


def ablation_table(dataset: str, n: int) -> str:
    """benchmarks/quality/ablation.py: the rule that bounds copying, one setting per row, scored in classifier features."""
    r = load(f"ablation-{dataset}-{n}")
    if r is None:
        return ""
    rows = [
        "| setting | h | block | retrieval | radius | pool | k_min | budget | other | requested class | FID | precision / recall | near-copies | median / max top-source share | images/s (run) | verify |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    floor = r["floor"]
    rows.append(
        f"| training images (floor) | | | | | | | | | {pct(floor['class_accuracy'])} | {floor['fid']:.2f} | "
        f"{floor['precision']:.2f} / {floor['recall']:.2f} | {pct(floor['near_copy_rate'])} | | | |"
    )
    for name, row in r["rows"].items():
        s, p, w = row["scores"], row["params"], row["window"]
        other = ", ".join(
            f"{k}={v}"
            for k, v in row["setting"].items()
            if k
            not in ("half_window", "retrieval_block", "retrieval", "k_min", "max_source_share", "radius", "pool_size")
        )
        rows.append(
            f"| {name.removeprefix('cifar: ')} | {w['half_window']} | {w['retrieval_block']} | {w.get('retrieval', 'blocks')} | {p['radius']} | {p['pool_size']} | {p['k_min']} | "
            f"{'none' if p['max_source_share'] >= 1 else pct(p['max_source_share'])} | {other} | {pct(s['class_accuracy'])} | "
            f"{s['fid']:.2f} ± {s['fid_bootstrap_sd']:.2f} | {s['precision']:.2f} / {s['recall']:.2f} | {pct(s['near_copy_rate'])} | "
            f"{row['median_top_source_share']:.3f} / {row['max_top_source_share']:.3f} | {1 / row['sample_seconds_per_image']:.0f} | "
            f"{'ok' if row['runs_failing_verify'] == 0 else 'FAILED'} |"
        )
    return (
        "\n".join(rows)
        + f"\n\n{r['per_class']} samples per class per setting. Latest command: `{r['command']}` (the rows' commands are"
        + f' listed under "Reproducing"); {r["machine"]}; {r["date"]}.'
    )


def pyramid_table(dataset: str, n: int) -> str:
    """benchmarks/quality/pyramid.py: pyramid variants against one level, at each source budget, in classifier
    features; then the frontier: the best recognised share at each budget."""
    r = load(f"pyramid-{dataset}-{n}")
    if r is None:
        return ""
    rows = [
        "| variant | budget | requested class | FID | precision / recall | near-copies | max top-source share | images/s (run) | verify (every level) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    floor = r["floor"]
    rows.append(
        f"| training images (floor) | | {pct(floor['class_accuracy'])} | {floor['fid']:.2f} | "
        f"{floor['precision']:.2f} / {floor['recall']:.2f} | {pct(floor['near_copy_rate'])} | | | |"
    )
    best: dict[float, tuple[float, str]] = {}
    for name, row in r["rows"].items():
        s, p = row["scores"], row["params"]
        variant, budget = name.rsplit(", budget ", 1)
        share = p["max_source_share"]
        if s["class_accuracy"] > best.get(share, (-1.0, ""))[0]:
            best[share] = (s["class_accuracy"], variant)
        rows.append(
            f"| {variant} | {budget} | {pct(s['class_accuracy'])} | {s['fid']:.2f} ± {s['fid_bootstrap_sd']:.2f} | "
            f"{s['precision']:.2f} / {s['recall']:.2f} | {pct(s['near_copy_rate'])} | {row['max_top_source_share']:.3f} | "
            f"{1 / row['sample_seconds_per_image']:.0f} | {'ok' if row['runs_failing_verify'] == 0 else 'FAILED'} |"
        )
    frontier = ", ".join(f"{pct(share)}: {pct(acc)} ({variant})" for share, (acc, variant) in sorted(best.items()))
    return (
        "\n".join(rows)
        + f"\n\nBest recognised share at each budget: {frontier}. {r['per_class']} samples per class per row."
        + f" Command: `{r['command']}`; {r['machine']}; {r['date']}."
    )


def frontier_table(dataset: str, n: int) -> str:
    """The frontier of pyramid.py's rows: each variant's recognised share (near-copies) at each source budget, one
    row per variant, the best at each budget in bold."""
    r = load(f"pyramid-{dataset}-{n}")
    if r is None:
        return ""
    cells: dict[str, dict[float, dict]] = {}
    for name, row in r["rows"].items():
        cells.setdefault(name.rsplit(", budget ", 1)[0], {})[row["params"]["max_source_share"]] = row["scores"]
    budgets = sorted({share for by_budget in cells.values() for share in by_budget})
    best = {b: max(v[b]["class_accuracy"] for v in cells.values() if b in v) for b in budgets}
    rows = [
        "| variant | " + " | ".join(f"budget {b:.0%}" for b in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for variant, by_budget in cells.items():
        shown = []
        for b in budgets:
            if b not in by_budget:
                shown.append("–")
                continue
            text = f"{pct(by_budget[b]['class_accuracy'])} ({pct(by_budget[b]['near_copy_rate'])})"
            shown.append(f"**{text}**" if by_budget[b]["class_accuracy"] == best[b] else text)
        rows.append(f"| {variant} | " + " | ".join(shown) + " |")
    return (
        "\n".join(rows)
        + "\n\nRecognised share (near-copies) in the rows of the table above; the best at each budget in bold."
    )


def single_image_table(size: int) -> str:
    """benchmarks/quality/single_image.py --score: per source, each tool's patch distance to the source, diversity
    between its samples and seconds per image, at one output size; the shuffled-tiles row gives the metric's scale."""
    suffix = "" if size == 256 else f"-{size}"
    tools = {tool: load(f"single-image-{tool}{suffix}") for tool in ("npgen", "gpnn", "gpnn-ivf", "tiles")}
    tools = {tool: r for tool, r in tools.items() if r is not None and r.get("rows")}
    if not tools:
        return ""
    names = list(next(iter(tools.values()))["rows"])
    parts = tools.get("npgen", {}).get("run", {}).get("largest_part", {})
    rows = [
        "| source | "
        + " | ".join(f"{tool}: patch distance / diversity / CPU s per image (samples)" for tool in tools)
        + " | npgen: largest copied part (pixels) |",
        "|---|" + "---|" * (len(tools) + 1),
    ]

    def cell(row: dict | None) -> str:
        if row is None:
            return "–"
        seconds = row.get("cpu_seconds_per_image", row.get("seconds_per_image"))
        diversity = "–" if row["diversity"] is None else f"{row['diversity']:.3f}"
        return f"{row['patch_distance']:.4f} / {diversity} / {'–' if seconds is None else f'{seconds:.1f}'} ({row['samples']})"

    for name in names + ["mean"]:
        if name == "mean":
            cells = []
            for r in tools.values():
                m = r["mean"]
                d = "–" if m.get("diversity") is None else f"{m['diversity']:.3f}"
                t = m.get("cpu_seconds_per_image", m.get("seconds_per_image"))
                cells.append(f"{m['patch_distance']:.4f} / {d} / {'–' if t is None else f'{t:.1f}'}")
            rows.append(f"| mean (median time) | {' | '.join(cells)} | |")
        else:
            rows.append(
                f"| {name} | {' | '.join(cell(r['rows'].get(name)) for r in tools.values())} | {parts.get(name, '–')} of {size * size} |"
            )
    dated = "; ".join(f"{tool}: `{r['command']}`, {r['date']}" for tool, r in tools.items())
    return "\n".join(rows) + f"\n\nSamples per source in brackets. {dated}; {next(iter(tools.values()))['machine']}."


def seeds_table(dataset: str) -> str:
    """benchmarks/quality/seeds.py: the class-conditional scores of one setting at several seeds."""
    r = load(f"seeds-{dataset}")
    if r is None:
        return ""
    rows = [
        "| setting | seed | requested class | FID | precision / recall | near-copies |",
        "|---|---|---|---|---|---|",
    ]
    commands = []
    for name, row in r["rows"].items():
        for seed, s in row["scores"].items():
            rows.append(
                f"| {name} | {seed} | {pct(s['class_accuracy'])} | {s['fid']:.2f} | {s['precision']:.2f} / {s['recall']:.2f} | "
                f"{pct(s['near_copy_rate'])} |"
            )
        accuracy = [s["class_accuracy"] for s in row["scores"].values()]
        rows.append(f"| {name} | mean | {pct(sum(accuracy) / len(accuracy))} | | | |")
        commands.append(f"`{row['command']}`")
    return (
        "\n".join(rows)
        + f"\n\n{row['per_class']} samples per class and seed. Commands: {', '.join(commands)}; {r['machine']}; {r['date']}."
    )


def quality_table() -> str:
    """Raw-pixel quality of one setting per row (quality.py)."""
    rows = [
        "| experiment | samples | changes from the preset | requested class (10-NN) | ≥9/10 votes | classes | near-copies | median top-source share | median NN distance | runs failing verify | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in (
        "mnist-conditional",
        "mnist-unconditional",
        "cifar10-conditional",
        "mnist-conditional-onelevel",
        "mnist-unconditional-onelevel",
        "mnist-conditional-radius1",
        "mnist-unconditional-nomixture",
        "mnist-unconditional-kmin3",
    ):
        r = load(name)
        if r is None:
            continue
        changes = ", ".join(f"{k}={v}" for k, v in r["sampler_options"].items())
        rows.append(
            f"| {name} | {r['n_samples']} | {changes or 'none'} | {pct(r['requested_class_accuracy'])} | "
            f"{pct(r['share_9_of_10_votes'])} | {len(r['classes_present'])} | {pct(r['near_copy_rate'])} "
            f"(< {r['near_copy_threshold']:.0f}) | {r['median_top_source_share']:.3f} | "
            f"{r['nearest_distance_percentiles']['50']:.0f} | {r['runs_failing_verify']} | `{r['command']}` |"
        )
    return "\n".join(rows)


UNCONDITIONAL_VARIANTS = (
    ("mnist-unconditional", "the preset: levels 2, pool 200"),
    ("mnist-unconditional-onelevel", "one level, pool 100 (the preset until 2026-12-05)"),
    ("mnist-unconditional-levels2", "levels 2, pool 100"),
    ("mnist-unconditional-levels2-pool300", "levels 2, pool 300"),
    ("mnist-unconditional-levels2-budget5", "levels 2, pool 100, budget 5%"),
    ("mnist-unconditional-levels2-coarse1", "levels 2, pool 100, coarse weight 1"),
    ("mnist-unconditional-levels2-kmin3", "levels 2, pool 100, k-min 3"),
    ("mnist-unconditional-levels2-eps0.2", "levels 2, pool 100, ε 0.2"),
    ("mnist-unconditional-pool300", "one level, pool 300"),
)


def class_draw(result: dict) -> str:
    """How a quality.py run drew its classes: recorded since the stratified draw; independent before it."""
    return result.get("params", {}).get("class_draw", "independent")


def unconditional_seeds_table() -> str:
    """MNIST unconditional: the preset and pyramid variants, at seeds 0, 1, 2 where measured (quality.py --seed
    --classifier): the vote share, the classifier's digit shares, FID, recall and near-copies, and their spread."""
    rows = [
        "| setting | seed | class draw | ≥9/10 votes (10-NN) | digit shares (classifier) | FID | recall | near-copies | "
        "median top-source share | runs failing verify | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for experiment, label in UNCONDITIONAL_VARIANTS:
        runs = [load(experiment + ("" if seed == 0 else f"-seed{seed}")) for seed in (0, 1, 2)]
        runs = [r for r in runs if r is not None]
        for r in runs:
            command = f"`python benchmarks/quality/quality.py {experiment} --seed {r['seed']} --classifier`"
            scores = r.get("classifier")
            shares = "–" if scores is None else f"{pct(min(scores['class_shares']))}–{pct(max(scores['class_shares']))}"
            fid = "–" if scores is None else f"{scores['fid']:.2f} ± {scores['fid_bootstrap_sd']:.2f}"
            recall = "–" if scores is None else f"{scores['recall']:.2f}"
            rows.append(
                f"| {label} | {r['seed']} | {class_draw(r)} | {pct(r['share_9_of_10_votes'])} | {shares} | {fid} | {recall} | "
                f"{pct(r['near_copy_rate'])} | {r['median_top_source_share']:.3f} | {r['runs_failing_verify']} | {command} |"
            )
        if len(runs) > 1:
            votes = [r["share_9_of_10_votes"] for r in runs]
            copies = [r["near_copy_rate"] for r in runs]
            rows.append(
                f"| {label} | mean of {len(runs)} | | {pct(sum(votes) / len(votes))} (lowest {pct(min(votes))}) | | | | "
                f"{pct(sum(copies) / len(copies))} (highest {pct(max(copies))}) | | | |"
            )
    return "\n".join(rows)


def reference_table() -> str:
    """The raw-pixel 10-NN on real test images: what quality_table's class columns compare with."""
    rows = ["| dataset | 10-NN accuracy on the real test set | real test images with ≥9/10 votes |", "|---|---|---|"]
    for name in ("mnist-conditional", "cifar10-conditional"):
        r = load(name)
        if r is not None:
            rows.append(f"| {r['dataset']} | {pct(r['knn_test_accuracy'])} | {pct(r['knn_test_share_9_of_10'])} |")
    return "\n".join(rows)


def likelihood_table() -> str:
    """Test bits/dim: npgen's exact (smoothed) likelihood and the DDPM's variational bound."""
    rows = [
        "| dataset | model | test bits/dim | test images | how | s/test image | machine, date | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset in ("mnist", "cifar10"):
        r = load(f"likelihood-{dataset}")
        if r is not None:
            rows.append(
                f"| {dataset} | npgen, unconditional | {r['test_bits_per_dim']:.3f} ± {r['test_bits_per_dim_stderr']:.3f} | {r['n_test']:,} | "
                f"exact; smoothing tau {r['tau']}, floor {r['floor']} tuned on held-out train ({r['held_out_bits_per_dim']:.3f} there) | "
                f"{r['seconds_per_test_image']} | {r['machine']}; {r['date']} | `{r['command']}` |"
            )
        r = load(f"ddpm-nll-{dataset}")
        if r is not None:
            terms = ", ".join(f"{name} {value:.3f}" for name, value in r["terms_bits_per_dim"].items())
            rows.append(
                f"| {dataset} | DDPM, unconditional ({r['training_steps']:,} steps) | ≤ {r['test_bits_per_dim_bound']:.3f} ± {r['stderr']:.3f} | "
                f"{r['n_test']:,} | variational bound, all 1,000 steps ({terms}) | {r['seconds_per_test_image']} | "
                f"{r['machine']}; {r['date']} | `{r['command']}` |"
            )
    return "\n".join(rows)


def speed_table() -> str:
    """Build and sampler speed and peak memory, each case in a fresh process (speed.py)."""
    r = load("speed")
    if r is None:
        return ""
    rows = ["| measurement | median seconds | all runs (s) | images/s | peak RSS (MB) |", "|---|---|---|---|---|"]
    for case, m in r["results"].items():
        rows.append(
            f"| {case} | {m['median_seconds']:.2f} | {m['all_seconds']} | {m['images_per_second']:.0f} | {m['peak_rss_mb']:.0f} |"
        )
    return "\n".join(rows) + "\n\n" + recorded(r, f"{r['repeats']} runs each", f"{r['cpu_count']} cores")


def checkouts_table(name: str = "refactor") -> str:
    """The sampler in two checkouts, before and after a change, in alternating processes (checkouts.py)."""
    r = load(f"checkouts-{name}")
    if r is None:
        return ""
    rows = [
        "| dataset | before, median s | after, median s | after / before (quartiles) | same samples |",
        "|---|---|---|---|---|",
    ]
    for dataset, m in r["results"].items():
        low, high = m["ratio_quartiles"]
        rows.append(
            f"| {dataset} | {m['median_seconds']['before']:.3f} | {m['median_seconds']['after']:.3f} "
            f"| {m['ratio_median']:.3f} ({low:.3f}–{high:.3f}) | {'yes' if m['same_samples'] else 'no'} |"
        )
    notes = f"{r['rounds']} rounds, 200 class-conditional samples at the preset per process"
    return "\n".join(rows) + "\n\n" + recorded(r, notes)


def budget_cost_table() -> str:
    """The budget's cost in alternating rounds (budget_cost.py) beside the window terms it adds (budget_work.py)."""
    r = load("budget_cost")
    if r is None:
        return ""
    rows = [
        "| dataset | images/s with the budget | without | with / without, median of pairs (quartiles) | "
        "window terms per pixel, with / without (`budget_work.py`) | load average |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in r["results"].items():
        work = load(f"budget_work-{name}")
        terms = "–"
        if work is not None:
            w = work["results"]
            terms = f"{w['with budget']['terms_per_pixel']:.0f} / {w['without budget']['terms_per_pixel']:.0f} = {work['ratio']:.2f}×"
        b = m["budgets"][0]
        low, high = b["quartiles"]
        rows.append(
            f"| {name} | {b['with_budget_images_per_second']:.0f} | {m['without_images_per_second']:.0f} | "
            f"{b['median_ratio']:.2f}× ({low:.2f}–{high:.2f}) | {terms} | "
            f"{m['load_average'][0]:.1f} – {m['load_average'][1]:.1f} |"
        )
    return "\n".join(rows) + "\n\n" + recorded(r, f"{r['pairs']} pairs")


def budget_share_table(dataset: str = "cifar10") -> str:
    """What each budget costs (budget_cost.py --shares) beside what it gives (seeds.py at that budget)."""
    r, seeds = load("budget_cost-shares"), load(f"seeds-{dataset}")
    if r is None or dataset not in r["results"]:
        return ""
    m = r["results"][dataset]
    rows = [
        "| budget (max_source_share) | images/s | with / without the budget, median (quartiles) | "
        "requested class, mean of seeds | FID, mean | near-copies per seed | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in m["budgets"]:
        share = b["max_source_share"]
        name = "preset" if share == m["preset_share"] else f"preset, max_source_share={share}"
        scores = list(((seeds or {}).get("rows", {}).get(name) or {}).get("scores", {}).values())
        quality = "| – | – | – | – |"
        if scores:
            mean = {key: sum(s[key] for s in scores) / len(scores) for key in ("class_accuracy", "fid")}
            copies = ", ".join(pct(s["near_copy_rate"]) for s in scores)
            quality = f"| {pct(mean['class_accuracy'])} | {mean['fid']:.2f} | {copies} | {len(scores)} |"
        low, high = b["quartiles"]
        rows.append(
            f"| {share:g}{' (preset)' if share == m['preset_share'] else ''} | {b['with_budget_images_per_second']:.0f} | "
            f"{b['median_ratio']:.2f}× ({low:.2f}–{high:.2f}) {quality}"
        )
    rows.append(f"| none | {m['without_images_per_second']:.0f} | 1 | | | | |")
    return "\n".join(rows) + "\n\n" + recorded(r, f"{r['pairs']} rounds")


def run_share_table(name: str = "run_share") -> str:
    """A whole run's throughput against the sampler's, in alternating pairs (run_share.py)."""
    r = load(name)
    if r is None:
        return ""
    rows = [
        "| dataset | sampler images/s | whole run images/s | run / sampler, median of pairs | per pair |",
        "|---|---|---|---|---|",
    ]
    for dataset, m in r["results"].items():
        rows.append(
            f"| {dataset} | {m['sampler_images_per_second']:.0f} | {m['run_images_per_second']:.0f} | "
            f"{pct(m['median_share'])} | {', '.join(f'{100 * s:.0f}%' for s in m['shares'])} |"
        )
    return "\n".join(rows) + "\n\n" + recorded(r, f"{r['pairs']} pairs")


def run_stage_table(results: dict) -> str:
    """Per dataset, the median milliseconds of each stage of a 100-sample run (run_share.py)."""
    names = ["sampler", "summary", "write_batch", "finish", "rest"]
    rows = [
        "| dataset | " + " | ".join(names) + " | all but the sampler | load average | ms to create 100 files |",
        "|---|" + "---|" * (len(names) + 3),
    ]
    for name, m in results.items():
        ms = m["stage_ms_per_100_sample_run"]
        beside = sum(value for stage, value in ms.items() if stage != "sampler")
        load = m["load_average"]
        files = m.get("ms_to_create_100_files")
        rows.append(
            f"| {name} | "
            + " | ".join(f"{ms.get(stage, 0):.1f}" for stage in names)
            + f" | {beside:.1f} | {load[0]:.1f} – {load[1]:.1f} | {'–' if not files else f'{statistics.median(files):.0f}'} |"
        )
    return "\n".join(rows)


def run_share_stages_table(name: str = "run_share") -> str:
    """run_stage_table of one run_share.py record, with its command, machine and date."""
    r = load(name)
    if r is None:
        return ""
    return run_stage_table(r["results"]) + "\n\n" + recorded(r)


def run_parts_table() -> str:
    """The parts of a CIFAR-10 run, each timed alone (run_parts.py)."""
    r = load("run_parts")
    if r is None:
        return ""
    m = r["results"]
    stage, near, ranking = m["stages_ms"], m["nearest_ms"], m["source_ranking_ms"]
    parquet, pngs = m["provenance_parquet"], m["per_sample_pngs"]
    rows = [
        "| part | ms |",
        "|---|---|",
        f"| sampler (`Sampler.sample_batch` in a run) | {stage['sampler']:.1f} |",
        f"| batch summary / of which the nearest-image search | {stage['summary']:.1f} / {stage['nearest_search']:.1f} |",
        f"| write_batch / finish | {stage['write_batch']:.1f} / {stage['finish']:.1f} |",
        f"| after the finish until the run returns (the database's memory maps closing) | {stage['after_finish']:.1f} |",
        f"| nearest-image search, warm / freshly opened database | {near['warm_database']:.1f} / {near['fresh_database']:.1f} |",
        f"| source ranking: one sort / `np.unique` per sample | {ranking['one_sort']:.2f} / {ranking['np_unique_per_sample']:.2f} |",
        f"| provenance Parquet (zstd): with dictionary / without | {parquet['dictionary']['ms']:.1f} "
        f"({parquet['dictionary']['kb']:.0f} KB) / {parquet['no_dictionary']['ms']:.1f} ({parquet['no_dictionary']['kb']:.0f} KB) |",
        f"| {r['samples_per_run']} per-sample PNGs encoded: stored / zlib level 3 | {pngs['stored']['ms']:.2f} "
        f"({pngs['stored']['bytes_per_png']:,} B each) / {pngs['zlib_level_3']['ms']:.2f} ({pngs['zlib_level_3']['bytes_per_png']:,} B each) |",
    ]
    load_average = m["load_average"]
    return (
        "\n".join(rows)
        + f"\n\n{r['dataset']}, {r['samples_per_run']} samples a run. "
        + recorded(r, f"medians of {r['repeats']}", f"load average {load_average[0]:.1f} – {load_average[1]:.1f}")
    )


def nearest_speed_table() -> str:
    """The pruned nearest-image search against the FAISS scan (nearest_speed.py)."""
    r = load("nearest_speed")
    if r is None:
        return ""
    rows = [
        "| dataset | samples | training images | FAISS exact scan (s) | pruned exact search (s) | FAISS index load (s) | identical |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in r["results"].items():
        rows.append(
            f"| {name} | {m['samples']} | {m['training_images']} | {m['faiss_seconds']:.3f} | {m['pruned_seconds']:.3f} | "
            f"{m['faiss_index_load_seconds']:.3f} | {'yes' if m['identical'] else 'no'} |"
        )
    return "\n".join(rows) + "\n\n" + recorded(r, f"medians of {r['repeats']}")


def retrieval_table() -> str:
    """The semantic pool's kernels against FAISS exact search (retrieval.py)."""
    rows = [
        "| dataset | block | canvases x candidates x rows | npgen kernels (s) | FAISS flat, prefix index per row (s) | FAISS search only (s) | same K-th distance | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("retrieval-mnist", "retrieval-cifar10"):
        r = load(name)
        if r is not None:
            rows.append(
                f"| {r['dataset']} | {r['block']} | {r['canvases']} x {r['candidates']} x {r['rows']} | {r['npgen_incremental_seconds']:.3f} | "
                f"{r['faiss_flat_with_prefix_index_seconds']:.3f} | {r['faiss_flat_search_only_seconds']:.3f} | {pct(r['kth_distance_agreement'])} | `{r['command']}` |"
            )
    return "\n".join(rows)


def trace_speed_line() -> str:
    """One line: the tracer's composition of a 10,000-sample run (trace_speed.py)."""
    r = load("trace_speed")
    if r is None:
        return ""
    return (
        f"`Tracer(run).composition()` on a real {r['n_samples']:,}-sample MNIST run ({r['pixels']:,} provenance rows, "
        f"{r['parts']:,} parts): median {r['median_seconds']:.1f} s over {r['repeats']} fresh processes {r['all_seconds']}. "
        + recorded(r)
    )


def audit_speed_table() -> str:
    """`npgen audit` on a 10,000-sample run, whole command in a fresh process (audit_speed.py)."""
    r = load("audit_speed")
    if r is None:
        return ""
    image = re.search(r"training image (\d+)", r["image"]["summary"]).group(1)
    rows = ["| command | median (s) | runs (s) | what it reported |", "|---|---|---|---|"]
    for command, m in (("`npgen audit RUN`", r["usage"]), (f"`npgen audit RUN --image {image}`", r["image"])):
        runs = ", ".join(f"{s:.2f}" for s in m["all_seconds"])
        rows.append(f"| {command} | {m['median_seconds']:.2f} | {runs} | {m['summary']} |")
    return (
        "\n".join(rows)
        + f"\n\nRUN: {r['pixels']:,} provenance rows. "
        + recorded(r, f"medians of {r['repeats']}", f"load average after {r['load_average_after'][0]:.0f}")
    )


def eval_speed_table() -> str:
    """`npgen eval` of a new run with the near-copy threshold searched and kept in the cache (eval_speed.py)."""
    r = load("eval_speed")
    if r is None:
        return ""
    rows = [
        "| dataset | threshold searched: median (s) | threshold kept: median (s) | kept / searched (median of pairs) | runs (s) |",
        "|---|---|---|---|---|",
    ]
    for name, m in r["datasets"].items():
        runs = "; ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(m["searched_seconds"], m["kept_seconds"]))
        rows.append(
            f"| {name} | {m['median_searched']:.1f} | {m['median_kept']:.1f} | {m['median_ratio']:.2f} | {runs} |"
        )
    load_after = f"load average after {r['load_average_after'][0]:.0f}"
    return "\n".join(rows) + "\n\n" + recorded(r, f"{r['pairs']} pairs, each command in a fresh process", load_after)


def scale_table() -> str:
    """Build, disk, sampling and recall on synthetic CIFAR-10 splits of 50,000 to 1,000,000 images (scale.py)."""
    r = load("scale")
    return "" if r is None else scale_rows(r) + f"\n\nCommand: `{r['command']}`."


def scale_rows(results: dict) -> str:
    """One row per size of a scale.json record, then the throughput ratio and the real split's recall."""
    lines = [
        (
            "| images | build | build peak RSS (anonymous) | database on disk | exact pool: images/s | approximate pool: images/s "
            "| approximate: first batch (index set-up) | recall@50 |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, row in sorted(((k, v) for k, v in results.items() if k.isdigit()), key=lambda item: int(item[0])):
        exact, approx = row["exact"], row["approximate"]
        lines.append(
            f"| {int(n):,} | {row['build_seconds']:.1f} s | {row['build_peak_rss_gb']:.2f} GB ({row['build_peak_anon_gb']:.2f} GB) "
            f"| {row['database_gb']:.2f} GB "
            f"| {exact['images_per_second']:.0f} | {approx['images_per_second']:.0f} "
            f"| {approx['first_batch_seconds']:.1f} s ({approx['prefix_index_seconds']:.1f} s) | {row['recall_mean']:.3f} |"
        )
    sizes = sorted(int(k) for k in results if k.isdigit())
    if len(sizes) > 1:
        first, last = results[str(sizes[0])], results[str(sizes[-1])]
        paired = [a / e for a, e in zip(last["approximate"]["rates"], first["exact"]["rates"], strict=False)]
        lines.append(
            f"\nThroughput at {sizes[-1]:,} (approximate pool) / at {sizes[0]:,} (exact scan, what auto picks there), "
            f"batch by batch in the same round: median {statistics.median(paired):.2f} (range {min(paired):.2f}-{max(paired):.2f})"
        )
    if "cifar10_real_recall" in results:
        lines.append(
            f"Recall@50 on the real CIFAR-10 training split: {results['cifar10_real_recall']['recall_mean']:.3f}"
        )
    return "\n".join(lines)


def ray_scaling_table(record: dict | None = None) -> str:
    """Local against Ray on 1 and 2 workers (ray_scaling.py)."""
    r = record or load("ray_scaling")
    if r is None:
        return ""
    lines = [
        "| configuration | sampling s (median) | all runs (s) | images/s | × local | cold first run s | cluster start s |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, c in r["configurations"].items():
        start = f"{c['cluster_start_seconds']:.1f}" if "cluster_start_seconds" in c else "–"
        lines.append(
            f"| {label} | {c['median_sample_seconds']:.2f} | {[round(s, 2) for s in c['sample_seconds']]} | "
            f"{c['images_per_second']:.0f} | {r['ratios_to_local'][label]:.2f} | "
            f"{c['cold_sample_seconds']:.2f} | {start} |"
        )
    load_average = r["load_average_before_after"]
    return "\n".join(lines) + (
        f"\n\nCommand: `{r['command']}` (-n {r['n']}, batches of {r['batch_size']}, {r['repeats']} rounds); "
        f"load average {load_average[0]:.1f} – {load_average[1]:.1f}; {r['machine']}; {r['date']}."
    )


def ray_projection_table(record: dict | None = None) -> str:
    """The projection for N nodes that ray_scaling.py makes from its measurements."""
    r = record or load("ray_scaling")
    if r is None:
        return ""
    lines = [
        "| nodes | 2-core nodes: images/s, h per 10⁶ | 16-core nodes | 16-core nodes, unshared cores |",
        "|---|---|---|---|",
    ]
    rows = zip(
        r["projection_2_core_nodes"]["rows"],
        r["projection_16_core_nodes"]["rows"],
        r["projection_16_core_nodes_unshared"]["rows"],
    )
    for a, b, c in rows:
        cells = [f"{row['images_per_second']:.0f}, {row['hours_per_million']:.2f} h" for row in (a, b, c)]
        lines.append(f"| {a['nodes']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gpu_table() -> str:
    """The CUDA sampler against the CPU sampler on an H200 (gpu_check.py)."""
    rows = [
        "| dataset | batch | CPU, 16 cores (images/s) | GPU (images/s) | GPU / CPU | retrieval / GPU time | bit-identical (pixels; float64 window distances) |",
        "|---|---|---|---|---|---|---|",
    ]
    runs = [load(f"gpu-check-h200-{n}") for n in (256, 2048)]
    for r in (r for r in runs if r is not None):
        for dataset, name in (("mnist", "MNIST"), ("cifar10", "CIFAR-10")):
            d = r[dataset]
            rows.append(
                f"| {name} | {d['samples']:,} | {d['cpu_images_per_s']:,.0f} | {d['gpu_images_per_s']:,.0f} | "
                f"{d['gpu_speedup']:.1f}× | {1000 * d['retrieval_s']:.0f} / {1000 * d['gpu_s']:.0f} ms | "
                f"{'yes' if d['identical'] else 'NO'} ({d['pixels_compared']:,}; {d['row_check']['windows_float64']:,}) |"
            )
    return "\n".join(rows)


def gpu_runs_line() -> str:
    """Where and when each GPU check of gpu_table ran."""
    runs = [(n, load(f"gpu-check-h200-{n}")) for n in (256, 2048)]
    return "; ".join(
        f"batch {n:,}: {r['gpu']}, {r['cpu_cores']} CPU cores, Python {r['python']}, numba {r['numba']}, {r['date']}"
        for n, r in runs
        if r is not None
    )


def exclusion_table() -> str:
    """Sampler throughput with and without 10% of the split excluded (controls.py exclusion)."""
    r = load("controls-exclusion")
    if r is None:
        return ""
    rows = [
        "| dataset | excluded (10% of the split) | images/s, none | images/s, 10% excluded | ratio |",
        "|---|---|---|---|---|",
    ]
    for name, v in r["results"].items():
        rate = v["images_per_second"]
        rows.append(
            f"| {name} | {v['excluded_images']:,} | {rate['none']:.0f} | {rate['10%']:.0f} | {v['throughput_ratio']:.2f} |"
        )
    return "\n".join(rows) + "\n\n" + recorded(r)


def completion_table() -> str:
    """Completions of test images' bottom halves or central holes, scored by the project's classifier
    (controls.py completion)."""
    rows = [
        "| dataset | generated | pyramid levels (coarse weight) | inputs × completions | completion classified as the original's class | original images | given pixels alone | distance of the generated pixels to the original's (median L2) | diversity: distance between two completions (median L2) | identical completion pairs | verify |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    commands = []
    measured_by_level = load("controls-completion-mnist-levels1") is not None
    names = ("mnist", "mnist-levels1", "mnist-levels2", "mnist-hole-levels1", "mnist-hole-levels2")
    for name in (*names, "mnist-hole-levels2-coarse1", "cifar10"):
        r = load(f"controls-completion-{name}")
        if r is None or (name == "mnist" and measured_by_level):  # the earlier preset's, measured again by level
            continue
        verified = "ok" if r.get("verify_ok") else "not run" if "verify_ok" not in r else "**failed**"
        generated = "the central square" if r.get("mask") == "central hole" else "the bottom half"
        weight = r.get("coarse_weight", 0.0)  # recorded since the hole runs; the preset's 0 before
        levels = f"{r.get('levels', 1)}" + (f" ({weight:g})" if r.get("levels", 1) > 1 else "")
        rows.append(
            f"| {name.split('-')[0]} | {generated} | {levels} | {r['inputs']:,} × 2 | "
            f"{pct(r['original_class_recognised'])} | {pct(r['reference_original_images'])} | "
            f"{pct(r['reference_top_half_only'])} | {r['distance_to_original_median']:.0f} | "
            f"{r['diversity_median']:.0f} | {pct(r['identical_pairs'])} | {verified} |"
        )
        commands.append(f"`{r['command']}` ({r['date']})")
    return "\n".join(rows) + "\n\nCommands: " + ", ".join(commands) + "."


def partwhole_table() -> str:
    """Part size, sources and novelty as one setting changes from the preset (partwhole.py)."""
    r = load("partwhole")
    if r is None:
        return ""
    rows = [
        "| dataset | varied | value | parts / sample | informative parts | mean part size (px) | informative px in parts ≥ 4 | sources / sample | top source covers | median NN distance | near-copies | requested class (10-NN) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        rows.append(
            f"| {row['dataset']} | {row['varied']} | {row['value']} | {row['median_parts']:.0f} | {row['median_informative_parts']:.0f} | "
            f"{row['median_mean_part_size']:.2f} | {pct(row['median_informative_share_in_parts_ge_4'])} | {row['median_sources']:.0f} | "
            f"{pct(row['median_coverage_top1'])} | {row['median_nearest_distance']:.0f} | {pct(row['near_copy_rate'])} | {pct(row['requested_class_accuracy'])} |"
        )
    return (
        "\n".join(rows) + f"\n\n{r['per_class']} samples per class per setting (medians over samples). " + recorded(r)
    )


def representation_table() -> str:
    """benchmarks/studies/representation.py: pool purity / 10-NN accuracy of each retrieval representation by prefix."""
    r = load("representation")
    if r is None:
        return ""
    rows = [
        "| dataset | representation | row width | purity / 10-NN at 1/4, 2/4, 3/4, 4/4 of the top rows | learn + encode (s) |",
        "|---|---|---|---|---|",
    ]
    for dataset, d in r["datasets"].items():
        for entry in d["entries"]:
            cells = ", ".join(f"{v['purity']:.3f} / {v['knn10']:.3f}" for v in entry["scores"].values())
            seconds = entry.get("learn_seconds", 0) + entry.get("encode_train_seconds", 0)
            rows.append(f"| {dataset} | {entry['representation']} | {entry['row_width']} | {cells} | {seconds:.1f} |")
    return "\n".join(rows) + "\n\n" + recorded(r)


def infomap_table() -> str:
    """Where the class information of MNIST samples lies (infomap.py)."""
    r = load("infomap-mnist")
    if r is None:
        return ""
    rows = [
        "| map | foreground share of the information (of \\|information\\|) | foreground share of the area | mean bits per sample "
        "| nearest class mean | class-mean correlation: between classes / split-half within |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in (
        ("information, against the posterior mixture (sums to log2 p(c\\|x)/π_c)", r["info"]),
        ("contrast, against the prior mixture", r["contrast"]),
    ):
        rows.append(
            f"| {name} | {pct(m['information_share'])} ({pct(m['absolute_information_share'])}) | {pct(m['area_share'])} | "
            f"{m['mean_total_bits']:.{2 if m['mean_total_bits'] < 10 else 1}f} | {pct(m['nearest_class_mean_accuracy'])} | "
            f"{m['between_class_correlation']:.2f} / {m['within_class_split_half_correlation']:.2f} |"
        )
    return (
        "\n".join(rows)
        + f"\n\n{r['n_samples']} samples; tau {r['tau']}, floor {r['floor']}; `npgen infomap` took {r['infomap_seconds']:.0f} s. "
        + recorded(r)
    )


def single_image_bounds_table(size: int, shares: tuple[float, ...]) -> str:
    """benchmarks/quality/single_npgen.py --max-part-share: each bound on copied parts against Efficient-GPNN (the
    preset of the time: context outside the sample read as the pad value, a 32-pixel coarsest level)."""
    suffix = "" if size == 256 else f"-{size}"
    variants = {"no bound": f"npgen-unbounded{suffix}"}
    variants |= {f"{share:g}": f"npgen-part{share:g}{suffix}" for share in shares}
    return single_image_variants_table(size, variants, "npgen's bound (share of a level's pixels)")


SINGLE_IMAGE_VARIANTS = {  # label: the result's tool name at 128 px (single_npgen.py --set NAME=VALUE ...)
    "earlier preset (context outside read as pad, 32-px coarsest level, parts ≤ 10%)": "npgen-part0.1-128",
    "… k_min 3": "npgen-128-k_min3",
    "… k_min 8": "npgen-128-k_min8",
    "… eps 1": "npgen-128-eps1",
    "… eps 4": "npgen-128-eps4",
    "… 16-px coarsest level (levels 4)": "npgen-128-levels4",
    "pad, 16-px coarsest, parts ≤ 25%": "npgen-128-part0.25-levels4",
    "outside ignored, 32-px coarsest, parts ≤ 25%": "npgen-128-part0.25-outside_canvasignored",
    "outside ignored, 16-px coarsest, parts ≤ 25%": "npgen-128-part0.25-outside_canvasignored-levels4",
    "outside ignored, 16-px coarsest, parts ≤ 50%": "npgen-128-part0.5-outside_canvasignored-levels4",
    "**preset now**: outside ignored, 16-px coarsest, parts ≤ 15%": "npgen-128",
    "… coarse weight 0.5": "npgen-128-coarse_weight0.5",
    "… coarse weight 3": "npgen-128-coarse_weight3",
    "… radius 2": "npgen-128-radius2",
    "… eps 0.3": "npgen-128-eps0.3",
    "preset, max reuse 1 (coarsest level a rearrangement of the picture's pixels)": "npgen-128-max_reuse1",
    "… max reuse 2": "npgen-128-max_reuse2",
    "… max reuse 1, 32-px coarsest level (levels 3)": "npgen-128-max_reuse1-levels3",
    "… max reuse 1, 8-px coarsest level (levels 5)": "npgen-128-max_reuse1-levels5",
    "… max reuse 1, levels 5, radius 2": "npgen-128-max_reuse1-levels5-radius2",
    "… max reuse 1, radius 2": "npgen-128-max_reuse1-radius2",
    "… max reuse 1, eps 0.3": "npgen-128-max_reuse1-eps0.3",
    "… max reuse 1, k_min 2": "npgen-128-max_reuse1-k_min2",
    "… max reuse 1, parts ≤ 30%": "npgen-128-max_reuse1-max_part_share0.3",
}


def patch_cells(result: dict, names: list[str]) -> tuple[list[str], str]:
    """A single-image result's "patch distance / diversity" cell per source, and the same of its mean."""
    rows, mean = result["rows"], result["mean"]
    cells = [f"{rows[n]['patch_distance']:.4f} / {rows[n]['diversity']:.2f}" for n in names]
    return cells, f"{mean['patch_distance']:.4f} / {mean['diversity']:.3f}"


def single_image_variants_table(size: int, variants: dict[str, str], what: str = "npgen's settings") -> str:
    """Each npgen variant (label: result tool name) against Efficient-GPNN, per source (patch distance / diversity)
    and on average, with how many sources stay within 1.2x GPNN's patch distance, have at least its diversity, and
    both."""
    suffix = "" if size == 256 else f"-{size}"
    gpnn = load(f"single-image-gpnn{suffix}")
    variants = {label: load(f"single-image-{tool}") for label, tool in variants.items()}
    variants = {name: r for name, r in variants.items() if r is not None and r.get("rows")}
    if gpnn is None or not variants:
        return ""
    ivf = load(f"single-image-gpnn-ivf{suffix}")
    names = list(gpnn["rows"])
    rows = [
        f"| {what} | "
        + " | ".join(names)
        + " | mean | sources within 1.2× GPNN's distance / with its diversity / both |",
        "|---|" + "---|" * (len(names) + 2),
    ]
    peers = [("GPNN", gpnn)] + ([("GPNN, its Faiss-IVF search", ivf)] if ivf else [])
    for label, result in [*peers, *variants.items()]:
        cells, mean = patch_cells(result, names)
        close = [result["rows"][n]["patch_distance"] <= 1.2 * gpnn["rows"][n]["patch_distance"] for n in names]
        diverse = [result["rows"][n]["diversity"] >= gpnn["rows"][n]["diversity"] for n in names]
        both = sum(c and d for c, d in zip(close, diverse))
        rows.append(
            f"| {label} | {' | '.join(cells)} | {mean} | {sum(close)} / {sum(diverse)} / {both} of {len(names)} |"
        )
    commands = "; ".join(f"`{r['command']}`" for r in variants.values())
    return "\n".join(rows) + f"\n\nPatch distance / diversity, 4 samples per source. {commands}; {gpnn['machine']}."


LARGER_OUTPUTS = {  # label: the result's tool name (single_npgen.py --size 128 --set size=256x256 ...)
    "the preset at the picture's size (128×128), for scale": "npgen-128",
    "preset (coarsest level from every position, finer levels around their parents)": "npgen-128-size256x256",
    "relative position at every level, radius 2 (--anchor position --radius 2)": (
        "npgen-128-size256x256-anchorposition-radius2"
    ),
    "relative position at every level, radius 8": "npgen-128-size256x256-anchorposition-radius8",
    "preset, --max-reuse 1 (a source pixel copied at most 4 times into the coarsest level: its even share at 4× the pixels)": (
        "npgen-128-size256x256-max_reuse1"
    ),
}


def single_image_larger_table() -> str:
    """256x256 samples of the 128x128 pictures (--size 256x256): the spatial principle as the preset applies it
    (off at the coarsest level, then the parents' sources) against relative positions, scored against the 128
    pictures."""
    results = {label: load(f"single-image-{tool}") for label, tool in LARGER_OUTPUTS.items()}
    results = {label: r for label, r in results.items() if r is not None and r.get("rows")}
    if len(results) < 2:
        return ""
    names = list(next(iter(results.values()))["rows"])
    rows = [
        "| where candidate windows are centred | " + " | ".join(names) + " | mean | CPU s per image |",
        "|---|" + "---|" * (len(names) + 2),
    ]
    for label, r in results.items():
        cells, mean = patch_cells(r, names)
        rows.append(f"| {label} | {' | '.join(cells)} | {mean} | {r['mean'].get('cpu_seconds_per_image', '–')} |")
    commands = "; ".join(f"`{r['command']}`" for r in results.values())
    machine = next(iter(results.values()))["machine"]
    return (
        "\n".join(rows)
        + f"\n\nPatch distance to the 128×128 picture / diversity, 4 samples per source. {commands}; {machine}."
    )


def size_cost_table(key: str = "sample") -> str:
    """benchmarks/speed/size_cost.py: pixels per second of the CIFAR-10 preset against image size (CIFAR-10
    upsampled: a cost test, or with key "sample-photo-crops" crops of photos), the 10,000-image 128 px build and a
    whole run's share of the sampler at 128 px."""
    result = load("size-cost")
    if not result or key not in result:
        return ""
    sampled = result[key]
    rows = [
        "| size | images per round | pixels per second (median) | images per second | against 32 px |",
        "|---|---|---|---|---|",
    ]
    for size, row in sampled["sizes"].items():
        rows.append(
            f"| {size}×{size} | {row['images_per_round']} | {row['pixels_per_second']:,} | "
            f"{row['images_per_second']:.3f} | {row['ratio_to_smallest']:.2f}× |"
        )
    notes = [f"{sampled['rounds']} rounds, {sampled['n_images']:,} images per collection: `{sampled['command']}`"]
    share = sampled.get("run_share_128")
    if share:
        notes.append(
            f"a whole `sample_run` of {share['images_per_run']} samples at 128 px runs at {share['share']:.2f} of the "
            f"sampler's speed on the same samples (median of {share['pairs']} pairs)"
        )
    built = result.get("build") if key == "sample" else None
    if built:
        notes.append(
            f"building the {built['n_images']:,}-image {built['size']} px collection's database took "
            f"{built['build_seconds']:.0f} s, peak {built['build_peak_anon_gb']:.2f} GB allocated "
            f"({built['build_peak_rss_gb']:.2f} GB resident, memory-mapped files included), "
            f"{built['database_gb']:.2f} GB on disk for {built['collection_gb']:.2f} GB of images: `{built['command']}`"
        )
    return "\n".join(rows) + "\n\n" + "; ".join(notes) + f". {sampled['date']}, {sampled['machine']}."


TABLES: dict[str, Callable[[], str]] = {
    "targets": targets_table,
    "quality-raw-pixels": quality_table,
    "quality-reference": reference_table,
    "mnist-unconditional-seeds": unconditional_seeds_table,
    "targets-any-size": targets_any_size_table,
    "evaluation-mnist": lambda: evaluation_table("mnist", "comparison"),
    "evaluation-mnist-principles": lambda: evaluation_table("mnist", "ablation"),
    "evaluation-cifar10": lambda: evaluation_table("cifar10", "comparison"),
    "evaluation-cifar10-principles": lambda: evaluation_table("cifar10", "ablation"),
    "ablation-cifar10-1000": lambda: ablation_table("cifar10", 1000),
    "ablation-cifar10-500": lambda: ablation_table("cifar10", 500),
    "ablation-mnist-1000": lambda: ablation_table("mnist", 1000),
    "ablation-mnist-500": lambda: ablation_table("mnist", 500),
    "seeds-cifar10": lambda: seeds_table("cifar10"),
    "pyramid-cifar10-1000": lambda: pyramid_table("cifar10", 1000),
    "pyramid-mnist-1000": lambda: pyramid_table("mnist", 1000),
    "frontier-cifar10-1000": lambda: frontier_table("cifar10", 1000),
    "single-image-128": lambda: single_image_table(128),
    "size-cost": size_cost_table,
    "size-cost-photo-crops": partial(size_cost_table, "sample-photo-crops"),
    "single-image-bounds-128": lambda: single_image_bounds_table(128, (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)),
    "single-image-preset-128": lambda: single_image_variants_table(128, SINGLE_IMAGE_VARIANTS),
    "single-image-256": lambda: single_image_table(256),
    "single-image-larger": single_image_larger_table,
    "likelihood": likelihood_table,
    "speed": speed_table,
    "checkouts-refactor": checkouts_table,
    "checkouts-since-1127": lambda: checkouts_table("since-1127"),
    "checkouts-reuse": lambda: checkouts_table("reuse"),
    "budget-cost": budget_cost_table,
    "budget-shares": budget_share_table,
    "run-share": run_share_table,
    "run-share-stages": run_share_stages_table,
    "run-share-throttled": lambda: run_share_table("run_share-check"),
    "run-share-throttled-stages": lambda: run_share_stages_table("run_share-check"),
    "run-share-radius0": lambda: run_share_table("run_share-radius0"),
    "run-parts": run_parts_table,
    "nearest-speed": nearest_speed_table,
    "retrieval-speed": retrieval_table,
    "trace-speed": trace_speed_line,
    "audit-speed": audit_speed_table,
    "eval-speed": eval_speed_table,
    "scale": scale_table,
    "ray-scaling": ray_scaling_table,
    "ray-projection": ray_projection_table,
    "gpu": lambda: gpu_table() + f"\n\n{gpu_runs_line()}.",
    "partwhole": partwhole_table,
    "representation": representation_table,
    "infomap": infomap_table,
    "exclusion": exclusion_table,
    "completion": completion_table,
}


def marked(name: str) -> str:
    """Table `name` as RESULTS.md holds it: made from the JSON now, between its markers."""
    if name not in TABLES:
        raise KeyError(f"RESULTS.md marks an unknown table {name!r}; known: {', '.join(TABLES)}")
    return f"<!-- table: {name} -->\n{TABLES[name]()}\n\n<!-- /table -->"


def render(text: str) -> str:
    """`text` with every marked table replaced by what TABLES makes from the JSON now."""
    return MARKED.sub(lambda match: marked(match.group(1)), text)


def main() -> int:
    """Print every table, or write / check the tables of RESULTS.md; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the marked tables of RESULTS.md")
    action.add_argument("--check", action="store_true", help="exit 1 if a marked table of RESULTS.md is out of date")
    args = parser.parse_args()
    if not (args.write or args.check):
        for name, table in TABLES.items():
            print(f"<!-- table: {name} -->\n{table()}\n")
        return 0
    text = RESULTS_MD.read_text()
    new = render(text)
    if args.write:
        RESULTS_MD.write_text(new)
        print(f"wrote {len(MARKED.findall(new))} tables to {RESULTS_MD}")
        return 0
    stale = [name for (name, old), (_, now) in zip(MARKED.findall(text), MARKED.findall(new)) if old != now]
    if stale:
        print(f"out of date in RESULTS.md: {', '.join(stale)}; run `python benchmarks/tables.py --write`")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
