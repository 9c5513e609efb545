"""torch.compile(fullgraph=True) over an SAE forward + backward built from the prismkit ops."""

import pytest
import torch

from prismkit.ops import sae as ops


def topk_sae_loss(x, W_enc, b_enc, W_dec, b_dec, k: int):
    x_hat = ops.topk_encode(x - b_dec, W_enc, b_enc, k).decode(W_dec, b_dec)
    return (x_hat - x).pow(2).sum(-1).mean()


def batch_topk_sae_loss(x, W_enc, b_enc, W_dec, b_dec, k: int):
    x_hat = ops.batch_topk_encode(x - b_dec, W_enc, b_enc, k).decode(W_dec, b_dec)
    return (x_hat - x).pow(2).sum(-1).mean()


def params(B=16, d=12, F=40):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, d, generator=g)
    W_enc = torch.randn(F, d, generator=g) / d**0.5
    return x, [W_enc.requires_grad_(), torch.zeros(F, requires_grad=True), W_enc.detach().clone().requires_grad_(),
               torch.zeros(d, requires_grad=True)]  # fmt: skip


@pytest.mark.parametrize(
    "loss_fn, backend",
    [(topk_sae_loss, "aot_eager"), (topk_sae_loss, "inductor"), (batch_topk_sae_loss, "aot_eager")],
    ids=["topk-aot_eager", "topk-inductor", "batch_topk-aot_eager"],
)
def test_compiled_sae_step_matches_eager(loss_fn, backend):
    torch._dynamo.reset()
    x, ps = params()
    eager_loss = loss_fn(x, *ps, 4)
    eager_grads = torch.autograd.grad(eager_loss, ps)
    compiled = torch.compile(loss_fn, fullgraph=True, backend=backend)
    loss = compiled(x, *ps, 4)
    grads = torch.autograd.grad(loss, ps)
    torch.testing.assert_close(loss, eager_loss)
    for g, e in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(g, e)
