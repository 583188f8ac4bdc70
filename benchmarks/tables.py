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
        "| experiment | samples | window / options | requested class (10-NN) | ≥9/10 votes | classes | near-copies | median top-source share | median NN distance | verify problems | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("mnist-conditional", "mnist-unconditional", "cifar10-conditional",
                 "mnist-conditional-radius1", "mnist-conditional-kmin1", "cifar10-conditional-kmin1", "cifar10-conditional-h3"):  # fmt: skip
        r = load(name)
        if r is None:
            continue
        window = ", ".join(f"{k}={v}" for k, v in {**r["window"], **r["sampler_options"]}.items() if (k, v) not in
                           {("half_window", 3), ("pad_value", 0), ("retrieval_block", 1)})  # fmt: skip
        rows.append(
            f"| {name} | {r['n_samples']} | {window or 'defaults'} | {pct(r['requested_class_accuracy'])} | "
            f"{pct(r['share_9_of_10_votes'])} | {len(r['classes_present'])} | {pct(r['near_copy_rate'])} "
            f"(< {r['near_copy_threshold']:.0f}) | {r['median_top_source_share']:.3f} | "
            f"{r['nearest_distance_percentiles']['50']:.0f} | {r['verify_problems']} | `{r['command']}` |"
        )
    return "\n".join(rows)


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
        rows.append(f"| {case} | {m['median_seconds']:.2f} | {m['all_seconds']} | {m['images_per_second']:.0f} | {m['peak_rss_mb']:.0f} |")
    return "\n".join(rows) + f"\n\nCommand: `{r['command']}`; {r['repeats']} runs each; {r['cpu_count']} cores; {r['machine']}; {r['date']}."


def retrieval_table() -> str:
    rows = ["| dataset | block | canvases x candidates x rows | npgen kernels (s) | FAISS flat, prefix index per row (s) | FAISS search only (s) | same K-th distance | command |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
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
    return "\n".join(rows) + f"\n\n{r['per_class']} samples per class per setting (medians over samples). Command: `{r['command']}`; {r['machine']}; {r['date']}."


def trace_speed_line() -> str:
    r = load("trace_speed")
    if r is None:
        return ""
    return (f"`Tracer(run).composition()` on a real {r['n_samples']:,}-sample MNIST run ({r['pixels']:,} provenance rows, "
            f"{r['parts']:,} parts): median {r['median_seconds']:.1f} s over {r['repeats']} fresh processes {r['all_seconds']}. "
            f"Command: `{r['command']}`; {r['machine']}; {r['date']}.")


if __name__ == "__main__":
    for title, table in (("Quality", quality_table()), ("Reference", reference_table()), ("Speed", speed_table()), ("Retrieval", retrieval_table()),
                         ("Part-whole study", partwhole_table()), ("Tracer speed", trace_speed_line())):
        print(f"### {title}\n\n{table}\n")
