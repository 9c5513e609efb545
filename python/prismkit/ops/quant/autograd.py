"""Autograd of the quant ops. kmeans1d is a discrete choice (the cluster boundaries), not a
function to train through: its outputs never require grad. quant_linear is differentiable in x
(and its bias), not in the packed weight: grad_x = grad_out @ W_hat, with W_hat from
quant_dequantize (the backward holds the float weight for that product; the forward never does)."""

from __future__ import annotations

import torch


def _statistics_setup_context(ctx, inputs, output):
    ctx.mark_non_differentiable(*output)


def _no_backward(ctx, *grads):
    return None, None


torch.library.register_autograd("prismkit::kmeans1d", _no_backward, setup_context=_statistics_setup_context)


def _quant_linear_setup_context(ctx, inputs, output):
    x, codes, cluster_ids, scales, zeros, bias, bits, group_size, out_features, in_features = inputs
    ctx.save_for_backward(codes, cluster_ids, scales, zeros)
    ctx.meta = (bits, group_size, out_features, in_features)
    ctx.x_dtype = x.dtype


def _quant_linear_backward(ctx, grad_out):
    codes, cluster_ids, scales, zeros = ctx.saved_tensors
    grad_x = grad_bias = None
    if ctx.needs_input_grad[0]:
        w_hat = torch.ops.prismkit.quant_dequantize(codes, cluster_ids, scales, zeros, *ctx.meta)  # float32
        if grad_out.dtype == torch.float64:
            w_hat = w_hat.double()
        grad_x = (grad_out.to(w_hat.dtype) @ w_hat).to(ctx.x_dtype)
    if ctx.needs_input_grad[5]:
        grad_bias = grad_out.reshape(-1, grad_out.shape[-1]).sum(0)
    return grad_x, None, None, None, None, grad_bias, None, None, None, None


torch.library.register_autograd("prismkit::quant_linear", _quant_linear_backward,
                                setup_context=_quant_linear_setup_context)  # fmt: skip
