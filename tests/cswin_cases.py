"""Inputs and the reference comparison shared by the cswin_attention tests."""

from __future__ import annotations

import torch
from conftest import TOLERANCES

from prismkit.reference import cswin as ref


def make(B, H, W, C, dtype=torch.float64, device="cpu", generator=None):
    """qkv [B, H*W, 3C] and LePE weights at the scale of a trained block."""
    kw = dict(dtype=torch.float64, generator=generator)
    qkv = torch.randn(B, H * W, 3 * C, **kw)
    weight = torch.randn(C, 1, 3, 3, **kw) * 0.3
    bias = torch.randn(C, **kw) * 0.1
    return tuple(t.to(device, dtype) for t in (qkv, weight, bias))


def assert_forward_and_backward_match(qkv, H, W, split, heads, weight, bias, mode, padding, generator=None):
    """prismkit::cswin_attention (the path in use) against the reference: output and the gradients
    to qkv, lepe_weight and lepe_bias, to the dtype's tolerance."""
    qkv, weight, bias = (t.detach().requires_grad_() for t in (qkv, weight, bias))
    scale = (qkv.shape[-1] // 3 // heads) ** -0.5
    out = torch.ops.prismkit.cswin_attention(qkv, H, W, split, heads, weight, bias, scale, mode, padding)
    want = ref.cswin_attention(qkv, H, W, split, heads, weight, bias, scale, mode, padding)
    tol = TOLERANCES[qkv.dtype]
    torch.testing.assert_close(out, want, **tol)
    grad = torch.randn(out.shape, generator=generator, dtype=torch.float64).to(out.dtype)
    got = torch.autograd.grad(out, (qkv, weight, bias), grad)
    expected = torch.autograd.grad(want, (qkv, weight, bias), grad)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, **tol)
