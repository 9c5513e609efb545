"""Cross-shaped window attention (CSWin Transformer) with LePE as one fused op: public wrapper,
fake (torch.compile) implementation, autograd, and the Triton kernels registered for CUDA tensors.

``prismkit::cswin_attention(qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, scale,
mode="cross", padding="mask") -> [B, H*W, C]``

* ``qkv`` [B, H*W, 3C] is the block's qkv ``Linear`` output as it comes (q, k, v channel blocks of
  C each, tokens row-major); no permute is needed before or after.
* ``mode="cross"``: heads ``[0, num_heads/2)`` (channels ``[0, C/2)``, branch 0) attend within
  vertical stripes (full height, ``split_size`` columns), heads ``[num_heads/2, num_heads)`` within
  horizontal stripes, as the official ``models/cswin.py`` does (its code, not its paper, decides which
  half is vertical). ``mode="full"``: the last stage, every head over the whole map.
* LePE: each channel adds a depthwise 3x3 conv of V (``lepe_weight`` [C, 1, 3, 3], ``lepe_bias`` [C],
  branch 0's C/2 channels first) computed within each stripe, zero-padded at stripe and image edges.
* ``scale`` multiplies q (the official ``head_dim ** -0.5`` by default in the wrapper).
* H or W not divisible by ``split_size``: the map is padded, centred (top/left get pad // 2), as the
  official segmentation backbone does. ``padding="zeros"`` reproduces that backbone exactly: padded
  q, k, v are zero, so the padded keys stay in the softmax with score 0. ``padding="mask"`` leaves them
  out. At divisible sizes both equal the official ImageNet model.
* Scores and softmax run in fp32 (fp64 for float64) whatever the input dtype. Dtypes: float32 and
  float64 on the CPU; float32, bfloat16, float16 on CUDA.
* Backward: gradients to qkv, lepe_weight and lepe_bias. Nothing but the inputs is saved (no L x L
  matrix): ``cswin_attention_backward`` recomputes each window's softmax. The CPU kernels are
  bit-deterministic for a given thread count.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ._checks import check_float_dtype, check_rank, check_same_device, check_same_dtype, check_size, describe
from ._triton import register_triton_kernels

__all__ = ["cswin_attention"]

_ops = torch.ops.prismkit


def cswin_attention(
    qkv: Tensor, H: int, W: int, split_size: int, num_heads: int, lepe_weight: Tensor, lepe_bias: Tensor,
    scale: Optional[float] = None, mode: str = "cross", padding: str = "mask",
) -> Tensor:  # fmt: skip
    """Cross-shaped window self-attention with LePE: qkv [B, H*W, 3C] -> [B, H*W, C], ready for the
    output projection. ``scale`` defaults to ``head_dim ** -0.5`` (head_dim = C / num_heads). See the
    module docstring for the branches, padding and dtypes."""
    if scale is None:
        scale = (qkv.shape[-1] // 3 // num_heads) ** -0.5
    return _ops.cswin_attention(qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, scale, mode, padding)


def check_cswin_args(op, qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, mode, padding):
    """Python twin of csrc/cswin/cswin_checks.cpp (fake tensors and the Triton kernels); returns C."""
    if mode not in ("cross", "full"):
        raise ValueError(f"prismkit::{op}: 'mode' must be \"cross\" (two stripe branches) or \"full\" (the last stage), got \"{mode}\"")
    if padding not in ("mask", "zeros"):
        raise ValueError(f"prismkit::{op}: 'padding' must be \"mask\" or \"zeros\", got \"{padding}\"")
    check_rank(op, "qkv", qkv, 3, "[B, H*W, 3C] (the qkv Linear's output)")
    check_float_dtype(op, "qkv", qkv)
    if H < 1 or W < 1 or qkv.shape[1] != H * W:
        raise ValueError(f"prismkit::{op}: 'qkv' must have H*W = {H}*{W} tokens in dim 1, got {describe(qkv)}")
    if qkv.shape[2] % 3 != 0 or qkv.shape[2] == 0:
        raise ValueError(f"prismkit::{op}: 'qkv' must have 3C channels in dim 2 (q, k and v), got {describe(qkv)}")
    C = qkv.shape[2] // 3
    full = mode == "full"
    if num_heads < 1 or C % num_heads != 0 or (not full and num_heads % 2 != 0):
        even = "" if full else " and be even (half the heads per branch)"
        raise ValueError(f"prismkit::{op}: 'num_heads' must divide C = {C}{even}, got {num_heads}")
    if split_size < 1:
        raise ValueError(f"prismkit::{op}: 'split_size' must be >= 1, got {split_size}")
    check_rank(op, "lepe_weight", lepe_weight, 4, "[C, 1, 3, 3] (the depthwise LePE conv's weight)")
    if tuple(lepe_weight.shape) != (C, 1, 3, 3):
        raise ValueError(f"prismkit::{op}: 'lepe_weight' must have shape [{C}, 1, 3, 3], got {describe(lepe_weight)}")
    check_rank(op, "lepe_bias", lepe_bias, 1, "[C]")
    check_size(op, "lepe_bias", lepe_bias, 0, C, "C, a third of qkv's channels")
    check_same_dtype(op, "lepe_weight", lepe_weight, "qkv", qkv)
    check_same_dtype(op, "lepe_bias", lepe_bias, "qkv", qkv)
    check_same_device(op, "lepe_weight", lepe_weight, "qkv", qkv)
    check_same_device(op, "lepe_bias", lepe_bias, "qkv", qkv)
    return C


@torch.library.register_fake("prismkit::cswin_attention")
def _cswin_attention_fake(qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, scale, mode="cross", padding="mask"):
    C = check_cswin_args("cswin_attention", qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, mode, padding)
    return qkv.new_empty(qkv.shape[0], H * W, C)


@torch.library.register_fake("prismkit::cswin_attention_backward")
def _cswin_attention_backward_fake(grad_out, qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, scale,
                                   mode="cross", padding="mask"):  # fmt: skip
    op = "cswin_attention_backward"
    C = check_cswin_args(op, qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, mode, padding)
    check_rank(op, "grad_out", grad_out, 3, "[B, H*W, C]")
    if tuple(grad_out.shape) != (qkv.shape[0], H * W, C):
        raise ValueError(f"prismkit::{op}: 'grad_out' must have shape [{qkv.shape[0]}, {H * W}, {C}], got {describe(grad_out)}")
    check_same_dtype(op, "grad_out", grad_out, "qkv", qkv)
    check_same_device(op, "grad_out", grad_out, "qkv", qkv)
    return torch.empty_like(qkv), torch.empty_like(lepe_weight), torch.empty_like(lepe_bias)


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


# CUDA: Triton kernels (triton_kernels/cswin.py), imported on first use.
TRITON_OPS = ("cswin_attention", "cswin_attention_backward")
register_triton_kernels("cswin", TRITON_OPS)
