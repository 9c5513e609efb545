"""Autograd of the merge ops. token_merge is differentiable in x: each token's gradient is its
slot's output gradient (a gather by dest) times its weight in the slot's reduction (wavg:
size / summed size; mean: 1 / count; sum: 1; amax: 1 / ties at the tokens equal to the slot's
maximum); dropped tokens get 0. Not in size or dest (size_out is a count, not trained).

pitome_energy is differentiable in the metric: its backward recomputes the energy with torch ops
(the reference, in float64 for float64 metrics, else float32) and differentiates that, so it holds
one T x T similarity matrix per image (the forward never does). merge_plan and divprune_select
return decisions and have no gradient."""

from __future__ import annotations

import torch

from ...reference import merge as reference


def _token_merge_setup_context(ctx, inputs, output):
    x, size, dest, num_out, reduce = inputs
    x_out, size_out = output
    ctx.mark_non_differentiable(size_out)
    ctx.reduce = reduce
    ctx.save_for_backward(x if reduce == "amax" else None, size, dest, x_out if reduce == "amax" else None, size_out)


def _token_merge_backward(ctx, grad_out, _grad_size):
    x, size, dest, x_out, size_out = ctx.saved_tensors
    if not ctx.needs_input_grad[0]:
        return None, None, None, None, None
    keep = (dest >= 0).unsqueeze(-1)
    slot = dest.clamp_min(0).unsqueeze(-1)
    g = grad_out.gather(1, slot.expand(-1, -1, grad_out.shape[-1]))
    one = torch.ones_like(g[..., :1])
    if ctx.reduce == "wavg":  # (divisors of dropped tokens set to 1: their gradient is 0 anyway)
        s = size if size is not None else one
        g = g * (s / torch.where(keep, size_out.gather(1, slot), one))
    elif ctx.reduce == "mean":  # counted in float32: a low-precision count stops at 256 (bfloat16)
        count = torch.zeros(size_out.shape, dtype=torch.float32, device=g.device).scatter_add_(1, slot, keep.float())
        g = g / torch.where(keep, count.gather(1, slot), 1.0).to(g.dtype)
    elif ctx.reduce == "amax":
        hit = (x == x_out.gather(1, slot.expand(-1, -1, x.shape[-1]))) & keep
        ties = torch.zeros_like(x_out).scatter_add_(1, slot.expand(-1, -1, x.shape[-1]), hit.to(x.dtype))
        g = g * hit / ties.gather(1, slot.expand(-1, -1, x.shape[-1])).clamp_min(1)
    return torch.where(keep, g, torch.zeros_like(g)), None, None, None, None


torch.library.register_autograd(
    "prismkit::token_merge", _token_merge_backward, setup_context=_token_merge_setup_context
)


def _pitome_energy_setup_context(ctx, inputs, output):
    metric, margin, alpha, kernel = inputs
    ctx.args = (margin, alpha, kernel)
    ctx.save_for_backward(metric)


def _pitome_energy_backward(ctx, grad):
    (metric,) = ctx.saved_tensors
    if not ctx.needs_input_grad[0]:
        return None, None, None, None
    with torch.enable_grad():
        m = metric.detach().requires_grad_()
        energy = reference.pitome_energy(m, *ctx.args)
        (g,) = torch.autograd.grad(energy, m, grad.to(energy.dtype))
    return g.to(metric.dtype), None, None, None


torch.library.register_autograd(
    "prismkit::pitome_energy", _pitome_energy_backward, setup_context=_pitome_energy_setup_context
)
