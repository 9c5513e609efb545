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


MODULE_CASES = {  # every SAE class, with the options that change its forward
    "topk": dict(k=4),
    "topk-multi_topk": dict(k=4, multi_topk=True, architecture="topk"),
    "batch_topk": dict(k=4),
    "mutual_choice": dict(k=4),
    "feature_choice-equal": dict(k=4, architecture="feature_choice"),
    "feature_choice-zipf": dict(k=4, capacity="zipf", architecture="feature_choice"),
    "feature_choice-small_batch": dict(k=1, architecture="feature_choice"),  # k*N < F: rotating capacities
    "groupmax": dict(k=4),
    "jumprelu": dict(),
}


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", list(MODULE_CASES))
def test_every_sae_module_compiles_fullgraph(case, mode):
    """Each module's forward (and, training, its backward and BatchTopK's threshold update) under
    torch.compile(fullgraph=True) equals eager."""
    import copy

    from prismkit.sae import SAE_CLASSES

    kwargs = dict(MODULE_CASES[case])
    architecture = kwargs.pop("architecture", case)
    torch._dynamo.reset()
    eager = SAE_CLASSES[architecture](16, 64, seed=0, **kwargs)
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(1))
    if architecture in ("batch_topk", "mutual_choice", "feature_choice"):
        eager.train()(x)  # a first batch sets the inference thresholds
    eager.train(mode == "train")
    copied = copy.deepcopy(eager)
    compiled = torch.compile(copied, fullgraph=True, backend="aot_eager")
    for _ in range(2):  # the second call: the threshold's running-average branch
        want, got = eager(x), compiled(x)
        torch.testing.assert_close(got.x_hat, want.x_hat)
        torch.testing.assert_close(got.loss, want.loss)
    if mode == "train":
        want.loss.backward()
        got.loss.backward()
        for name, p in eager.named_parameters():
            torch.testing.assert_close(dict(copied.named_parameters())[name].grad, p.grad, msg=name)
    for name, b in eager.named_buffers():
        torch.testing.assert_close(dict(copied.named_buffers())[name], b, msg=name)
