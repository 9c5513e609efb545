"""Reconstruction and auxiliary losses of the SAE methods.

* ``fvu``: fraction of variance unexplained, ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` over
  the batch (sparsify's training loss; the TopK paper's normalized MSE up to centering).
* ``normalized_mse``: the TopK paper's (openai/sparse_autoencoder) per-token
  ``mean((x_hat - x)^2) / mean(x^2)``, averaged over tokens.
* ``aux_k_loss``: the TopK paper's AuxK. The ``k_aux`` largest activations among eligible latents
  (dead ones for AuxK, under-used ones for aux_zipf) reconstruct the detached residual
  ``e = x - x_hat``. Choices, stated because the public implementations differ
  (research note, section 1):
    - the aux code is computed by ``topk_encode`` on the eligible rows of ``W_enc`` (gathered), so
      its gradient reaches ``W_enc`` and ``b_enc`` of those latents, as in OpenAI's code and unlike
      sparsify's fused encoder, and the work is proportional to the number of eligible latents;
    - ``b_dec`` is in neither side: the target ``e`` already has it removed (x_hat contains it), and
      the aux reconstruction is ``sum a_j W_dec[j]`` without it; the encoder input ``x - b_dec``
      is detached from ``b_dec``, so the aux loss leaves ``b_dec`` alone;
    - it is normalized like FVU, by the residual's variance (as dictionary_learning; sparsify
      divides by the input's), and scaled by
      ``min(n_eligible / k_aux, 1)`` (sparsify / SAELens), so a handful of dead latents do not get
      the full weight.
* ``zipf_underused``: the eligible set of aux_zipf. The Mutual/Feature Choice paper's exact
  formula is not public; from its stated idea (latent frequencies follow a Zipf law except at the
  low end, and aux_zipf extends AuxK from dead to under-used latents) we use: rank latents by
  observed frequency, fit ``log p = a - s log rank`` by least squares on the upper ``fit_fraction``
  of the ranks that fire, and call a latent under-used when its frequency is below
  ``alpha * exp(a) * rank^-s``; dead latents always are. ``aux_zipf_loss`` is ``aux_k_loss`` over
  that set.
* ``l1_penalty``: the classic ReLU SAE's sparsity term (``architecture="relu"``), made scale-free.
* ``jumprelu_l0``: a JumpReLU SAE's mean L0 with the straight-through gradient for the thresholds
  (``architecture="jumprelu"`` with an L0 penalty).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from prismkit.ops import sae as ops
from prismkit.ops.sae import SparseCode

__all__ = [
    "fvu",
    "total_variance",
    "normalized_mse",
    "aux_k_loss",
    "zipf_underused",
    "aux_zipf_loss",
    "l1_penalty",
    "jumprelu_l0",
]


def total_variance(x: Tensor) -> Tensor:
    """``sum ||x - mean(x)||^2`` over the rows of x [N, d] (not differentiated)."""
    return (x.detach() - x.detach().mean(0)).pow(2).sum()


def fvu(x: Tensor, x_hat: Tensor, denominator: Optional[Tensor] = None) -> Tensor:
    """Fraction of variance unexplained over the batch ([N, d] inputs), a 0-d tensor. A given
    ``denominator`` replaces the batch's ``sum ||x - mean(x)||^2`` (the distributed trainer passes
    the global batch's, so each rank's share adds up to the global FVU)."""
    total = total_variance(x) if denominator is None else denominator
    return (x - x_hat).pow(2).sum() / total.clamp_min(torch.finfo(x.dtype).tiny)


def normalized_mse(x: Tensor, x_hat: Tensor) -> Tensor:
    """Per-token ``mean((x_hat - x)^2) / mean(x^2)``, averaged over the batch."""
    return ((x_hat - x).pow(2).mean(1) / x.pow(2).mean(1).clamp_min(torch.finfo(x.dtype).tiny)).mean()


def aux_k_loss(
    x_in: Tensor,
    residual: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    W_dec: Tensor,
    eligible: Tensor,
    k_aux: int,
    denominator: Optional[Tensor] = None,
) -> Tensor:
    """AuxK over the ``eligible`` latents ([F] bool). ``x_in`` is the encoder input (x - b_dec,
    detached from b_dec by the caller), ``residual`` the detached ``x - x_hat``; ``denominator``
    replaces the residual's variance (see ``fvu``). Returns 0 (with a graph) when no latent is
    eligible."""
    ids = eligible.nonzero().flatten()
    if ids.numel() == 0 or k_aux <= 0:
        return (W_enc.sum() * 0.0).to(x_in.dtype)
    k = min(k_aux, ids.numel())
    code = ops.topk_encode(x_in, W_enc.index_select(0, ids), b_enc.index_select(0, ids), k)
    e_hat = ops.sparse_decode(code.values, code.indices, None, W_dec.index_select(0, ids), None)
    scale = min(ids.numel() / k_aux, 1.0)
    return scale * fvu(residual, e_hat, denominator)


def zipf_underused(frequency: Tensor, alpha: float = 0.5, fit_fraction: float = 0.5) -> Tensor:
    """Latents firing less than ``alpha`` times the Zipf law fitted to the frequencies ([F], any
    scale): a bool [F] mask, dead latents included. See the module docstring."""
    F = frequency.numel()
    freq = frequency.double()
    order = torch.argsort(freq, descending=True, stable=True)
    sorted_freq = freq[order]
    firing = int((sorted_freq > 0).sum())
    n_fit = max(2, int(firing * fit_fraction))
    if firing < 2:
        return frequency <= 0
    log_rank = torch.log(torch.arange(1, F + 1, dtype=torch.float64, device=freq.device))
    xr, yr = log_rank[:n_fit], torch.log(sorted_freq[:n_fit])
    slope = ((xr - xr.mean()) * (yr - yr.mean())).sum() / (xr - xr.mean()).pow(2).sum().clamp_min(1e-12)
    intercept = yr.mean() - slope * xr.mean()
    expected = torch.exp(intercept + slope * log_rank)
    under_sorted = sorted_freq < alpha * expected
    under = torch.empty_like(under_sorted)
    under[order] = under_sorted
    return under | (frequency <= 0)


def aux_zipf_loss(
    x_in: Tensor,
    residual: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    W_dec: Tensor,
    frequency: Tensor,
    k_aux: int,
    alpha: float = 0.5,
    eligible: Optional[Tensor] = None,
) -> Tensor:
    """aux_zipf: ``aux_k_loss`` over the latents ``zipf_underused(frequency, alpha)`` marks (or a
    precomputed ``eligible`` mask)."""
    mask = zipf_underused(frequency, alpha) if eligible is None else eligible
    return aux_k_loss(x_in, residual, W_enc, b_enc, W_dec, mask, k_aux)


def l1_penalty(code: SparseCode, W_dec: Tensor, num_tokens: int, variance: Tensor) -> Tensor:
    """The classic SAE's sparsity penalty, scale-free: ``sum over tokens t and latents j of
    a_tj ||W_dec[j]||`` (SAELens' standard L1, the decoder norm included so shrinking a_j by
    growing W_dec[j] does not pay), divided by ``num_tokens * sqrt(variance / num_tokens)``: per
    token, in units of the tokens' RMS deviation from their mean, like the FVU it is added to.
    ``variance`` is ``sum ||x - mean(x)||^2`` over the (global) batch."""
    norms = W_dec.norm(dim=1)
    total = (code.values.clamp_min(0) * norms[code.indices]).sum()
    rms = torch.sqrt(variance.detach() / num_tokens).clamp_min(torch.finfo(total.dtype).tiny)
    return total / (num_tokens * rms)


def jumprelu_l0(code: SparseCode, in_window: Tensor, threshold: Tensor, bandwidth: float, num_tokens: int) -> Tensor:
    """A JumpReLU SAE's L0 for its penalty: the value is the code's active (positive) entries over
    ``num_tokens`` (the mean active latents per token), and the gradient is the straight-through
    estimate SAELens' ``Step`` gives (DeepMind's "step" L0 loss):

        d L0 / d threshold_j = -(number of window entries of latent j) / (num_tokens * bandwidth)

    with the window entries those ``jumprelu_encode`` flagged in ``in_window`` (``|z - theta_j| <
    bandwidth / 2``); no gradient reaches the pre-activations. ``num_tokens`` is the global batch's
    token count (the distributed trainer passes it, so the ranks' terms add up)."""
    active = (~(code.values <= 0)).sum().to(threshold.dtype)
    window_count = torch.bincount(code.indices[in_window], minlength=code.num_latents).to(threshold.dtype)
    # (theta - theta.detach()) is 0 in value and carries the gradient: the estimator's slope.
    straight_through = ((threshold - threshold.detach()) * window_count).sum() / (num_tokens * bandwidth)
    return active / num_tokens - straight_through
