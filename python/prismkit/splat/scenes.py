"""A synthetic splatting scene, so demos, tests and benchmarks need no download: textured objects
(a striped sphere, a checkered cube, a ringed cylinder, a cone) on a checkered ground plane, made of
flat Gaussians lying on the surfaces (z up, objects within 2.5 units of the origin), with a label per
Gaussian (0 ground, 1 sphere, 2 cube, 3 cylinder, 4 cone) and an orbit of cameras around it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .cameras import Camera, orbit

LABELS = ("ground", "sphere", "cube", "cylinder", "cone")


@dataclass
class Scene:
    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4] (w, x, y, z)
    scales: Tensor  # [N, 3]
    opacities: Tensor  # [N]
    colors: Tensor  # [N, 3] RGB in [0, 1]
    labels: Tensor  # [N] int64, an index into LABELS

    def __len__(self) -> int:
        return self.means.shape[0]

    def sh(self) -> Tensor:
        """The colours as degree-0 SH coefficients [N, 1, 3] (colour = SH_C0 * c + 0.5)."""
        return ((self.colors - 0.5) / 0.28209479177387814)[:, None]

    def cameras(self, n: int = 8, width: int = 512, height: int = 512, fov_x_degrees: float = 60.0) -> list[Camera]:
        """n cameras on an orbit around the objects, looking slightly down."""
        return orbit(n, radius=6.5, height=2.5, target=(0.0, 0.0, 0.6), fov_x_degrees=fov_x_degrees, width=width,
                     height_px=height)  # fmt: skip


def _normal_quats(normals: Tensor) -> Tensor:
    """Quaternions rotating +z onto each normal (the Gaussians are flat in their local z): for unit
    b, q = normalize(1 + b_z, -b_y, b_x, 0); a disc is symmetric, so normals are flipped to b_z >= 0."""
    b = torch.where(normals[:, 2:3] < 0, -normals, normals)
    q = torch.stack([1 + b[:, 2], -b[:, 1], b[:, 0], torch.zeros_like(b[:, 0])], -1)
    return torch.nn.functional.normalize(q, dim=-1)


def _surface(points: Tensor, normals: Tensor, colors: Tensor, area: float, label: int, g: torch.Generator):
    n = points.shape[0]
    s = 1.3 * math.sqrt(area / n)  # about one disc radius per point spacing, so the surface is closed
    scales = torch.stack([torch.full((n,), s), torch.full((n,), s), torch.full((n,), 0.1 * s)], -1)
    scales = scales * (0.8 + 0.4 * torch.rand(n, 1, generator=g))
    opacities = 0.75 + 0.25 * torch.rand(n, generator=g)
    return points, _normal_quats(normals), scales, opacities, colors, torch.full((n,), label, dtype=torch.int64)


def _checker(u: Tensor, v: Tensor, size: float) -> Tensor:
    return ((torch.floor(u / size) + torch.floor(v / size)) % 2).unsqueeze(-1)


def synthetic_scene(n_gaussians: int = 200_000, seed: int = 0) -> Scene:
    """n_gaussians Gaussians: 40% on the ground, the rest over the four objects by area."""
    if n_gaussians < 100:
        raise ValueError(f"synthetic_scene needs at least 100 Gaussians, got {n_gaussians}")
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    parts = []
    n_ground = int(0.4 * n_gaussians)
    n_obj = n_gaussians - n_ground
    # ground: [-4, 4]^2 at z = 0, grey and white checks of 0.5
    xy = (rand(n_ground, 2) - 0.5) * 8
    pts = torch.cat([xy, torch.zeros(n_ground, 1)], -1)
    col = 0.35 + 0.5 * _checker(xy[:, 0], xy[:, 1], 0.5).expand(-1, 3)
    parts.append(_surface(pts, torch.tensor([0.0, 0.0, 1.0]).expand(n_ground, 3), col, 64.0, 0, g))
    areas = {"sphere": 4 * math.pi * 0.8**2, "cube": 6 * 1.2**2, "cylinder": 2 * math.pi * 0.5 * 1.5 + 2 * math.pi * 0.25,
             "cone": math.pi * 0.6 * math.hypot(0.6, 1.4) + math.pi * 0.36}  # fmt: skip
    total = sum(areas.values())
    counts = {k: max(5, int(n_obj * a / total)) for k, a in areas.items()}
    counts["cone"] = n_obj - counts["sphere"] - counts["cube"] - counts["cylinder"]  # exactly n_gaussians in all
    # sphere at (-1.5, -1, 0.8), radius 0.8: red and yellow latitude stripes
    n = counts["sphere"]
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    stripes = (torch.floor((d[:, 2] + 1) * 4) % 2)[:, None]
    col = stripes * torch.tensor([0.9, 0.15, 0.1]) + (1 - stripes) * torch.tensor([0.95, 0.8, 0.1])
    parts.append(_surface(torch.tensor([-1.5, -1.0, 0.8]) + 0.8 * d, d, col, areas["sphere"], 1, g))
    # cube centred at (1.5, -1, 0.6), side 1.2: one colour per face axis, checkered
    n = counts["cube"]
    face = torch.randint(0, 6, (n,), generator=g)
    axis, sign = face // 2, (face % 2) * 2 - 1
    local = (rand(n, 3) - 0.5) * 1.2
    local[torch.arange(n), axis] = 0.6 * sign.float()
    normals = torch.zeros(n, 3)
    normals[torch.arange(n), axis] = sign.float()
    base = torch.tensor([[0.2, 0.4, 0.9], [0.2, 0.8, 0.3], [0.9, 0.5, 0.1]])[axis]
    idx = torch.arange(n)
    u, v = local[idx, (axis + 1) % 3], local[idx, (axis + 2) % 3]  # the face's own coordinates
    col = base * (0.55 + 0.45 * _checker(u, v, 0.3))
    parts.append(_surface(torch.tensor([1.5, -1.0, 0.6]) + local, normals, col, areas["cube"], 2, g))
    # cylinder at (0, 1.5), radius 0.5, height 1.5: blue and white rings, a white top
    n = counts["cylinder"]
    side = rand(n) < (1.5 / (1.5 + 0.25))
    theta = rand(n) * 2 * math.pi
    h = rand(n) * 1.5
    r = torch.sqrt(rand(n)) * 0.5
    radial = torch.stack([torch.cos(theta), torch.sin(theta), torch.zeros(n)], -1)
    pts = torch.where(side[:, None], radial * 0.5 + torch.stack([torch.zeros(n), torch.zeros(n), h], -1),
                      radial * r[:, None] + torch.tensor([0.0, 0.0, 1.5]))  # fmt: skip
    normals = torch.where(side[:, None], radial, torch.tensor([0.0, 0.0, 1.0]).expand(n, 3))
    rings = (torch.floor(h * 5) % 2)[:, None]
    col = torch.where(side[:, None], rings * torch.tensor([0.1, 0.2, 0.8]) + (1 - rings) * 0.92,
                      torch.full((n, 3), 0.92))  # fmt: skip
    parts.append(_surface(pts + torch.tensor([0.0, 1.5, 0.0]), normals, col, areas["cylinder"], 3, g))
    # cone at (2, 1.5), base radius 0.6, height 1.4: green, darker towards the tip
    n = counts["cone"]
    theta = rand(n) * 2 * math.pi
    t = torch.sqrt(rand(n))  # uniform over the lateral area: density grows towards the base
    radial = torch.stack([torch.cos(theta), torch.sin(theta), torch.zeros(n)], -1)
    pts = radial * (0.6 * t)[:, None] + torch.stack([torch.zeros(n), torch.zeros(n), 1.4 * (1 - t)], -1)
    normals = torch.nn.functional.normalize(radial * 1.4 + torch.tensor([0.0, 0.0, 0.6]), dim=-1)
    col = torch.tensor([0.1, 0.6, 0.2]) * (0.4 + 0.6 * t[:, None])
    parts.append(_surface(pts + torch.tensor([2.0, 1.5, 0.0]), normals, col, areas["cone"], 4, g))
    fields = [torch.cat(f) for f in zip(*parts, strict=True)]
    return Scene(*fields)
