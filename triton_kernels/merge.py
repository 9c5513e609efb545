"""Triton kernels of the merge core; the registry entry in python/prismkit/ops/merge/__init__.py
registers them for CUDA tensors.

* token_merge: the launcher lists each slot's tokens in index order (a stable sort of dest, per
  image), then one program per (image, slot, block of channels) reduces its slot's tokens in that
  order in float32 (no atomics: bit-identical from run to run).

Kernels run on CUDA tensors, and on CPU tensors under ``TRITON_INTERPRET=1`` (the tests do this).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from prismkit.ops.merge.checks import check_token_merge_args, check_token_merge_values
from prismkit.triton_kernels.launch import on_device

__all__ = ["token_merge"]

BLOCK_C = 128
MAX_GRID_Y = 65535  # CUDA's limit on a grid's y (and z) axis
REDUCE_CODES = {"wavg": 0, "mean": 1, "sum": 2, "amax": 3}


@triton.jit
def _token_merge_kernel(x_ptr, size_ptr, members_ptr, start_ptr, out_ptr, size_out_ptr, N, C, num_out, slot0, b0,
                        HAS_SIZE: tl.constexpr, REDUCE: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
    b = b0 + tl.program_id(2).to(tl.int64)
    o = slot0 + tl.program_id(1)
    cs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    c_ok = cs < C
    a = tl.load(start_ptr + b * (num_out + 1) + o)
    e = tl.load(start_ptr + b * (num_out + 1) + o + 1)
    if REDUCE == 3:
        acc = tl.full((BLOCK,), float("-inf"), tl.float32)
    else:
        acc = tl.zeros((BLOCK,), tl.float32)
    total = 0.0
    for m in range(a, e):
        i = tl.load(members_ptr + b * N + m)
        s = 1.0
        if HAS_SIZE:
            s = tl.load(size_ptr + b * N + i).to(tl.float32)
        total += s
        row = tl.load(x_ptr + (b * N + i) * C + cs, mask=c_ok, other=0.0).to(tl.float32)
        if REDUCE == 3:
            acc = tl.maximum(acc, row, propagate_nan=tl.PropagateNan.ALL)  # NaN propagates, as in torch
        elif REDUCE == 0:
            acc += s * row
        else:
            acc += row
    count = e - a
    if REDUCE == 3:
        acc = tl.where(count > 0, acc, 0.0)
    elif REDUCE == 0:  # (a slot without tokens: 0, never a division by zero)
        acc = acc * tl.where(count > 0, 1.0 / tl.where(count > 0, total, 1.0), 0.0)
    elif REDUCE == 1:
        acc = acc * tl.where(count > 0, 1.0 / tl.maximum(count, 1).to(tl.float32), 0.0)
    tl.store(out_ptr + (b * num_out + o) * C + cs, acc.to(out_ptr.dtype.element_ty), mask=c_ok)
    if tl.program_id(0) == 0:
        tl.store(size_out_ptr + b * num_out + o, total.to(size_out_ptr.dtype.element_ty))


def token_merge(x, size, dest, num_out, reduce="wavg"):
    """prismkit::token_merge for CUDA tensors."""
    B, N, C = check_token_merge_args(x, size, dest, num_out, reduce)
    check_token_merge_values(size, dest, num_out)
    out = torch.empty(B, num_out, C, dtype=x.dtype, device=x.device)
    size_out = torch.empty(B, num_out, 1, dtype=x.dtype, device=x.device)
    if B == 0 or num_out == 0:
        return out, size_out
    # each slot's tokens in index order: dropped tokens (-1) sort first and are skipped by the offsets
    members = torch.sort(dest, dim=1, stable=True).indices.contiguous()
    counts = torch.zeros(B, num_out + 1, dtype=torch.int64, device=x.device)
    counts.scatter_add_(1, (dest + 1).clamp_min(0), torch.ones_like(dest))
    # [B, num_out + 1]: slot o's tokens are members[start[o]:start[o + 1]] (the dropped ones come first)
    start = counts.cumsum(1)
    xc = x.contiguous()
    s_arg = size.contiguous() if size is not None else xc
    start = start.contiguous()
    with on_device(x):
        for b0 in range(0, B, MAX_GRID_Y):  # images and slots on the grid's z and y axes, 65535 per launch
            for slot0 in range(0, num_out, MAX_GRID_Y):
                grid = (triton.cdiv(C, BLOCK_C) if C else 1, min(MAX_GRID_Y, num_out - slot0), min(MAX_GRID_Y, B - b0))
                _token_merge_kernel[grid](
                    xc, s_arg, members, start, out, size_out, N, C, num_out, slot0, b0,
                    HAS_SIZE=size is not None, REDUCE=REDUCE_CODES[reduce], BLOCK=BLOCK_C,
                )  # fmt: skip
    return out, size_out
