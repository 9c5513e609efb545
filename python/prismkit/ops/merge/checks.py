"""The merge ops' argument contract on the Python side: the fake implementations (fake.py) and the
Triton launchers call these. The C++ side is csrc/merge/merge_checks.cpp: same functions, same order
of checks, same messages (tests/test_op_contracts.py holds them to it). Checks that read tensor
values (dest's range, positive sizes) are the kernels'."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .._checks import check_dtype, check_float_dtype, check_rank, check_same_device, check_same_dtype, check_size

REDUCES = ("wavg", "mean", "sum", "amax")


def check_reduce(reduce: str) -> None:
    if reduce not in REDUCES:
        raise ValueError(
            f"prismkit::token_merge: 'reduce' must be one of 'wavg', 'mean', 'sum', 'amax', got '{reduce}'"
        )


def check_token_merge_args(x: Tensor, size: Optional[Tensor], dest: Tensor, num_out: int,
                           reduce: str) -> tuple[int, int, int]:  # fmt: skip
    """x [B, N, C] floating; size None or [B, N, 1] like x; dest [B, N] int64; num_out >= 0.
    Returns (B, N, C)."""
    check_rank("token_merge", "x", x, 3, "[B, N, C]")
    check_float_dtype("token_merge", "x", x)
    B, N, C = x.shape
    if size is not None:
        check_rank("token_merge", "size", size, 3, "[B, N, 1], or None for ones")
        check_same_dtype("token_merge", "size", size, "x", x)
        check_same_device("token_merge", "size", size, "x", x)
        check_size("token_merge", "size", size, 0, B, "B, as x")
        check_size("token_merge", "size", size, 1, N, "N, as x")
        check_size("token_merge", "size", size, 2, 1, "one size per token")
    check_rank("token_merge", "dest", dest, 2, "[B, N] (each token's output slot, -1: dropped)")
    check_dtype("token_merge", "dest", dest, (torch.int64,))
    check_same_device("token_merge", "dest", dest, "x", x)
    check_size("token_merge", "dest", dest, 0, B, "B, as x")
    check_size("token_merge", "dest", dest, 1, N, "N, as x")
    if num_out < 0:
        raise ValueError(f"prismkit::token_merge: 'num_out' must be >= 0, got {num_out}")
    check_reduce(reduce)
    return B, N, C


def check_token_merge_values(size: Optional[Tensor], dest: Tensor, num_out: int) -> None:
    """Every dest in [-1, num_out), every size > 0 (reads the data: one transfer)."""
    if not dest.numel():
        return
    parts = [t.double().reshape(1) for t in torch.aminmax(dest)]
    if size is not None and size.numel():
        parts.append(size.amin().double().reshape(1))
    values = torch.cat(parts).tolist()
    lo, hi = int(values[0]), int(values[1])
    if lo < -1 or hi >= num_out:
        raise IndexError(f"prismkit::token_merge: 'dest' must be in [-1, num_out) = [-1, {num_out}), got values "
                         f"in [{lo}, {hi}]")  # fmt: skip
    if len(values) == 3:
        smallest = values[2]
        if not smallest > 0:
            raise ValueError(f"prismkit::token_merge: 'size' must be positive, got a size of {smallest:g}")
