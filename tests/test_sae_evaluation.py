"""SAE evaluations: the reconstruction metrics of ``evaluate`` against a direct computation, the
latent-frequency histogram, and the downstream score of an SAE spliced into a small randomly
initialized GPT-2 (built from a transformers config, nothing downloaded): a perfect SAE recovers
all of the loss with zero KL, a zero SAE none of it, and a random SAE matches the score computed
here with the test's own hooks."""

import math

import pytest
import torch

from prismkit.sae import JumpReLUSAE, TensorSource, TopKSAE, evaluate
from prismkit.sae.evaluation import (
    causal_lm_logits,
    causal_lm_loss,
    downstream_scores,
    embedding_cosine_loss,
    latent_frequency_histogram,
    splice,
)

D = 16


def test_evaluate_reports_every_reconstruction_metric():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, D, generator=g) + 0.5
    sae = TopKSAE(D, 48, 4, seed=1)
    stats = evaluate(sae, TensorSource(x), 300, batch_size=64, dense_threshold=0.05, return_frequencies=True)
    with torch.no_grad():
        out = sae.eval()(x)
        code = sae.encode(x, dense=True)
    fvu = (x - out.x_hat).double().pow(2).sum() / (x.double() - x.double().mean(0)).pow(2).sum()
    freq = (code > 0).double().mean(0)
    assert stats["fvu"] == pytest.approx(float(fvu), rel=1e-6)
    assert stats["explained_variance"] == pytest.approx(1 - float(fvu), rel=1e-6)
    cos = torch.nn.functional.cosine_similarity(x.double(), out.x_hat.double(), dim=1).mean()
    assert stats["cosine_similarity"] == pytest.approx(float(cos), rel=1e-6)
    assert stats["l0_mean"] == pytest.approx(4.0)
    assert stats["dead_fraction"] == pytest.approx(float((freq == 0).double().mean()))
    assert stats["dense_fraction"] == pytest.approx(float((freq > 0.05).double().mean()))
    assert 0 < stats["dense_fraction"] < 1 and torch.allclose(stats["frequencies"], freq)


def test_latent_frequency_histogram_is_a_png(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    freq = torch.cat([torch.zeros(10), 10 ** torch.linspace(-5, -0.5, 90)])
    path = latent_frequency_histogram(freq, str(tmp_path / "freq.png"))
    image = Image.open(path)
    assert image.size == (640, 360) and image.format == "PNG"


def tiny_gpt2():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=D, n_head=2, vocab_size=50, n_positions=16)
    model = transformers.GPT2LMHeadModel(config).eval()
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(3):
        ids = torch.randint(0, 50, (4, 12), generator=g)
        mask = torch.ones_like(ids)
        mask[0, 9:] = 0  # padding at the end of one sequence
        batches.append({"input_ids": ids, "attention_mask": mask})
    return model, batches


def identity_sae():
    """relu(x) - relu(-x) = x: a JumpReLU SAE at threshold 0 with [I; -I] encoder and decoder."""
    sae = JumpReLUSAE(D, 2 * D, subtract_b_dec_from_input=False)
    eye = torch.eye(D)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye]))
        sae.W_dec.copy_(torch.cat([eye, -eye]))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_downstream_scores_of_perfect_and_zero_saes():
    model, batches = tiny_gpt2()
    perfect = downstream_scores(model, "transformer.h.0", identity_sae(), batches, causal_lm_loss,
                                kl_logits=causal_lm_logits)  # fmt: skip
    assert perfect["loss_recovered"] == pytest.approx(1.0, abs=1e-5)
    assert perfect["kl_divergence"] == pytest.approx(0.0, abs=1e-8)
    assert perfect["loss_zero_ablation"] > perfect["loss_clean"]
    assert perfect["count"] == 3 * (4 * 11 - 3)  # predicted tokens, the 3 padded ones of each batch left out
    zero = identity_sae()
    with torch.no_grad():
        zero.W_dec.zero_()
    scores = downstream_scores(model, "transformer.h.0", zero, batches, causal_lm_loss, kl_logits=causal_lm_logits)
    assert scores["loss_recovered"] == pytest.approx(0.0, abs=1e-5) and scores["kl_divergence"] > 0


def test_downstream_score_of_a_random_sae_matches_hand_written_hooks():
    model, batches = tiny_gpt2()
    sae = TopKSAE(D, 64, 6, seed=3).eval()
    scores = downstream_scores(model, "transformer.h.1", sae, batches, causal_lm_loss, kl_logits=causal_lm_logits)
    block = model.transformer.h[1]
    losses, kls, n_total = {"clean": 0.0, "spliced": 0.0, "zero": 0.0}, [], 0
    for batch in batches:
        outputs = {}
        for name, fn in (("clean", None), ("spliced", lambda h: sae(h.reshape(-1, D)).x_hat.reshape(h.shape)),
                         ("zero", torch.zeros_like)):  # fmt: skip
            handle = None
            if fn is not None:
                handle = block.register_forward_hook(
                    lambda m, a, out, fn=fn: (fn(out[0]), *out[1:]) if isinstance(out, tuple) else fn(out)
                )
            with torch.no_grad():
                outputs[name] = model(**batch).logits
            if handle is not None:
                handle.remove()
        mask = batch["attention_mask"][:, 1:].bool()
        targets = batch["input_ids"][:, 1:][mask]
        for name, logits in outputs.items():
            losses[name] += float(torch.nn.functional.cross_entropy(logits[:, :-1][mask].double(), targets,
                                                                    reduction="sum"))  # fmt: skip
        p = torch.log_softmax(outputs["clean"][:, :-1][mask].double(), -1)
        q = torch.log_softmax(outputs["spliced"][:, :-1][mask].double(), -1)
        kls.append(float(torch.nn.functional.kl_div(q, p, log_target=True, reduction="sum")))
        n_total += int(mask.sum())
    clean, spliced, zero = (losses[k] / n_total for k in ("clean", "spliced", "zero"))
    for key, want in (("loss_clean", clean), ("loss_spliced", spliced), ("loss_zero_ablation", zero)):
        assert scores[key] == pytest.approx(want, rel=1e-6), key
    # (the losses are what is checked against the hooks above; a random GPT-2 barely needs the
    # activation, so the ratio itself would amplify their rounding)
    gap = scores["loss_zero_ablation"] - scores["loss_clean"]
    assert scores["loss_recovered"] == pytest.approx((scores["loss_zero_ablation"] - scores["loss_spliced"]) / gap)
    assert scores["kl_divergence"] == pytest.approx(sum(kls) / n_total, rel=1e-4)
    assert math.isfinite(scores["loss_recovered"]) and scores["loss_recovered"] < 1


def test_embedding_level_loss_and_splice():
    model, batches = tiny_gpt2()

    def mean_pool(output, batch):  # the hidden states of the last layer, masked mean
        h = output.hidden_states[-1]
        m = batch["attention_mask"][..., None].to(h.dtype)
        return (h * m).sum(1) / m.sum(1)

    call = lambda mdl, b: mdl(**b, output_hidden_states=True)  # noqa: E731
    scores = downstream_scores(model, "transformer.h.0", identity_sae(), batches, embedding_cosine_loss(mean_pool),
                               call=call)  # fmt: skip
    assert scores["loss_clean"] == pytest.approx(0.0, abs=1e-6) and scores["count"] == 12
    assert scores["loss_recovered"] == pytest.approx(1.0, abs=1e-4)
    with splice(model, "transformer.h.0", torch.zeros_like), torch.no_grad():
        ablated = model(**batches[0]).logits
    assert not torch.allclose(ablated, model(**batches[0]).logits)
    with pytest.raises(AttributeError):
        downstream_scores(model, "transformer.h.9", identity_sae(), batches, causal_lm_loss)
