"""The quant ops' argument contract on the Python side: the fake implementations (fake.py) call
these. The C++ side is csrc/quant/quant_checks.cpp: same functions, same order of checks, same
messages (tests/test_op_contracts.py holds them to it). Checks that read tensor values (finite
weights) are the kernels'."""

from __future__ import annotations

from torch import Tensor

from .._checks import check_float_dtype, check_rank


def check_kmeans1d_args(values: Tensor, k: int) -> tuple[int, int]:
    """values [R, n] floating (float64 on CUDA too), 1 <= k <= n. Returns (R, n)."""
    check_rank("kmeans1d", "values", values, 2, "[R, n] (one row per clustering)")
    check_float_dtype("kmeans1d", "values", values, cuda_float64=True)
    R, n = values.shape
    if not 1 <= k <= n:
        raise ValueError(f"prismkit::kmeans1d: 'k' must be in [1, n] = [1, {n}] (n is the number of values per row), "
                         f"got {k}")  # fmt: skip
    return R, n
