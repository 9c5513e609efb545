"""LangSplatV2's language field on prismkit's sparse coefficient ops: each Gaussian of a frozen
RGB scene carries per-level logits over a codebook of L entries; the top K of their softmax,
renormalized, are its sparse coefficients, and a pixel's language feature of level l is
codebook[l]^T W_l(p), with W the splatted coefficients.

    field = LanguageGaussianField.from_scene(scene, levels=3, L=64, K=4, D=512)
    field.init_codebooks(target_features_per_level)
    train_language_field(field, views, steps=2000)
    relevancy = field.relevancy(query_embeddings, viewmats, Ks, width, height, negatives)

Rules (the official code's, research note section 1): ``topk_soft_code`` is softmax over L, keep
the K largest, renormalize with +1e-10; the levels render in one pass with level l's indices
offset by l * L; training is Adam (lr 0.0025, eps 1e-15) on the logits and codebooks with
1 - cos(F, F_target) averaged over the valid pixels of each level (the official code multiplies
both sides by the validity mask and averages over all pixels: the same gradients up to the
factor valid / all).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from ..ops import splat as ops

CANONICAL_NEGATIVES = ("object", "things", "stuff", "texture")


def topk_soft_code(logits: Tensor, K: int) -> tuple[Tensor, Tensor]:
    """LangSplatV2's sparse coefficients: ``logits`` [..., L] -> (weights [..., K], indices [..., K]).

    weights = p_k / (sum of the K kept p + 1e-10) with p = softmax(logits), the K largest p kept
    (ties: the lower index first, so at the official zero initialization every Gaussian starts on
    entries 0..K-1; the official code's torch.topk leaves the choice among equal values to the
    backend: on the CPU it returned 42, 43, 44, 41 of 64 zeros). The partition function cancels, so the weights are a softmax over the K kept
    logits (times S / (S + 1e-10), S the kept mass, a constant here): the gradient of an unselected
    logit is exactly zero, where autograd through the official formula leaves a residue of order
    1e-10."""
    L = logits.shape[-1]
    if not 1 <= K <= L:
        raise ValueError(f"topk_soft_code: K must lie in [1, L = {L}], got {K}")
    p = logits.detach().softmax(-1)
    indices = torch.sort(p, dim=-1, descending=True, stable=True).indices[..., :K]
    kept = p.gather(-1, indices).sum(-1, keepdim=True)
    weights = logits.gather(-1, indices).softmax(-1) * (kept / (kept + 1e-10))
    return weights, indices


def kmeans(points: Tensor, k: int, iterations: int = 30, seed: int = 0, chunk: int = 65536) -> Tensor:
    """k centres [k, D] of ``points`` [n, D] by Lloyd's algorithm from a k-means++ start (Euclidean,
    as scikit-learn's MiniBatchKMeans that the official code uses, here on all points, seeded).
    With fewer distinct points than k, the extra centres repeat points with a small jitter."""
    if points.dim() != 2 or points.shape[0] == 0:
        raise ValueError(f"kmeans needs points [n, D] with n >= 1, got shape {list(points.shape)}")
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = points.float()
    n = x.shape[0]
    sample = x[torch.randperm(n, generator=g)[: min(n, 50 * k)].to(x.device)]
    centres = [sample[torch.randint(sample.shape[0], (1,), generator=g).item()]]
    d2 = ((sample - centres[0]) ** 2).sum(-1)
    for _ in range(1, k):
        if float(d2.sum()) <= 0:  # no distinct point left: jittered copies
            base = sample[torch.randint(sample.shape[0], (1,), generator=g).item()]
            centres.append(base + 1e-3 * torch.randn(base.shape, generator=g).to(x.device))
            continue
        pick = torch.multinomial((d2 / d2.sum()).cpu(), 1, generator=g).item()
        centres.append(sample[pick])
        d2 = torch.minimum(d2, ((sample - sample[pick]) ** 2).sum(-1))
    c = torch.stack(centres)
    for _ in range(iterations):
        sums, counts = torch.zeros_like(c), torch.zeros(k, device=x.device)
        for s in range(0, n, chunk):
            part = x[s : s + chunk]
            assign = torch.cdist(part, c).argmin(-1)
            sums.index_add_(0, assign, part)
            counts.index_add_(0, assign, torch.ones_like(assign, dtype=counts.dtype))
        moved = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], c)
        if torch.allclose(moved, c):
            break
        c = moved
    return c.to(points.dtype)


@dataclass
class Projected:
    """A view's projected and binned Gaussians (the geometry is frozen, so these are reused)."""

    means2d: Tensor
    conics: Tensor
    tile_offsets: Tensor
    flatten_ids: Tensor
    width: int
    height: int
    tile_size: int


class LanguageGaussianField(nn.Module):
    """Per-level logits [N, levels, L] (zeros, as the official initialization) and codebooks
    [levels, L, D] on a frozen Gaussian scene (means, quats, scales as standard deviations,
    opacities in [0, 1]); the projections of the last ``projection_cache`` camera sets are kept."""

    def __init__(self, means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, levels: int = 3, L: int = 64,
                 K: int = 4, D: int = 512, projection_cache: int = 16):  # fmt: skip
        super().__init__()
        if not 1 <= K <= L:
            raise ValueError(f"LanguageGaussianField: K must lie in [1, L = {L}], got {K}")
        if levels < 1 or D < 1:
            raise ValueError(f"LanguageGaussianField: levels and D must be >= 1, got {levels} and {D}")
        self.levels, self.L, self.K, self.D = levels, L, K, D
        for name, t in (("means", means), ("quats", quats), ("scales", scales), ("opacities", opacities)):
            self.register_buffer(name, t.detach().float().contiguous())
        N = means.shape[0]
        self.logits = nn.Parameter(torch.zeros(N, levels, L, device=means.device))
        self.codebooks = nn.Parameter(torch.zeros(levels, L, D, device=means.device))
        self.projection_cache = max(projection_cache, 1)
        self._projected: list = []  # (cameras, versions, size, Projected), the latest last

    @classmethod
    def from_scene(cls, scene, **kw) -> LanguageGaussianField:
        """From a ``prismkit.splat`` scene (``scenes.Scene`` or anything with means, quats, scales and
        opacities)."""
        return cls(scene.means, scene.quats, scene.scales, scene.opacities, **kw)

    @torch.no_grad()
    def init_codebooks(self, features: Sequence[Tensor], seed: int = 0) -> None:
        """Each level's codebook from k-means (``kmeans``: prismkit's own, full-batch Lloyd, not
        scikit-learn's MiniBatchKMeans) over that level's target features [n_l, D]."""
        if len(features) != self.levels:
            raise ValueError(f"init_codebooks needs one feature set per level ({self.levels}), got {len(features)}")
        for level, f in enumerate(features):
            self.codebooks[level] = kmeans(f.to(self.codebooks.device), self.L, seed=seed + level)

    def coefficients(self) -> tuple[Tensor, Tensor]:
        """-> (indices [N, levels * K] int32, offset by level * L; weights [N, levels * K])."""
        weights, indices = topk_soft_code(self.logits, self.K)  # [N, levels, K]
        offsets = torch.arange(self.levels, device=indices.device)[:, None] * self.L
        return (indices + offsets).flatten(1).to(torch.int32), weights.flatten(1)

    def project(self, viewmats: Tensor, Ks: Tensor, width: int, height: int, tile_size: int = 16) -> Projected:
        """The cameras' projection and tile lists. The geometry is frozen, so the last
        ``projection_cache`` results are kept and reused for the very same camera tensors, unmodified
        (identity and version: never an address, which the allocator may hand to the next view)."""
        size = (width, height, tile_size)
        for cams, versions, key, projected in self._projected:
            if cams[0] is viewmats and cams[1] is Ks and versions == (viewmats._version, Ks._version) and key == size:
                return projected
        with torch.no_grad():
            means2d, conics, depths, radii = ops.project_gaussians(self.means, self.quats, self.scales,
                                                                   viewmats.float(), Ks.float(), width, height)  # fmt: skip
            tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
            offsets, ids = ops.tile_bin(means2d, radii, depths, tile_size, tiles_x, tiles_y)
        projected = Projected(means2d, conics, offsets, ids, width, height, tile_size)
        self._projected.append(((viewmats, Ks), (viewmats._version, Ks._version), size, projected))
        del self._projected[: -self.projection_cache]
        return projected

    def render_weights(self, viewmats: Tensor, Ks: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
        """-> weight_map [C, H, W, levels * L] and alpha [C, H, W, 1], differentiable in the logits."""
        p = self.project(viewmats, Ks, width, height)
        indices, weights = self.coefficients()
        weight_map, alpha, _ = ops.rasterize_sparse_coef(p.means2d, p.conics, self.opacities, indices, weights,
                                                         self.levels * self.L, p.tile_offsets, p.flatten_ids, width,
                                                         height, p.tile_size)  # fmt: skip
        return weight_map, alpha

    def render_features(self, viewmats: Tensor, Ks: Tensor, width: int, height: int, normalize: bool = True) -> Tensor:
        """-> features [C, H, W, levels, D], the codebook product fused into the splat."""
        p = self.project(viewmats, Ks, width, height)
        indices, weights = self.coefficients()
        return ops.rasterize_sparse_features(p.means2d, p.conics, self.opacities, indices, weights, self.codebooks,
                                             p.tile_offsets, p.flatten_ids, width, height, p.tile_size, normalize)  # fmt: skip

    @torch.no_grad()
    def relevancy(self, queries: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                  negatives: Tensor) -> Tensor:  # fmt: skip
        """-> relevancy [C, H, W, levels, Q] of the unit query embeddings [Q, D] against the
        negatives [M, D] (the CLIP embeddings of CANONICAL_NEGATIVES in the official evaluation)."""
        p = self.project(viewmats, Ks, width, height)
        indices, weights = self.coefficients()
        return ops.language_relevancy(p.means2d, p.conics, self.opacities, indices, weights, self.codebooks,
                                      queries.to(self.codebooks), negatives.to(self.codebooks), p.tile_offsets,
                                      p.flatten_ids, width, height, p.tile_size)  # fmt: skip

    def loss(self, viewmats: Tensor, Ks: Tensor, width: int, height: int, targets: Tensor,
             embeddings: Tensor) -> Tensor:  # fmt: skip
        """Sum over levels of the mean 1 - cos(F, target) over each level's valid pixels. targets
        [C, H, W, levels] int64 index ``embeddings`` [M, D] (-1: no valid mask there). Only the
        valid pixels are decoded (weights [n_valid, L] x codebook [L, D])."""
        weight_map, _ = self.render_weights(viewmats, Ks, width, height)
        W = weight_map.reshape(-1, self.levels, self.L)
        t = targets.reshape(-1, self.levels)
        total = weight_map.sum() * 0  # a graph even when no level has a valid pixel
        for level in range(self.levels):
            valid = t[:, level] >= 0
            if not bool(valid.any()):
                continue
            F = W[valid, level] @ self.codebooks[level]
            total = total + (1 - torch.nn.functional.cosine_similarity(F, embeddings[t[valid, level]], dim=-1)).mean()
        return total


@dataclass
class LanguageViews:
    """Training views: cameras, image size and per-pixel targets [V, H, W, levels] (int64 indices
    into ``embeddings`` [M, D]; -1 where the level has no valid mask, as LangSplat's preprocessed
    segment maps)."""

    viewmats: Tensor
    Ks: Tensor
    width: int
    height: int
    targets: Tensor
    embeddings: Tensor

    def to(self, device) -> LanguageViews:
        return LanguageViews(self.viewmats.to(device), self.Ks.to(device), self.width, self.height,
                             self.targets.to(device), self.embeddings.to(device))  # fmt: skip

    def features(self, level: int) -> Tensor:
        """The target features of one level's valid pixels [n, D] (for init_codebooks)."""
        t = self.targets[..., level].reshape(-1)
        return self.embeddings[t[t >= 0]]


def train_language_field(field: LanguageGaussianField, views: LanguageViews, steps: int = 1000, lr: float = 0.0025,
                         views_per_step: int = 1, seed: int = 0, log_every: int = 100,
                         log: Optional[Callable[[str], None]] = print) -> list[float]:  # fmt: skip
    """Adam (lr 0.0025, eps 1e-15: the official settings) on the logits and codebooks, a random view
    (or views_per_step of them) per step, all levels in one rasterization. Returns the loss per
    step; logs the mean loss every log_every steps."""
    opt = torch.optim.Adam([field.logits, field.codebooks], lr=lr, eps=1e-15)
    g = torch.Generator().manual_seed(seed)
    views = views.to(field.logits.device)
    V = views.viewmats.shape[0]
    # one tensor per view, so that a view seen again finds its projection in the field's cache
    cameras = [(views.viewmats[v : v + 1], views.Ks[v : v + 1]) for v in range(V)]
    losses, start = [], time.perf_counter()
    for step in range(steps):
        pick = torch.randperm(V, generator=g)[:views_per_step]
        opt.zero_grad(set_to_none=True)
        viewmats, Ks = cameras[int(pick[0])] if views_per_step == 1 else (views.viewmats[pick], views.Ks[pick])
        loss = field.loss(viewmats, Ks, views.width, views.height, views.targets[pick], views.embeddings)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if log is not None and log_every and (step + 1) % log_every == 0:
            recent = sum(losses[-log_every:]) / log_every
            log(f"step {step + 1}/{steps}: loss {recent:.4f} ({time.perf_counter() - start:.1f} s)")
    return losses
