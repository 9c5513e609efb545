"""prismkit.sae modules and losses against plain-PyTorch SAEs written the way the reference code
computes them (dense pre-activations, torch.topk / scatter, dense decode), and GBA's rule."""

import pytest
import torch
import torch.nn.functional as F

# prismkit.sae needs safetensors and tqdm (the package's dependencies); a bare GPU-check machine may
# lack them, and its kernel tests should still run.
pytest.importorskip("safetensors")
pytest.importorskip("tqdm")
from prismkit.sae import (
    BatchTopKSAE,
    FeatureChoiceSAE,
    GBAConfig,
    GroupBiasAdaptation,
    JumpReLUSAE,
    MutualChoiceSAE,
    TopKSAE,
    TrainConfig,
    aux_k_loss,
    fvu,
    geometric_median,
    normalized_mse,
    zipf_underused,
)


def make(cls, d=12, F_=40, seed=0, **kw):
    sae = cls(d, F_, dtype=torch.float64, seed=seed, **kw)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.2, generator=torch.Generator().manual_seed(seed + 1))
        sae.b_dec.normal_(0, 0.5, generator=torch.Generator().manual_seed(seed + 2))
        sae.W_enc.add_(
            0.3 * torch.randn(sae.W_enc.shape, generator=torch.Generator().manual_seed(seed + 3), dtype=torch.float64)
        )
    return sae


def dense_codes(sae, x, rule, k=None, capacity=None, threshold=None):
    """The dense [N, F] code, as the reference implementations compute it."""
    z = F.linear(x - sae.b_dec, sae.W_enc, sae.b_enc)
    a = torch.relu(z)
    if rule == "topk":
        v, i = a.topk(k, dim=-1)
        return torch.zeros_like(a).scatter(-1, i, v)
    if rule == "batch_topk":
        v, i = a.flatten().topk(k * a.shape[0])
        return torch.zeros_like(a).flatten().scatter(0, i, v).view_as(a)
    if rule == "feature_choice":
        rank = torch.argsort(torch.argsort(a, dim=0, descending=True), dim=0)
        return torch.where(rank < capacity[None, :], a, torch.zeros_like(a))
    if rule == "threshold":
        return z * (z > threshold)
    raise ValueError(rule)


CASES = {
    "topk": (lambda: make(TopKSAE, k=5), lambda sae, x: dense_codes(sae, x, "topk", k=5)),
    "batch_topk": (lambda: make(BatchTopKSAE, k=5), lambda sae, x: dense_codes(sae, x, "batch_topk", k=5)),
    "mutual_choice": (lambda: make(MutualChoiceSAE, k=5), lambda sae, x: dense_codes(sae, x, "batch_topk", k=5)),
    "feature_choice": (
        lambda: make(FeatureChoiceSAE, k=5, capacity="zipf"),
        # a fresh SAE's usage is all zero, so ranks are latent indices
        lambda sae, x: dense_codes(sae, x, "feature_choice", capacity=sae.rank_capacities(x.shape[0])),
    ),
    "jumprelu": (
        lambda: make(JumpReLUSAE),
        lambda sae, x: dense_codes(sae, x, "threshold", threshold=sae.threshold),
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_forward_and_gradients_match_dense_reference(name):
    build, reference = CASES[name]
    sae = build()
    if name == "jumprelu":
        sae.threshold.copy_(torch.rand(40, dtype=torch.float64) * 0.3)
    x = torch.randn(2, 9, 12, dtype=torch.float64)  # leading dims are flattened
    out = sae(x)
    assert out.x_hat.shape == x.shape
    flat = x.reshape(-1, 12)
    params = [sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec]
    got = torch.autograd.grad(out.loss, params)
    codes = reference(sae, flat)
    x_hat = codes @ sae.W_dec + sae.b_dec
    want_loss = (flat - x_hat).pow(2).sum() / (flat - flat.mean(0)).pow(2).sum()
    torch.testing.assert_close(out.x_hat.reshape(-1, 12), x_hat)
    torch.testing.assert_close(out.code.to_dense(), codes)
    torch.testing.assert_close(out.loss, want_loss)
    for g, w in zip(got, torch.autograd.grad(want_loss, params), strict=True):
        torch.testing.assert_close(g, w)


def test_mutual_choice_is_batch_topk():
    assert issubclass(MutualChoiceSAE, BatchTopKSAE) and MutualChoiceSAE.architecture == "mutual_choice"


def test_batch_topk_inference_threshold_and_jumprelu_export():
    sae = make(BatchTopKSAE, k=4)
    x = torch.randn(64, 12, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="no inference threshold yet"):
        sae.eval()(x)
    sae.train()
    values = []
    for i in range(3):
        out = sae(x[i * 20 : (i + 1) * 20])
        values.append(float(out.code.values.detach().min()))
    want = values[0]
    for v in values[1:]:
        want = 0.99 * want + 0.01 * v
    assert float(sae.threshold) == pytest.approx(want, rel=1e-12)
    sae.eval()
    code = sae.encode(x)
    theta = float(sae.threshold)
    dense = dense_codes(sae, x, "threshold", threshold=theta)
    torch.testing.assert_close(code.to_dense(), dense)
    # batch independence: a token's code is the same alone and in a batch
    torch.testing.assert_close(sae.encode(x[:1]).to_dense(), code.to_dense()[:1])
    jump = sae.to_jumprelu()
    torch.testing.assert_close(jump.encode(x).to_dense(), code.to_dense())
    assert torch.equal(jump.threshold, torch.full((40,), theta, dtype=torch.float64))


def test_multi_topk_loss():
    sae = make(TopKSAE, k=3, multi_topk=True)
    x = torch.randn(30, 12, dtype=torch.float64)
    out = sae(x)
    codes = dense_codes(sae, x, "topk", k=12)
    want = fvu(x, codes @ sae.W_dec + sae.b_dec)
    torch.testing.assert_close(out.multi_topk_fvu, want)
    torch.testing.assert_close(out.loss, out.fvu + want / 8)


def test_aux_k_loss_matches_dense_reference_and_reaches_encoder():
    sae = make(TopKSAE, k=3, aux_k=4)
    x = torch.randn(25, 12, dtype=torch.float64)
    dead = torch.zeros(40, dtype=torch.bool)
    dead[[1, 5, 7, 11, 20, 33]] = True
    out = sae(x, aux_eligible=dead)
    residual = (x - out.x_hat).detach()
    z = F.linear(x - sae.b_dec.detach(), sae.W_enc, sae.b_enc).masked_fill(~dead, float("-inf"))
    a = torch.relu(z)
    v, i = a.topk(4, dim=-1)
    e_hat = torch.zeros_like(a).scatter(-1, i, v) @ sae.W_dec
    want = fvu(residual, e_hat)  # 6 eligible >= k_aux: scale 1
    torch.testing.assert_close(out.aux_loss, want)
    g_got = torch.autograd.grad(out.aux_loss, [sae.W_enc, sae.b_dec], allow_unused=True)
    g_want = torch.autograd.grad(want, [sae.W_enc])
    torch.testing.assert_close(g_got[0], g_want[0])
    assert g_got[0][dead].abs().sum() > 0 and g_got[0][~dead].abs().sum() == 0  # reaches W_enc, dead rows only
    assert g_got[1] is None or g_got[1].abs().sum() == 0  # b_dec is left out
    torch.testing.assert_close(out.loss, out.fvu + out.aux_loss / 32)
    few = torch.zeros(40, dtype=torch.bool)
    few[[2, 3]] = True  # 2 eligible < k_aux = 4: scaled by 2/4
    loss = aux_k_loss(x - sae.b_dec, residual, sae.W_enc, sae.b_enc, sae.W_dec, few, 4)
    z = F.linear(x - sae.b_dec, sae.W_enc, sae.b_enc)[:, [2, 3]].relu()
    torch.testing.assert_close(loss, 0.5 * fvu(residual, z @ sae.W_dec[[2, 3]]))
    assert (
        float(aux_k_loss(x, residual, sae.W_enc, sae.b_enc, sae.W_dec, torch.zeros(40, dtype=torch.bool), 4).detach())
        == 0
    )


def test_zipf_underused_flags_the_tail_below_the_fit():
    F_ = 400
    rank = torch.arange(1, F_ + 1, dtype=torch.float64)
    freq = 0.2 * rank**-1.1
    freq[300:] *= 0.1  # the low end falls off the law
    freq[390:] = 0  # dead
    perm = torch.randperm(F_, generator=torch.Generator().manual_seed(0))
    mask = zipf_underused(freq[perm], alpha=0.5)
    want = torch.zeros(F_, dtype=torch.bool)
    want[300:] = True
    assert torch.equal(mask, want[perm])


def test_losses_and_geometric_median():
    x = torch.randn(50, 6, dtype=torch.float64)
    x_hat = x + 0.1 * torch.randn_like(x)
    torch.testing.assert_close(fvu(x, x_hat), ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    torch.testing.assert_close(normalized_mse(x, x_hat), (((x_hat - x) ** 2).mean(1) / (x**2).mean(1)).mean())
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [10.0, 10.0]], dtype=torch.float64)
    m = geometric_median(pts, iterations=2000, tol=1e-12)
    grad = ((m - pts) / (m - pts).norm(dim=1, keepdim=True)).sum(0)  # optimality: unit vectors sum to 0
    assert grad.norm() < 1e-6


def test_decoder_norm_upkeep():
    sae = make(TopKSAE, k=3)
    x = torch.randn(20, 12, dtype=torch.float64)
    sae(x).loss.backward()
    g = sae.W_dec.grad.clone()
    with torch.no_grad():
        sae.W_dec[::3] *= 2.5  # rows of a loaded checkpoint need not be unit-norm
    sae.remove_parallel_decoder_grad()
    w = sae.W_dec.detach()
    assert (sae.W_dec.grad * w).sum(1).abs().max() < 1e-12  # tangential to every row
    assert (sae.W_dec.grad - g).norm(dim=1).sub(
        (g * w).sum(1).abs() / w.norm(dim=1)
    ).abs().max() < 1e-12  # only that removed
    with torch.no_grad():
        sae.W_dec.mul_(3.0)
    sae.normalize_decoder()
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(40, dtype=torch.float64))


def test_init_from_data():
    sae = TopKSAE(8, 32, k=4, dtype=torch.float64, seed=0)
    x = torch.randn(200, 8, dtype=torch.float64) + 5
    sae.init_from_data(x, "mean", encoder_scale=0.1)
    torch.testing.assert_close(sae.W_enc.detach(), 0.1 * sae.W_dec.detach())
    sae.init_from_data(x, "mean")
    torch.testing.assert_close(sae.b_dec.detach(), x.mean(0))
    torch.testing.assert_close(sae.W_enc.detach() / sae.W_enc.norm(dim=1, keepdim=True), sae.W_dec.detach())
    with torch.no_grad():
        out = sae.decode(sae.encode(x)) - sae.b_dec
        ratio = (x - sae.b_dec).norm(dim=1) / out.norm(dim=1)
    assert abs(float(ratio.median()) - 1) < 1e-6


def test_bad_inputs():
    with pytest.raises(ValueError, match="k must be in"):
        TopKSAE(8, 16, k=17)
    with pytest.raises(ValueError, match="capacity must be 'equal' or 'zipf'"):
        FeatureChoiceSAE(8, 16, k=2, capacity="uniform")
    with pytest.raises(ValueError, match=r"expected activations \[..., 8\], got shape \[3, 7\]"):
        TopKSAE(8, 16, k=2)(torch.randn(3, 7))


def test_gba_rule():
    """One adaptation on hand-made pre-activations: too-frequent latents go down by gamma * r_max
    (floored at -bias_max * rms input norm * |w|), dead ones up by gamma * their group's mean r_max (capped at 0)."""
    cfg = GBAConfig(num_groups=2, highest_target_frequency=0.5, lowest_target_frequency=0.1, buffer_tokens=10,
                    gamma=0.5, bias_max=1.0)  # fmt: skip
    gba = GroupBiasAdaptation(4, cfg)  # latents 0,1: TAF 0.5; latents 2,3: TAF 0.1
    W = torch.eye(4)
    b = torch.tensor([0.0, -0.2, -0.1, -0.3])
    x = torch.zeros(10, 4)
    x[:8, 0] = 2.0  # latent 0: fires 8/10 > 0.5, r = 2
    x[:2, 1] = 1.0  # latent 1: fires 2/10 (1 - 0.2 > 0) < 0.5: unchanged
    x[:5, 2] = 0.4  # latent 2: fires 5/10 > 0.1, r = 0.3
    x[:, 3] = 0.0  # latent 3: never fires (dead); group 1 mean r = (0.3 + 0) / 2
    assert gba.observe(x, W, b)
    want = torch.tensor([-1.0, -0.2, -0.1 - 0.5 * 0.3, min(-0.3 + 0.5 * 0.15, 0.0)])
    torch.testing.assert_close(b, want)
    assert gba.tokens == 0 and int(gba.fire_count.sum()) == 0
    assert not gba.observe(x[:5], W, b)  # buffer not full yet: no change
    torch.testing.assert_close(b, want)


def test_gba_reaches_its_targets_on_unnormalized_activations():
    """Pre-activations of standard deviation 50 (activations as they come, not normalized): GBA
    brings each group's firing frequency to its target (before: every bias stopped at the absolute
    floor -1, and every latent fired on about half the tokens)."""
    g = torch.Generator().manual_seed(0)
    cfg = GBAConfig(num_groups=2, highest_target_frequency=0.1, lowest_target_frequency=0.02, buffer_tokens=2048,
                    gamma=0.05)  # fmt: skip
    gba = GroupBiasAdaptation(64, cfg)
    W = torch.randn(64, 16, generator=g)
    W /= W.norm(dim=1, keepdim=True)
    b = torch.zeros(64)
    for _ in range(60):
        gba.observe(50 * torch.randn(2048, 16, generator=g), W, b)
    x = 50 * torch.randn(16384, 16, generator=g)
    frequency = ((x @ W.T + b) > 0).double().mean(0)
    for group in (0, 1):
        latents = gba.group == group
        ratio = float(frequency[latents].mean() / gba.target_frequency[latents][0])
        assert 0.5 < ratio < 1.5, (group, ratio, b[latents])
    assert float(b.min()) > -50 * 4  # above the floor: rms input norm (50 * sqrt(16)) * |w| = 200


def test_gba_and_jumprelu_training_are_refused_where_they_would_mislead():
    with pytest.raises(ValueError, match="bias_adaptation='gba' needs architecture='jumprelu'"):
        TrainConfig(architecture="topk", bias_adaptation="gba")
    with pytest.raises(ValueError, match="needs one sparsity mechanism"):
        TrainConfig(architecture="jumprelu")  # neither: a dense ReLU autoencoder
    with pytest.raises(ValueError, match="needs one sparsity mechanism"):
        TrainConfig(architecture="jumprelu", bias_adaptation="gba", l0_coef=0.01)  # both: GBA fights the thresholds


def test_feature_choice_inference_thresholds_are_batch_independent():
    """Eval mode encodes with per-latent running thresholds (the smallest value each latent kept,
    0 when it kept fewer than its capacity, averaged): a token's code is the same
    alone and in a batch, and a single token can use any latent (before, with B=1 only latents
    0..k-1 could fire)."""
    sae = make(FeatureChoiceSAE, k=4, capacity="zipf")
    x = torch.randn(64, 12, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="no inference thresholds yet"):
        sae.eval()(x)
    sae.train()
    expected = torch.full((40,), -1.0, dtype=torch.float64)
    for i in range(3):
        capacity = sae.capacities(20)
        dense = sae(x[i * 20 : (i + 1) * 20]).code.to_dense().detach()
        count = (dense > 0).sum(0)
        smallest = torch.where(dense > 0, dense, torch.inf).amin(0)
        smallest = torch.where(count < capacity, 0.0, smallest)
        rate = max(1 / (i + 1), 0.01)  # the running mean of the first 100 batches
        updated = torch.where(expected < 0, smallest, (1 - rate) * expected + rate * smallest)
        expected = torch.where((capacity > 0) & torch.isfinite(smallest), updated, expected)
    torch.testing.assert_close(sae.threshold, expected)
    sae.eval()
    code = sae.encode(x).to_dense()
    theta = torch.where(expected < 0, torch.inf, expected)
    torch.testing.assert_close(code, dense_codes(sae, x, "threshold", threshold=theta))
    singles = torch.cat([sae.encode(x[i : i + 1]).to_dense() for i in range(16)])
    torch.testing.assert_close(singles, code[:16])
    assert int((singles != 0).any(0)[4:].sum()) > 0  # latents beyond the first k fire for single tokens
    torch.testing.assert_close(sae.to_jumprelu().encode(x).to_dense(), code)


def test_feature_choice_capacities_leave_no_latent_starved():
    # The research shape: the Zipf split alone gave 14,930 of 24,576 latents capacity 0.
    big = FeatureChoiceSAE(4, 24576, k=32, capacity="zipf")
    rank_capacities = big.rank_capacities(1024)
    assert int(rank_capacities.min()) == 1 and int(rank_capacities.sum()) == 32 * 1024
    assert bool((rank_capacities.diff() <= 0).all())  # still Zipf-shaped, head first
    # Capacities follow running usage: the most used latent gets the head.
    sae = make(FeatureChoiceSAE, k=4, capacity="zipf")
    sae.usage[7] = 1.0
    assert int(sae.capacities(30).argmax()) == 7 and int(sae.capacities(30)[7]) == int(sae.rank_capacities(30)[0])
    # Latents that fire on nearly every token take the Zipf head within some batches (before, the
    # latents that first held the head kept it: a latent cannot keep more than its capacity).
    sae = make(FeatureChoiceSAE, k=4, capacity="zipf")
    with torch.no_grad():
        sae.b_enc[24:] = 3.0
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        sae(torch.randn(32, 12, dtype=torch.float64, generator=g))
    head = torch.argsort(sae.capacities(32), descending=True, stable=True)[:8]
    assert bool((head >= 24).all()), head
    # Budgets below F (k*B = 10 entries for 40 latents) rotate over the latents batch by batch.
    for rule in ("equal", "zipf"):
        sae = make(FeatureChoiceSAE, k=2, capacity=rule)
        served = torch.zeros(40, dtype=torch.bool)
        for _ in range(6):
            capacity = sae.capacities(5)
            assert int(capacity.sum()) == 10
            served |= capacity > 0
            sae(torch.randn(5, 12, dtype=torch.float64))
        assert bool(served.all()), (rule, served)


def test_encode_keeps_the_leading_dims_and_offers_a_dense_code():
    """decode(encode(x)) of a [2, 5, d] input is [2, 5, d] (before: [10, d]); dense=True gives the
    [2, 5, F] dense code; the methods are reachable after a bare `import prismkit`."""
    import prismkit

    sae = make(prismkit.sae.TopKSAE, k=3)
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    code = sae.encode(x)
    torch.testing.assert_close(sae.decode(code), sae(x).x_hat)
    assert sae.decode(code).shape == (2, 5, 12) and code.to_dense().shape == (10, 40)
    dense = sae.encode(x, dense=True)
    assert dense.shape == (2, 5, 40)
    torch.testing.assert_close(dense.reshape(10, 40), code.to_dense())
    torch.testing.assert_close(sae.decode(dense), sae.decode(code))
    assert prismkit.cswin.CSWinTransformer is not None
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        prismkit.nope  # noqa: B018


def test_bias_free_encoder():
    """encoder_bias=False: no b_enc parameter (a zero buffer the ops read), untouched by training,
    kept through save and load."""
    import tempfile

    from prismkit.sae import load_sae, save_sae

    sae = TopKSAE(12, 40, k=3, encoder_bias=False, dtype=torch.float64, seed=0)
    assert "b_enc" not in dict(sae.named_parameters()) and not bool(sae.b_enc.any())
    x = torch.randn(20, 12, dtype=torch.float64)
    torch.testing.assert_close(sae(x).code.to_dense(), dense_codes(sae, x, "topk", k=3))
    sae(x).loss.backward()
    torch.optim.Adam(sae.parameters(), lr=0.1).step()
    assert not bool(sae.b_enc.any())
    with tempfile.TemporaryDirectory() as directory:
        save_sae(sae, directory)
        back = load_sae(directory)
    assert not back.encoder_bias and "b_enc" not in dict(back.named_parameters())
    with pytest.raises(ValueError, match="encoder_bias=False has none"):
        TrainConfig(architecture="jumprelu", bias_adaptation="gba", encoder_bias=False)


def test_matryoshka_loss_is_the_mean_of_every_prefix_fvu(tmp_path):
    from prismkit.sae import MatryoshkaBatchTopKSAE, load_sae, save_sae

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 12, generator=g) + 0.3
    sae = MatryoshkaBatchTopKSAE(12, 48, 5, prefixes=[6, 20, 48], seed=2).train()
    out = sae(x)
    code = out.code.to_dense()
    variance = (x - x.mean(0)).pow(2).sum()
    fvus = [
        ((x - (code * (torch.arange(48) < w)) @ sae.W_dec - sae.b_dec).pow(2).sum() / variance) for w in (6, 20, 48)
    ]
    torch.testing.assert_close(out.loss, torch.stack(fvus).mean(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.fvu, fvus[-1], atol=1e-6, rtol=1e-5)
    out.loss.backward()
    assert sae.W_enc.grad.abs().sum() > 0 and sae.W_dec.grad[:6].abs().sum() > 0
    save_sae(sae, str(tmp_path / "m"))
    loaded = load_sae(str(tmp_path / "m"))
    assert isinstance(loaded, MatryoshkaBatchTopKSAE) and loaded.prefixes == [6, 20, 48]
    assert MatryoshkaBatchTopKSAE(12, 64, 4).prefixes == [4, 16, 64]
    with pytest.raises(ValueError, match=r"prefixes must increase from >= 1 to num_latents=48, got \[20, 6, 48\]"):
        MatryoshkaBatchTopKSAE(12, 48, 5, prefixes=[20, 6, 48])


def test_matryoshka_training_makes_the_first_latents_reconstruct_alone():
    from prismkit.sae import TensorSource, TrainConfig, Trainer
    from prismkit.sae.__main__ import synthetic_activations

    acts = synthetic_activations(8000, 16, seed=3)
    saes = {}
    for arch in ("batch_topk", "matryoshka_batch_topk"):
        extra = {"matryoshka_prefixes": "8,32,64"} if arch.startswith("matryoshka") else {}
        cfg = TrainConfig(architecture=arch, num_latents=64, k=6, batch_size=256, total_tokens=256 * 150,
                          buffer_tokens=4096, lr=4e-3, log_every=1000, init_tokens=1024, **extra)  # fmt: skip
        saes[arch] = Trainer(cfg, TensorSource(acts)).fit(progress=False).eval()
    held = acts[-1000:]
    with torch.no_grad():
        matryoshka = float(saes["matryoshka_batch_topk"].prefix_fvu(held, 8))
        plain_sae = saes["batch_topk"]
        code = plain_sae.encode(held).to_dense()
        x_hat = (code * (torch.arange(64) < 8)) @ plain_sae.W_dec + plain_sae.b_dec
        plain = float((held - x_hat).pow(2).sum() / (held - held.mean(0)).pow(2).sum())
    assert matryoshka < 0.9 * plain, (matryoshka, plain)
    with pytest.raises(ValueError, match="matryoshka_prefixes is for architecture='matryoshka_batch_topk'"):
        TrainConfig(matryoshka_prefixes="8,64")
    with pytest.raises(ValueError, match="comma-separated widths"):
        TrainConfig(architecture="matryoshka_batch_topk", matryoshka_prefixes="8;64")
