"""Autograd of the SAE ops: every backward is made of the three decode ops (and cheap ATen
reductions), so the decoder is twice differentiable and no [B, F] matrix appears."""

from __future__ import annotations

import torch

_ops = torch.ops.prismkit


def _encode_setup_context(ctx, inputs, output):
    x, W_enc = inputs[0], inputs[1]
    values, indices = output[0], output[1]
    offsets = output[2] if len(output) == 3 else None
    ctx.save_for_backward(x, W_enc, values, indices, offsets)


def _encoder_input_grads(ctx, x, W_enc, values, indices, offsets, grad_values):
    """(grad_x, grad_W_enc, grad_b_enc) of an encoder whose selected values are the
    pre-activations themselves: d value / d pre-activation is 1 where the selected value is
    positive (ReLU), else 0 (so jumprelu_encode's zero-valued window entries pass nothing)."""
    g = torch.where(values > 0, grad_values, torch.zeros_like(grad_values))
    grad_x = grad_W = grad_b = None
    if ctx.needs_input_grad[0]:
        grad_x = _ops.sparse_decode(g, indices, offsets, W_enc, None)
    if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
        grad_W, grad_b = _ops.sparse_decode_grad_weight(x, g, indices, offsets, W_enc.shape[0])
    return grad_x, grad_W, grad_b


def _encode_backward(ctx, grad_values, *_unused_grads):
    x, W_enc, values, indices, offsets = ctx.saved_tensors
    return (*_encoder_input_grads(ctx, x, W_enc, values, indices, offsets, grad_values), None)


for _name in ("topk_encode", "batch_topk_encode", "feature_choice_encode", "threshold_encode"):
    torch.library.register_autograd(f"prismkit::{_name}", _encode_backward, setup_context=_encode_setup_context)


def _jumprelu_setup_context(ctx, inputs, output):
    x, W_enc, _, threshold, bandwidth = inputs
    values, indices, offsets, in_window = output
    ctx.mark_non_differentiable(indices, offsets, in_window)
    ctx.save_for_backward(x, W_enc, values, indices, offsets, in_window, threshold)
    ctx.bandwidth = bandwidth


def _jumprelu_backward(ctx, grad_values, *_unused_grads):
    """x, W_enc and b_enc as every encoder; the threshold through the straight-through estimator
    of the JumpReLU a = z 1[z > theta] (SAELens' ``JumpReLU.backward``, DeepMind's formulation):
    d a / d theta_j = -(theta_j / bandwidth) 1[|z - theta_j| < bandwidth / 2], summed over the
    window entries of latent j (kept or not: a window entry that is not kept has value 0 and still
    receives its gradient through the decoder)."""
    x, W_enc, values, indices, offsets, in_window, threshold = ctx.saved_tensors
    grads = _encoder_input_grads(ctx, x, W_enc, values, indices, offsets, grad_values)
    grad_threshold = None
    if ctx.needs_input_grad[3]:
        g = torch.where(in_window, grad_values, torch.zeros_like(grad_values)).to(threshold.dtype)
        per_latent = torch.zeros_like(threshold).index_put_((indices,), g, accumulate=True)
        grad_threshold = -(threshold / ctx.bandwidth) * per_latent
    return (*grads, grad_threshold, None)


torch.library.register_autograd("prismkit::jumprelu_encode", _jumprelu_backward, setup_context=_jumprelu_setup_context)


def _decode_setup_context(ctx, inputs, output):
    values, indices, offsets, W_dec, _ = inputs
    ctx.save_for_backward(values, indices, offsets, W_dec)


def _decode_backward(ctx, grad_out):
    values, indices, offsets, W_dec = ctx.saved_tensors
    grad_values = grad_W = grad_b = None
    if ctx.needs_input_grad[0] and ctx.needs_input_grad[3]:
        grad_values, grad_W = _ops.sparse_decode_backward(grad_out, values, indices, offsets, W_dec)
    elif ctx.needs_input_grad[0]:
        grad_values = _ops.sparse_decode_grad_values(grad_out, indices, offsets, W_dec)
    elif ctx.needs_input_grad[3]:
        grad_W, _ = _ops.sparse_decode_grad_weight(grad_out, values, indices, offsets, W_dec.shape[0])
    if ctx.needs_input_grad[4]:
        grad_b = grad_out.sum(0)
    return grad_values, None, None, grad_W, grad_b


torch.library.register_autograd("prismkit::sparse_decode", _decode_backward, setup_context=_decode_setup_context)


def _statistics_setup_context(ctx, inputs, output):
    ctx.mark_non_differentiable(*output)  # counts and maxima: statistics, not a function to train through


def _no_backward(ctx, *grads):
    return None, None, None, None


torch.library.register_autograd("prismkit::latent_stats", _no_backward, setup_context=_statistics_setup_context)


def _grad_values_setup_context(ctx, inputs, output):
    grad_out, indices, offsets, W_dec = inputs
    ctx.save_for_backward(grad_out, indices, offsets, W_dec)


def _grad_values_backward(ctx, gg):
    grad_out, indices, offsets, W_dec = ctx.saved_tensors
    d_grad_out = d_W = None
    if ctx.needs_input_grad[0]:
        d_grad_out = _ops.sparse_decode(gg, indices, offsets, W_dec, None)
    if ctx.needs_input_grad[3]:
        d_W, _ = _ops.sparse_decode_grad_weight(grad_out, gg, indices, offsets, W_dec.shape[0])
    return d_grad_out, None, None, d_W


torch.library.register_autograd(
    "prismkit::sparse_decode_grad_values", _grad_values_backward, setup_context=_grad_values_setup_context
)


def _grad_weight_setup_context(ctx, inputs, output):
    grad_out, values, indices, offsets, _ = inputs
    ctx.save_for_backward(grad_out, values, indices, offsets)


def _grad_weight_backward(ctx, g_weight, g_value_sum):
    grad_out, values, indices, offsets = ctx.saved_tensors
    d_grad_out = d_values = None
    if ctx.needs_input_grad[0]:
        d_grad_out = _ops.sparse_decode(values, indices, offsets, g_weight, None)
    if ctx.needs_input_grad[1]:
        d_values = _ops.sparse_decode_grad_values(grad_out, indices, offsets, g_weight) + g_value_sum[indices]
    return d_grad_out, d_values, None, None, None


torch.library.register_autograd(
    "prismkit::sparse_decode_grad_weight", _grad_weight_backward, setup_context=_grad_weight_setup_context
)


def _backward_setup_context(ctx, inputs, output):
    grad_out, values, indices, offsets, W_dec = inputs
    ctx.save_for_backward(grad_out, values, indices, offsets, W_dec)


def _backward_backward(ctx, gg_values, gg_weight):
    grad_out, values, indices, offsets, W_dec = ctx.saved_tensors
    d_grad_out = d_values = d_W = None
    if ctx.needs_input_grad[0]:
        d_grad_out = _ops.sparse_decode(gg_values, indices, offsets, W_dec, None) + _ops.sparse_decode(
            values, indices, offsets, gg_weight, None
        )
    if ctx.needs_input_grad[1]:
        d_values = _ops.sparse_decode_grad_values(grad_out, indices, offsets, gg_weight)
    if ctx.needs_input_grad[4]:
        d_W, _ = _ops.sparse_decode_grad_weight(grad_out, gg_values, indices, offsets, W_dec.shape[0])
    return d_grad_out, d_values, None, None, d_W


torch.library.register_autograd(
    "prismkit::sparse_decode_backward", _backward_backward, setup_context=_backward_setup_context
)
