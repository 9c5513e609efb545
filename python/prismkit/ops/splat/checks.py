"""The splat ops' argument contract on the Python side: the fake implementations (fake.py) call
these. The C++ side is csrc/splat/splat_checks.cpp: same checks in the same order, same messages
(tests/test_op_contracts.py holds them to it)."""

from __future__ import annotations

import math

import torch

from .._checks import check_dtype, check_float_dtype, check_rank, check_same_device, check_same_dtype, describe

_MAX_INT32 = 2**31 - 1


def check_shape(op, name, t, sizes, layout):
    check_rank(op, name, t, len(sizes), layout)
    if tuple(t.shape) != tuple(sizes):
        shape = "[" + ", ".join(str(s) for s in sizes) + "]"
        raise ValueError(f"prismkit::{op}: '{name}' must have shape {layout} = {shape}, got {describe(t)}")


def check_positive(op, name, v):
    if v < 1:
        raise ValueError(f"prismkit::{op}: '{name}' must be >= 1, got {v}")


def check_like(op, name, t, ref_name, ref):
    check_same_dtype(op, name, t, ref_name, ref)
    check_same_device(op, name, t, ref_name, ref)


def check_int32_on(op, name, t, ref_name, ref):
    check_dtype(op, name, t, (torch.int32,))
    check_same_device(op, name, t, ref_name, ref)


def check_project_gaussians_args(op, means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d,
                                 radius_clip):  # fmt: skip
    """Returns (C, N)."""
    check_rank(op, "means", means, 2, "[N, 3]")
    check_float_dtype(op, "means", means, cuda_float64=True)
    N = means.shape[0]
    check_shape(op, "means", means, (N, 3), "[N, 3]")
    check_shape(op, "quats", quats, (N, 4), "[N, 4] (w, x, y, z)")
    check_shape(op, "scales", scales, (N, 3), "[N, 3]")
    check_rank(op, "viewmats", viewmats, 3, "[C, 4, 4] (world to camera)")
    C = viewmats.shape[0]
    check_shape(op, "viewmats", viewmats, (C, 4, 4), "[C, 4, 4] (world to camera)")
    check_shape(op, "Ks", Ks, (C, 3, 3), "[C, 3, 3] (the cameras' intrinsics)")
    for name, t in (("quats", quats), ("scales", scales), ("viewmats", viewmats), ("Ks", Ks)):
        check_like(op, name, t, "means", means)
    check_positive(op, "width", width)
    check_positive(op, "height", height)
    if not (0 < near_plane < far_plane):
        raise ValueError(
            f"prismkit::{op}: 'near_plane' and 'far_plane' must satisfy 0 < near_plane < far_plane, "
            f"got {_num(near_plane)} and {_num(far_plane)}"
        )
    if not (eps2d >= 0 and math.isfinite(eps2d)):
        raise ValueError(f"prismkit::{op}: 'eps2d' must be finite and >= 0, got {_num(eps2d)}")
    if not (radius_clip >= 0 and math.isfinite(radius_clip)):
        raise ValueError(f"prismkit::{op}: 'radius_clip' must be finite and >= 0, got {_num(radius_clip)}")
    if C * N > _MAX_INT32:
        raise ValueError(
            f"prismkit::{op}: C * N = {C} * {N} camera-Gaussian pairs exceed the int32 ids of tile_bin "
            "(at most 2^31 - 1)"
        )
    return C, N


def _num(v):
    """A float as C++'s stream writes it (6 significant digits), so both sides' messages agree."""
    return f"{v:g}"


def check_project_gaussians_backward_args(means, quats, scales, viewmats, Ks, width, height, eps2d, radii,
                                          grad_means2d, grad_conics, grad_depths):  # fmt: skip
    op = "project_gaussians_backward"
    C, N = check_project_gaussians_args(op, means, quats, scales, viewmats, Ks, width, height, 0.01, 1e10, eps2d, 0.0)
    check_shape(op, "radii", radii, (C, N), "[C, N]")
    check_int32_on(op, "radii", radii, "means", means)
    check_shape(op, "grad_means2d", grad_means2d, (C, N, 2), "[C, N, 2]")
    check_shape(op, "grad_conics", grad_conics, (C, N, 3), "[C, N, 3]")
    check_shape(op, "grad_depths", grad_depths, (C, N), "[C, N]")
    for name, t in (("grad_means2d", grad_means2d), ("grad_conics", grad_conics), ("grad_depths", grad_depths)):
        check_like(op, name, t, "means", means)
    return C, N


def check_tile_bin_args(means2d, radii, depths, tile_size, tiles_x, tiles_y):
    op = "tile_bin"
    check_rank(op, "means2d", means2d, 3, "[C, N, 2]")
    check_float_dtype(op, "means2d", means2d, cuda_float64=True)
    C, N = means2d.shape[0], means2d.shape[1]
    check_shape(op, "means2d", means2d, (C, N, 2), "[C, N, 2]")
    check_shape(op, "radii", radii, (C, N), "[C, N]")
    check_int32_on(op, "radii", radii, "means2d", means2d)
    check_shape(op, "depths", depths, (C, N), "[C, N]")
    check_like(op, "depths", depths, "means2d", means2d)
    check_positive(op, "tile_size", tile_size)
    check_positive(op, "tiles_x", tiles_x)
    check_positive(op, "tiles_y", tiles_y)
    if max(tiles_x, tiles_y, C * N, C * tiles_x * tiles_y) > _MAX_INT32:
        raise ValueError(
            f"prismkit::{op}: C * N = {C} * {N} and C * tiles_y * tiles_x = {C} * {tiles_y} * {tiles_x} must fit "
            "the int32 ids (at most 2^31 - 1)"
        )
    return C, N


def check_means_conics(op, means2d, conics):
    """means2d [C, N, 2] floating and conics [C, N, 3]; returns (C, N)."""
    check_rank(op, "means2d", means2d, 3, "[C, N, 2]")
    check_float_dtype(op, "means2d", means2d, cuda_float64=True)
    C, N = means2d.shape[0], means2d.shape[1]
    check_shape(op, "means2d", means2d, (C, N, 2), "[C, N, 2]")
    check_shape(op, "conics", conics, (C, N, 3), "[C, N, 3] (a, b, c of the inverse 2-D covariance)")
    return C, N


def check_opacities(op, opacities, C, N):
    """opacities [N] or [C, N]; returns whether per camera."""
    if not isinstance(opacities, torch.Tensor) or opacities.dim() not in (1, 2):
        raise ValueError(
            f"prismkit::{op}: 'opacities' must be a 1-D tensor [N] or a 2-D tensor [C, N], got {describe(opacities)}"
        )
    if opacities.dim() == 2:
        check_shape(op, "opacities", opacities, (C, N), "[C, N]")
    else:
        check_shape(op, "opacities", opacities, (N,), "[N]")
    return opacities.dim() == 2


def check_tile_grid(op, means2d, tile_offsets, flatten_ids, width, height, tile_size):
    """width, height, tile_size >= 1 and tile_bin's lists for them; returns (tiles_x, tiles_y)."""
    C = means2d.shape[0]
    check_positive(op, "width", width)
    check_positive(op, "height", height)
    check_positive(op, "tile_size", tile_size)
    tiles_x, tiles_y = (width + tile_size - 1) // tile_size, (height + tile_size - 1) // tile_size
    check_shape(op, "tile_offsets", tile_offsets, (C, tiles_y, tiles_x),
                 "[C, tiles_y, tiles_x] (tile_bin's, for this image and tile_size)")  # fmt: skip
    check_int32_on(op, "tile_offsets", tile_offsets, "means2d", means2d)
    check_rank(op, "flatten_ids", flatten_ids, 1, "[M] (tile_bin's)")
    check_int32_on(op, "flatten_ids", flatten_ids, "means2d", means2d)
    return tiles_x, tiles_y


def check_rasterize_args(op, means2d, conics, features, opacities, tile_offsets, flatten_ids, width, height, tile_size,
                         backgrounds):  # fmt: skip
    """Returns (C, N, D, tiles_x, tiles_y)."""
    C, N = check_means_conics(op, means2d, conics)
    if not isinstance(features, torch.Tensor) or features.dim() not in (2, 3):
        raise ValueError(
            f"prismkit::{op}: 'features' must be a 2-D tensor [N, D] or a 3-D tensor [C, N, D], got {describe(features)}"
        )
    D = features.shape[-1]
    if features.dim() == 3:
        check_shape(op, "features", features, (C, N, D), "[C, N, D]")
    else:
        check_shape(op, "features", features, (N, D), "[N, D]")
    if D < 1:
        raise ValueError(f"prismkit::{op}: 'features' must have D >= 1 channels, got {describe(features)}")
    check_opacities(op, opacities, C, N)
    check_like(op, "conics", conics, "means2d", means2d)
    check_like(op, "features", features, "means2d", means2d)
    check_like(op, "opacities", opacities, "means2d", means2d)
    if backgrounds is not None:
        check_shape(op, "backgrounds", backgrounds, (C, D), "[C, D]")
        check_like(op, "backgrounds", backgrounds, "means2d", means2d)
    tiles_x, tiles_y = check_tile_grid(op, means2d, tile_offsets, flatten_ids, width, height, tile_size)
    return C, N, D, tiles_x, tiles_y


def check_rasterize_backward_args(means2d, conics, features, opacities, tile_offsets, flatten_ids, width, height,
                                  tile_size, backgrounds, alpha, last_ids, grad_render, grad_alpha):  # fmt: skip
    op = "rasterize_backward"
    C, N, D, tiles_x, tiles_y = check_rasterize_args(op, means2d, conics, features, opacities, tile_offsets,
                                                     flatten_ids, width, height, tile_size, backgrounds)  # fmt: skip
    check_shape(op, "alpha", alpha, (C, height, width, 1), "[C, H, W, 1]")
    check_like(op, "alpha", alpha, "means2d", means2d)
    check_shape(op, "last_ids", last_ids, (C, height, width), "[C, H, W]")
    check_int32_on(op, "last_ids", last_ids, "means2d", means2d)
    check_shape(op, "grad_render", grad_render, (C, height, width, D), "[C, H, W, D]")
    check_like(op, "grad_render", grad_render, "means2d", means2d)
    check_shape(op, "grad_alpha", grad_alpha, (C, height, width, 1), "[C, H, W, 1]")
    check_like(op, "grad_alpha", grad_alpha, "means2d", means2d)
    return C, N, D
