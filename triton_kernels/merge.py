"""Triton kernels of the merge core; the registry entry in python/prismkit/ops/merge/__init__.py
registers them for CUDA tensors.

* token_merge: the launcher lists each slot's tokens in index order (a stable sort of dest, per
  image), then one program per (image, slot, block of channels) reduces its slot's tokens in that
  order in float32 (no atomics: bit-identical from run to run).

* pitome_energy: one program per (image, block of rows) normalizes its rows, then walks the
  columns a block at a time: similarities by ``tl.dot`` (IEEE float32, so the plan decisions match
  the CPU kernel's), the energy kernel, row sums; never a T x T matrix.
* merge_plan: the energy above, the ordering and the A/B split with torch ops on the device (the
  reference's steps, prismkit/reference/merge.py: torch's stable sort, since Triton has no stable
  sort), then the matching in one kernel: one program per (image, block of A tokens) gathers its A
  rows and walks the B tokens a block at a time (``tl.dot``), keeping each row's best similarity and
  its first B position; no r x r matrix. ToMe's plan uses the same matching kernel.
* divprune_select: torch ops on the device, batched over images: the nearest neighbours from the
  similarities 256 rows at a time, then one batched product per pick for the running minimum.

Kernels run on CUDA tensors, and on CPU tensors under ``TRITON_INTERPRET=1`` (the tests do this).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from prismkit.ops.merge.checks import (
    check_divprune_select_args,
    check_merge_plan_args,
    check_pitome_energy_args,
    check_token_merge_args,
    check_token_merge_values,
)
from prismkit.reference import merge as reference
from prismkit.triton_kernels.launch import on_device

__all__ = ["divprune_select", "merge_plan", "pitome_energy", "token_merge"]

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


KERNEL_CODES = {"elu": 0, "gaussian": 1, "paper": 2}
ENERGY_BLOCK = 32  # rows and columns per tile (tl.dot needs at least 16)
ENERGY_BLOCK_D = 32


@triton.jit
def _dots_tile(base, row_tok, r_ok, col_tok, c_ok, D, BLOCK: tl.constexpr, BLOCK_D: tl.constexpr):
    """[BLOCK, BLOCK] float32: the dot products of tokens row_tok with tokens col_tok of one image's
    rows (base: [T, D] row-major), BLOCK_D channels at a time, IEEE float32 (so the plans decide as
    the CPU kernel does); masked tokens give 0."""
    s = tl.zeros((BLOCK, BLOCK), tl.float32)
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        d_ok = ds < D
        a = tl.load(base + row_tok[:, None] * D + ds[None, :], mask=r_ok[:, None] & d_ok[None, :], other=0.0)
        bt = tl.load(base + col_tok[None, :] * D + ds[:, None], mask=c_ok[None, :] & d_ok[:, None], other=0.0)
        s += tl.dot(a.to(tl.float32), bt.to(tl.float32), input_precision="ieee")
    return s


@triton.jit
def _energy_kernel(m_ptr, inv_ptr, out_ptr, T, D, margin, alpha, scale, KERNEL: tl.constexpr, BLOCK: tl.constexpr,
                   BLOCK_D: tl.constexpr):  # fmt: skip
    b = tl.program_id(1).to(tl.int64)
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    r_ok = rows < T
    base = m_ptr + b * T * D
    inv_r = tl.load(inv_ptr + b * T + rows, mask=r_ok, other=0.0)
    acc = tl.zeros((BLOCK,), tl.float32)
    for j0 in range(0, T, BLOCK):
        cols = j0 + tl.arange(0, BLOCK)
        c_ok = cols < T
        s = _dots_tile(base, rows, r_ok, cols, c_ok, D, BLOCK, BLOCK_D)
        inv_c = tl.load(inv_ptr + b * T + cols, mask=c_ok, other=0.0)
        s = s * inv_r[:, None] * inv_c[None, :]
        if KERNEL == 0:
            x = s - margin
            f = tl.where(x > 0, x, alpha * (tl.exp(x) - 1.0))
        elif KERNEL == 1:
            z = (1.0 - s) / (1.0 - margin)
            f = tl.exp(-0.5 * z * z)
        else:
            f = tl.where(s >= margin, s, alpha * (tl.exp(s - margin) - 1.0))
        acc += tl.sum(tl.where(c_ok[None, :], f, 0.0), axis=1)
    tl.store(out_ptr + b * T + rows, acc * scale, mask=r_ok)


def pitome_energy(metric, margin, alpha=1.0, kernel="elu"):
    """prismkit::pitome_energy for CUDA tensors."""
    return _energy_float32(metric, margin, alpha, kernel).to(metric.dtype)


def _energy_float32(metric, margin, alpha=1.0, kernel="elu"):
    """The energy in float32, whatever the metric's dtype (merge_plan ranks these)."""
    B, T = check_pitome_energy_args(metric, margin, alpha, kernel)
    out = torch.empty(B, T, dtype=torch.float32, device=metric.device)
    if B == 0 or T == 0:
        return out
    m = metric.contiguous()
    inv = 1.0 / m.float().norm(dim=-1).clamp_min(1e-12)  # F.normalize's eps
    D = m.shape[2]
    scale = 1.0 / T
    if kernel == "gaussian":
        scale /= (1.0 - margin) * math.sqrt(2 * math.pi)
    with on_device(metric):
        for b0 in range(0, B, MAX_GRID_Y):
            nb = min(MAX_GRID_Y, B - b0)
            _energy_kernel[(triton.cdiv(T, ENERGY_BLOCK), nb)](
                m[b0 : b0 + nb], inv[b0 : b0 + nb].contiguous(), out[b0 : b0 + nb], T, D, float(margin), float(alpha),
                scale, KERNEL=KERNEL_CODES[kernel], BLOCK=ENERGY_BLOCK, BLOCK_D=ENERGY_BLOCK_D,
            )  # fmt: skip
    return out


@triton.jit
def _best_match_kernel(m_ptr, a_ptr, b_ptr, best_ptr, at_ptr, T, D, NA, NB, BLOCK: tl.constexpr,
                       BLOCK_D: tl.constexpr):  # fmt: skip
    b = tl.program_id(1).to(tl.int64)
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    r_ok = rows < NA
    a_tok = tl.load(a_ptr + b * NA + rows, mask=r_ok, other=0)
    base = m_ptr + b * T * D
    best = tl.full((BLOCK,), float("-inf"), tl.float32)
    at = tl.zeros((BLOCK,), tl.int64)
    for j0 in range(0, NB, BLOCK):
        cols = j0 + tl.arange(0, BLOCK)
        c_ok = cols < NB
        b_tok = tl.load(b_ptr + b * NB + cols, mask=c_ok, other=0)
        s = _dots_tile(base, a_tok, r_ok, b_tok, c_ok, D, BLOCK, BLOCK_D)
        s = tl.where(c_ok[None, :] & (s == s), s, float("-inf"))  # padding and NaN never win
        blk = tl.max(s, axis=1)
        # the first column reaching the block's maximum (ties: the lower B position)
        first = tl.min(tl.where(s == blk[:, None], cols[None, :], NB + BLOCK), axis=1).to(tl.int64)
        better = blk > best  # strict: an earlier block keeps its tie
        at = tl.where(better, first, at)
        best = tl.where(better, blk, best)
    tl.store(best_ptr + b * NA + rows, best, mask=r_ok)
    tl.store(at_ptr + b * NA + rows, at, mask=r_ok)


def _best_match(m, a_idx, b_idx):
    """The reference's _best_match (each A token's best similarity to a B token, the first B on
    ties) as one Triton kernel over the normalized rows m [B, T, d] float32."""
    Bn, T, D = m.shape
    NA, NB = a_idx.shape[1], b_idx.shape[1]
    best = torch.full((Bn, NA), float("-inf"), device=m.device)
    at = torch.zeros(Bn, NA, dtype=torch.int64, device=m.device)
    if Bn == 0 or NA == 0 or NB == 0:
        return best, at
    m, a_idx, b_idx = m.contiguous(), a_idx.contiguous(), b_idx.contiguous()
    with on_device(m):
        for b0 in range(0, Bn, MAX_GRID_Y):
            nb = min(MAX_GRID_Y, Bn - b0)
            _best_match_kernel[(triton.cdiv(NA, ENERGY_BLOCK), nb)](
                m[b0 : b0 + nb], a_idx[b0 : b0 + nb], b_idx[b0 : b0 + nb], best[b0 : b0 + nb], at[b0 : b0 + nb],
                T, D, NA, NB, BLOCK=ENERGY_BLOCK, BLOCK_D=ENERGY_BLOCK_D,
            )  # fmt: skip
    return best, at


def merge_plan(metric, r, method, margin=0.9, alpha=1.0, class_token=True, prune=False):
    """prismkit::merge_plan for CUDA tensors: the Triton energy and matching, the reference's steps
    between them."""
    check_merge_plan_args(metric, r, method, margin, alpha, class_token, prune)
    dest, energy = reference.merge_plan(metric, r, method, margin, alpha, class_token, prune,
                                        energy_fn=_energy_float32, match_fn=_best_match)  # fmt: skip
    return dest, energy.to(metric.dtype)


ROW_CHUNK = 256


def divprune_select(metric, k):
    """prismkit::divprune_select for CUDA tensors (and the CPU under the interpreter's tests)."""
    B, N = check_divprune_select_args(metric, k)
    picks = torch.empty(B, k, dtype=torch.int64, device=metric.device)
    if B == 0 or k == 0:
        return picks
    m = F.normalize(metric.float(), p=2, dim=-1)
    nearest = torch.empty(B, N, device=m.device)
    for i0 in range(0, N, ROW_CHUNK):  # the largest similarity to another token, ROW_CHUNK rows at a time
        sim = m[:, i0 : i0 + ROW_CHUNK] @ m.transpose(1, 2)
        rows = torch.arange(i0, min(N, i0 + ROW_CHUNK), device=m.device)
        sim[:, rows - i0, rows] = -math.inf
        nearest[:, i0 : i0 + ROW_CHUNK] = sim.amax(-1)
    running = 1 - nearest
    chosen = torch.zeros(B, N, dtype=torch.bool, device=m.device)
    batch = torch.arange(B, device=m.device)
    for step in range(k):
        # distances are >= 0 up to rounding: NaN ranks below every number, picked tokens below NaN
        p = running.nan_to_num(nan=-2.0).masked_fill(chosen, -3.0).argmax(-1)
        picks[:, step] = p
        chosen[batch, p] = True
        dist = 1 - (m @ m[batch, p][:, :, None])[..., 0]
        running = dist if step == 0 else torch.minimum(running, dist)
    return picks.sort(-1).values
