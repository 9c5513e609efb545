"""The SAE ops' argument contract on the Python side: the fake implementations (fake.py) and the
Triton launchers (triton_kernels/sae.py) call these. The C++ side is csrc/sae/sae_checks.cpp:
same functions, same order of checks, same messages (tests/test_op_contracts.py holds them to it).

Checks that read tensor data (index ranges, offsets, capacity signs) cannot run on fake tensors:
the C++ kernels do them, and the Triton launchers do the ones their op needs
(``check_capacity_values``).
"""

from __future__ import annotations

import math
from typing import Optional

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

# ---- encoders (CUDA: Triton kernels, so no float64 there) -------------------------------------


def check_encode_args(op: str, x: Tensor, W_enc: Tensor, b_enc: Tensor) -> tuple[int, int, int]:
    """x [B, d], W_enc [F, d], b_enc [F]: one floating dtype, one device. Returns (B, d, F)."""
    check_rank(op, "x", x, 2, "[B, d]")
    check_rank(op, "W_enc", W_enc, 2, "[F, d] (an nn.Linear(d, F).weight)")
    check_rank(op, "b_enc", b_enc, 1, "[F]")
    check_float_dtype(op, "x", x)
    check_same_device(op, "W_enc", W_enc, "x", x)
    check_same_device(op, "b_enc", b_enc, "x", x)
    check_same_dtype(op, "W_enc", W_enc, "x", x)
    check_same_dtype(op, "b_enc", b_enc, "x", x)
    check_size(op, "W_enc", W_enc, 1, x.shape[1], "d, the feature size of x")
    check_size(op, "b_enc", b_enc, 0, W_enc.shape[0], "F, the number of latents of W_enc")
    return x.shape[0], x.shape[1], W_enc.shape[0]


def check_k(op: str, k: int, F: int) -> None:
    if not (1 <= k <= F):
        raise ValueError(f"prismkit::{op}: 'k' must be in [1, F] = [1, {F}] (F is the number of latents), got {k}")


def check_capacity(op: str, capacity: Tensor, x: Tensor, F: int) -> None:
    """capacity [F] int64 on x's device (its values: check_capacity_values)."""
    check_rank(op, "capacity", capacity, 1, "[F]")
    check_dtype(op, "capacity", capacity, (torch.long,))
    check_same_device(op, "capacity", capacity, "x", x)
    check_size(op, "capacity", capacity, 0, F, "F, the number of latents of W_enc")


def check_capacity_values(op: str, capacity: Tensor) -> None:
    """No negative capacity (reads the data: one transfer from the device)."""
    negative = capacity < 0
    if bool(negative.any()):
        j = int(negative.nonzero()[0, 0])  # the first one, as the C++ check reports
        raise ValueError(f"prismkit::{op}: 'capacity' must be >= 0 everywhere, got capacity[{j}] = {int(capacity[j])}")


def check_threshold(op: str, threshold: Tensor, x: Tensor, F: int) -> None:
    """threshold [F]: x's dtype and device."""
    check_rank(op, "threshold", threshold, 1, "[F] (one threshold per latent)")
    check_same_device(op, "threshold", threshold, "x", x)
    check_same_dtype(op, "threshold", threshold, "x", x)
    check_size(op, "threshold", threshold, 0, F, "F, the number of latents of W_enc")


def check_bandwidth(op: str, bandwidth: float) -> None:
    """bandwidth: finite and > 0 (jumprelu_encode's straight-through window)."""
    if not (bandwidth > 0 and math.isfinite(bandwidth)):
        raise ValueError(f"prismkit::{op}: 'bandwidth' must be finite and > 0, got {bandwidth:g}")


# ---- sparse codes and the decode ops (CUDA: CUDA C++ kernels, float64 included) ---------------


def check_sparse_layout(op: str, indices: Tensor, offsets: Optional[Tensor], ref: Tensor, ref_name: str) -> int:
    """indices int64 [B, k] (offsets None) or [nnz] with offsets int64 [B+1], on ref's device.
    Returns B. The data checks (offsets from 0 to nnz, non-decreasing; indices in [0, F)) are the
    kernels' (csrc/sae/sae_checks.cpp)."""
    check_dtype(op, "indices", indices, (torch.long,))
    check_same_device(op, "indices", indices, ref_name, ref)
    if offsets is None:
        check_rank(op, "indices", indices, 2, "[B, k] (fixed-k layout, offsets None)")
        return indices.shape[0]
    check_rank(op, "indices", indices, 1, "[nnz] (row-compressed layout, offsets given)")
    check_rank(op, "offsets", offsets, 1, "[B + 1]")
    check_dtype(op, "offsets", offsets, (torch.long,))
    check_same_device(op, "offsets", offsets, ref_name, ref)
    if offsets.shape[0] < 1:
        raise ValueError(f"prismkit::{op}: 'offsets' must have B + 1 >= 1 entries, got {describe(offsets)}")
    return offsets.shape[0] - 1


def check_values(op: str, name: str, values: Tensor, indices: Tensor) -> None:
    """values has the shape of indices and a floating dtype."""
    if not isinstance(values, Tensor) or values.shape != indices.shape:
        raise ValueError(
            f"prismkit::{op}: '{name}' must have the shape of indices {list(indices.shape)}, got {describe(values)}"
        )
    check_float_dtype(op, name, values, cuda_float64=True)
    check_same_device(op, name, values, "indices", indices)


def check_rows(op: str, name: str, rows: Tensor, B: int, what_B: str) -> None:
    check_rank(op, name, rows, 2, "[B, d]")
    check_float_dtype(op, name, rows, cuda_float64=True)
    check_size(op, name, rows, 0, B, what_B)


def check_weight(op: str, name: str, weight: Tensor) -> None:
    check_rank(op, name, weight, 2, "[F, d]")
    check_float_dtype(op, name, weight, cuda_float64=True)


def _check_code_and_weight(op: str, values: Tensor, indices: Tensor, offsets: Optional[Tensor], W_dec: Tensor) -> int:
    """A code to decode with W_dec [F, d]; returns B."""
    check_weight(op, "W_dec", W_dec)
    check_values(op, "values", values, indices)
    check_same_dtype(op, "W_dec", W_dec, "values", values)
    check_same_device(op, "W_dec", W_dec, "values", values)
    return check_sparse_layout(op, indices, offsets, values, "values")


def _check_grad_out(op: str, grad_out: Tensor, B: int, values: Tensor) -> None:
    """grad_out [B, d] of a code's B rows, with the dtype and device of its values."""
    check_rows(op, "grad_out", grad_out, B, "B, the number of rows of the sparse code")
    check_same_dtype(op, "grad_out", grad_out, "values", values)
    check_same_device(op, "grad_out", grad_out, "values", values)


def check_sparse_decode_args(values, indices, offsets, W_dec, b_dec) -> int:
    op = "sparse_decode"
    B = _check_code_and_weight(op, values, indices, offsets, W_dec)
    if b_dec is not None:
        check_rank(op, "b_dec", b_dec, 1, "[d]")
        check_size(op, "b_dec", b_dec, 0, W_dec.shape[1], "d, the feature size of W_dec")
        check_same_dtype(op, "b_dec", b_dec, "values", values)
        check_same_device(op, "b_dec", b_dec, "values", values)
    return B


def check_sparse_decode_grad_values_args(grad_out, indices, offsets, W_dec) -> int:
    op = "sparse_decode_grad_values"
    check_weight(op, "W_dec", W_dec)
    check_rank(op, "grad_out", grad_out, 2, "[B, d]")
    check_same_device(op, "W_dec", W_dec, "grad_out", grad_out)
    B = check_sparse_layout(op, indices, offsets, grad_out, "grad_out")
    check_rows(op, "grad_out", grad_out, B, "B, the number of rows of the sparse code")
    check_same_dtype(op, "W_dec", W_dec, "grad_out", grad_out)
    check_size(op, "grad_out", grad_out, 1, W_dec.shape[1], "d, the feature size of W_dec")
    return B


def check_sparse_decode_grad_weight_args(grad_out, values, indices, offsets, num_latents) -> int:
    op = "sparse_decode_grad_weight"
    if num_latents < 0:
        raise ValueError(f"prismkit::{op}: 'num_latents' must be >= 0, got {num_latents}")
    check_values(op, "values", values, indices)
    B = check_sparse_layout(op, indices, offsets, values, "values")
    _check_grad_out(op, grad_out, B, values)
    return B


def check_sparse_decode_backward_args(grad_out, values, indices, offsets, W_dec) -> int:
    op = "sparse_decode_backward"
    B = _check_code_and_weight(op, values, indices, offsets, W_dec)
    _check_grad_out(op, grad_out, B, values)
    check_size(op, "grad_out", grad_out, 1, W_dec.shape[1], "d, the feature size of W_dec")
    return B
