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


KERNELS = ("elu", "gaussian", "paper")
METHODS = ("pitome", "pitome_bsm", "pitome_text", "tome")


def check_energy_kernel(op: str, kernel: str, margin: float) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"prismkit::{op}: 'kernel' must be one of 'elu', 'gaussian', 'paper', got '{kernel}'")
    if kernel == "gaussian" and not margin < 1:
        raise ValueError(f"prismkit::{op}: 'margin' must be < 1 for the gaussian kernel (sigma = 1 - margin), got "
                         f"{margin:g}")  # fmt: skip


def check_pitome_energy_args(metric: Tensor, margin: float, alpha: float, kernel: str) -> tuple[int, int]:
    """metric [B, T, d] floating. Returns (B, T)."""
    check_rank("pitome_energy", "metric", metric, 3, "[B, T, d]")
    check_float_dtype("pitome_energy", "metric", metric, cuda_float64=True)
    check_energy_kernel("pitome_energy", kernel, margin)
    return metric.shape[0], metric.shape[1]


def largest_r(method: str, T: int) -> int:
    """The most tokens a PiToMe method merges out of T ranked ones (csrc/merge/merge_checks.h)."""
    if method != "pitome_bsm":
        return T // 2
    return (T + 1) // 2 if T >= 2 else 0


def check_merge_plan_args(metric: Tensor, r: int, method: str, margin: float, alpha: float, class_token: bool,
                          prune: bool) -> tuple[int, int, int]:  # fmt: skip
    """metric [B, N, d] floating; method; r >= 0 and, for PiToMe, at most largest_r. Returns (B, N, T)."""
    check_rank("merge_plan", "metric", metric, 3, "[B, N, d]")
    check_float_dtype("merge_plan", "metric", metric, cuda_float64=True)
    if method not in METHODS:
        raise ValueError(f"prismkit::merge_plan: 'method' must be one of 'pitome', 'pitome_bsm', 'pitome_text', "
                         f"'tome', got '{method}'")  # fmt: skip
    B, N = metric.shape[0], metric.shape[1]
    if class_token and N < 1:
        raise ValueError(f"prismkit::merge_plan: 'metric' must hold the class token (class_token=True) and so at "
                         f"least 1 token, got N = {N}")  # fmt: skip
    if r < 0:
        raise ValueError(f"prismkit::merge_plan: 'r' must be >= 0, got {r}")
    T = N - int(class_token)
    if method != "tome" and r > largest_r(method, T):
        raise ValueError(f"prismkit::merge_plan: 'r' = {r} merges more than half of the {T} tokens (method "
                         f"'{method}'); the largest r is {largest_r(method, T)}")  # fmt: skip
    if method == "pitome_text":
        check_energy_kernel("merge_plan", "gaussian", margin)
    return B, N, T


def check_divprune_select_args(metric: Tensor, k: int) -> tuple[int, int]:
    """metric [B, N, d] floating; 0 <= k <= N. Returns (B, N)."""
    check_rank("divprune_select", "metric", metric, 3, "[B, N, d]")
    check_float_dtype("divprune_select", "metric", metric, cuda_float64=True)
    N = metric.shape[1]
    if not 0 <= k <= N:
        raise ValueError(f"prismkit::divprune_select: 'k' must be in [0, N] = [0, {N}], got {k}")
    return metric.shape[0], N
