"""Autograd of cswin_attention: its backward is the cswin_attention_backward op, which recomputes
each window's softmax from the saved inputs (no L x L matrix is kept)."""

from __future__ import annotations

import torch

_ops = torch.ops.prismkit


def _setup_context(ctx, inputs, output):
    qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, scale, mode, padding = inputs
    ctx.save_for_backward(qkv, lepe_weight, lepe_bias)
    ctx.args = (H, W, split_size, num_heads, scale, mode, padding)


def _backward(ctx, grad_out):
    qkv, lepe_weight, lepe_bias = ctx.saved_tensors
    H, W, split_size, num_heads, scale, mode, padding = ctx.args
    grad_qkv, grad_weight, grad_bias = _ops.cswin_attention_backward(
        grad_out, qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, scale, mode, padding
    )
    return grad_qkv, None, None, None, None, grad_weight, grad_bias, None, None, None


torch.library.register_autograd("prismkit::cswin_attention", _backward, setup_context=_setup_context)
