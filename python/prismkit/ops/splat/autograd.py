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
