"""Fake (meta) implementations of the cswin ops, for torch.compile and opcheck: the kernels'
argument checks (checks.py), then outputs of the right shapes."""

from __future__ import annotations

import torch

from . import checks


@torch.library.register_fake("prismkit::cswin_attention")
def _cswin_attention_fake(
    qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, scale, mode="cross", padding="mask"
):
    C = checks.check_cswin_args(
        "cswin_attention", qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, mode, padding
    )
    return qkv.new_empty(qkv.shape[0], H * W, C)


@torch.library.register_fake("prismkit::cswin_attention_backward")
def _cswin_attention_backward_fake(grad_out, qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, scale,
                                   mode="cross", padding="mask"):  # fmt: skip
    checks.check_cswin_attention_backward_args(grad_out, qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias,
                                               mode, padding)  # fmt: skip
    return torch.empty_like(qkv), torch.empty_like(lepe_weight), torch.empty_like(lepe_bias)
