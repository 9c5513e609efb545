"""Weight quantizers of ``prismkit.quant``: plain asymmetric min-max, and SplitQuant's clusters
in one representation, ``QuantizedWeight``.

A weight is a matrix W [N, K] (a Linear weight; a convolution weight flattened to [out,
in/groups * kernel]). Its K inputs are cut into G groups of g = K / G (``effective_group_size``);
each weight has a b-bit code q in [0, 2^b) and, for SplitQuant, a cluster id c; each (row, group,
cluster) has a scale s and a zero z, the value of code 0:

    w_hat = q * s[n, k // g, c] + z[n, k // g, c]        (float32: the product rounded, then the sum)

A zero that is the value of code 0, rather than an integer zero point, keeps constant groups exact
(s = 0) and lets SplitQuant's folded zero errors stay in float.

Methods and ranges, for bits 2 and 4 (8 bits: below):

* ``minmax``: asymmetric min-max per group, s = (max - min) / (2^b - 1), z = min, q =
  clamp(round((w - z) / s)): the baseline.
* ``splitquant`` with ``ranges="paper"``: the paper's numerics, as optimum-quanto quantizes each of
  the three split copies (``split``): per group the copy's range spans its cluster's values and,
  where the group has weights of other clusters, the zeros the copy holds there; quanto's
  s = (max - min) / (2^b - 1), shift = -min, q = clamp(round((w + shift) / s)), value q s - shift.
  A copy's zero then dequantizes to e = round(shift / s) s - shift (exactly 0 for the outer copies,
  whose zero is a range end; not for the middle one), which the paper's sum of copies adds at every
  weight of the other clusters: folded here into each cluster's zero, z_c = -shift_c + sum of the
  other copies' e.
* ``splitquant`` with ``ranges="tight"``: each cluster's range spans its own values only (the
  cluster id makes the other clusters' zeros implicit): min-max per (group, cluster), finer at the
  same bits.

8 bits: as optimum-quanto's qint8, symmetric absmax per row (s = absmax / 127, signed codes
stored as q + 128 with z = -128 s) for ``minmax`` and ``paper``; ``tight`` keeps its asymmetric
per-(group, cluster) ranges. Scales and zeros are stored in ``scale_dtype`` (float16 by default:
rounded before the codes are chosen, so the codes fit the stored values); ``paper`` computes quanto's
float32 parameters first, so with ``scale_dtype=torch.float32`` it reproduces quanto's copies up to
the order of the additions. A scale of 0 (a constant group or cluster) gives code 0 and keeps the
value exact. Weights must be finite (an error otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from .clusters import weight_clusters

__all__ = [
    "QuantizedWeight",
    "PackedWeight",
    "effective_group_size",
    "quantize_weight",
    "dequantize_weight",
    "pack_weight",
]

BITS = (2, 4, 8)
METHODS = ("splitquant", "minmax")
RANGES = ("paper", "tight")


@dataclass
class QuantizedWeight:
    """Unpacked quantized weight: ``codes`` [N, K] uint8, ``cluster_ids`` [N, K] uint8 (None for
    min-max), ``scales`` and ``zeros`` [N, G, C] (C = clusters, 1 for min-max), ``bits``,
    ``group_size`` g = K / G."""

    codes: Tensor
    cluster_ids: Optional[Tensor]
    scales: Tensor
    zeros: Tensor
    bits: int
    group_size: int

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.codes.shape)


def effective_group_size(in_features: int, group_size: int) -> int:
    """optimum-quanto's rule: groups of ``group_size`` along the inputs, shrunk by 32 until they
    divide ``in_features`` (not below 32); one group per row when ``in_features <= group_size`` or
    no such size divides it."""
    if group_size < 1:
        raise ValueError(f"group_size must be positive, got {group_size}")
    if in_features <= group_size:
        return in_features
    g = group_size
    while in_features % g != 0 and g > 32:
        g -= 32
    return g if in_features % g == 0 else in_features


def _codes(w: Tensor, s: Tensor, z: Tensor, bits: int) -> Tensor:
    """clamp(round((w - z) / s), 0, 2^b - 1), and 0 where s == 0."""
    q = torch.round((w - z) / torch.where(s > 0, s, torch.ones_like(s)))
    return torch.where(s > 0, q, torch.zeros_like(q)).clamp(0, 2**bits - 1)


def _cluster_minmax(w: Tensor, ids: Tensor, C: int, include_zero: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """(min, max) [N, G, C] over the weights of each cluster in each group of w [N, G, g] (ids: the
    clusters, int64 like w), in one pass each, with 0 included where ``include_zero`` [N, G, C] says
    so; a cluster without members (and no zero) gives (0, 0)."""
    lo = torch.full((*w.shape[:-1], C), float("inf"), dtype=w.dtype, device=w.device)
    hi = torch.full_like(lo, -float("inf"))
    lo = lo.scatter_reduce(-1, ids, w, "amin")
    hi = hi.scatter_reduce(-1, ids, w, "amax")
    if include_zero is not None:
        lo = torch.where(include_zero, lo.clamp(max=0), lo)
        hi = torch.where(include_zero, hi.clamp(min=0), hi)
    empty = ~torch.isfinite(lo)  # no member and no zero: the +-inf fill values are left
    return torch.where(empty, torch.zeros_like(lo), lo), torch.where(empty, torch.zeros_like(hi), hi)


def quantize_weight(
    weight: Tensor,
    bits: int = 4,
    group_size: int = 128,
    method: str = "splitquant",
    ranges: str = "paper",
    k: int = 3,
    per_row_clusters: bool = False,
    scale_dtype: torch.dtype = torch.float16,
) -> QuantizedWeight:
    """Quantize W [N, K] (see the module docstring). ``per_row_clusters``: cluster each row on its
    own (convolution kernels, as the paper) instead of the whole matrix (Linear)."""
    if bits not in BITS:
        raise ValueError(f"quantize: bits must be one of {BITS}, got {bits}")
    if method not in METHODS:
        raise ValueError(f"quantize: method must be one of {METHODS}, got {method!r}")
    if ranges not in RANGES:
        raise ValueError(f"quantize: ranges must be one of {RANGES}, got {ranges!r}")
    if method == "splitquant" and not 2 <= k <= 4:
        raise ValueError(f"quantize: SplitQuant needs 2 to 4 clusters (2-bit cluster ids), got k={k}; one cluster is "
                         "method='minmax'")  # fmt: skip
    if weight.dim() != 2:
        raise ValueError(f"quantize: the weight must be a matrix [N, K], got shape {list(weight.shape)}")
    if not torch.isfinite(weight).all():
        raise ValueError("quantize: the weight holds NaN or inf; a quantized copy of it would be meaningless")
    w = weight.detach().float()
    N, K = w.shape
    symmetric = bits == 8 and not (method == "splitquant" and ranges == "tight")
    g = K if symmetric else effective_group_size(K, group_size)
    G = K // g
    wg = w.reshape(N, G, g)
    if method == "splitquant":
        ids, _ = weight_clusters(w, k, per_row=per_row_clusters)
        C = k
    else:
        ids, C = torch.zeros(N, K, dtype=torch.long, device=w.device), 1
    idg = ids.reshape(N, G, g)
    scales = torch.zeros(N, G, C, device=w.device)
    zeros = torch.zeros(N, G, C, device=w.device)
    codes = torch.zeros(N, G, g, device=w.device)
    qmax = 2**bits - 1
    if symmetric:  # quanto's qint8: per row, s = absmax / 127, signed codes stored + 128
        for c in range(C):
            member = idg == c
            copy = torch.where(member, wg, torch.zeros_like(wg))  # the split copy (its zeros do not matter)
            s = (copy.abs().amax((1, 2)) / 127).reshape(N, 1)
            s = s.to(scale_dtype).float()
            q = torch.round(copy / torch.where(s > 0, s, torch.ones_like(s))[..., None]).clamp(-128, 127)
            codes = torch.where(member, q + 128, codes)
            scales[..., c], zeros[..., c] = s, -128 * s
    elif method == "minmax" or ranges == "tight":
        # every cluster's range at once; each weight then reads its own cluster's scale and zero
        lo, hi = _cluster_minmax(wg, idg, C)
        scales = ((hi - lo) / qmax).to(scale_dtype).float()
        zeros = lo.to(scale_dtype).float()
        codes = _codes(wg, scales.gather(-1, idg), zeros.gather(-1, idg), bits)
    else:  # splitquant, paper: quanto on each split copy, the copies' zero errors folded
        members = wg.new_zeros((N, G, C)).scatter_add_(-1, idg, torch.ones_like(wg))
        has_zero = members < g  # copy c holds zeros in this group (the other clusters' positions)
        lo, hi = _cluster_minmax(wg, idg, C, has_zero)
        scales = (hi - lo) / qmax
        shift = -lo
        safe = torch.where(scales > 0, scales, torch.ones_like(scales))
        # each weight quantized by its own copy: round((w + shift) / s), 0 where the copy's s is 0
        s_w, sh_w, safe_w = scales.gather(-1, idg), shift.gather(-1, idg), safe.gather(-1, idg)
        codes = torch.where(s_w > 0, torch.round((wg + sh_w) / safe_w), 0.0).clamp(0, qmax)
        q0 = torch.where(scales > 0, torch.round(shift / safe), 0.0).clamp(0, qmax)
        zero_value = torch.where(has_zero, q0 * scales - shift, torch.zeros_like(scales))  # what copy c's zeros become
        others = zero_value.sum(-1, keepdim=True) - zero_value  # the other copies' zeros, at this cluster's weights
        zeros = -shift + others
        scales, zeros = scales.to(scale_dtype).float(), zeros.to(scale_dtype).float()
    return QuantizedWeight(
        codes.reshape(N, K).to(torch.uint8),
        ids.to(torch.uint8) if method == "splitquant" else None,
        scales.to(scale_dtype),
        zeros.to(scale_dtype),
        bits,
        g,
    )


@dataclass
class PackedWeight:
    """A quantized weight in the layout of the quant ops (``prismkit.ops.quant``'s docstring):
    ``codes`` [N, ceil(K bits / 8)] and ``cluster_ids`` [N, ceil(K / 4)] (empty for min-max) uint8,
    ``scales`` / ``zeros`` [N, G, C]. ``args()`` gives the ops' weight arguments in order."""

    codes: Tensor
    cluster_ids: Tensor
    scales: Tensor
    zeros: Tensor
    bits: int
    group_size: int
    out_features: int
    in_features: int

    def args(self) -> tuple:
        return (self.codes, self.cluster_ids, self.scales, self.zeros)

    def meta(self) -> tuple:
        return (self.bits, self.group_size, self.out_features, self.in_features)


def pack_weight(qw: QuantizedWeight) -> PackedWeight:
    """Pack the codes (8 / bits per byte) and the cluster ids (four per byte) with ``quant_pack``."""
    from prismkit.ops import quant as ops

    N, K = qw.codes.shape
    ids = ops.quant_pack(qw.cluster_ids, 2) if qw.cluster_ids is not None else qw.codes.new_empty(0)
    return PackedWeight(ops.quant_pack(qw.codes, qw.bits), ids, qw.scales, qw.zeros, qw.bits, qw.group_size, N, K)


def dequantize_weight(qw: QuantizedWeight) -> Tensor:
    """W_hat [N, K] float32: q * s + z with (s, z) of each weight's group and cluster (the product
    rounded, then the sum)."""
    N, K = qw.codes.shape
    G = K // qw.group_size
    c = qw.cluster_ids.long() if qw.cluster_ids is not None else torch.zeros(N, K, dtype=torch.long,
                                                                               device=qw.codes.device)  # fmt: skip
    group = (torch.arange(K, device=qw.codes.device) // qw.group_size).expand(N, K)
    flat = (group * qw.scales.shape[2] + c).reshape(N, K)
    s = qw.scales.float().reshape(N, G * qw.scales.shape[2]).gather(1, flat)
    z = qw.zeros.float().reshape(N, G * qw.zeros.shape[2]).gather(1, flat)
    return qw.codes.float() * s + z
