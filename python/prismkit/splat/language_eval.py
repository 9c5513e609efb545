"""LangSplat's text-query evaluation on rendered relevancy maps (LangSplatV2's eval_lerf.py, the
quick path), and a PCA picture of a feature field.

Segmentation, per query: each level's relevancy map r is smoothed to 0.5 (r + avg29(r)) (a 29 x 29
mean, stride 1, padding 14, padded pixels not counted); the level whose smoothed map has the
highest maximum is chosen; its map is min-max normalized, mapped to [-1, 1] and clipped to [0, 1],
thresholded at 0.4, and the mask smoothed by a 7 x 7 mean (padding not counted) kept where > 0.5.
Localization: the level whose avg29(r) (no mixing) has the highest maximum, and the pixels at that
maximum; a hit when one lies in a ground-truth box."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

MASK_THRESHOLD = 0.4


def _mean_filter(x: Tensor, size: int) -> Tensor:
    """[..., H, W] -> the size x size mean, stride 1, same size, padded pixels not counted."""
    shape = x.shape
    y = torch.nn.functional.avg_pool2d(x.reshape(-1, 1, *shape[-2:]).float(), size, stride=1, padding=size // 2,
                                       count_include_pad=False)  # fmt: skip
    return y.reshape(shape)


@dataclass
class Segmentation:
    mask: Tensor  # [H, W] bool
    level: int  # the chosen level
    score: float  # its smoothed map's maximum


def segment(relevancy: Tensor, threshold: float = MASK_THRESHOLD) -> Segmentation:
    """One query's mask from its relevancy maps [H, W, levels] (see the module docstring)."""
    r = relevancy.permute(2, 0, 1).float()  # [levels, H, W]
    mixed = 0.5 * (_mean_filter(r, 29) + r)
    scores = mixed.flatten(1).amax(1)
    level = int(scores.argmax())
    out = mixed[level] - mixed[level].min()
    out = (out / (out.max() + 1e-9)) * 2 - 1
    mask = (out.clamp(0, 1) > threshold).float()
    mask = _mean_filter(mask, 7) > 0.5
    return Segmentation(mask, level, float(scores[level]))


def localize(relevancy: Tensor) -> tuple[int, Tensor]:
    """One query's (level, points [n, 2] as (x, y)) from its relevancy maps [H, W, levels]: the
    pixels at the maximum of avg29(r) on the level where that maximum is highest."""
    smoothed = _mean_filter(relevancy.permute(2, 0, 1).float(), 29)
    scores = smoothed.flatten(1).amax(1)
    level = int(scores.argmax())
    yx = torch.nonzero(smoothed[level] == scores[level])
    return level, yx.flip(-1)


def iou(mask: Tensor, truth: Tensor) -> float:
    union = (mask | truth).sum()
    return float((mask & truth).sum() / union) if union > 0 else 1.0


@dataclass
class PCABasis:
    mean: Tensor  # [D]
    components: Tensor  # [D, 3]
    low: Tensor  # [3], the 1st percentile of the projections
    high: Tensor  # [3], the 99th


def pca_basis(features: Tensor, samples: int = 100_000, seed: int = 0) -> PCABasis:
    """One PCA basis for a whole feature field ([..., D]: e.g. every view's rendered features), so
    that every view is coloured the same way (per-frame PCA is not multi-view consistent)."""
    x = features.reshape(-1, features.shape[-1]).float()
    x = x[x.norm(dim=-1) > 0]
    if x.shape[0] > samples:
        x = x[torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:samples].to(x.device)]
    mean = x.mean(0)
    _, _, V = torch.pca_lowrank(x - mean, q=3, center=False)
    p = (x - mean) @ V
    return PCABasis(mean, V, torch.quantile(p, 0.01, dim=0), torch.quantile(p, 0.99, dim=0))


def pca_image(features: Tensor, basis: PCABasis) -> Tensor:
    """features [H, W, D] -> an RGB image [H, W, 3] in [0, 1] (black where the feature is zero)."""
    p = (features.float() - basis.mean) @ basis.components
    rgb = ((p - basis.low) / (basis.high - basis.low).clamp_min(1e-12)).clamp(0, 1)
    return torch.where(features.norm(dim=-1, keepdim=True) > 0, rgb, torch.zeros_like(rgb))


def heatmap(values: Tensor) -> Tensor:
    """[H, W] in [0, 1] -> an RGB image [H, W, 3] (dark blue through red to yellow)."""
    v = values.float().clamp(0, 1)[..., None]
    return torch.cat([(2 * v).clamp(0, 1), (2 * v - 1).clamp(0, 1), (0.5 - v).clamp(0, 1) * 1.2], -1)
