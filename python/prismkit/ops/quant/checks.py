"""The quant ops' argument contract on the Python side: the fake implementations (fake.py) call
these. The C++ side is csrc/quant/quant_checks.cpp: same functions, same order of checks, same
messages (tests/test_op_contracts.py holds them to it). Checks that read tensor values (finite
weights) are the kernels'."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import (
    check_dtype,
    check_float_dtype,
    check_rank,
    check_same_device,
    check_same_dtype,
    check_size,
    describe,
)


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
    check_size(
        "quant_unpack", "packed", packed, 1, packed_row_bytes(n, bits), "ceil(n * bits / 8), the bytes of n values"
    )


def check_quant_weight_args(op, codes, cluster_ids, scales, zeros, bits, group_size, out_features, in_features):
    """The packed weight (csrc/quant/quant_checks.h says what). Returns (N, K, G, C)."""
    check_bits(op, bits)
    if not (out_features >= 1 and in_features >= 1):
        raise ValueError(f"prismkit::{op}: 'out_features' and 'in_features' must be >= 1, got {out_features} and "
                         f"{in_features}")  # fmt: skip
    if not (group_size >= 1 and in_features % group_size == 0):
        raise ValueError(f"prismkit::{op}: 'group_size' must divide in_features = {in_features}, got {group_size}")
    N, K, G = out_features, in_features, in_features // group_size
    check_rank(op, "codes", codes, 2, "[out_features, ceil(in_features * bits / 8)]")
    check_dtype(op, "codes", codes, (torch.uint8,))
    check_size(op, "codes", codes, 0, N, "out_features")
    check_size(op, "codes", codes, 1, packed_row_bytes(K, bits), "ceil(in_features * bits / 8)")
    clustered = cluster_ids.numel() > 0
    if clustered:
        check_rank(op, "cluster_ids", cluster_ids, 2, "[out_features, ceil(in_features / 4)], or empty for one cluster")
        check_dtype(op, "cluster_ids", cluster_ids, (torch.uint8,))
        check_same_device(op, "cluster_ids", cluster_ids, "codes", codes)
        check_size(op, "cluster_ids", cluster_ids, 0, N, "out_features")
        check_size(op, "cluster_ids", cluster_ids, 1, packed_row_bytes(K, 2), "ceil(in_features / 4)")
    check_rank(op, "scales", scales, 3, "[out_features, in_features / group_size, clusters]")
    check_dtype(op, "scales", scales, (torch.float16, torch.bfloat16, torch.float32))
    check_same_device(op, "scales", scales, "codes", codes)
    check_size(op, "scales", scales, 0, N, "out_features")
    check_size(op, "scales", scales, 1, G, "in_features / group_size")
    C = scales.shape[2]
    if clustered:
        if not 1 <= C <= 4:
            raise ValueError(f"prismkit::{op}: 'scales' must have 1 to 4 clusters in dim 2, got {C}")
    else:
        check_size(op, "scales", scales, 2, 1, "1: one cluster, since cluster_ids is empty")
    check_same_dtype(op, "zeros", zeros, "scales", scales)
    check_same_device(op, "zeros", zeros, "codes", codes)
    if zeros.shape != scales.shape:
        raise ValueError(f"prismkit::{op}: 'zeros' must have the shape of scales {list(scales.shape)}, got "
                         f"{describe(zeros)}")  # fmt: skip
    return N, K, G, C


def check_quant_linear_args(x, codes, cluster_ids, scales, zeros, bias, bits, group_size, out_features, in_features):
    """The weight's checks, then x [..., K] and bias [N]. Returns (N, K, G, C)."""
    op = "quant_linear"
    if x.dim() < 1:
        raise ValueError(f"prismkit::quant_linear: 'x' must have at least one dimension [..., in_features], got "
                         f"{describe(x)}")  # fmt: skip
    check_float_dtype(op, "x", x)
    shape = check_quant_weight_args(op, codes, cluster_ids, scales, zeros, bits, group_size, out_features, in_features)
    check_same_device(op, "codes", codes, "x", x)
    check_size(op, "x", x, x.dim() - 1, in_features, "in_features")
    if bias is not None:
        check_rank(op, "bias", bias, 1, "[out_features]")
        check_same_dtype(op, "bias", bias, "x", x)
        check_same_device(op, "bias", bias, "x", x)
        check_size(op, "bias", bias, 0, out_features, "out_features")
    return shape
