"""Cross-shaped window attention (CSWin Transformer) with LePE as one fused op: the public wrapper.

Where each piece lives (see CONTRIBUTING.md): schemas in csrc/cswin/cswin_schemas.cpp; argument
checks in checks.py here and csrc/cswin/cswin_checks.cpp; fake implementations in fake.py;
autograd in autograd.py; C++ CPU kernels in csrc/cswin/; Triton kernels in triton_kernels/cswin.py;
the official-style reference in prismkit/reference/cswin.py.

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

from .. import registry
from .._checks import check_float_args, check_int_args, check_str_args, check_tensor_args
from . import autograd, fake  # noqa: F401  (register the fake implementations and autograd)

__all__ = ["cswin_attention"]

_ops = torch.ops.prismkit


def cswin_attention(
    qkv: Tensor, H: int, W: int, split_size: int, num_heads: int, lepe_weight: Tensor, lepe_bias: Tensor,
    scale: Optional[float] = None, mode: str = "cross", padding: str = "mask",
) -> Tensor:  # fmt: skip
    """Cross-shaped window self-attention with LePE: qkv [B, H*W, 3C] -> [B, H*W, C], ready for the
    output projection. ``scale`` defaults to ``head_dim ** -0.5`` (head_dim = C / num_heads). See the
    module docstring for the branches, padding and dtypes."""
    op = "cswin_attention"
    check_tensor_args(op, qkv=qkv, lepe_weight=lepe_weight, lepe_bias=lepe_bias)
    check_int_args(op, H=H, W=W, split_size=split_size, num_heads=num_heads)
    check_str_args(op, mode=mode, padding=padding)
    if scale is None:  # head_dim ** -0.5; a head count that does not divide C is the op's error to raise
        head_dim = qkv.shape[-1] // 3 // num_heads if num_heads > 0 else 0
        scale = head_dim**-0.5 if head_dim > 0 else 1.0
    check_float_args(op, scale=scale)
    return _ops.cswin_attention(qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, scale, mode, padding)


# The registry entry (prismkit/ops/registry.py): every op of this core and its CUDA kernel's kind.
CORE = registry.register_core("cswin", {"cswin_attention": "triton", "cswin_attention_backward": "triton"})
