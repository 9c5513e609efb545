"""Triton kernels of the quant core; the registry entry in python/prismkit/ops/quant/__init__.py
registers them for CUDA tensors.

* quant_pack / quant_unpack: each program handles a block of a row's bytes; a byte holds 8 / b
  values of b bits, the first in the lowest bits (the layout of csrc/quant/quant_pack_cpu.cpp).
* quant_dequantize: a [rows, inputs] tile per program, q * s then + z without fused multiply-add
  (``enable_fp_fusion=False``), so it matches the CPU kernel and PyTorch bit for bit.
* quant_linear: a [batch, out] tile per program; the K loop dequantizes a [out, K-block] tile of the
  weight in registers (codes and ids unpacked, each weight's scale and zero gathered by its group
  and cluster) and accumulates ``tl.dot(x_tile, w_tile^T)`` in float32. Batches up to 16 take the
  GEMV kernel instead: one program per block of output rows holds the whole batch, and multiplies
  by broadcast and sums (no tensor-core tile of mostly padding rows).

Kernels run on CUDA tensors, and on CPU tensors under ``TRITON_INTERPRET=1`` (the tests do this).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from prismkit.ops.quant.checks import (
    check_quant_linear_args,
    check_quant_pack_args,
    check_quant_pack_values,
    check_quant_unpack_args,
    check_quant_weight_args,
    packed_row_bytes,
)
from prismkit.triton_kernels.launch import input_precision, on_device

__all__ = ["quant_pack", "quant_unpack", "quant_dequantize", "quant_linear"]

BLOCK_BYTES = 256
MAX_GRID_Y = 65535  # CUDA's limit on a grid's y (and z) axis
# quant_linear's GEMV path (batches up to 16): rows of the weight per program, and the size of the
# [batch, rows, K-block] product a program holds per step (the K block shrinks as the batch grows).
GEMV_MAX_BATCH = 16
GEMV_BLOCK_N = 16
GEMV_ELEMENTS = 8192


@triton.jit
def _pack_kernel(values_ptr, packed_ptr, row0, n, row_bytes, BITS: tl.constexpr, BLOCK: tl.constexpr):
    row = row0 + tl.program_id(1).to(tl.int64)
    byte = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = byte < row_bytes
    PER: tl.constexpr = 8 // BITS
    acc = tl.zeros((BLOCK,), dtype=tl.int32)
    for j in tl.static_range(PER):
        k = byte * PER + j
        v = tl.load(values_ptr + row * n + k, mask=ok & (k < n), other=0).to(tl.int32)
        acc = acc | (v << (j * BITS))
    tl.store(packed_ptr + row * row_bytes + byte, acc.to(tl.uint8), mask=ok)


@triton.jit
def _unpack_kernel(packed_ptr, values_ptr, row0, n, row_bytes, BITS: tl.constexpr, BLOCK: tl.constexpr):
    row = row0 + tl.program_id(1).to(tl.int64)
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
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
        v = values.contiguous()
        with on_device(values):
            for row0 in range(0, N, MAX_GRID_Y):  # rows on the grid's y axis, at most 65535 per launch
                rows = min(MAX_GRID_Y, N - row0)
                _pack_kernel[(triton.cdiv(row_bytes, BLOCK_BYTES), rows)](v, packed, row0, n, row_bytes, BITS=bits,
                                                                          BLOCK=BLOCK_BYTES)  # fmt: skip
    return packed


def quant_unpack(packed, bits, n):
    """prismkit::quant_unpack for CUDA tensors."""
    check_quant_unpack_args(packed, bits, n)
    N = packed.shape[0]
    values = torch.empty(N, n, dtype=torch.uint8, device=packed.device)
    if N and n:
        p = packed.contiguous()
        with on_device(packed):
            for row0 in range(0, N, MAX_GRID_Y):
                rows = min(MAX_GRID_Y, N - row0)
                _unpack_kernel[(triton.cdiv(n, BLOCK_BYTES), rows)](p, values, row0, n, packed.shape[1], BITS=bits,
                                                                    BLOCK=BLOCK_BYTES)  # fmt: skip
    return values


@triton.jit
def _dequantize_tile(codes_ptr, ids_ptr, scales_ptr, zeros_ptr, rows64, row_ok, ks, k_ok, K, code_bytes, id_bytes,
                     G, C, group_size, BITS: tl.constexpr, HAS_IDS: tl.constexpr):  # fmt: skip
    """The float32 [rows, ks] tile of W_hat: q * s + z."""
    PER: tl.constexpr = 8 // BITS
    ok = row_ok[:, None] & k_ok[None, :]
    byte = tl.load(codes_ptr + rows64[:, None] * code_bytes + (ks // PER)[None, :], mask=ok, other=0).to(tl.int32)
    q = ((byte >> ((ks % PER) * BITS)[None, :]) & ((1 << BITS) - 1)).to(tl.float32)
    if HAS_IDS:
        ib = tl.load(ids_ptr + rows64[:, None] * id_bytes + (ks // 4)[None, :], mask=ok, other=0).to(tl.int32)
        c = (ib >> ((ks % 4) * 2)[None, :]) & 3
        c = tl.minimum(c, C - 1)  # ids at or above the cluster count read as the last cluster
    else:
        c = tl.zeros_like(byte)
    at = (rows64[:, None] * G + (ks // group_size)[None, :]) * C + c
    s = tl.load(scales_ptr + at, mask=ok, other=0.0).to(tl.float32)
    z = tl.load(zeros_ptr + at, mask=ok, other=0.0).to(tl.float32)
    return q * s + z


@triton.jit
def _dequantize_kernel(codes_ptr, ids_ptr, scales_ptr, zeros_ptr, w_ptr, N, K, code_bytes, id_bytes, G, C, group_size,
                       BITS: tl.constexpr, HAS_IDS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    row_ok, k_ok = rows < N, ks < K
    rows64 = rows.to(tl.int64)
    w = _dequantize_tile(codes_ptr, ids_ptr, scales_ptr, zeros_ptr, rows64, row_ok, ks, k_ok, K, code_bytes, id_bytes,
                         G, C, group_size, BITS, HAS_IDS)  # fmt: skip
    tl.store(w_ptr + rows64[:, None] * K + ks[None, :], w, mask=row_ok[:, None] & k_ok[None, :])


@triton.jit
def _linear_kernel(x_ptr, codes_ptr, ids_ptr, scales_ptr, zeros_ptr, bias_ptr, y_ptr, B, N, K, code_bytes, id_bytes,
                   G, C, group_size, BITS: tl.constexpr, HAS_IDS: tl.constexpr, HAS_BIAS: tl.constexpr,
                   BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                   INPUT_PRECISION: tl.constexpr):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)  # outputs on axis 0: up to 2^31 - 1 blocks
    bs = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    b_ok, row_ok = bs < B, rows < N
    rows64, bs64 = rows.to(tl.int64), bs.to(tl.int64)
    acc = tl.zeros((BLOCK_B, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < K
        x = tl.load(x_ptr + bs64[:, None] * K + ks[None, :], mask=b_ok[:, None] & k_ok[None, :], other=0.0)
        w = _dequantize_tile(codes_ptr, ids_ptr, scales_ptr, zeros_ptr, rows64, row_ok, ks, k_ok, K, code_bytes,
                             id_bytes, G, C, group_size, BITS, HAS_IDS)  # fmt: skip
        acc = tl.dot(x, tl.trans(w.to(x.dtype)), acc, input_precision=INPUT_PRECISION)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + bs64[:, None] * N + rows[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=b_ok[:, None] & row_ok[None, :])  # fmt: skip


@triton.jit
def _gemv_kernel(x_ptr, codes_ptr, ids_ptr, scales_ptr, zeros_ptr, bias_ptr, y_ptr, B, N, K, code_bytes, id_bytes,
                 G, C, group_size, BITS: tl.constexpr, HAS_IDS: tl.constexpr, HAS_BIAS: tl.constexpr,
                 BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):  # fmt: skip
    """Batches up to 16 (GEMV): every row of x against a [BLOCK_N, BLOCK_K] weight tile by broadcast
    multiply and a sum over K in float32 (a tensor-core tile would be at least 16 rows of x, mostly
    padding), so the program count follows N alone and each weight byte is read once per call."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    bs = tl.arange(0, BLOCK_B)
    b_ok, row_ok = bs < B, rows < N
    rows64 = rows.to(tl.int64)
    acc = tl.zeros((BLOCK_B, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < K
        x = tl.load(x_ptr + bs[:, None] * K + ks[None, :], mask=b_ok[:, None] & k_ok[None, :], other=0.0)
        w = _dequantize_tile(codes_ptr, ids_ptr, scales_ptr, zeros_ptr, rows64, row_ok, ks, k_ok, K, code_bytes,
                             id_bytes, G, C, group_size, BITS, HAS_IDS)  # fmt: skip
        # w rounded to x's dtype as the tiled kernel's tl.dot operand is, so a row's result does not
        # depend on whether its batch took this path
        w = w.to(x.dtype).to(tl.float32)
        acc += tl.sum(x.to(tl.float32)[:, None, :] * w[None, :, :], axis=2)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + bs[:, None] * N + rows[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=b_ok[:, None] & row_ok[None, :])  # fmt: skip


def quant_dequantize(codes, cluster_ids, scales, zeros, bits, group_size, out_features, in_features):
    """prismkit::quant_dequantize for CUDA tensors."""
    N, K, G, C = check_quant_weight_args("quant_dequantize", codes, cluster_ids, scales, zeros, bits, group_size,
                                         out_features, in_features)  # fmt: skip
    w = torch.empty(N, K, dtype=torch.float32, device=codes.device)
    has_ids = cluster_ids.numel() > 0
    ids = cluster_ids.contiguous() if has_ids else codes
    block_n, block_k = 16, 64
    with on_device(codes):
        _dequantize_kernel[(triton.cdiv(N, block_n), triton.cdiv(K, block_k))](
            codes.contiguous(), ids, scales.contiguous(), zeros.contiguous(), w, N, K, codes.shape[1],
            cluster_ids.shape[1] if has_ids else 0, G, C, group_size, BITS=bits, HAS_IDS=has_ids, BLOCK_N=block_n,
            BLOCK_K=block_k, enable_fp_fusion=False,
        )  # fmt: skip
    return w


def quant_linear(x, codes, cluster_ids, scales, zeros, bias, bits, group_size, out_features, in_features):
    """prismkit::quant_linear for CUDA tensors."""
    N, K, G, C = check_quant_linear_args(x, codes, cluster_ids, scales, zeros, bias, bits, group_size, out_features,
                                         in_features)  # fmt: skip
    x2 = x.reshape(-1, K).contiguous()
    B = x2.shape[0]
    y = torch.empty(B, N, dtype=x.dtype, device=x.device)
    if B:
        has_ids = cluster_ids.numel() > 0
        on_gpu = x.device.type == "cuda"
        block_b, block_n, block_k = (16, 64, 64) if on_gpu else (16, 16, 32)
        weight = (codes.contiguous(), cluster_ids.contiguous() if has_ids else codes, scales.contiguous(),
                  zeros.contiguous())  # fmt: skip
        b_arg = bias.contiguous() if bias is not None else x2
        meta = (codes.shape[1], cluster_ids.shape[1] if has_ids else 0, G, C, group_size)
        if B <= GEMV_MAX_BATCH:
            gemv_b = triton.next_power_of_2(B)
            with on_device(x):
                _gemv_kernel[(triton.cdiv(N, GEMV_BLOCK_N),)](
                    x2, *weight, b_arg, y, B, N, K, *meta, BITS=bits, HAS_IDS=has_ids, HAS_BIAS=bias is not None,
                    BLOCK_B=gemv_b, BLOCK_N=GEMV_BLOCK_N, BLOCK_K=GEMV_ELEMENTS // (gemv_b * GEMV_BLOCK_N),
                )  # fmt: skip
            return y.reshape(*x.shape[:-1], N)
        chunk = MAX_GRID_Y * block_b  # batch blocks on the grid's y axis, at most 65535 per launch
        with on_device(x):
            for b0 in range(0, B, chunk):
                rows = min(chunk, B - b0)
                _linear_kernel[(triton.cdiv(N, block_n), triton.cdiv(rows, block_b))](
                    x2[b0 : b0 + rows], *weight, b_arg, y[b0 : b0 + rows], rows, N, K, *meta, BITS=bits,
                    HAS_IDS=has_ids,
                    HAS_BIAS=bias is not None, BLOCK_B=block_b, BLOCK_N=block_n, BLOCK_K=block_k,
                    INPUT_PRECISION=input_precision(x2),
                )  # fmt: skip
    return y.reshape(*x.shape[:-1], N)
