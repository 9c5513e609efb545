"""The argument contract of the sparse coefficient ops (rasterize_sparse_coef and its backward,
rasterize_sparse_features, language_relevancy) on the Python side: the fake implementations call
these. The C++ side is csrc/splat/sparse_checks.cpp: same checks in the same order, same messages."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_dtype, check_rank, check_same_device, describe
from .checks import check_int32_on, check_like, check_means_conics, check_opacities, check_shape, check_tile_grid

_MAX_INT32 = 2**31 - 1


@dataclass
class SparseArgs:
    C: int
    N: int
    P: int  # (index, weight) pairs per Gaussian
    num_coefs: int = 0  # entries of the weight map (levels * L with a codebook)
    levels: int = 0
    L: int = 0
    D: int = 0
    Q: int = 0


def _common(op, means2d, conics, opacities, coef_indices, coef_weights, tile_offsets, flatten_ids, width, height,
            tile_size):  # fmt: skip
    C, N = check_means_conics(op, means2d, conics)
    check_opacities(op, opacities, C, N)
    check_rank(op, "coef_indices", coef_indices, 2, "[N, P]")
    check_dtype(op, "coef_indices", coef_indices, (torch.int32, torch.int64))
    P = coef_indices.shape[1]
    check_shape(op, "coef_indices", coef_indices, (N, P), "[N, P]")
    check_same_device(op, "coef_indices", coef_indices, "means2d", means2d)
    check_shape(op, "coef_weights", coef_weights, (N, P), "[N, P] (as coef_indices)")
    check_like(op, "conics", conics, "means2d", means2d)
    check_like(op, "opacities", opacities, "means2d", means2d)
    check_like(op, "coef_weights", coef_weights, "means2d", means2d)
    check_tile_grid(op, means2d, tile_offsets, flatten_ids, width, height, tile_size)
    return SparseArgs(C, N, P)


def _codebook(op, codebook, means2d, a):
    check_rank(op, "codebook", codebook, 3, "[levels, L, D]")
    check_like(op, "codebook", codebook, "means2d", means2d)
    a.levels, a.L, a.D = codebook.shape
    if min(a.levels, a.L, a.D) < 1:
        raise ValueError(
            f"prismkit::{op}: 'codebook' [levels, L, D] must have levels, L, D >= 1, got {describe(codebook)}"
        )
    if a.levels * a.L > _MAX_INT32:
        raise ValueError(
            f"prismkit::{op}: 'codebook' must have levels * L <= 2^31 - 1 entries, got {describe(codebook)}"
        )
    a.num_coefs = a.levels * a.L


def check_sparse_coef_args(op, means2d, conics, opacities, coef_indices, coef_weights, num_coefs, tile_offsets,
                           flatten_ids, width, height, tile_size):  # fmt: skip
    a = _common(op, means2d, conics, opacities, coef_indices, coef_weights, tile_offsets, flatten_ids, width, height,
                tile_size)  # fmt: skip
    if not 1 <= num_coefs <= _MAX_INT32:
        raise ValueError(f"prismkit::{op}: 'num_coefs' must lie in [1, 2^31 - 1], got {num_coefs}")
    a.num_coefs = num_coefs
    return a


def check_sparse_coef_backward_args(means2d, conics, opacities, coef_indices, coef_weights, num_coefs, tile_offsets,
                                    flatten_ids, width, height, tile_size, alpha, last_ids, grad_weight_map,
                                    grad_alpha):  # fmt: skip
    op = "rasterize_sparse_coef_backward"
    a = check_sparse_coef_args(op, means2d, conics, opacities, coef_indices, coef_weights, num_coefs, tile_offsets,
                               flatten_ids, width, height, tile_size)  # fmt: skip
    C = a.C
    check_shape(op, "alpha", alpha, (C, height, width, 1), "[C, H, W, 1]")
    check_like(op, "alpha", alpha, "means2d", means2d)
    check_shape(op, "last_ids", last_ids, (C, height, width), "[C, H, W]")
    check_int32_on(op, "last_ids", last_ids, "means2d", means2d)
    check_shape(op, "grad_weight_map", grad_weight_map, (C, height, width, num_coefs), "[C, H, W, num_coefs]")
    check_like(op, "grad_weight_map", grad_weight_map, "means2d", means2d)
    check_shape(op, "grad_alpha", grad_alpha, (C, height, width, 1), "[C, H, W, 1]")
    check_like(op, "grad_alpha", grad_alpha, "means2d", means2d)
    return a


def check_sparse_features_args(op, means2d, conics, opacities, coef_indices, coef_weights, codebook, tile_offsets,
                               flatten_ids, width, height, tile_size):  # fmt: skip
    a = _common(op, means2d, conics, opacities, coef_indices, coef_weights, tile_offsets, flatten_ids, width, height,
                tile_size)  # fmt: skip
    _codebook(op, codebook, means2d, a)
    return a


def check_language_relevancy_args(means2d, conics, opacities, coef_indices, coef_weights, codebook, queries, negatives,
                                  tile_offsets, flatten_ids, width, height, tile_size):  # fmt: skip
    op = "language_relevancy"
    a = check_sparse_features_args(op, means2d, conics, opacities, coef_indices, coef_weights, codebook, tile_offsets,
                                   flatten_ids, width, height, tile_size)  # fmt: skip
    check_rank(op, "queries", queries, 2, "[Q, D]")
    check_shape(op, "queries", queries, (queries.shape[0], a.D), "[Q, D] (D of the codebook)")
    check_like(op, "queries", queries, "means2d", means2d)
    check_rank(op, "negatives", negatives, 2, "[M, D]")
    check_shape(op, "negatives", negatives, (negatives.shape[0], a.D), "[M, D] (D of the codebook)")
    check_like(op, "negatives", negatives, "means2d", means2d)
    if negatives.shape[0] < 1:
        raise ValueError(
            f"prismkit::{op}: 'negatives' must hold at least one phrase (M >= 1), got {describe(negatives)}"
        )
    a.Q = queries.shape[0]
    return a
