"""Autograd of the splat ops: project_gaussians' backward is project_gaussians_backward (it
recomputes the projection from the saved inputs), rasterize's is rasterize_backward (it walks each
pixel's list back to front from the saved alpha and last_ids; for float16 and bfloat16 inputs from
an alpha recomputed in float32). tile_bin has no gradient."""

from __future__ import annotations

import torch

_ops = torch.ops.prismkit


def _project_setup(ctx, inputs, output):
    means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d, radius_clip = inputs
    radii = output[3]
    ctx.save_for_backward(means, quats, scales, viewmats, Ks, radii)
    ctx.args = (width, height, eps2d)
    ctx.mark_non_differentiable(radii)


def _project_backward(ctx, grad_means2d, grad_conics, grad_depths, _grad_radii):
    means, quats, scales, viewmats, Ks, radii = ctx.saved_tensors
    width, height, eps2d = ctx.args
    C, N = radii.shape
    grad_means2d = grad_means2d if grad_means2d is not None else means.new_zeros(C, N, 2)
    grad_conics = grad_conics if grad_conics is not None else means.new_zeros(C, N, 3)
    grad_depths = grad_depths if grad_depths is not None else means.new_zeros(C, N)
    grad_means, grad_quats, grad_scales = _ops.project_gaussians_backward(
        means, quats, scales, viewmats, Ks, width, height, eps2d, radii, grad_means2d, grad_conics, grad_depths
    )
    return grad_means, grad_quats, grad_scales, None, None, None, None, None, None, None, None


torch.library.register_autograd("prismkit::project_gaussians", _project_backward, setup_context=_project_setup)


def _rasterize_setup(ctx, inputs, output):
    means2d, conics, features, opacities, tile_offsets, flatten_ids, width, height, tile_size, backgrounds = inputs
    _, alpha, last_ids = output
    ctx.save_for_backward(means2d, conics, features, opacities, tile_offsets, flatten_ids, backgrounds, alpha, last_ids)
    ctx.args = (width, height, tile_size)
    ctx.mark_non_differentiable(last_ids)


def _rasterize_backward(ctx, grad_render, grad_alpha, _grad_last_ids):
    means2d, conics, features, opacities, tile_offsets, flatten_ids, backgrounds, alpha, last_ids = ctx.saved_tensors
    width, height, tile_size = ctx.args
    if grad_render is None:
        grad_render = means2d.new_zeros(*alpha.shape[:3], features.shape[-1])
    if grad_alpha is None:
        grad_alpha = torch.zeros_like(alpha)
    if means2d.dtype in (torch.float16, torch.bfloat16):
        # The walk back divides by 1 - alpha, and a saved alpha rounded to bfloat16 (steps of 1/256
        # near 1) would zero or distort the gradients of nearly opaque pixels: recompute the forward's
        # alpha in float32 (the kernels compute in float32 anyway, so the same pixels stop) and run the
        # backward in float32, rounding only the gradients.
        dtype = means2d.dtype
        up = [t.float() if t is not None else None for t in (means2d, conics, features, opacities, backgrounds)]
        _, alpha, last_ids = _ops.rasterize(*up[:4], tile_offsets, flatten_ids, width, height, tile_size, up[4])
        grads = _ops.rasterize_backward(*up[:4], tile_offsets, flatten_ids, width, height, tile_size, up[4], alpha,
                                        last_ids, grad_render.float(), grad_alpha.float())  # fmt: skip
        grads = [g.to(dtype) for g in grads]
    else:
        grads = _ops.rasterize_backward(means2d, conics, features, opacities, tile_offsets, flatten_ids, width, height,
                                        tile_size, backgrounds, alpha, last_ids, grad_render, grad_alpha)  # fmt: skip
    grad_means2d, grad_conics, grad_features, grad_opacities, grad_backgrounds = grads
    return (grad_means2d, grad_conics, grad_features, grad_opacities, None, None, None, None, None,
            grad_backgrounds if backgrounds is not None else None)  # fmt: skip


torch.library.register_autograd("prismkit::rasterize", _rasterize_backward, setup_context=_rasterize_setup)


def _sparse_coef_setup(ctx, inputs, output):
    means2d, conics, opacities, coef_indices, coef_weights, num_coefs, tile_offsets, flatten_ids = inputs[:8]
    width, height, tile_size = inputs[8:]
    _, alpha, last_ids = output
    ctx.save_for_backward(means2d, conics, opacities, coef_indices, coef_weights, tile_offsets, flatten_ids, alpha,
                          last_ids)  # fmt: skip
    ctx.args = (num_coefs, width, height, tile_size)
    ctx.mark_non_differentiable(last_ids)


def _sparse_coef_grads(saved, args, grad_weight_map, grad_alpha):
    """rasterize_sparse_coef_backward, from a float32 recomputation of alpha for float16 and bfloat16
    (as _rasterize_backward says why) -> grads of means2d, conics, opacities, coef_weights."""
    means2d, conics, opacities, coef_indices, coef_weights, tile_offsets, flatten_ids, alpha, last_ids = saved
    num_coefs, width, height, tile_size = args
    if grad_alpha is None:
        grad_alpha = torch.zeros_like(alpha)
    if means2d.dtype not in (torch.float16, torch.bfloat16):
        return _ops.rasterize_sparse_coef_backward(means2d, conics, opacities, coef_indices, coef_weights, num_coefs,
                                                   tile_offsets, flatten_ids, width, height, tile_size, alpha,
                                                   last_ids, grad_weight_map, grad_alpha)  # fmt: skip
    dtype = means2d.dtype
    up = [t.float() for t in (means2d, conics, opacities)]
    weights = coef_weights.float()
    _, alpha, last_ids = _ops.rasterize_sparse_coef(*up, coef_indices, weights, num_coefs, tile_offsets, flatten_ids,
                                                    width, height, tile_size)  # fmt: skip
    grads = _ops.rasterize_sparse_coef_backward(*up, coef_indices, weights, num_coefs, tile_offsets, flatten_ids,
                                                width, height, tile_size, alpha, last_ids, grad_weight_map.float(),
                                                grad_alpha.float())  # fmt: skip
    return [g.to(dtype) for g in grads]


def _sparse_coef_backward(ctx, grad_weight_map, grad_alpha, _grad_last_ids):
    num_coefs = ctx.args[0]
    alpha = ctx.saved_tensors[7]
    if grad_weight_map is None:
        grad_weight_map = alpha.new_zeros(*alpha.shape[:3], num_coefs)
    gm, gc, go, gw = _sparse_coef_grads(ctx.saved_tensors, ctx.args, grad_weight_map, grad_alpha)
    return gm, gc, go, None, gw, None, None, None, None, None, None


torch.library.register_autograd("prismkit::rasterize_sparse_coef", _sparse_coef_backward,
                                setup_context=_sparse_coef_setup)  # fmt: skip


def _sparse_features_setup(ctx, inputs, output):
    means2d, conics, opacities, coef_indices, coef_weights, codebook, tile_offsets, flatten_ids = inputs[:8]
    width, height, tile_size, normalize = inputs[8:]
    ctx.save_for_backward(means2d, conics, opacities, coef_indices, coef_weights, codebook, tile_offsets, flatten_ids)
    ctx.args = (width, height, tile_size, normalize)


def _sparse_features_backward(ctx, grad_features):
    """Recomputes the weight map W (rasterize_sparse_coef), then dL/dW = dL/dF S^T and
    dL/dS = W^T dL/dF per level (two batched products), through the normalization when it was
    applied, and the sparse backward for the rest."""
    means2d, conics, opacities, coef_indices, coef_weights, codebook, tile_offsets, flatten_ids = ctx.saved_tensors
    width, height, tile_size, normalize = ctx.args
    levels, L, _ = codebook.shape
    weight_map, alpha, last_ids = _ops.rasterize_sparse_coef(means2d, conics, opacities, coef_indices, coef_weights,
                                                             levels * L, tile_offsets, flatten_ids, width, height,
                                                             tile_size)  # fmt: skip
    W = weight_map.unflatten(-1, (levels, L))  # [C, H, W, levels, L]
    g = grad_features
    if normalize:  # y = F / max(|F|, eps): dL/dF = (g - y (y . g)) / |F|, or g / eps where |F| <= eps
        eps = 1e-12
        F = torch.einsum("chwlk,lkd->chwld", W, codebook)
        norm = F.norm(dim=-1, keepdim=True)
        y = F / norm.clamp_min(eps)
        g = torch.where(norm > eps, (g - y * (y * g).sum(-1, keepdim=True)) / norm.clamp_min(eps), g / eps)
    grad_codebook = torch.einsum("chwlk,chwld->lkd", W, g) if ctx.needs_input_grad[5] else None
    grad_W = torch.einsum("chwld,lkd->chwlk", g, codebook).flatten(-2)
    saved = (means2d, conics, opacities, coef_indices, coef_weights, tile_offsets, flatten_ids, alpha, last_ids)
    gm, gc, go, gw = _sparse_coef_grads(saved, (levels * L, width, height, tile_size), grad_W, None)
    return gm, gc, go, None, gw, grad_codebook, None, None, None, None, None, None


torch.library.register_autograd("prismkit::rasterize_sparse_features", _sparse_features_backward,
                                setup_context=_sparse_features_setup)  # fmt: skip
