"""The cswin ops' argument contract on the Python side: the fake implementations (fake.py) and the
Triton launchers (triton_kernels/cswin.py) call these. The C++ side is csrc/cswin/cswin_checks.cpp:
same checks in the same order, same messages (tests/test_op_contracts.py holds them to it)."""

from __future__ import annotations

from .._checks import check_float_dtype, check_rank, check_same_device, check_same_dtype, check_size, describe


def check_cswin_args(op, qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, mode, padding):
    """qkv [B, H*W, 3C]; C divisible by num_heads (and num_heads even in "cross" mode); lepe_weight
    [C, 1, 3, 3] and lepe_bias [C] of qkv's dtype and device; split_size >= 1. Returns C."""
    if mode not in ("cross", "full"):
        raise ValueError(
            f'prismkit::{op}: \'mode\' must be "cross" (two stripe branches) or "full" (the last stage), got "{mode}"'
        )
    if padding not in ("mask", "zeros"):
        raise ValueError(f'prismkit::{op}: \'padding\' must be "mask" or "zeros", got "{padding}"')
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


def check_cswin_attention_backward_args(grad_out, qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, mode,
                                        padding):  # fmt: skip
    """The forward's arguments, and grad_out [B, H*W, C] of qkv's dtype and device. Returns C."""
    op = "cswin_attention_backward"
    C = check_cswin_args(op, qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, mode, padding)
    check_rank(op, "grad_out", grad_out, 3, "[B, H*W, C]")
    if tuple(grad_out.shape) != (qkv.shape[0], H * W, C):
        raise ValueError(
            f"prismkit::{op}: 'grad_out' must have shape [{qkv.shape[0]}, {H * W}, {C}], got {describe(grad_out)}"
        )
    check_same_dtype(op, "grad_out", grad_out, "qkv", qkv)
    check_same_device(op, "grad_out", grad_out, "qkv", qkv)
    return C
