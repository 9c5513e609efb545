"""Plain PyTorch references of the quant ops (python/prismkit/ops/quant/__init__.py states the
semantics), written for reading and as test oracles, not for speed."""

from __future__ import annotations

import torch
from torch import Tensor


def kmeans1d(values: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Exact 1-D k-means of each row by the O(k n^2) dynamic program over the sorted values, with
    the cost of every segment from prefix sums (float64) and the leftmost optimal split at every
    step (``argmin`` returns the first minimum)."""
    R, n = values.shape
    centers = torch.empty(R, k, dtype=torch.float64)
    for r in range(R):
        x = torch.sort(values[r].double().cpu()).values
        mean = x.mean()
        x = x - mean
        P1 = torch.cat([x.new_zeros(1), x.cumsum(0)])
        P2 = torch.cat([x.new_zeros(1), (x * x).cumsum(0)])
        a = torch.arange(n + 1)[:, None]  # segment [a, b)
        b = torch.arange(n + 1)[None, :]
        length = (b - a).clamp_min(1).double()
        cost = ((P2[b] - P2[a]) - (P1[b] - P1[a]) ** 2 / length).clamp_min(0)
        cost = torch.where(b > a, cost, torch.full_like(cost, float("inf")))
        layers = [cost[0]]  # D_1(i) = cost(0, i)
        choice = [None]
        for m in range(2, k + 1):
            total = layers[-1][:, None] + cost  # [j, i]: D_{m-1}(j) + cost(j, i)
            j = torch.arange(n + 1)[:, None]
            total = torch.where(j >= m - 1, total, torch.full_like(total, float("inf")))
            layers.append(total.min(0).values)
            choice.append(total.argmin(0))
        splits = [n]
        for m in range(k, 1, -1):
            splits.append(int(choice[m - 1][splits[-1]]))
        splits = [0] + splits[::-1]
        for c in range(k):
            lo, hi = splits[c], splits[c + 1]
            centers[r, c] = (P1[hi] - P1[lo]) / (hi - lo) + mean
    boundaries = 0.5 * (centers[:, 1:] + centers[:, :-1])
    return centers.to(values.dtype), boundaries.to(values.dtype)
