"""3D Gaussian splatting: projection, tile binning and alpha compositing of features of any width,
and LangSplatV2's sparse coefficient splatting (sparse.py: the weight map, the fused codebook
decode, the text-query relevancy).

Where each piece lives (see CONTRIBUTING.md): schemas in csrc/splat/splat_schemas.cpp; argument
checks in checks.py and sparse_checks.py here and csrc/splat/splat_checks.cpp and
sparse_checks.cpp; fake implementations in fake.py; autograd in autograd.py; C++ CPU kernels in csrc/splat/; CUDA kernels in cuda/splat/ (glue in
csrc/splat/*_cuda.cpp); the pure-PyTorch reference in prismkit/reference/splat.py; the
gsplat-compatible pipeline in prismkit/splat/.

Conventions (gsplat's where gsplat and the Inria rasterizer differ):

* Cameras: ``viewmats`` [C, 4, 4] map world to camera coordinates (OpenCV: x right, y down, z
  forward); ``Ks`` [C, 3, 3] are pinhole intrinsics of which fx = K[0, 0], fy = K[1, 1], cx = K[0, 2],
  cy = K[1, 2] are read (no skew). Pixel (x, y) has its centre at (x + 0.5, y + 0.5).
* Gaussians: ``quats`` [N, 4] are (w, x, y, z), normalized by the op (any non-zero norm); ``scales``
  [N, 3] are standard deviations (not logs); Sigma = R S S^T R^T.
* Projection (EWA): the camera-space mean's x/z and y/z are clamped to the field of view widened by
  30% before the Jacobian (as Inria and gsplat do); ``eps2d`` is added to the 2-D covariance's
  diagonal (the low-pass filter); radius = ceil(3 sqrt(lambda_max)) with
  lambda_max = b + sqrt(max(0.01, b^2 - det)), b = (a + c) / 2 (gsplat 1.0-1.4's rule; gsplat 1.5
  uses per-axis radii at 3.33 sigma). A Gaussian is culled (radius 0; means2d, conics and depths
  written as 0) when its depth is not in (near_plane, far_plane), its 2-D covariance is not positive
  definite, its radius is <= radius_clip, its box [mean - r, mean + r] misses the image, or any of
  its inputs or results is not finite (a NaN or infinite mean, scale or quaternion is culled, never a
  crash or an out-of-range write).
* Binning: a Gaussian touches the tiles [floor(m / t - r / t), ceil(m / t + r / t)) on each axis
  (gsplat's rule; t = tile_size), clamped to the grid. Intersections are sorted by (camera, tile,
  depth), depth as the bit pattern of its float32 value (the key of CUB's radix sort: the order of
  the values for positive depths, which projection guarantees; a negative depth sorts after every
  positive one) and ties by Gaussian index: the order of a stable sort.
* Compositing, front to back per pixel over its tile's list: power = -(a dx^2 + c dy^2) / 2 - b dx dy
  (skipped when positive), alpha = min(0.99, opacity * exp(power)), skipped when alpha < 1/255; when
  T * (1 - alpha) <= 1e-4 the pixel stops and that Gaussian is excluded (gsplat's rule; Inria tests
  < 1e-4); render = sum T_i alpha_i f_i + T_final * background, alpha = 1 - T_final. gsplat <= 1.5
  clamps alpha at 0.999; this op, Inria and gsplat's current code at 0.99.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import registry
from .._checks import check_float_args, check_int_args, check_tensor_args
from . import autograd, fake  # noqa: F401  (register the fake implementations and autograd)
from .sparse import language_relevancy, rasterize_sparse_coef, rasterize_sparse_features

__all__ = ["project_gaussians", "tile_bin", "rasterize", "rasterize_sparse_coef", "rasterize_sparse_features",
           "language_relevancy"]  # fmt: skip

_ops = torch.ops.prismkit


def project_gaussians(
    means: Tensor, quats: Tensor, scales: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int,
    near_plane: float = 0.01, far_plane: float = 1e10, eps2d: float = 0.3, radius_clip: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """EWA projection of N Gaussians into C cameras (see the module docstring for the conventions).

    Returns ``means2d`` [C, N, 2] (pixels), ``conics`` [C, N, 3] (a, b, c of the inverse 2-D
    covariance [[a, b], [b, c]]), ``depths`` [C, N] (camera-space z) and ``radii`` [C, N] int32 (0 for
    culled Gaussians). Differentiable in ``means``, ``quats`` and ``scales`` (not in ``viewmats`` and
    ``Ks``); the backward sums each Gaussian's cameras in order, so it is bit-deterministic. Dtypes:
    float32 or float64 (float16 and bfloat16 are computed in float32)."""
    op = "project_gaussians"
    check_tensor_args(op, means=means, quats=quats, scales=scales, viewmats=viewmats, Ks=Ks)
    check_int_args(op, width=width, height=height)
    check_float_args(op, near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, radius_clip=radius_clip)
    return _ops.project_gaussians(means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d,
                                  radius_clip)  # fmt: skip


def tile_bin(
    means2d: Tensor, radii: Tensor, depths: Tensor, tile_size: int, tiles_x: int, tiles_y: int
) -> tuple[Tensor, Tensor]:
    """Every (camera, tile, Gaussian) intersection, sorted by (camera, tile, depth).

    Returns ``tile_offsets`` [C, tiles_y, tiles_x] int32, the start of each tile's range in
    ``flatten_ids`` (the range ends where the next tile's starts, or at M), and ``flatten_ids`` [M]
    int32, each intersection's ``camera * N + gaussian``: gsplat's ``isect_offset_encode`` and
    ``flatten_ids``. Gaussians with radius 0 touch no tile. Not differentiable; bit-exact (integer
    results of a stable order)."""
    op = "tile_bin"
    check_tensor_args(op, means2d=means2d, radii=radii, depths=depths)
    check_int_args(op, tile_size=tile_size, tiles_x=tiles_x, tiles_y=tiles_y)
    return _ops.tile_bin(means2d, radii, depths, tile_size, tiles_x, tiles_y)


def rasterize(
    means2d: Tensor, conics: Tensor, features: Tensor, opacities: Tensor, tile_offsets: Tensor,
    flatten_ids: Tensor, width: int, height: int, tile_size: int = 16, backgrounds: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Front-to-back alpha compositing of per-Gaussian features of any width D, tile by tile.

    ``features`` [C, N, D] or [N, D] (shared by the cameras), ``opacities`` [N] or [C, N],
    ``backgrounds`` [C, D] or None (black); ``tile_offsets`` and ``flatten_ids`` from ``tile_bin``
    with the same ``tile_size``. Returns ``render`` [C, H, W, D], ``alpha`` [C, H, W, 1] and
    ``last_ids`` [C, H, W] int32 (the position in ``flatten_ids`` of the last Gaussian that
    contributed to the pixel, -1 for none). D is chosen at run time: no compiled list of widths and no
    padding. Differentiable in means2d, conics, features, opacities and backgrounds: the backward
    walks each pixel's list back to front from the saved transmittance (1 - alpha), as gsplat's does.
    The forward is bit-deterministic; the CPU backward adds each tile's per-Gaussian sums under a
    lock, in an order that depends on thread timing (deterministic on one thread), as gsplat's
    atomics do on the GPU. ``tile_size``: any on the CPU, at most 16 on CUDA (one thread per pixel
    of a tile). A Gaussian with a non-finite mean, conic or opacity is skipped."""
    op = "rasterize"
    check_tensor_args(op, means2d=means2d, conics=conics, features=features, opacities=opacities,
                      tile_offsets=tile_offsets, flatten_ids=flatten_ids)  # fmt: skip
    check_tensor_args(op, optional=True, backgrounds=backgrounds)
    check_int_args(op, width=width, height=height, tile_size=tile_size)
    return _ops.rasterize(means2d, conics, features, opacities, tile_offsets, flatten_ids, width, height, tile_size,
                          backgrounds)  # fmt: skip


# The registry entry (prismkit/ops/registry.py): every op of this core and its CUDA kernel's kind.
CORE = registry.register_core(
    "splat",
    {
        "project_gaussians": "cuda",
        "project_gaussians_backward": "cuda",
        "tile_bin": "cuda",
        "rasterize": "cuda",
        "rasterize_backward": "cuda",
        "rasterize_sparse_coef": "cuda",
        "rasterize_sparse_coef_backward": "cuda",
        "rasterize_sparse_features": "cuda",
        "language_relevancy": "cuda",
    },
)
