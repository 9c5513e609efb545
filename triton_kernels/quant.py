"""Triton kernels of the quant core; the registry entry in python/prismkit/ops/quant/__init__.py
registers them for CUDA tensors.

* quant_pack / quant_unpack: each program handles a block of a row's bytes; a byte holds 8 / b
  values of b bits, the first in the lowest bits (the layout of csrc/quant/quant_pack_cpu.cpp).

Kernels run on CUDA tensors, and on CPU tensors under ``TRITON_INTERPRET=1`` (the tests do this).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from prismkit.ops.quant.checks import (
    check_quant_pack_args,
    check_quant_pack_values,
    check_quant_unpack_args,
    packed_row_bytes,
)
from prismkit.triton_kernels.launch import on_device

__all__ = ["quant_pack", "quant_unpack"]

BLOCK_BYTES = 256


@triton.jit
def _pack_kernel(values_ptr, packed_ptr, n, row_bytes, BITS: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    byte = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = byte < row_bytes
    PER: tl.constexpr = 8 // BITS
    acc = tl.zeros((BLOCK,), dtype=tl.int32)
    for j in tl.static_range(PER):
        k = byte * PER + j
        v = tl.load(values_ptr + row * n + k, mask=ok & (k < n), other=0).to(tl.int32)
        acc = acc | (v << (j * BITS))
    tl.store(packed_ptr + row * row_bytes + byte, acc.to(tl.uint8), mask=ok)


@triton.jit
def _unpack_kernel(packed_ptr, values_ptr, n, row_bytes, BITS: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    k = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = k < n
    PER: tl.constexpr = 8 // BITS
    b = tl.load(packed_ptr + row * row_bytes + k // PER, mask=ok, other=0).to(tl.int32)
    v = (b >> ((k % PER) * BITS)) & ((1 << BITS) - 1)
    tl.store(values_ptr + row * n + k, v.to(tl.uint8), mask=ok)


def quant_pack(values, bits):
    """prismkit::quant_pack for CUDA tensors."""
    check_quant_pack_args(values, bits)
    check_quant_pack_values(values, bits)
    N, n = values.shape
    row_bytes = packed_row_bytes(n, bits)
    packed = torch.empty(N, row_bytes, dtype=torch.uint8, device=values.device)
    if N and row_bytes:
        with on_device(values):
            _pack_kernel[(N, triton.cdiv(row_bytes, BLOCK_BYTES))](values.contiguous(), packed, n, row_bytes,
                                                                   BITS=bits, BLOCK=BLOCK_BYTES)  # fmt: skip
    return packed


def quant_unpack(packed, bits, n):
    """prismkit::quant_unpack for CUDA tensors."""
    check_quant_unpack_args(packed, bits, n)
    N = packed.shape[0]
    values = torch.empty(N, n, dtype=torch.uint8, device=packed.device)
    if N and n:
        with on_device(packed):
            _unpack_kernel[(N, triton.cdiv(n, BLOCK_BYTES))](packed.contiguous(), values, n, packed.shape[1], BITS=bits,
                                                             BLOCK=BLOCK_BYTES)  # fmt: skip
    return values
