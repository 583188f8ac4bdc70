"""Train the small CNN classifier whose features `npgen eval` and benchmarks/quality/evaluate.py score in.

    python benchmarks/quality/classifier.py mnist      # 1 epoch
    python benchmarks/quality/classifier.py cifar10    # 8 epochs

The weights go to $NPGEN_CACHE/classifiers/<dataset>.pt (never into the repository); the test
accuracy, training time and command go to benchmarks/results/classifier-<dataset>.json.
An existing classifier is kept unless --force is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: record.py
from record import save_result

from npgen.data.datasets import load_dataset
from npgen.evaluation.features import classifier_path, load_classifier, train_classifier

EPOCHS = {"mnist": 1, "cifar10": 8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(EPOCHS))
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--force", action="store_true", help="retrain even if a classifier exists")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    train = load_dataset(args.dataset, data_root=args.data_root)
    test = load_dataset(args.dataset, split="test", data_root=args.data_root)
    path = classifier_path(args.dataset)
    if path.is_file() and not args.force:
        classifier = load_classifier(path, train)
        print(f"{path} exists (test accuracy {classifier.test_accuracy:.4f}); --force retrains", file=sys.stderr)
        return
    epochs = args.epochs or EPOCHS[args.dataset]
    classifier = train_classifier(
        train, test, epochs=epochs, progress=lambda line: print(line, file=sys.stderr, flush=True)
    )
    classifier.save(path)
    n_parameters = sum(p.numel() for p in classifier.network.parameters())
    record = save_result(
        f"classifier-{args.dataset}",
        {
            "dataset": args.dataset,
            "epochs": epochs,
            "test_accuracy": classifier.test_accuracy,
            "train_seconds": round(classifier.train_seconds, 1),
            "n_parameters": n_parameters,
            "torch": torch.__version__,
        },
    )
    print(
        f"{args.dataset}: test accuracy {record['test_accuracy']:.4f} after {record['train_seconds']} s; weights in {path}"
    )


if __name__ == "__main__":
    main()
