"""Steering hooks: the three tiers' edits against their formulas, on a small model, and the
context manager switching them on and off."""

import pytest
import torch
from torch import nn

# prismkit.sae needs safetensors and tqdm (the package's dependencies); a bare GPU-check machine may
# lack them, and its kernel tests should still run.
pytest.importorskip("safetensors")
pytest.importorskip("tqdm")
from prismkit.sae import TIERS, SAESteering, TopKSAE, steer_activations


def setup():
    torch.manual_seed(0)
    sae = TopKSAE(8, 32, k=4, dtype=torch.float64, seed=0)
    with torch.no_grad():
        sae.b_enc.fill_(0.1)
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 3)).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    h = model[1](model[0](x))
    acts = sae.encode(h).to_dense()
    latent = int(acts.gt(0).sum(0).argmax())  # a latent that fires on several tokens
    return sae, model, x, h, latent


def test_tiers_follow_their_formulas():
    sae, _, _, h, j = setup()
    flat = h.reshape(-1, 8)
    f = sae.encode(flat).to_dense()[:, j]
    d = sae.W_dec[j]
    out = steer_activations(h, sae, torch.tensor([j]), "conditional", alpha=0.5).reshape(-1, 8)
    torch.testing.assert_close(out, flat - 0.5 * f[:, None] * d)
    x_hat = sae.decode(sae.encode(flat))
    out = steer_activations(h, sae, torch.tensor([j]), "clamp", clamp_value=2.0).reshape(-1, 8)
    torch.testing.assert_close(out, x_hat + (2.0 - f)[:, None] * d)  # every token, error term dropped
    out = steer_activations(h, sae, torch.tensor([j]), "clamp", alpha=0.25).reshape(-1, 8)
    torch.testing.assert_close(out, 0.75 * flat + 0.25 * (x_hat - f[:, None] * d))
    out = steer_activations(h, sae, torch.tensor([j, j + 1, j]), "project").reshape(-1, 8)
    assert (out @ sae.W_dec[[j, j + 1]].T).abs().max() < 1e-10  # no component left along the directions
    kept = flat - (flat @ sae.W_dec[[j, j + 1]].T) @ torch.linalg.pinv(sae.W_dec[[j, j + 1]].T)
    torch.testing.assert_close(out, kept)  # and nothing else removed (a repeated latent adds nothing)
    # conditional at alpha = 1 removes the latent from the code of the edited activations
    edited = steer_activations(h, sae, torch.tensor([j]), "conditional")
    assert sae.encode(edited).to_dense()[:, j].sum() < f.sum()
    with pytest.raises(ValueError, match="tier must be one of"):
        steer_activations(h, sae, torch.tensor([j]), "erase")


def test_hook_context_manager_changes_the_output_and_switches_off():
    sae, model, x, h, j = setup()
    base = model(x)
    steering = SAESteering(model, "1", sae, [j], tier="clamp", alpha=1.0)
    with steering:
        steered = model(x)
        steering.enabled = False
        torch.testing.assert_close(model(x), base)
        steering.enabled = True
    assert not torch.allclose(steered, base)
    torch.testing.assert_close(model(x), base)  # hook removed on exit
    want = model[2](steer_activations(h, sae, torch.tensor([j]), "clamp"))
    torch.testing.assert_close(steered, want)
    for tier in TIERS:
        with SAESteering(model, "1", sae, [j], tier=tier, alpha=2.0):
            assert not torch.allclose(model(x), base)
    with pytest.raises(ValueError, match="latents must be a non-empty list in"):
        SAESteering(model, "1", sae, [32])
    with pytest.raises(AttributeError):
        SAESteering(model, "7", sae, [1])
