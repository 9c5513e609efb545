"""SAE training end to end: prismkit's trainer against SAELens' trainer and a plain dense PyTorch
TopK SAE, on the same cached (synthetic) activations and token budget (bench/run.py runs this);
BatchTopK rows (case prefix ``batchtopk``, MiniLM's shape) against SAELens' BatchTopK trainer, and
JumpReLU rows (case prefix ``jumprelu``) against SAELens' JumpReLU trainer: straight-through
thresholds with the L0 penalty, both started at threshold 0.3 with b_dec at zero, which gives both
the same starting L0 (about 45 of 12288 latents per token on these activations), and prismkit's
l0_coef = 1/d, SAELens' default l0_coefficient 1.0 in FVU units (the tokens' variance is d).

Each timed call trains a fresh TopK SAE (k=32, F=32*d, Adam, unit-norm decoder) for ``STEPS``
steps of ``BATCH`` tokens, starting from the same in-memory activations: prismkit's ``Trainer``
(fused encode/decode ops, AuxK active from the second step), SAELens' ``SAETrainer`` with its ``TopKTrainingSAE`` (from
PyPI, no hub access, its defaults otherwise), and a straightforward dense loop (relu, topk,
scatter, dense decode). Rows: op ``trainer``, mode ``end-to-end``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import pytest
import torch

from prismkit.reference import sae as ref
from prismkit.sae import TensorSource, TrainConfig, Trainer

CASES = {  # name: (d, batch, steps)
    "minilm d384 F12288 k32": (384, 1024, 8),
    "gpt2-small d768 F24576 k32": (768, 1024, 8),
    "small d64 F2048 k32": (64, 512, 4),
}
K = 32
JUMPRELU_INIT_THRESHOLD = 0.3


@pytest.fixture(params=list(CASES))
def case(request, bench_cases):
    if bench_cases == "small" and not request.param.startswith("small"):
        pytest.skip("--bench-cases small")
    if bench_cases != "small" and request.param.startswith("small"):
        pytest.skip("small case only with --bench-cases small")
    return request.param


def activations(d: int, n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=gen) + 0.5


def prismkit_config(batch, steps, architecture="topk", d=None):
    # dead_tokens: one batch, so the latents idle in a batch are dead in the next and AuxK runs from
    # the second step on, as it would late in a long run (the timed work includes it).
    recipe = dict(b_dec_init="mean")
    if architecture == "jumprelu":  # SAELens' JumpReLU recipe (module docstring): no AuxK
        recipe = dict(b_dec_init="zeros", aux="none", l0_coef=1 / d, jumprelu_init_threshold=JUMPRELU_INIT_THRESHOLD)
    return TrainConfig(architecture=architecture, expansion=32, k=K, batch_size=batch, total_tokens=batch * steps,
                       buffer_tokens=batch * steps, dead_tokens=batch, lr=2e-4, init_tokens=batch,
                       log_every=10**9, **recipe)  # fmt: skip


def prismkit_train(acts, d, batch, steps, architecture="topk"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BatchTopK: too few steps for the inference threshold to settle
        Trainer(prismkit_config(batch, steps, architecture, d), TensorSource(acts)).fit(progress=False)


def saelens_train(acts, d, batch, steps, architecture="topk"):
    import sae_lens
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    name, extra = {"topk": ("TopK", {"k": K}), "batch_topk": ("BatchTopK", {"k": K}),
                   "jumprelu": ("JumpReLU", {"jumprelu_init_threshold": JUMPRELU_INIT_THRESHOLD})}[architecture]  # fmt: skip
    config = getattr(sae_lens, f"{name}TrainingSAEConfig")(d_in=d, d_sae=32 * d, device="cpu", **extra)
    sae = getattr(sae_lens, f"{name}TrainingSAE")(config)
    cfg = SAETrainerConfig(total_training_samples=batch * steps, train_batch_size_samples=batch, lr=2e-4,
                           lr_end=2e-4, device="cpu", logger=LoggingConfig(log_to_wandb=False))  # fmt: skip
    data = iter(acts[i * batch : (i + 1) * batch] for i in range(steps))
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SAETrainer(cfg, sae, data).fit()


def plain_train(acts, d, batch, steps):
    Fn = 32 * d
    W_dec = torch.randn(Fn, d)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    params = [W_dec.clone().requires_grad_(), torch.zeros(Fn, requires_grad=True), W_dec.requires_grad_(),
              acts[:batch].mean(0).requires_grad_()]  # fmt: skip
    W_enc, b_enc, W_dec, b_dec = params
    opt = torch.optim.Adam(params, lr=2e-4)
    for i in range(steps):
        x = acts[i * batch : (i + 1) * batch]
        x_hat = ref.dense_topk(x - b_dec, W_enc, b_enc, K) @ W_dec + b_dec
        loss = (x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True)


def test_trainer_end_to_end(compare, bench_device, case):
    if bench_device != "cpu":
        pytest.skip("the trainer benchmark runs on the CPU")
    pytest.importorskip("sae_lens")
    logging.getLogger("sae_lens").setLevel(logging.ERROR)
    d, batch, steps = CASES[case]
    acts = activations(d, batch * steps)
    compare(lambda: prismkit_train(acts, d, batch, steps),
            {"saelens": lambda: saelens_train(acts, d, batch, steps),
             "plain-pytorch": lambda: plain_train(acts, d, batch, steps)},
            core="sae", op="trainer", mode="end-to-end", case=f"{case} tokens{batch * steps}", impl="cpu")  # fmt: skip


@pytest.mark.parametrize("architecture", ["batch_topk", "jumprelu"])
def test_sparsity_rule_trainer_end_to_end(compare, bench_device, bench_cases, architecture):
    """BatchTopK and JumpReLU at MiniLM's shape against SAELens' BatchTopKTrainingSAE and
    JumpReLUTrainingSAE (the module docstring gives the JumpReLU settings; defaults otherwise)."""
    if bench_device != "cpu":
        pytest.skip("the trainer benchmark runs on the CPU")
    pytest.importorskip("sae_lens")
    logging.getLogger("sae_lens").setLevel(logging.ERROR)
    name = "small d64 F2048 k32" if bench_cases == "small" else "minilm d384 F12288 k32"
    d, batch, steps = CASES[name]
    acts = activations(d, batch * steps)
    prefix = architecture.replace("_", "")
    if architecture == "jumprelu":
        name = name.replace(" k32", " theta0.3")
    compare(lambda: prismkit_train(acts, d, batch, steps, architecture),
            {"saelens": lambda: saelens_train(acts, d, batch, steps, architecture)},
            core="sae", op="trainer", mode="end-to-end", case=f"{prefix} {name} tokens{batch * steps}",
            impl="cpu")  # fmt: skip
