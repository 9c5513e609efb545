"""Fake (meta) implementations of the quant ops, for torch.compile and opcheck: the same argument
checks as the kernels (checks.py), then outputs of the right shapes."""

from __future__ import annotations

import torch

from . import checks


@torch.library.register_fake("prismkit::kmeans1d")
def _kmeans1d_fake(values, k):
    R, _ = checks.check_kmeans1d_args(values, k)
    return values.new_empty(R, k), values.new_empty(R, k - 1)
