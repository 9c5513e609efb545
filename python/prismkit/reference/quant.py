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


def quant_dequantize(codes, cluster_ids, scales, zeros, bits, group_size, out_features, in_features):
    """The packed weight as float32, in the op's order: unpack, look up each weight's (s, z), then
    q * s rounded and + z rounded (two PyTorch ops, no fused multiply-add)."""
    N, K = out_features, in_features
    per = 8 // bits
    k = torch.arange(K, device=codes.device)
    q = (codes[:, k // per].int() >> ((k % per) * bits)) & (2**bits - 1)
    C = scales.shape[2]
    if cluster_ids.numel():
        c = ((cluster_ids[:, k // 4].int() >> ((k % 4) * 2)) & 3).clamp(max=C - 1).long()
    else:
        c = torch.zeros(N, K, dtype=torch.long, device=codes.device)
    at = (k // group_size)[None, :] * C + c
    s = scales.float().reshape(N, -1).gather(1, at)
    z = zeros.float().reshape(N, -1).gather(1, at)
    return q.float() * s + z


def quant_linear(x, codes, cluster_ids, scales, zeros, bias, bits, group_size, out_features, in_features):
    """``x @ W_hat.T + bias`` with the float weight formed first (the naive way)."""
    w = quant_dequantize(codes, cluster_ids, scales, zeros, bits, group_size, out_features, in_features)
    y = x @ w.to(x.dtype).T
    return y if bias is None else y + bias
