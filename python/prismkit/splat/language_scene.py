"""A synthetic language scene on the part-1 synthetic scene, so the language field trains and its
queries are scored without downloads: every Gaussian gets a label at three levels, as SAM's
subpart / part / whole masks give LangSplat (whole: ground, sphere, cube, cylinder, cone; part:
each object's upper and lower half; subpart: each object's light and dark patches of its texture),
every label a fixed random unit embedding (a part's is correlated with its whole's, a subpart's
with its part's, as CLIP features of nested masks are), and the ground truth of a view is the
label of each pixel's dominant Gaussians, where they cover it (-1 elsewhere: no valid mask)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..ops import splat as ops
from .cameras import orbit, stack_cameras
from .language import LanguageViews
from .scenes import LABELS, Scene, synthetic_scene

LEVELS = ("subpart", "part", "whole")


@dataclass
class LanguageScene:
    scene: Scene
    names: list[str]  # every label, all levels
    level_of: list[int]  # each label's level (an index into LEVELS)
    embeddings: Tensor  # [M, D] unit vectors, one per label
    labels: Tensor  # [N, 3] int64: each Gaussian's label per level
    negatives: Tensor  # [4, D]: stand-ins for the CLIP embeddings of the canonical negatives

    def embedding(self, name: str) -> Tensor:
        if name not in self.names:
            raise KeyError(f"no label {name!r} in this scene; labels: {', '.join(self.names)}")
        return self.embeddings[self.names.index(name)]

    def ground_truth(self, viewmats: Tensor, Ks: Tensor, width: int, height: int, coverage: float = 0.5) -> Tensor:
        """targets [C, H, W, 3] int64: per level, the label with the largest rendered share at the
        pixel where that share is >= coverage, else -1."""
        s = self.scene
        M = len(self.names)
        onehot = torch.zeros(len(s), M)
        for level in range(len(LEVELS)):
            onehot[torch.arange(len(s)), self.labels[:, level]] = 1.0
        means2d, conics, depths, radii = ops.project_gaussians(s.means, s.quats, s.scales, viewmats, Ks, width, height)
        tx, ty = math.ceil(width / 16), math.ceil(height / 16)
        offsets, ids = ops.tile_bin(means2d, radii, depths, 16, tx, ty)
        shares = ops.rasterize(means2d, conics, onehot, s.opacities, offsets, ids, width, height, 16)[0]
        targets = []
        level_of = torch.tensor(self.level_of)
        for level in range(len(LEVELS)):
            cols = torch.nonzero(level_of == level).flatten()
            share, pick = shares[..., cols].max(-1)
            targets.append(torch.where(share >= coverage, cols[pick], torch.full_like(pick, -1)))
        return torch.stack(targets, -1)

    def views(self, n: int, width: int, height: int, offset: float = 0.0) -> LanguageViews:
        """n views on the scene's orbit (rotated by offset of a step: 0.5 puts held-out views
        between the training ones), with their ground truth."""
        cams = orbit(n, radius=6.5, height=2.5, target=(0.0, 0.0, 0.6), width=width, height_px=height,
                     phase=offset)  # fmt: skip
        viewmats, Ks = stack_cameras(cams)
        return LanguageViews(viewmats, Ks, width, height, self.ground_truth(viewmats, Ks, width, height),
                             self.embeddings)  # fmt: skip


def synthetic_language_scene(n_gaussians: int = 50_000, D: int = 512, seed: int = 0) -> LanguageScene:
    s = synthetic_scene(n_gaussians, seed)
    g = torch.Generator().manual_seed(seed + 1)
    unit = lambda *shape: torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1)  # noqa: E731
    names, level_of, vectors = [], [], []

    def add(name: str, level: int, vector: Tensor) -> int:
        names.append(name)
        level_of.append(level)
        vectors.append(torch.nn.functional.normalize(vector, dim=0))
        return len(names) - 1

    labels = torch.zeros(len(s), 3, dtype=torch.int64)
    luminance = s.colors @ torch.tensor([0.299, 0.587, 0.114])
    for k, whole in enumerate(LABELS):
        members = torch.nonzero(s.labels == k).flatten()
        e_whole = unit(D)
        w = add(whole, 2, e_whole)
        labels[members, 2] = w
        if whole == "ground":
            halves = {"ground plane": members}
        else:
            z = s.means[members, 2]
            mid = 0.5 * (z.min() + z.max())
            halves = {f"upper {whole}": members[z >= mid], f"lower {whole}": members[z < mid]}
        parts = {}
        for part_name, part_members in halves.items():
            e_part = e_whole + 0.75 * unit(D)
            parts[part_name] = add(part_name, 1, e_part)
            labels[part_members, 1] = parts[part_name]
        # subparts: light and dark patches of the texture, each inside the part it mostly lies in
        threshold = luminance[members].median()
        for tone, chosen in (("light", luminance[members] >= threshold), ("dark", luminance[members] < threshold)):
            patch = members[chosen]
            name = f"{tone} tile" if whole == "ground" else f"{tone} {whole} patch"
            parent = torch.mode(labels[patch, 1]).values.item() if patch.numel() else parts[next(iter(parts))]
            labels[patch, 0] = add(name, 0, vectors[parent] + 0.75 * unit(D))
    negatives = unit(4, D)
    return LanguageScene(s, names, level_of, torch.stack(vectors), labels, negatives)
