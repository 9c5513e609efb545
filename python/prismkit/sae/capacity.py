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
    return zipf_split(num_latents, min(k * batch_size, num_latents * batch_size), batch_size, exponent, device)


def zipf_split(num_latents: int, budget: int, limit: int, exponent: float = 1.0, device=None) -> Tensor:
    """``budget`` entries split over the latents in shares proportional to ``1 / (j + 1) **
    exponent``, none above ``limit`` (budget <= num_latents * limit), rounded by largest remainder
    to sum to ``budget``: ``zipf_capacity`` with budget k*B and limit B. Returns [F] int64."""
    if budget > num_latents * limit or budget < 0:
        raise ValueError(f"zipf_split: need 0 <= budget <= num_latents * limit, got {budget}, {num_latents}, {limit}")
    weight = torch.arange(1, num_latents + 1, dtype=torch.float64).pow(-exponent)
    # Water-filling without data-dependent Python control flow (so torch.compile traces it): the
    # weights decrease, so the latents fixed at the limit L are a prefix, the shortest one n after which the
    # next latent's share of what is left, w_n * (budget - n*L) / sum_{i>=n} w_i, fits in L.
    suffix = weight.flip(0).cumsum(0).flip(0)
    n = torch.arange(num_latents, dtype=torch.float64)
    fits = weight * (budget - n * limit) <= limit * suffix
    n_full = torch.where(fits.any(), fits.int().argmax(), num_latents)
    full = torch.arange(num_latents) < n_full
    left = budget - limit * full.sum()
    free_weight = weight.masked_fill(full, 0)
    share = torch.where(full, float(limit), free_weight * (left / free_weight.sum()))
    cap = share.floor().long()
    missing = budget - cap.sum()  # by largest remainder, latents already at L excluded
    remainder = (share - cap).masked_fill(cap >= limit, -1.0)
    order = torch.argsort(remainder, descending=True, stable=True)
    position = torch.empty_like(order)
    position[order] = torch.arange(num_latents)
    cap = cap + (position < missing).long()
    return cap.to(device) if device is not None else cap
