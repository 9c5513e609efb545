"""Fake (meta) implementations of the splat ops, for torch.compile and opcheck: the kernels'
argument checks (checks.py, sparse_checks.py), then outputs of the right shapes. tile_bin's
intersection count depends on the data, so its flatten_ids get an unbacked size."""

from __future__ import annotations

import torch

from . import checks, sparse_checks


@torch.library.register_fake("prismkit::project_gaussians")
def _project_gaussians_fake(means, quats, scales, viewmats, Ks, width, height, near_plane=0.01, far_plane=1e10,
                            eps2d=0.3, radius_clip=0.0):  # fmt: skip
    C, N = checks.check_project_gaussians_args("project_gaussians", means, quats, scales, viewmats, Ks, width, height,
                                               near_plane, far_plane, eps2d, radius_clip)  # fmt: skip
    return (means.new_empty(C, N, 2), means.new_empty(C, N, 3), means.new_empty(C, N),
            means.new_empty(C, N, dtype=torch.int32))  # fmt: skip


@torch.library.register_fake("prismkit::project_gaussians_backward")
def _project_gaussians_backward_fake(means, quats, scales, viewmats, Ks, width, height, eps2d, radii, grad_means2d,
                                     grad_conics, grad_depths):  # fmt: skip
    checks.check_project_gaussians_backward_args(means, quats, scales, viewmats, Ks, width, height, eps2d, radii,
                                                 grad_means2d, grad_conics, grad_depths)  # fmt: skip
    return torch.empty_like(means), torch.empty_like(quats), torch.empty_like(scales)


@torch.library.register_fake("prismkit::tile_bin")
def _tile_bin_fake(means2d, radii, depths, tile_size, tiles_x, tiles_y):
    C, _ = checks.check_tile_bin_args(means2d, radii, depths, tile_size, tiles_x, tiles_y)
    M = torch.library.get_ctx().new_dynamic_size()
    return (means2d.new_empty(C, tiles_y, tiles_x, dtype=torch.int32), means2d.new_empty(M, dtype=torch.int32))


@torch.library.register_fake("prismkit::rasterize")
def _rasterize_fake(means2d, conics, features, opacities, tile_offsets, flatten_ids, width, height, tile_size,
                    backgrounds=None):  # fmt: skip
    C, _, D, _, _ = checks.check_rasterize_args("rasterize", means2d, conics, features, opacities, tile_offsets,
                                                flatten_ids, width, height, tile_size, backgrounds)  # fmt: skip
    return (means2d.new_empty(C, height, width, D), means2d.new_empty(C, height, width, 1),
            means2d.new_empty(C, height, width, dtype=torch.int32))  # fmt: skip


@torch.library.register_fake("prismkit::rasterize_backward")
def _rasterize_backward_fake(means2d, conics, features, opacities, tile_offsets, flatten_ids, width, height, tile_size,
                             backgrounds, alpha, last_ids, grad_render, grad_alpha):  # fmt: skip
    C, _, D = checks.check_rasterize_backward_args(means2d, conics, features, opacities, tile_offsets, flatten_ids,
                                                   width, height, tile_size, backgrounds, alpha, last_ids,
                                                   grad_render, grad_alpha)  # fmt: skip
    return (torch.empty_like(means2d), torch.empty_like(conics), torch.empty_like(features),
            torch.empty_like(opacities), means2d.new_empty(C, D))  # fmt: skip


@torch.library.register_fake("prismkit::rasterize_sparse_coef")
def _rasterize_sparse_coef_fake(means2d, conics, opacities, coef_indices, coef_weights, num_coefs, tile_offsets,
                                flatten_ids, width, height, tile_size):  # fmt: skip
    a = sparse_checks.check_sparse_coef_args("rasterize_sparse_coef", means2d, conics, opacities, coef_indices,
                                             coef_weights, num_coefs, tile_offsets, flatten_ids, width, height,
                                             tile_size)  # fmt: skip
    return (means2d.new_empty(a.C, height, width, num_coefs), means2d.new_empty(a.C, height, width, 1),
            means2d.new_empty(a.C, height, width, dtype=torch.int32))  # fmt: skip


@torch.library.register_fake("prismkit::rasterize_sparse_coef_backward")
def _rasterize_sparse_coef_backward_fake(means2d, conics, opacities, coef_indices, coef_weights, num_coefs,
                                         tile_offsets, flatten_ids, width, height, tile_size, alpha, last_ids,
                                         grad_weight_map, grad_alpha):  # fmt: skip
    sparse_checks.check_sparse_coef_backward_args(means2d, conics, opacities, coef_indices, coef_weights, num_coefs,
                                                  tile_offsets, flatten_ids, width, height, tile_size, alpha,
                                                  last_ids, grad_weight_map, grad_alpha)  # fmt: skip
    return (torch.empty_like(means2d), torch.empty_like(conics), torch.empty_like(opacities),
            torch.empty_like(coef_weights))  # fmt: skip


@torch.library.register_fake("prismkit::rasterize_sparse_features")
def _rasterize_sparse_features_fake(means2d, conics, opacities, coef_indices, coef_weights, codebook, tile_offsets,
                                    flatten_ids, width, height, tile_size, normalize=False):  # fmt: skip
    a = sparse_checks.check_sparse_features_args("rasterize_sparse_features", means2d, conics, opacities,
                                                 coef_indices, coef_weights, codebook, tile_offsets, flatten_ids,
                                                 width, height, tile_size)  # fmt: skip
    return means2d.new_empty(a.C, height, width, a.levels, a.D)


@torch.library.register_fake("prismkit::language_relevancy")
def _language_relevancy_fake(means2d, conics, opacities, coef_indices, coef_weights, codebook, queries, negatives,
                             tile_offsets, flatten_ids, width, height, tile_size):  # fmt: skip
    a = sparse_checks.check_language_relevancy_args(means2d, conics, opacities, coef_indices, coef_weights, codebook,
                                                    queries, negatives, tile_offsets, flatten_ids, width, height,
                                                    tile_size)  # fmt: skip
    return means2d.new_empty(a.C, height, width, a.levels, a.Q)
