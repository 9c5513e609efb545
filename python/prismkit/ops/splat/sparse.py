"""Sparse coefficient splatting (LangSplatV2): each Gaussian carries P (index, weight) pairs into a
weight map of ``num_coefs`` entries, in practice the L entries of each level of a codebook
[levels, L, D] with level l's indices offset by l * L, so that every level renders in one pass.

The compositing rules are ``rasterize``'s (module docstring of ``prismkit.ops.splat``); the weight
map has no background term (the official quick path adds none). Indices are int32 or int64 and
checked: one outside [0, num_coefs) is an error (the official kernel rounds float indices
unchecked). Duplicate indices within a Gaussian add up. A NaN or infinite weight is not checked
(that would read every weight): it makes the weight map NaN at the pixels its Gaussian reaches
(and, on the CPU, at other pixels of its box in the tile, where it is multiplied by zero)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_int_args, check_tensor_args

__all__ = ["rasterize_sparse_coef", "rasterize_sparse_features", "language_relevancy"]

_ops = torch.ops.prismkit


def rasterize_sparse_coef(
    means2d: Tensor, conics: Tensor, opacities: Tensor, coef_indices: Tensor, coef_weights: Tensor, num_coefs: int,
    tile_offsets: Tensor, flatten_ids: Tensor, width: int, height: int, tile_size: int = 16,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Per pixel, W(p) = sum_i T_i alpha_i w_i with each Gaussian's sparse weights w_i.

    ``coef_indices`` [N, P] int32 or int64 in [0, num_coefs) and ``coef_weights`` [N, P] (shared by
    the cameras); the rest as ``rasterize`` takes it. Returns ``weight_map`` [C, H, W, num_coefs],
    ``alpha`` [C, H, W, 1] and ``last_ids`` [C, H, W] int32. P and num_coefs are chosen at run time.
    Differentiable in means2d, conics, opacities and coef_weights: the backward is sparse (pair
    (i, k) gets sum_p T_i alpha_i dL/dW(p)[index[i, k]]; no [N, num_coefs] intermediate). The forward
    is bit-deterministic; the backward's CPU order of additions depends on thread timing, as
    ``rasterize``'s does."""
    op = "rasterize_sparse_coef"
    check_tensor_args(op, means2d=means2d, conics=conics, opacities=opacities, coef_indices=coef_indices,
                  coef_weights=coef_weights, tile_offsets=tile_offsets, flatten_ids=flatten_ids)  # fmt: skip
    check_int_args(op, num_coefs=num_coefs, width=width, height=height, tile_size=tile_size)
    return _ops.rasterize_sparse_coef(means2d, conics, opacities, coef_indices, coef_weights, num_coefs, tile_offsets,
                                      flatten_ids, width, height, tile_size)  # fmt: skip


def rasterize_sparse_features(
    means2d: Tensor, conics: Tensor, opacities: Tensor, coef_indices: Tensor, coef_weights: Tensor, codebook: Tensor,
    tile_offsets: Tensor, flatten_ids: Tensor, width: int, height: int, tile_size: int = 16, normalize: bool = False,
) -> Tensor:  # fmt: skip
    """The decoded feature field, F(p)[l] = codebook[l]^T W(p)[l * L : (l + 1) * L] for each level.

    ``codebook`` [levels, L, D]; indices in [0, levels * L). Returns ``features``
    [C, H, W, levels, D], L2-normalized per pixel and level when ``normalize`` (F / max(|F|, 1e-12),
    as torch's ``F.normalize``; on CUDA |F|^2 comes from w^T (S S^T) w, which for a pixel whose
    codebook entries nearly cancel is less accurate than the CPU's norm of the formed F). The weight
    map is never written: each tile's weights stay in the kernel's workspace and are multiplied by
    the codebook there. Differentiable in means2d, conics,
    opacities, coef_weights and codebook (the backward recomputes the weight map and calls
    ``rasterize_sparse_coef``'s sparse backward)."""
    op = "rasterize_sparse_features"
    check_tensor_args(op, means2d=means2d, conics=conics, opacities=opacities, coef_indices=coef_indices,
                  coef_weights=coef_weights, codebook=codebook, tile_offsets=tile_offsets,
                  flatten_ids=flatten_ids)  # fmt: skip
    check_int_args(op, width=width, height=height, tile_size=tile_size)
    return _ops.rasterize_sparse_features(means2d, conics, opacities, coef_indices, coef_weights, codebook,
                                          tile_offsets, flatten_ids, width, height, tile_size, bool(normalize))  # fmt: skip


def language_relevancy(
    means2d: Tensor, conics: Tensor, opacities: Tensor, coef_indices: Tensor, coef_weights: Tensor, codebook: Tensor,
    queries: Tensor, negatives: Tensor, tile_offsets: Tensor, flatten_ids: Tensor, width: int, height: int,
    tile_size: int = 16,
) -> Tensor:  # fmt: skip
    """LangSplat's text-query relevancy of every pixel and level, without forming the features.

    ``queries`` [Q, D] and ``negatives`` [M, D] (M >= 1; the canonical negatives are the CLIP
    embeddings of "object", "things", "stuff", "texture"), unit vectors as CLIP's are. Returns
    ``relevancy`` [C, H, W, levels, Q] = sigmoid(10 (f . q - max_j f . c_j)) with f the normalized
    feature (the official min over j of softmax(10 [f . q, f . c_j])[0] is the same number). Per
    level, with the pixel's weights w [L] and S = codebook[l], |F|^2 = w^T (S S^T) w and
    F . q = w^T (S q): O(L^2 + (Q + M) L) per pixel, not O(L D). A pixel with |F| = 0 has f = 0 and
    relevancy 0.5. Inference only (no autograd)."""
    op = "language_relevancy"
    check_tensor_args(op, means2d=means2d, conics=conics, opacities=opacities, coef_indices=coef_indices,
                  coef_weights=coef_weights, codebook=codebook, queries=queries, negatives=negatives,
                  tile_offsets=tile_offsets, flatten_ids=flatten_ids)  # fmt: skip
    check_int_args(op, width=width, height=height, tile_size=tile_size)
    return _ops.language_relevancy(means2d, conics, opacities, coef_indices, coef_weights, codebook, queries,
                                   negatives, tile_offsets, flatten_ids, width, height, tile_size)  # fmt: skip
