"""SplitQuant's clustering of a layer's weights: exact 1-D k-means (``prismkit.ops.quant.kmeans1d``)
over the whole flattened weight of a Linear layer, and per output kernel of a Conv2d, and the
paper's assignment of each weight to a cluster by the midpoints between the sorted centers."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from prismkit.ops import quant as ops

__all__ = ["assign_clusters", "cluster_rows", "weight_clusters"]


def assign_clusters(values: Tensor, boundaries: Tensor) -> Tensor:
    """Each value's cluster (int64, ``values``' shape) for ``values`` [R, ...] and ascending
    ``boundaries`` [R, k-1], by SplitQuant's rule: cluster 0 when ``w <= b_0``, else the last
    cluster when ``w >= b_{k-2}``, else the c with ``b_{c-1} < w <= b_c`` (for k = 3 the paper's
    lower ``w <= b0``, middle ``b0 < w < b1``, upper ``w >= b1``). Where boundaries coincide
    (repeated centers: fewer distinct values than clusters) the lower cluster wins, so the clusters
    stay disjoint and cover every value (the official code's three masks overlap there and count
    such a weight twice)."""
    k = boundaries.shape[1] + 1
    flat = values.reshape(values.shape[0], math.prod(values.shape[1:]))
    if k == 1:
        return torch.zeros_like(flat, dtype=torch.long).reshape(values.shape)
    b = boundaries.to(flat.dtype).contiguous()
    cluster = torch.searchsorted(b, flat.contiguous())  # how many boundaries lie strictly below w
    upper = (flat >= b[:, -1:]) & (flat > b[:, :1])
    return torch.where(upper, torch.full_like(cluster, k - 1), cluster).reshape(values.shape)


def cluster_rows(values: Tensor, k: int = 3) -> tuple[Tensor, Tensor]:
    """(cluster ids [R, ...] int64, boundaries [R, k-1]) of each row of ``values`` [R, ...], every
    row clustered on its own with ``kmeans1d``."""
    rows = values.detach().reshape(values.shape[0], math.prod(values.shape[1:]))
    _, boundaries = ops.kmeans1d(rows, k)
    return assign_clusters(values.detach(), boundaries), boundaries


def weight_clusters(weight: Tensor, k: int = 3, per_row: bool = False) -> tuple[Tensor, Tensor]:
    """SplitQuant's clusters of a layer parameter: one clustering of the whole flattened tensor
    (Linear weights, biases), or one per output row / kernel with ``per_row`` (Conv2d weights, as
    the official ``k_means_split_kernels``). Returns (cluster ids shaped like ``weight``,
    boundaries [1 or out, k-1])."""
    rows = weight.reshape(weight.shape[0], -1) if per_row else weight.reshape(1, -1)
    ids, boundaries = cluster_rows(rows, k)
    return ids.reshape(weight.shape), boundaries
