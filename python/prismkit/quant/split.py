"""SplitQuant's layer splitting (``SplitQuant.split(model, k=3)`` of the official code), faithfully:
each split layer becomes k copies of itself; copy c keeps the weights (and bias entries) of
cluster c and holds 0 elsewhere, so the copies' outputs sum to the original's. Low-bit
quantization of each copy then resolves its cluster's range separately, which is the paper's
point; ``prismkit.quant.quantize`` stores the same information as one packed layer instead.

Clustering (``weight_clusters``): a Linear weight as one flattened tensor, a convolution weight per
row of its first dimension (the output kernels; for a transposed convolution, whose weight is
[in, out / groups, ...], the input channels' kernels, as the official code's per-kernel split does
on that tensor), a bias as one tensor, each with exact 1-D k-means (the official code uses
scikit-learn's KMeans, which may stop at a local optimum). Departures from the official code,
each because its behaviour there is a bug or breaks the copies' sum:

* an all-zero bias is split like any bias (the official loop ``continue``s before replacing the
  layer, so such a layer silently stays unsplit);
* only layers whose output is linear in (weight, bias) are split: ``nn.Linear`` and the
  convolutions (``nn.Conv1d/2d/3d``, transposed too). The official code splits every leaf module
  with a weight except normalization layers, embeddings and ``NonDynamicallyQuantizableLinear``
  (MultiheadAttention's out_proj, which is skipped here as well), and a nonlinear one such as
  ``nn.PReLU`` would then no longer sum to the original;
* a layer whose clustered rows have fewer than k values (a Linear with fewer than k weights, a
  depthwise 1x1 kernel) is left unsplit, as the official ``len(weight) >= k`` test intends;
* where a row has fewer distinct values than clusters, repeated centers give coinciding
  boundaries and the lower cluster wins (``assign_clusters``), so every weight is in exactly one
  copy (the official masks overlap there).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Optional

import torch
from torch import Tensor, nn

from .clusters import weight_clusters

__all__ = ["SplitLayer", "split", "splittable"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def splittable(module: nn.Module, k: int = 3) -> bool:
    """Whether ``split`` replaces this module: a Linear (not MultiheadAttention's out_proj) or a
    convolution whose clustered rows hold at least k values, and whose bias, if any, has at least
    k entries."""
    if type(module).__name__ == "NonDynamicallyQuantizableLinear":
        return False
    if not isinstance(module, (nn.Linear, *_CONV)):
        return False
    w = module.weight
    per_row = w.numel() // w.shape[0] if isinstance(module, _CONV) else w.numel()
    return per_row >= k and (module.bias is None or module.bias.numel() >= k)


class SplitLayer(nn.Module):
    """k copies of a layer (``parts``), copy c holding cluster c's weights and bias entries (0
    elsewhere); ``forward`` returns ``((parts[0](x) + parts[1](x)) + ...)``, the official order of
    additions. ``weight_ids`` / ``bias_ids`` (buffers) say which cluster each parameter entry is in,
    ``weight_boundaries`` / ``bias_boundaries`` the k-means boundaries that assigned them."""

    def __init__(self, layer: nn.Module, k: int = 3):
        super().__init__()
        self.k = k
        per_row = isinstance(layer, _CONV)
        w_ids, w_bounds = weight_clusters(layer.weight, k, per_row=per_row)
        self.register_buffer("weight_ids", w_ids)
        self.register_buffer("weight_boundaries", w_bounds)
        if layer.bias is not None:
            b_ids, b_bounds = weight_clusters(layer.bias, k)
            self.register_buffer("bias_ids", b_ids)
            self.register_buffer("bias_boundaries", b_bounds)
        else:
            self.bias_ids = self.bias_boundaries = None
        self.parts = nn.ModuleList()
        for c in range(k):
            part = copy.deepcopy(layer)
            with torch.no_grad():
                part.weight.copy_(torch.where(w_ids == c, layer.weight, torch.zeros_like(layer.weight)))
                if layer.bias is not None:
                    part.bias.copy_(torch.where(self.bias_ids == c, layer.bias, torch.zeros_like(layer.bias)))
            self.parts.append(part)

    def forward(self, x: Tensor) -> Tensor:
        out = self.parts[0](x)
        for part in self.parts[1:]:
            out = out + part(x)
        return out

    def merged_weight(self) -> Tensor:
        """The sum of the copies' weights: the original weight."""
        return sum(p.weight for p in self.parts[1:]) + self.parts[0].weight


def split(model: nn.Module, k: int = 3, filter: Optional[Callable[[str, nn.Module], bool]] = None) -> nn.Module:
    """Replace every splittable layer of ``model`` (``splittable``; and ``filter(name, module)``
    when given) by a ``SplitLayer`` of k copies, in place; returns ``model``. A model that is
    itself such a layer is returned as a ``SplitLayer``. See the module docstring for what is
    split and how it departs from the official code."""
    if k < 1:
        raise ValueError(f"split: k must be >= 1, got {k}")
    if splittable(model, k) and (filter is None or filter("", model)):
        return SplitLayer(model, k)
    targets = [(name, m) for name, m in model.named_modules()
               if name and splittable(m, k) and (filter is None or filter(name, m))]  # fmt: skip
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, SplitLayer(module, k))
    return model
