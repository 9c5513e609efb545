"""What every accuracy script of bench/ (sae_quality.py, quant_quality.py, merge_quality.py) writes to
bench/results/quality/<name>.json: the device, named as the benchmark files name it (the
processor's model and the thread count), and the file itself. Not timing files: bench/run.py
leaves them alone."""

from __future__ import annotations

import json
import os

import torch

from prismkit import _cpu

HERE = os.path.dirname(os.path.abspath(__file__))


def device() -> str:
    """'cpu (AMD EPYC 9R14, 2 threads)' and the like."""
    return f"cpu ({_cpu.processor()}, {torch.get_num_threads()} threads)"


def write(name: str, out: dict) -> str:
    """Write ``out`` to bench/results/quality/<name>.json; returns the path."""
    path = os.path.join(HERE, "results", "quality", f"{name}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    return path
