"""Print the Markdown tables of benchmarks/RESULTS.md from the JSON files in benchmarks/results/.

python benchmarks/tables.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def quality_table() -> str:
    rows = [
        "| experiment | samples | changes from the preset | requested class (10-NN) | ≥9/10 votes | classes | near-copies | median top-source share | median NN distance | runs failing verify | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in (
        "mnist-conditional",
        "mnist-unconditional",
        "cifar10-conditional",
        "mnist-conditional-radius1",
        "mnist-unconditional-nomixture",
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


def ablation_table(dataset: str, n: int) -> str:
    """benchmarks/ablation.py: the rule that bounds copying, one setting per row, scored in classifier features."""
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
        + f" listed at the top of this file); {r['machine']}; {r['date']}."
    )


def seeds_table(dataset: str) -> str:
    """benchmarks/seeds.py: the class-conditional scores of one setting at several seeds."""
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


def reference_table() -> str:
    rows = ["| dataset | 10-NN accuracy on the real test set | real test images with ≥9/10 votes |", "|---|---|---|"]
    for name in ("mnist-conditional", "cifar10-conditional"):
        r = load(name)
        if r is not None:
            rows.append(f"| {r['dataset']} | {pct(r['knn_test_accuracy'])} | {pct(r['knn_test_share_9_of_10'])} |")
    return "\n".join(rows)


def speed_table() -> str:
    r = load("speed")
    if r is None:
        return ""
    rows = ["| measurement | median seconds | all runs (s) | images/s | peak RSS (MB) |", "|---|---|---|---|---|"]
    for case, m in r["results"].items():
        rows.append(
            f"| {case} | {m['median_seconds']:.2f} | {m['all_seconds']} | {m['images_per_second']:.0f} | {m['peak_rss_mb']:.0f} |"
        )
    return (
        "\n".join(rows)
        + f"\n\nCommand: `{r['command']}`; {r['repeats']} runs each; {r['cpu_count']} cores; {r['machine']}; {r['date']}."
    )


def run_share_table() -> str:
    r = load("run_share")
    if r is None:
        return ""
    rows = [
        "| dataset | sampler images/s | whole run images/s | run / sampler, median of pairs | per pair |",
        "|---|---|---|---|---|",
    ]
    for name, m in r["results"].items():
        rows.append(
            f"| {name} | {m['sampler_images_per_second']:.0f} | {m['run_images_per_second']:.0f} | "
            f"{pct(m['median_share'])} | {', '.join(f'{100 * s:.0f}%' for s in m['shares'])} |"
        )
    return "\n".join(rows) + f"\n\nCommand: `{r['command']}`; {r['pairs']} pairs; {r['machine']}; {r['date']}."


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
    return "\n".join(rows) + f"\n\nCommand: `{r['command']}`; {r['pairs']} pairs; {r['machine']}; {r['date']}."


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
    return "\n".join(rows) + f"\n\nCommand: `{r['command']}`; {r['pairs']} rounds; {r['machine']}; {r['date']}."


def nearest_speed_table() -> str:
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
    return "\n".join(rows) + f"\n\nCommand: `{r['command']}`; medians of {r['repeats']}; {r['machine']}; {r['date']}."


def retrieval_table() -> str:
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


def partwhole_table() -> str:
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
        "\n".join(rows)
        + f"\n\n{r['per_class']} samples per class per setting (medians over samples). Command: `{r['command']}`; {r['machine']}; {r['date']}."
    )


def trace_speed_line() -> str:
    r = load("trace_speed")
    if r is None:
        return ""
    return (
        f"`Tracer(run).composition()` on a real {r['n_samples']:,}-sample MNIST run ({r['pixels']:,} provenance rows, "
        f"{r['parts']:,} parts): median {r['median_seconds']:.1f} s over {r['repeats']} fresh processes {r['all_seconds']}. "
        f"Command: `{r['command']}`; {r['machine']}; {r['date']}."
    )


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
                bits = f"{likelihood['test_bits_per_dim']:.2f}"
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


def representation_table() -> str:
    """benchmarks/representation.py: pool purity / 10-NN accuracy of each retrieval representation by prefix."""
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
    return "\n".join(rows) + f"\n\nCommand: `{r['command']}`; {r['machine']}; {r['date']}."


def gpu_table() -> str:
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


def controls_tables() -> str:
    """Exclusion cost and completion accuracy (benchmarks/controls.py)."""
    out = []
    r = load("controls-exclusion")
    if r is not None:
        rows = [
            "| dataset | excluded (10% of the split) | images/s, none | images/s, 10% excluded | ratio |",
            "|---|---|---|---|---|",
        ]
        for name, v in r["results"].items():
            rate = v["images_per_second"]
            rows.append(
                f"| {name} | {v['excluded_images']:,} | {rate['none']:.0f} | {rate['10%']:.0f} | {v['throughput_ratio']:.2f} |"
            )
        out.append("\n".join(rows) + f"\n\nCommand: `{r['command']}`; {r['machine']}; {r['date']}.")
    rows = [
        "| dataset | inputs × completions | completion classified as the original's class | original images | top half alone | distance of the generated half to the original's (median L2) | diversity: distance between two completions (median L2) | identical completion pairs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    commands = []
    for name in ("mnist", "cifar10"):
        r = load(f"controls-completion-{name}")
        if r is None:
            continue
        rows.append(
            f"| {name} | {r['inputs']:,} × 2 | {pct(r['original_class_recognised'])} | {pct(r['reference_original_images'])} | "
            f"{pct(r['reference_top_half_only'])} | {r['distance_to_original_median']:.0f} | {r['diversity_median']:.0f} | {pct(r['identical_pairs'])} |"
        )
        commands.append(f"`{r['command']}` ({r['date']})")
    out.append("\n".join(rows) + "\n\nCommands: " + ", ".join(commands) + ".")
    return "\n\n".join(out)


if __name__ == "__main__":
    for dataset in ("mnist", "cifar10"):
        for table in ("comparison", "ablation"):
            print(f"### {dataset} {table}\n\n{evaluation_table(dataset, table)}\n")
    print(f"### Likelihood\n\n{likelihood_table()}\n")
    for dataset, n in (("mnist", 500), ("cifar10", 500), ("mnist", 1000), ("cifar10", 1000)):
        print(f"### Ablation {dataset}, {n} samples per setting\n\n{ablation_table(dataset, n)}\n")
    print(f"### Representation\n\n{representation_table()}\n")
    print(f"### Seeds, CIFAR-10\n\n{seeds_table('cifar10')}\n")
    for title, table in (
        ("Quality", quality_table()),
        ("Reference", reference_table()),
        ("Speed", speed_table()),
        ("Whole run against the sampler", run_share_table()),
        ("What the budget costs", budget_cost_table()),
        ("What each budget costs and gives, CIFAR-10", budget_share_table()),
        ("Nearest-image search", nearest_speed_table()),
        ("Retrieval", retrieval_table()),
        ("Part-whole study", partwhole_table()),
        ("Tracer speed", trace_speed_line()),
        ("GPU sampler", gpu_table()),
        ("Data rights and control", controls_tables()),
    ):
        print(f"### {title}\n\n{table}\n")
