"""Steering a model's residual stream with an SAE's decoder directions (the "Breaking Bad
Tokens" paper: find latents for an unwanted concept, then edit the residual stream after layer L
with their decoder vectors before layer L+1, at three tiers of aggressiveness).

The paper's exact edits were not available; the three tiers here are defined from its stated
idea, from mild to aggressive, for latents S, unit decoder rows d_i and strength alpha:

* ``"conditional"``: ``h <- h - alpha * sum_{i in S} f_i(h) d_i``, only where the latent fires in the
  SAE's code of h (f_i(h) > 0; the code of h's own sparsity rule). alpha = 1 removes exactly the
  latent's contribution to the reconstruction.
* ``"clamp"``: replace h by the SAE's reconstruction with the chosen latents clamped to
  c = ``clamp_value`` (default 0) on every token: ``h <- (1 - alpha) h + alpha (x_hat(h) + sum_{i in S}
  (c - f_i(h)) d_i)``. Dropping the SAE's error term ``h - x_hat`` makes this more aggressive
  than ``conditional``: everything the SAE does not represent goes too.
* ``"project"``: project the directions out of every token, fired or not: ``h <- h - alpha * P_S h``
  with P_S the orthogonal projector onto span{d_i} (h's component along the directions, including
  the part b_dec contributes, is removed).

``SAESteering(model, "encoder.layer.2", sae, latents=[...], tier="clamp")`` is a context manager:
inside ``with steering:`` the hook is on; ``steering.enabled = False`` switches it off without
removing it. The hook edits the module's output (the first element if it is a tuple) and keeps its
shape and dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .modules import SparseAutoencoder

__all__ = ["SAESteering", "steer_activations", "TIERS"]

TIERS = ("conditional", "clamp", "project")


def steer_activations(h: Tensor, sae: SparseAutoencoder, latents: Tensor, tier: str, alpha: float = 1.0,
                      clamp_value: float = 0.0) -> Tensor:  # fmt: skip
    """The edited activations ([..., d]) for one tier; see the module docstring."""
    if tier not in TIERS:
        raise ValueError(f"steering: tier must be one of {TIERS}, got {tier!r}")
    shape, dtype = h.shape, h.dtype
    x = h.reshape(-1, shape[-1]).to(sae.W_dec.dtype)
    latents = torch.unique(latents)
    directions = sae.W_dec[latents]  # [S, d]
    if tier == "project":
        # Orthonormal basis of span{d_i} (dependent directions contribute no extra basis vector).
        u, sv, _ = torch.linalg.svd(directions.T, full_matrices=False)
        basis = u[:, sv > sv.max() * max(directions.shape) * torch.finfo(sv.dtype).eps]
        out = x - alpha * (x @ basis) @ basis.T
    else:
        code = sae.encode(x)
        acts = code.to_dense()[:, latents]  # [N, S]: f_i(h), 0 where it does not fire
        if tier == "conditional":
            out = x - alpha * acts @ directions
        else:
            clamped = sae.decode(code) + (clamp_value - acts) @ directions
            out = (1 - alpha) * x + alpha * clamped
    return out.reshape(shape).to(dtype)


class SAESteering:
    """Steers a model while the ``with`` block runs: a forward hook on ``model``'s submodule at
    ``module_path`` (e.g. ``"transformer.h.8"``) edits its output with ``steer_activations`` for
    ``latents`` of ``sae`` at ``tier`` ("conditional", "clamp" or "project"; module docstring),
    ``alpha`` the strength and ``clamp_value`` the clamp tier's target. A tuple output has its
    first element edited. ``enabled = False`` pauses it inside the block.

    >>> with SAESteering(model, "transformer.h.8", sae, [1234], tier="clamp"):
    ...     steered = model(**inputs)
    """

    def __init__(self, model: nn.Module, module_path: str, sae: SparseAutoencoder, latents: Sequence[int],
                 tier: str = "conditional", alpha: float = 1.0, clamp_value: float = 0.0):  # fmt: skip
        if tier not in TIERS:
            raise ValueError(f"SAESteering: tier must be one of {TIERS}, got {tier!r}")
        latents = torch.as_tensor(list(latents), dtype=torch.long)
        if latents.numel() == 0 or int(latents.min()) < 0 or int(latents.max()) >= sae.num_latents:
            raise ValueError(
                f"SAESteering: latents must be a non-empty list in [0, {sae.num_latents}), got {latents.tolist()}"
            )
        self.module = model.get_submodule(module_path)
        self.sae, self.tier, self.alpha, self.clamp_value = sae, tier, alpha, clamp_value
        self.latents = latents.to(sae.W_dec.device)
        self.enabled = True
        self._handle = None

    def _hook(self, _module, _args, output):
        if not self.enabled:
            return output
        with torch.no_grad():
            if isinstance(output, tuple):
                return (self._edit(output[0]),) + tuple(output[1:])
            return self._edit(output)

    def _edit(self, h: Tensor) -> Tensor:
        return steer_activations(h, self.sae, self.latents, self.tier, self.alpha, self.clamp_value)

    def __enter__(self) -> SAESteering:
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
