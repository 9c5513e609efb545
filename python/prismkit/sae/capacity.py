"""Feature Choice capacity policies: how a batch's budget of k*B (token, latent) entries is split
over the latents, as the ``capacity`` argument of ``prismkit.ops.sae.feature_choice_encode``."""

from __future__ import annotations

import torch
from torch import Tensor


def equal_capacity(num_latents: int, k: int, batch_size: int, device=None) -> Tensor:
    """Feature Choice capacities with the budget k*B spread evenly: floor(k*B/F) each, plus one for
    the first (k*B mod F) latents, so they sum to k*B. Returns [F] int64."""
    if num_latents <= 0 or k <= 0 or batch_size < 0:
        raise ValueError(
            f"equal_capacity: need num_latents > 0, k > 0, batch_size >= 0, got {num_latents}, {k}, {batch_size}"
        )
    budget = k * batch_size
    cap = torch.full((num_latents,), budget // num_latents, dtype=torch.long)
    cap[: budget % num_latents] += 1
    return cap.to(device) if device is not None else cap


def zipf_capacity(num_latents: int, k: int, batch_size: int, exponent: float = 1.0, device=None) -> Tensor:
    """Zipf-shaped Feature Choice capacities: latent j (0-based) gets a share proportional to
    ``1 / (j + 1) ** exponent`` of the budget k*B, no latent more than B (the excess is spread over
    the others in the same proportions), rounded by largest remainder so they sum to exactly
    min(k*B, F*B). Latent 0 gets the most; permute the result to give the head to other latents.
    Returns [F] int64."""
    if num_latents <= 0 or k <= 0 or batch_size < 0 or exponent < 0:
        raise ValueError(
            "zipf_capacity: need num_latents > 0, k > 0, batch_size >= 0, exponent >= 0, got "
            f"{num_latents}, {k}, {batch_size}, {exponent}"
        )
    budget = min(k * batch_size, num_latents * batch_size)
    weight = torch.arange(1, num_latents + 1, dtype=torch.float64).pow(-exponent)
    share = torch.zeros(num_latents, dtype=torch.float64)
    full = torch.zeros(num_latents, dtype=torch.bool)
    while True:  # water-filling: latents whose share exceeds B are fixed at B
        left = budget - batch_size * int(full.sum())
        free_weight = weight.masked_fill(full, 0)
        share = torch.where(full, float(batch_size), free_weight * (left / free_weight.sum()))
        over = (share > batch_size) & ~full
        if not bool(over.any()):
            break
        full |= over
    cap = share.floor().long()
    missing = budget - int(cap.sum())
    if missing > 0:
        remainder = (share - cap).masked_fill(cap >= batch_size, -1.0)
        cap[torch.argsort(remainder, descending=True, stable=True)[:missing]] += 1
    return cap.to(device) if device is not None else cap
