"""Dense PyTorch references of the SAE ops (python/prismkit/ops/sae/__init__.py states the semantics).

Each one materializes the [B, F] matrix ``a = relu(x @ W_enc.T + b_enc)`` and selects with a
stable sort, which gives the ties to the lower index and puts NaN first, exactly the ops' rule.
They are differentiable through ordinary autograd (the selected values are gathered from ``a``),
so their gradients are the oracle for the ops' sparse backward.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def pre_activations(x: Tensor, W_enc: Tensor, b_enc: Tensor) -> Tensor:
    """``relu(x @ W_enc.T + b_enc)``, [B, F]."""
    return torch.relu(F.linear(x, W_enc, b_enc))


def _row_compressed(acts: Tensor, selected: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Row-compressed layout of the True entries of ``selected`` (token-major, latents ascending)."""
    rows, latents = selected.nonzero(as_tuple=True)
    counts = torch.bincount(rows, minlength=acts.shape[0])
    offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return acts[rows, latents], latents, offsets


def _positive(acts: Tensor) -> Tensor:
    """Kept entries: positive ones, and NaN (which ranks first)."""
    return ~(acts <= 0)


def topk_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int) -> tuple[Tensor, Tensor]:
    acts = pre_activations(x, W_enc, b_enc)
    indices = torch.sort(acts, dim=1, descending=True, stable=True).indices[:, :k]
    return acts.gather(1, indices), indices


def batch_topk_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    acts = pre_activations(x, W_enc, b_enc)
    B, num_latents = acts.shape
    flat = acts.reshape(-1)
    top = torch.sort(flat, descending=True, stable=True).indices[: k * B]
    selected = torch.zeros(B * num_latents, dtype=torch.bool, device=x.device)
    selected[top] = True
    return _row_compressed(acts, selected.view(B, num_latents) & _positive(acts))


def feature_choice_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, capacity: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    acts = pre_activations(x, W_enc, b_enc)
    B = acts.shape[0]
    order = torch.sort(acts, dim=0, descending=True, stable=True).indices  # tokens by rank, per latent
    rank = torch.empty_like(order).scatter_(0, order, torch.arange(B, device=x.device)[:, None].expand_as(order))
    selected = (rank < capacity.clamp(max=B)[None, :]) & _positive(acts)
    return _row_compressed(acts, selected)


def threshold_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, threshold: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    z = F.linear(x, W_enc, b_enc)
    return _row_compressed(z, ~(z <= threshold[None, :]) & _positive(z))


class _JumpReLUStraightThrough(torch.autograd.Function):
    """a = z 1[kept] with SAELens' straight-through estimator for the threshold, on the dense
    [B, F] matrix: d a / d theta = -(theta / bandwidth) 1[|z - theta| < bandwidth / 2]."""

    @staticmethod
    def forward(ctx, z, threshold, bandwidth):
        kept = ~(z <= threshold[None, :]) & _positive(z)
        ctx.save_for_backward(z, threshold, kept)
        ctx.bandwidth = bandwidth
        return torch.where(kept, z, torch.zeros_like(z))

    @staticmethod
    def backward(ctx, grad):
        z, threshold, kept = ctx.saved_tensors
        window = ((z - threshold[None, :]).abs() < ctx.bandwidth / 2).to(grad.dtype)
        grad_threshold = -(threshold / ctx.bandwidth) * (window * grad).sum(0)
        return torch.where(kept, grad, torch.zeros_like(grad)), grad_threshold, None


def jumprelu_encode(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, threshold: Tensor, bandwidth: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    z = F.linear(x, W_enc, b_enc)
    gap = z - threshold[None, :]
    window = (gap > -bandwidth / 2) & (gap < bandwidth / 2)
    kept = ~(z <= threshold[None, :]) & _positive(z)
    acts = _JumpReLUStraightThrough.apply(z, threshold, bandwidth)
    values, latents, offsets = _row_compressed(acts, kept | window)
    return values, latents, offsets, window[kept | window]


def latent_stats(x: Tensor, W_enc: Tensor, b_enc: Tensor, threshold: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    z = F.linear(x, W_enc, b_enc)
    t = torch.zeros_like(b_enc) if threshold is None else threshold
    if z.shape[0] == 0:
        return torch.zeros_like(b_enc, dtype=torch.long), torch.full_like(b_enc, float("-inf"))
    return (z > t[None, :]).sum(0), z.amax(0)


def to_dense(values: Tensor, indices: Tensor, offsets: Optional[Tensor], num_latents: int) -> Tensor:
    """[B, F] dense code of a sparse one; a latent listed twice in a row holds the sum of its
    values, as the decode ops sum every entry."""
    if offsets is None:
        return values.new_zeros(indices.shape[0], num_latents).scatter_add(1, indices, values)
    rows = torch.repeat_interleave(torch.arange(offsets.shape[0] - 1, device=offsets.device), offsets.diff())
    return values.new_zeros(offsets.shape[0] - 1, num_latents).index_put((rows, indices), values, accumulate=True)


def sparse_decode(
    values: Tensor, indices: Tensor, offsets: Optional[Tensor], W_dec: Tensor, b_dec: Optional[Tensor] = None
) -> Tensor:
    out = to_dense(values, indices, offsets, W_dec.shape[0]) @ W_dec
    return out if b_dec is None else out + b_dec


def _entry_rows(indices: Tensor, offsets: Optional[Tensor]) -> Tensor:
    if offsets is None:
        return torch.arange(indices.shape[0], device=indices.device)[:, None].expand_as(indices)
    return torch.repeat_interleave(torch.arange(offsets.shape[0] - 1, device=offsets.device), offsets.diff())


def sparse_decode_grad_values(grad_out: Tensor, indices: Tensor, offsets: Optional[Tensor], W_dec: Tensor) -> Tensor:
    return (grad_out[_entry_rows(indices, offsets)] * W_dec[indices]).sum(-1)


def sparse_decode_grad_weight(
    grad_out: Tensor, values: Tensor, indices: Tensor, offsets: Optional[Tensor], num_latents: int
) -> tuple[Tensor, Tensor]:
    rows = _entry_rows(indices, offsets).reshape(-1)
    flat_idx, flat_val = indices.reshape(-1), values.reshape(-1)
    grad_weight = grad_out.new_zeros(num_latents, grad_out.shape[1]).index_add(
        0, flat_idx, flat_val[:, None] * grad_out[rows]
    )
    return grad_weight, grad_out.new_zeros(num_latents).index_add(0, flat_idx, flat_val)


def sparse_decode_backward(
    grad_out: Tensor, values: Tensor, indices: Tensor, offsets: Optional[Tensor], W_dec: Tensor
) -> tuple[Tensor, Tensor]:
    return (
        sparse_decode_grad_values(grad_out, indices, offsets, W_dec),
        sparse_decode_grad_weight(grad_out, values, indices, offsets, W_dec.shape[0])[0],
    )


# ---- The plain-PyTorch way, as users write it today (benchmark and demo baselines) ---------
# torch.topk instead of a stable sort: faster, with unspecified order among ties.


def dense_topk(x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int) -> Tensor:
    """TopK code as a dense [B, F] matrix: ``relu(linear)``, ``topk``, scatter."""
    acts = pre_activations(x, W_enc, b_enc)
    values, indices = acts.topk(k, dim=1, sorted=False)
    return torch.zeros_like(acts).scatter(1, indices, values)


def dense_batch_topk(x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int) -> Tensor:
    """BatchTopK code as a dense [B, F] matrix: top k*B of the flattened batch."""
    acts = pre_activations(x, W_enc, b_enc)
    values, indices = acts.flatten().topk(k * acts.shape[0], sorted=False)
    return torch.zeros_like(acts).flatten().scatter(0, indices, values).view_as(acts)


def dense_feature_choice(x: Tensor, W_enc: Tensor, b_enc: Tensor, capacity: Tensor) -> Tensor:
    """Feature Choice code as a dense [B, F] matrix: ``topk`` down each latent's column up to the
    largest capacity, masked to each latent's own capacity."""
    acts = pre_activations(x, W_enc, b_enc)
    cap = capacity.clamp(max=acts.shape[0])
    m = int(cap.max())
    values, indices = acts.topk(m, dim=0, sorted=True)
    keep = torch.arange(m, device=x.device)[:, None] < cap[None, :]
    return torch.zeros_like(acts).scatter(0, indices, values * keep)
