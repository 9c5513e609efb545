"""Triton kernels of the SAE encoders; the registry entry in python/prismkit/ops/sae/__init__.py
registers them for CUDA tensors.

One fused kernel serves all three encoders. ``_row_topk_kernel`` computes tiles of
``relu(A @ Bm.T + bias)`` with ``tl.dot`` (fp32 accumulation) and keeps, for each row of A, a
running top-K of packed int64 keys ``value_bits << 32 | (2**32 - 1 - column)``: for the
non-negative floats ReLU leaves, the bit pattern orders like the value, so one integer comparison
ranks by value and then by the lower column; a NaN (canonical bits 0x7FC00000) ranks above
+inf. A tile is merged into the running top-K only if it beats some row's K-th key, so after the
first tiles most of the work is the matmul; the merge uses max reductions only (no tl.sort), which
also keeps it fast under the interpreter. Column splits run as separate programs; a merge step
(``torch.topk`` over the splits' keys, which are unique) picks each row's best K.

* topk_encode: A = x, Bm = W_enc, K = k rounded up to a power of two.
* batch_topk_encode: per-token candidates (at least 4k), a global stable selection, and tokens
  whose candidates were all taken are recomputed with twice the candidates, as on the CPU
  (see csrc/sae/batch_topk_encode_cpu.cpp for why that is exact); past ``MAX_CANDIDATES`` such a
  token's whole row is computed densely.
* threshold_encode: count the kept entries per (token, column split), prefix-sum them into write
  positions, then recompute the tiles and write (latents ascending within a token).
* jumprelu_encode: threshold_encode's two passes, also listing the entries of the
  straight-through window (value 0 unless kept) and flagging them.
* latent_stats: rows = latents, per-split partial counts and maxima reduced in a fixed order.
* feature_choice_encode: A = W_enc, Bm = x, bias per row; latents with capacity up to
  ``FUSED_MAX_CAPACITY`` use the kernel, larger ones (the head of a Zipf allocation) a dense
  selection over chunks of latents.

Kernels run on CUDA tensors, and on CPU tensors under ``TRITON_INTERPRET=1`` (the tests do this).
float32 follows ``torch.backends.cuda.matmul.allow_tf32`` as torch's own matmul does.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from prismkit.ops.sae.checks import (
    check_bandwidth,
    check_capacity,
    check_capacity_values,
    check_encode_args,
    check_k,
    check_threshold,
)
from prismkit.triton_kernels.launch import input_precision, on_device

__all__ = [
    "topk_encode",
    "batch_topk_encode",
    "feature_choice_encode",
    "threshold_encode",
    "jumprelu_encode",
    "latent_stats",
    "row_topk_keys",
    "decode_keys",
]

FUSED_MAX_CAPACITY = 256  # feature choice: larger capacities take the dense path
MAX_CANDIDATES = 1024  # batch topk: a token needing more candidates takes the dense path
_LOW32 = 0xFFFFFFFF


@triton.jit
def _program_rows_and_columns(R, C, cols_per_split, BLOCK_R: tl.constexpr):
    """This program's rows (block program_id(0)) and column range (split program_id(1)):
    (split, rows, row_ok, rows64, c_begin, c_end). int64 row offsets: a [1M, 4096] dictionary
    overflows int32."""
    split = tl.program_id(1)
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    c_begin = split * cols_per_split
    return split, rows, rows < R, rows.to(tl.int64), c_begin, tl.minimum(c_begin + cols_per_split, C)


@triton.jit
def _preact_tile(a_ptr, b_ptr, bias_ptr, rows64, row_ok, cols, col_ok, D,
                 stride_ar, stride_ad, stride_bc, stride_bd,
                 BIAS_PER_ROW: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
                 BLOCK_D: tl.constexpr, INPUT_PRECISION: tl.constexpr):  # fmt: skip
    """The fp32 [BLOCK_R, BLOCK_C] tile ``A[rows] @ Bm[cols].T + bias`` (bias per row or column)."""
    acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        d_ok = ds < D
        ds64 = ds.to(tl.int64)
        a = tl.load(
            a_ptr + rows64[:, None] * stride_ar + ds64[None, :] * stride_ad,
            mask=row_ok[:, None] & d_ok[None, :],
            other=0.0,
        )
        bt = tl.load(
            b_ptr + cols.to(tl.int64)[None, :] * stride_bc + ds64[:, None] * stride_bd,
            mask=col_ok[None, :] & d_ok[:, None],
            other=0.0,
        )
        acc = tl.dot(a, bt, acc, input_precision=INPUT_PRECISION)
    if BIAS_PER_ROW:
        acc += tl.load(bias_ptr + rows64, mask=row_ok, other=0.0).to(tl.float32)[:, None]
    else:
        acc += tl.load(bias_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    return acc


@triton.jit
def _row_topk_kernel(
    a_ptr,
    b_ptr,
    bias_ptr,
    keys_ptr,
    R,
    C,
    D,
    cols_per_split,
    num_splits,
    stride_ar,
    stride_ad,
    stride_bc,
    stride_bd,
    BIAS_PER_ROW: tl.constexpr,
    K: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_D: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    split, rows, row_ok, rows64, c_begin, c_end = _program_rows_and_columns(R, C, cols_per_split, BLOCK_R)
    slots = tl.arange(0, K)
    best = tl.full((BLOCK_R, K), -1, tl.int64)
    kth = tl.full((BLOCK_R,), -1, tl.int64)
    for c0 in range(c_begin, c_end, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        col_ok = cols < c_end
        acc = _preact_tile(a_ptr, b_ptr, bias_ptr, rows64, row_ok, cols, col_ok, D,
                           stride_ar, stride_ad, stride_bc, stride_bd,
                           BIAS_PER_ROW, BLOCK_R, BLOCK_C, BLOCK_D, INPUT_PRECISION)  # fmt: skip
        bits = tl.where(acc > 0, acc, 0.0).to(tl.int32, bitcast=True)
        bits = tl.where(acc != acc, 0x7FC00000, bits)  # NaN: canonical, ranks above +inf
        key = (bits.to(tl.int64) << 32) | (4294967295 - cols.to(tl.int64))[None, :]  # 2**32 - 1 - column
        key = tl.where(col_ok[None, :], key, -1)
        # Merge only when some row of this tile beats that row's current K-th key (after the
        # first tiles, rarely). The merge extracts the K largest keys one at a time with max
        # reductions; keys are unique within a row, so each step removes exactly one.
        beats = (tl.max(key, 1) > kth).to(tl.int32)
        if tl.max(beats, 0) > 0:
            old = best
            best = tl.full((BLOCK_R, K), -1, tl.int64)
            for i in range(K):
                top = tl.maximum(tl.max(old, 1), tl.max(key, 1))[:, None]
                best = tl.where(slots[None, :] == i, top, best)
                old = tl.where(old == top, -1, old)
                key = tl.where(key == top, -1, key)
            kth = tl.min(best, 1)
    out = keys_ptr + rows64[:, None] * (num_splits * K) + split * K + slots[None, :]
    tl.store(out, best, mask=row_ok[:, None])


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _num_programs_target(device: torch.device) -> int:
    if device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 2  # interpreter: few programs keep it fast


def row_topk_keys(A, Bm, bias, bias_per_row: bool, K: int):
    """Per row of A, the best K packed keys of ``relu(A @ Bm.T + bias)`` (best first, -1 where
    there are fewer than K columns). A [R, D], Bm [C, D] (any strides), bias [R] or [C]. K a power
    of two."""
    R, D = A.shape
    C = Bm.shape[0]
    if R == 0 or C == 0:
        return torch.full((R, K), -1, dtype=torch.long, device=A.device)
    bias = bias.contiguous()
    on_gpu = A.device.type == "cuda"
    # GPU tiles feed the tensor cores; the interpreter wants few, small programs.
    block_r = (32 if K >= 256 else 64) if on_gpu else (16 if K >= 256 else 32)
    block_c, block_d = 128, 64 if on_gpu else 32
    row_blocks, splits, cols_per_split = _sweep_geometry(R, C, A.device, block_r, block_c)
    keys = torch.empty(R, splits, K, dtype=torch.long, device=A.device)
    with on_device(A):
        _row_topk_kernel[(row_blocks, splits)](
            A, Bm, bias, keys, R, C, D, cols_per_split, splits,
            A.stride(0), A.stride(1), Bm.stride(0), Bm.stride(1),
            BIAS_PER_ROW=bias_per_row, K=K, BLOCK_R=block_r, BLOCK_C=block_c, BLOCK_D=block_d,
            INPUT_PRECISION=input_precision(A), num_warps=8 if on_gpu else 4,
        )  # fmt: skip
    keys = keys.view(R, splits * K)
    return keys if splits == 1 else keys.topk(K, dim=1).values


def decode_keys(keys):
    """(values float32, column int64, valid bool) of packed keys."""
    valid = keys >= 0
    values = (keys >> 32).to(torch.int32).view(torch.float32)
    return values, _LOW32 - (keys & _LOW32), valid


def relu_rows_fp32(A, Bm, bias, bias_per_row: bool):
    """Dense ``relu(A @ Bm.T + bias)`` in float32, [R, C], over column chunks (the paths for the
    rare rows that need more candidates than the fused kernel keeps)."""
    R, C = A.shape[0], Bm.shape[0]
    out = torch.empty(R, C, dtype=torch.float32, device=A.device)
    A32, bias32 = A.float(), bias.float()
    step = max(1, (1 << 24) // max(R, 1))
    for c0 in range(0, C, step):
        b = bias32[:, None] if bias_per_row else bias32[c0 : c0 + step]
        out[:, c0 : c0 + step] = torch.relu(torch.addmm(b, A32, Bm[c0 : c0 + step].float().T))
    return out


def _best_by_value_then_flat(values, tokens, latents, budget: int, F: int):
    """Positions of the ``budget`` best candidates: larger value first (NaN first), ties to the
    lower flat index token * F + latent (a stable sort by value of the flat-ordered list)."""
    by_flat = torch.argsort(tokens * F + latents)
    by_value = torch.sort(values[by_flat], descending=True, stable=True).indices
    return by_flat[by_value[:budget]]


def _row_compressed(tokens, latents, values, dtype, B: int, F: int):
    """Row-compressed layout of (token, latent, value) triples, latents ascending per token.
    Values are cast to the output dtype; one that rounds to 0 there is dropped, so every kept
    entry stays positive (and keeps its gradient)."""
    values = values.to(dtype)
    keep = ~(values <= 0)
    tokens, latents, values = tokens[keep], latents[keep], values[keep]
    order = torch.argsort(tokens * F + latents)
    counts = torch.bincount(tokens, minlength=B)
    offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return values[order], latents[order], offsets


def topk_encode(x, W_enc, b_enc, k: int):
    """prismkit::topk_encode for CUDA tensors (see python/prismkit/ops/sae/__init__.py)."""
    op = "topk_encode"
    _, _, F = check_encode_args(op, x, W_enc, b_enc)
    check_k(op, k, F)
    keys = row_topk_keys(x, W_enc, b_enc, False, _next_pow2(k))[:, :k]
    values, indices, _ = decode_keys(keys)
    return values.to(x.dtype), indices


def batch_topk_encode(x, W_enc, b_enc, k: int):
    """prismkit::batch_topk_encode for CUDA tensors."""
    op = "batch_topk_encode"
    B, _, F = check_encode_args(op, x, W_enc, b_enc)
    check_k(op, k, F)
    tokens_all = torch.arange(B, device=x.device)
    dense = torch.zeros(B, dtype=torch.bool, device=x.device)  # tokens whose whole row is a candidate
    dense_parts = []
    K, keys_K = _next_pow2(min(F, 4 * k)), None
    while True:
        cap = min(K, F)
        if keys_K != K:
            values, latents, valid = decode_keys(row_topk_keys(x, W_enc, b_enc, False, K)[:, :cap])
            keys_K = K
        keep = valid & ~(values <= 0) & ~dense[:, None]
        tok = tokens_all[:, None].expand(B, cap)
        t, l, v = (torch.cat(p) for p in zip((tok[keep], latents[keep], values[keep]), *dense_parts, strict=True))
        chosen = _best_by_value_then_flat(v, t, l, k * B, F)
        counts = torch.bincount(t[chosen], minlength=B)
        # A token whose candidates were all chosen may have more entries that belong to the
        # answer (see csrc/sae/batch_topk_encode_cpu.cpp): widen its candidates and redo.
        saturated = (counts == cap) & ~dense
        if cap >= F or not bool(saturated.any()):
            break
        if 2 * K <= MAX_CANDIDATES:
            K *= 2
        else:  # past what the kernel holds in registers: take those tokens' whole rows
            ids = saturated.nonzero().flatten()
            acts = relu_rows_fp32(x[ids], W_enc, b_enc, False)
            r, lat = (~(acts <= 0)).nonzero(as_tuple=True)
            dense_parts.append((ids[r], lat, acts[r, lat]))
            dense[ids] = True
    return _row_compressed(t[chosen], l[chosen], v[chosen], x.dtype, B, F)


def feature_choice_encode(x, W_enc, b_enc, capacity, fused_max_capacity: int = FUSED_MAX_CAPACITY):
    """prismkit::feature_choice_encode for CUDA tensors."""
    op = "feature_choice_encode"
    B, _, F = check_encode_args(op, x, W_enc, b_enc)
    check_capacity(op, capacity, x, F)
    check_capacity_values(op, capacity)
    cap = capacity.clamp(max=B)
    small = cap <= fused_max_capacity
    parts = []
    if bool((small & (cap > 0)).any()):
        K = _next_pow2(int(cap[small].max()))
        values, tokens, valid = decode_keys(row_topk_keys(W_enc, x, b_enc, True, K)[:, : min(K, B)])
        rank = torch.arange(values.shape[1], device=x.device)
        keep = (rank[None, :] < cap[:, None]) & small[:, None] & valid & ~(values <= 0)
        lat, r = keep.nonzero(as_tuple=True)
        parts.append((tokens[lat, r], lat, values[lat, r]))
    large = (~small).nonzero().flatten()
    chunk = max(1, (1 << 24) // max(B, 1))  # bound the dense [latents, B] block to 16M entries
    for start in range(0, large.numel(), chunk):
        ids = large[start : start + chunk]
        order = torch.sort(relu_rows_fp32(W_enc[ids], x, b_enc[ids], True), dim=1, descending=True, stable=True)
        rank = torch.arange(B, device=x.device)
        keep = (rank[None, :] < cap[ids, None]) & ~(order.values <= 0)
        i, r = keep.nonzero(as_tuple=True)
        parts.append((order.indices[i, r], ids[i], order.values[i, r]))
    if not parts:
        empty = torch.empty(0, dtype=torch.long, device=x.device)
        return x.new_empty(0), empty, torch.zeros(B + 1, dtype=torch.long, device=x.device)
    tokens, latents, values = (torch.cat(p) for p in zip(*parts, strict=True))
    return _row_compressed(tokens, latents, values, x.dtype, B, F)


# --------------------------------------------------------------------------------------------
# threshold_encode and latent_stats: one sweep over the pre-activation tiles each.
# --------------------------------------------------------------------------------------------


@triton.jit
def _threshold_kernel(
    a_ptr, b_ptr, bias_ptr, thr_ptr, counts_ptr, starts_ptr, values_ptr, indices_ptr, window_ptr, half_window,
    R, C, D, cols_per_split, num_splits, stride_ar, stride_ad, stride_bc, stride_bd,
    WRITE: tl.constexpr, WINDOW: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
    BLOCK_D: tl.constexpr, INPUT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Rows = tokens, columns = latents. Pass 1 (WRITE=False) counts each (row, split)'s listed
    entries; pass 2 recomputes the tiles and writes them at ``starts[row, split]`` onwards, the
    position of each inside its tile given by a running sum along the row (latents ascending).
    WINDOW (jumprelu_encode): entries with -half_window < z - theta < half_window are listed too,
    with value 0 unless kept, and flagged in ``window_ptr``."""
    split, rows, row_ok, rows64, c_begin, c_end = _program_rows_and_columns(R, C, cols_per_split, BLOCK_R)
    slot = rows64 * num_splits + split
    if WRITE:
        at = tl.load(starts_ptr + slot, mask=row_ok, other=0)
        # Pass 1's count bounds the writes, should a recomputed tile ever round differently.
        end = at + tl.load(counts_ptr + slot, mask=row_ok, other=0)
    else:
        at = tl.zeros((BLOCK_R,), dtype=tl.int64)
    for c0 in range(c_begin, c_end, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        col_ok = cols < c_end
        z = _preact_tile(a_ptr, b_ptr, bias_ptr, rows64, row_ok, cols, col_ok, D,
                         stride_ar, stride_ad, stride_bc, stride_bd,
                         False, BLOCK_R, BLOCK_C, BLOCK_D, INPUT_PRECISION)  # fmt: skip
        theta = tl.load(thr_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
        drop = (z <= theta[None, :]) | (z <= 0)
        in_range = col_ok[None, :] & row_ok[:, None]
        keep = (drop == 0) & in_range  # NaN is kept
        if WINDOW:
            gap = z - theta[None, :]
            window = (gap > -half_window) & (gap < half_window) & in_range
            listed = keep | window
        else:
            listed = keep
        k64 = listed.to(tl.int64)
        if WRITE:
            pos = at[:, None] + tl.cumsum(k64, axis=1) - 1
            ok = listed & (pos < end[:, None])
            tl.store(values_ptr + pos, tl.where(keep, z, 0.0), mask=ok)
            tl.store(indices_ptr + pos, cols.to(tl.int64)[None, :] + tl.zeros_like(pos), mask=ok)
            if WINDOW:
                tl.store(window_ptr + pos, window.to(tl.int8), mask=ok)
        at += tl.sum(k64, axis=1)
    if not WRITE:
        tl.store(counts_ptr + slot, at, mask=row_ok)


@triton.jit
def _latent_stats_kernel(
    a_ptr, b_ptr, bias_ptr, thr_ptr, count_ptr, max_ptr, nan_ptr,
    R, C, D, cols_per_split, num_splits, stride_ar, stride_ad, stride_bc, stride_bd,
    HAS_THRESHOLD: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Rows = latents (A = W_enc, bias per row), columns = tokens: per (latent, split) the count
    above threshold, the max of the non-NaN pre-activations and whether any was NaN."""
    split, rows, row_ok, rows64, c_begin, c_end = _program_rows_and_columns(R, C, cols_per_split, BLOCK_R)
    if HAS_THRESHOLD:
        theta = tl.load(thr_ptr + rows64, mask=row_ok, other=0.0).to(tl.float32)
    else:
        theta = tl.zeros((BLOCK_R,), dtype=tl.float32)
    count = tl.zeros((BLOCK_R,), dtype=tl.int64)
    best = tl.full((BLOCK_R,), float("-inf"), tl.float32)
    nan = tl.zeros((BLOCK_R,), dtype=tl.int32)
    for c0 in range(c_begin, c_end, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        col_ok = cols < c_end
        z = _preact_tile(a_ptr, b_ptr, bias_ptr, rows64, row_ok, cols, col_ok, D,
                         stride_ar, stride_ad, stride_bc, stride_bd,
                         True, BLOCK_R, BLOCK_C, BLOCK_D, INPUT_PRECISION)  # fmt: skip
        count += tl.sum(((z > theta[:, None]) & col_ok[None, :]).to(tl.int64), axis=1)
        is_nan = (z != z) & col_ok[None, :]
        nan = tl.maximum(nan, tl.max(is_nan.to(tl.int32), axis=1))
        best = tl.maximum(best, tl.max(tl.where(col_ok[None, :] & ~is_nan, z, float("-inf")), axis=1))
    slot = rows64 * num_splits + split
    tl.store(count_ptr + slot, count, mask=row_ok)
    tl.store(max_ptr + slot, best, mask=row_ok)
    tl.store(nan_ptr + slot, nan, mask=row_ok)


def _sweep_geometry(R: int, C: int, device: torch.device, block_r: int, block_c: int):
    """(row_blocks, splits, cols_per_split): enough programs to fill the device (a few under the
    interpreter), columns split in multiples of block_c."""
    col_blocks = triton.cdiv(C, block_c)
    row_blocks = triton.cdiv(R, block_r)
    splits = max(1, min(col_blocks, triton.cdiv(_num_programs_target(device), row_blocks)))
    cols_per_split = triton.cdiv(col_blocks, splits) * block_c
    return row_blocks, triton.cdiv(C, cols_per_split), cols_per_split


def _tile_sizes(device: torch.device):
    on_gpu = device.type == "cuda"
    return (64, 128, 64, 8) if on_gpu else (16, 64, 32, 4)  # block_r, block_c, block_d, warps


def _threshold_rows(op, x, W_enc, b_enc, threshold, bandwidth=None):
    """threshold_encode (bandwidth None) and jumprelu_encode: two passes, count then write.
    Returns (values, indices, offsets, in_window or None)."""
    B, D, F = check_encode_args(op, x, W_enc, b_enc)
    check_threshold(op, threshold, x, F)
    window = bandwidth is not None
    if window:
        check_bandwidth(op, bandwidth)
    offsets = torch.zeros(B + 1, dtype=torch.long, device=x.device)
    if B == 0 or F == 0:
        flags = offsets.new_empty(0, dtype=torch.bool) if window else None
        return x.new_empty(0), offsets.new_empty(0), offsets, flags
    block_r, block_c, block_d, warps = _tile_sizes(x.device)
    row_blocks, splits, cols_per_split = _sweep_geometry(B, F, x.device, block_r, block_c)
    counts = torch.empty(B, splits, dtype=torch.long, device=x.device)
    starts = torch.empty_like(counts)
    thr = threshold.contiguous()
    args = (x, W_enc, b_enc.contiguous(), thr, counts, starts)
    half_window = float(bandwidth) / 2 if window else 0.0
    strides = (B, F, D, cols_per_split, splits, x.stride(0), x.stride(1), W_enc.stride(0), W_enc.stride(1))
    meta = dict(WINDOW=window, BLOCK_R=block_r, BLOCK_C=block_c, BLOCK_D=block_d,
                INPUT_PRECISION=input_precision(x), num_warps=warps)  # fmt: skip
    flags = None
    with on_device(x):
        _threshold_kernel[(row_blocks, splits)](*args, counts, counts, counts, half_window, *strides, WRITE=False,
                                                **meta)  # fmt: skip
        ends = counts.view(-1).cumsum(0)  # (row, split) slots in row-major order: the output order
        starts.view(-1).copy_(ends - counts.view(-1))
        offsets[1:] = ends.view(B, splits)[:, -1]
        nnz = int(offsets[-1])
        values = torch.zeros(nnz, dtype=x.dtype, device=x.device)
        indices = torch.zeros(nnz, dtype=torch.long, device=x.device)
        flags = torch.zeros(nnz, dtype=torch.int8, device=x.device) if window else None
        if nnz:
            _threshold_kernel[(row_blocks, splits)](*args, values, indices, flags if window else indices, half_window,
                                                    *strides, WRITE=True, **meta)  # fmt: skip
    return values, indices, offsets, flags.bool() if window else None


def threshold_encode(x, W_enc, b_enc, threshold):
    """prismkit::threshold_encode for CUDA tensors (two passes: count, then write)."""
    return _threshold_rows("threshold_encode", x, W_enc, b_enc, threshold)[:3]


def jumprelu_encode(x, W_enc, b_enc, threshold, bandwidth):
    """prismkit::jumprelu_encode for CUDA tensors: threshold_encode's sweep with the window."""
    return _threshold_rows("jumprelu_encode", x, W_enc, b_enc, threshold, bandwidth)


def latent_stats(x, W_enc, b_enc, threshold=None):
    """prismkit::latent_stats for CUDA tensors (per-split partials, reduced in a fixed order)."""
    op = "latent_stats"
    B, D, F = check_encode_args(op, x, W_enc, b_enc)
    if threshold is not None:
        check_threshold(op, threshold, x, F)
    if B == 0 or F == 0:
        return torch.zeros(F, dtype=torch.long, device=x.device), torch.full_like(b_enc, float("-inf"))
    block_r, block_c, block_d, warps = _tile_sizes(x.device)
    row_blocks, splits, cols_per_split = _sweep_geometry(F, B, x.device, block_r, block_c)
    count = torch.empty(F, splits, dtype=torch.long, device=x.device)
    best = torch.empty(F, splits, dtype=torch.float32, device=x.device)
    nan = torch.empty(F, splits, dtype=torch.int32, device=x.device)
    thr = threshold.contiguous() if threshold is not None else b_enc
    with on_device(x):
        _latent_stats_kernel[(row_blocks, splits)](
            W_enc, x, b_enc.contiguous(), thr, count, best, nan,
            F, B, D, cols_per_split, splits, W_enc.stride(0), W_enc.stride(1), x.stride(0), x.stride(1),
            HAS_THRESHOLD=threshold is not None, BLOCK_R=block_r, BLOCK_C=block_c, BLOCK_D=block_d,
            INPUT_PRECISION=input_precision(x), num_warps=warps,
        )  # fmt: skip
    maximum = best.amax(1).masked_fill(nan.amax(1) > 0, float("nan"))
    return count.sum(1), maximum.to(x.dtype)
