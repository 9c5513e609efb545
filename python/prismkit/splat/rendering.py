"""``rasterization``: the whole splatting pipeline in one call, with gsplat's argument names and
shapes, on prismkit's ops (project_gaussians -> tile_bin -> rasterize).

Switching from gsplat: ``from prismkit.splat import rasterization`` in place of
``from gsplat import rasterization``. The differences:

* alpha is clamped at 0.99 (Inria's and gsplat's current rule; gsplat <= 1.5 used 0.999);
* radii are one per Gaussian and camera ([C, N], 3 sigma of the largest eigenvalue), not gsplat 1.5's
  per-axis [C, N, 2] at 3.33 sigma, so a few faint pixels at a Gaussian's edge can differ;
* dense [C, N] intermediates only: ``packed``, ``sparse_grad``, ``absgrad``, ``distributed``,
  ``rasterize_mode="antialiased"`` and camera models other than ``"pinhole"`` are refused;
* any feature width renders in one pass (no ``channel_chunk``; a given value is ignored);
* gradients reach means, quats, scales, opacities, colors and backgrounds, not viewmats or Ks.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from ..ops import splat as ops

# Real spherical-harmonic basis constants up to degree 3, as in the Inria and gsplat code.
SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
         1.445305721320277, -0.5900435899266435)  # fmt: skip

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")


def spherical_harmonics(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Colour of each Gaussian seen from ``dirs`` [..., 3] (any norm) with SH ``coeffs`` [..., K, 3],
    K >= (degree + 1)^2, degree <= 3: the Inria/gsplat basis (including its sign convention), without
    the +0.5 offset and clamp that ``rasterization`` applies."""
    if not 0 <= degree <= 3:
        raise ValueError(f"spherical_harmonics: degree must be in [0, 3], got {degree}")
    if coeffs.shape[-2] < (degree + 1) ** 2:
        raise ValueError(f"spherical_harmonics: degree {degree} needs {(degree + 1) ** 2} coefficients per colour, "
                         f"got {coeffs.shape[-2]}")  # fmt: skip
    sh = coeffs
    result = SH_C0 * sh[..., 0, :]
    if degree == 0:
        return result
    d = torch.nn.functional.normalize(dirs, dim=-1)
    x, y, z = (d[..., i : i + 1] for i in range(3))
    result = result - SH_C1 * y * sh[..., 1, :] + SH_C1 * z * sh[..., 2, :] - SH_C1 * x * sh[..., 3, :]
    if degree == 1:
        return result
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    result = (result + SH_C2[0] * xy * sh[..., 4, :] + SH_C2[1] * yz * sh[..., 5, :]
              + SH_C2[2] * (2 * zz - xx - yy) * sh[..., 6, :] + SH_C2[3] * xz * sh[..., 7, :]
              + SH_C2[4] * (xx - yy) * sh[..., 8, :])  # fmt: skip
    if degree == 2:
        return result
    return (result + SH_C3[0] * y * (3 * xx - yy) * sh[..., 9, :] + SH_C3[1] * xy * z * sh[..., 10, :]
            + SH_C3[2] * y * (4 * zz - xx - yy) * sh[..., 11, :] + SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[..., 12, :]
            + SH_C3[4] * x * (4 * zz - xx - yy) * sh[..., 13, :] + SH_C3[5] * z * (xx - yy) * sh[..., 14, :]
            + SH_C3[6] * x * (xx - 3 * yy) * sh[..., 15, :])  # fmt: skip


def rasterization(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor, viewmats: Tensor, Ks: Tensor,
    width: int, height: int, near_plane: float = 0.01, far_plane: float = 1e10, radius_clip: float = 0.0,
    eps2d: float = 0.3, sh_degree: Optional[int] = None, packed: bool = False, tile_size: int = 16,
    backgrounds: Optional[Tensor] = None, render_mode: str = "RGB", sparse_grad: bool = False,
    absgrad: bool = False, rasterize_mode: str = "classic", channel_chunk: int = 32, distributed: bool = False,
    camera_model: str = "pinhole",
) -> tuple[Tensor, Tensor, dict]:  # fmt: skip
    """Render N Gaussians into C cameras.

    means [N, 3], quats [N, 4] (w, x, y, z), scales [N, 3] (not logs), opacities [N] (in [0, 1], not
    logits), viewmats [C, 4, 4] (world to camera), Ks [C, 3, 3]. ``colors`` is [N, D] or [C, N, D]
    features of any width with ``sh_degree=None``, or [N, K, 3] spherical-harmonic coefficients with
    ``sh_degree`` in 0..3 (colour = max(SH(dir) + 0.5, 0), dir from the camera centre to the mean).
    ``render_mode`` appends depth: "D" (accumulated depth), "ED" (depth / alpha); "RGB+D", "RGB+ED".
    ``backgrounds`` [C, D_out] (or [C, D] of the colours alone, depth background 0).

    Returns ``render`` [C, H, W, D_out], ``alpha`` [C, H, W, 1] and ``meta``: means2d, conics,
    depths, radii, tile_offsets, flatten_ids, last_ids, tile_size, tiles_x, tiles_y, width, height.
    See the module docstring for what differs from gsplat."""
    refused = {"packed": packed, "sparse_grad": sparse_grad, "absgrad": absgrad, "distributed": distributed}
    for name, value in refused.items():
        if value:
            raise NotImplementedError(f"prismkit.splat.rasterization: {name}=True is not supported (dense [C, N] "
                                      "intermediates only); call it with the default")  # fmt: skip
    if rasterize_mode != "classic":
        raise NotImplementedError(f'prismkit.splat.rasterization: rasterize_mode "{rasterize_mode}" is not supported; '
                                  'use "classic"')  # fmt: skip
    if camera_model != "pinhole":
        raise NotImplementedError(f'prismkit.splat.rasterization: camera_model "{camera_model}" is not supported; '
                                  'use "pinhole"')  # fmt: skip
    if render_mode not in RENDER_MODES:
        raise ValueError(
            f"prismkit.splat.rasterization: render_mode must be one of {RENDER_MODES}, got {render_mode!r}"
        )
    means2d, conics, depths, radii = ops.project_gaussians(means, quats, scales, viewmats, Ks, width, height,
                                                           near_plane, far_plane, eps2d, radius_clip)  # fmt: skip
    if sh_degree is not None:
        if colors.dim() != 3 or colors.shape[-1] != 3 or colors.shape[0] != means.shape[0]:
            raise ValueError("prismkit.splat.rasterization: with sh_degree, colors must be [N, K, 3] SH coefficients, "
                             f"got shape {list(colors.shape)}")  # fmt: skip
        R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
        campos = -(R.transpose(-1, -2) @ t[..., None])[..., 0]  # [C, 3]
        dirs = means[None] - campos[:, None]  # [C, N, 3]
        features = torch.clamp_min(spherical_harmonics(sh_degree, dirs, colors[None].expand(len(campos), -1, -1, -1))
                                   + 0.5, 0.0)  # fmt: skip
    else:
        features = colors
    if render_mode != "RGB":
        depth = depths[..., None]
        if render_mode in ("D", "ED"):
            features = depth
        else:
            if features.dim() == 2:
                features = features[None].expand(depth.shape[0], -1, -1)
            features = torch.cat([features, depth], -1)
        if backgrounds is not None and render_mode in ("D", "ED") and backgrounds.shape[-1] != 1:
            raise ValueError(f'prismkit.splat.rasterization: render_mode "{render_mode}" renders one depth channel, so '
                             f"backgrounds must be [C, 1], got shape {list(backgrounds.shape)}")  # fmt: skip
        if backgrounds is not None and backgrounds.shape[-1] == features.shape[-1] - 1:
            backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(backgrounds.shape[0], 1)], -1)
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    tile_offsets, flatten_ids = ops.tile_bin(means2d, radii, depths, tile_size, tiles_x, tiles_y)
    render, alpha, last_ids = ops.rasterize(means2d, conics, features, opacities, tile_offsets, flatten_ids, width,
                                            height, tile_size, backgrounds)  # fmt: skip
    if render_mode in ("ED", "RGB+ED"):
        render = torch.cat([render[..., :-1], render[..., -1:] / alpha.clamp_min(1e-10)], -1)
    meta = dict(means2d=means2d, conics=conics, depths=depths, radii=radii, tile_offsets=tile_offsets,
                flatten_ids=flatten_ids, last_ids=last_ids, tile_size=tile_size, tiles_x=tiles_x, tiles_y=tiles_y,
                width=width, height=height)  # fmt: skip
    return render, alpha, meta
