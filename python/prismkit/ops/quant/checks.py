"""The quant ops' argument contract on the Python side: the fake implementations (fake.py) call
these. The C++ side is csrc/quant/quant_checks.cpp: same functions, same order of checks, same
messages (tests/test_op_contracts.py holds them to it). Checks that read tensor values (finite
weights) are the kernels'."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_dtype, check_float_dtype, check_rank, check_size


def check_kmeans1d_args(values: Tensor, k: int) -> tuple[int, int]:
    """values [R, n] floating (float64 on CUDA too), 1 <= k <= n. Returns (R, n)."""
    check_rank("kmeans1d", "values", values, 2, "[R, n] (one row per clustering)")
    check_float_dtype("kmeans1d", "values", values, cuda_float64=True)
    R, n = values.shape
    if not 1 <= k <= n:
        raise ValueError(f"prismkit::kmeans1d: 'k' must be in [1, n] = [1, {n}] (n is the number of values per row), "
                         f"got {k}")  # fmt: skip
    return R, n


def check_bits(op: str, bits: int) -> None:
    """bits is 2, 4 or 8."""
    if bits not in (2, 4, 8):
        raise ValueError(f"prismkit::{op}: 'bits' must be 2, 4 or 8, got {bits}")


def packed_row_bytes(n: int, bits: int) -> int:
    """Bytes of one packed row of n b-bit values."""
    return (n * bits + 7) // 8


def check_quant_pack_args(values: Tensor, bits: int) -> None:
    """values [N, n] uint8, bits in {2, 4, 8} (the value range is the kernels' data check)."""
    check_rank("quant_pack", "values", values, 2, "[N, n] (one packed row per row)")
    check_dtype("quant_pack", "values", values, (torch.uint8,))
    check_bits("quant_pack", bits)


def check_quant_pack_values(values: Tensor, bits: int) -> None:
    """Every value below 2^bits (reads the data: one transfer)."""
    if values.numel() == 0 or bits == 8:
        return
    largest = int(values.max())
    if largest >= 1 << bits:
        raise ValueError(f"prismkit::quant_pack: 'values' must be below 2^bits = {1 << bits}, got a value of {largest}")


def check_quant_unpack_args(packed: Tensor, bits: int, n: int) -> None:
    """packed [N, ceil(n * bits / 8)] uint8, bits in {2, 4, 8}, n >= 0."""
    check_rank("quant_unpack", "packed", packed, 2, "[N, ceil(n * bits / 8)]")
    check_dtype("quant_unpack", "packed", packed, (torch.uint8,))
    check_bits("quant_unpack", bits)
    if n < 0:
        raise ValueError(f"prismkit::quant_unpack: 'n' must be >= 0, got {n}")
    check_size("quant_unpack", "packed", packed, 1, packed_row_bytes(n, bits), "ceil(n * bits / 8), the bytes of n values")
