"""Quantize a small CNN and an MLP trained on scikit-learn's bundled digits with each method.

Data: ``sklearn.datasets.load_digits`` (1797 8x8 grey images of the digits 0-9, shipped inside
scikit-learn; nothing is downloaded), split 80/20 with a fixed seed, pixels scaled to [0, 1].
Models: an MLP (64-256-256-10) and a CNN (two 3x3 convolutions, 32 and 64 channels, a 2x2 max
pool, a linear head), trained in fp32 with Adam for a few seconds each on the CPU.

Each trained model is copied and quantized weight-only (``prismkit.quant.quantize``: every
``nn.Linear`` and ``nn.Conv2d``, groups of 128 by optimum-quanto's rule) at 2, 4 and 8 bits with
plain min-max, SplitQuant with the paper's ranges and SplitQuant with tight ranges; the test
accuracy and the stored bits per weight (``bits_per_weight``: codes, cluster ids, scales, zeros)
of each are printed, averaged over several training seeds (a 360-image test set moves in steps of
0.28 points, and a 2-bit network's accuracy depends on its seed).

    python examples/quant_digits.py                       # 3 seeds, 40 epochs: about two minutes
    python examples/quant_digits.py --seeds 1 --epochs 5 --json digits.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from torch import nn

from prismkit import _cpu
from prismkit.quant import bits_per_weight, quantize

METHODS = (("minmax", "minmax", "paper"), ("splitquant-paper", "splitquant", "paper"),
           ("splitquant-tight", "splitquant", "tight"))  # fmt: skip
BITS = (2, 4, 8)


def digits(seed: int = 0):
    """(x_train, y_train, x_test, y_test): images [n, 1, 8, 8] in [0, 1], labels int64."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))  # fmt: skip


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 4 * 4, 10))  # fmt: skip


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=gen).split(64):
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (model(x).argmax(1) == y).double().mean().item()


def run(seeds: int = 3, epochs: int = 40, log=print) -> dict:
    """Train each architecture once per seed and quantize it with every method and bit width;
    returns the per-seed accuracies, their means and each quantized model's bits per weight."""
    x_train, y_train, x_test, y_test = digits()
    results = {}
    for arch, build in (("mlp", mlp), ("cnn", cnn)):
        rows = {"fp32": {"accuracy": [], "bits_per_weight": 32.0}}
        for seed in range(seeds):
            torch.manual_seed(seed)
            start = time.perf_counter()
            model = train(build(), x_train, y_train, epochs, seed)
            rows["fp32"]["accuracy"].append(accuracy(model, x_test, y_test))
            for bits in BITS:
                for label, method, ranges in METHODS:
                    q = quantize(copy.deepcopy(model), bits=bits, method=method, ranges=ranges)
                    row = rows.setdefault(f"{label} int{bits}", {"accuracy": [], "bits_per_weight": bits_per_weight(q)})
                    row["accuracy"].append(accuracy(q, x_test, y_test))
            log(f"{arch} seed {seed}: trained and quantized in {time.perf_counter() - start:.1f} s, "
                f"fp32 accuracy {rows['fp32']['accuracy'][-1]:.4f}")  # fmt: skip
        for row in rows.values():
            row["mean_accuracy"] = statistics.fmean(row["accuracy"])
        results[arch] = rows
    return {
        "data": "sklearn.datasets.load_digits, 80/20 split (seed 0), 360 test images",
        "seeds": seeds,
        "epochs": epochs,
        "group_size": 128,
        "device": f"cpu ({_cpu.processor()})",
        "torch": torch.__version__,
        "models": results,
    }


def table(report: dict) -> str:
    lines = [
        "| model | method | bits/weight | test accuracy (mean over seeds) | vs min-max |",
        "|---|---|---|---|---|",
    ]
    for arch, rows in report["models"].items():
        for name, row in rows.items():
            base = None if name == "fp32" or name.startswith("minmax") else rows[f"minmax {name.split()[-1]}"]
            gain = f"{100 * (row['mean_accuracy'] - base['mean_accuracy']):+.1f} points" if base else ""
            lines.append(
                f"| {arch} | {name} | {row['bits_per_weight']:.2f} | {100 * row['mean_accuracy']:.1f}% | {gain} |"
            )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="training seeds to average over (default 3)")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs per model (default 40)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    for name in ("seeds", "epochs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    report = run(args.seeds, args.epochs)
    print(table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
