"""Checkpoint layouts: prismkit's own, SAELens' and sparsify's round trips are exact, and a real
SAELens checkpoint (written by sae_lens itself) encodes and decodes as SAELens does."""

import json

import pytest
import torch

# prismkit.sae needs safetensors and tqdm (the package's dependencies); a bare GPU-check machine may
# lack them, and its kernel tests should still run.
pytest.importorskip("safetensors")
pytest.importorskip("tqdm")
from safetensors.torch import load_file  # noqa: E402

from prismkit.sae import (
    BatchTopKSAE,
    FeatureChoiceSAE,
    GroupMaxSAE,
    JumpReLUSAE,
    TopKSAE,
    load_sae,
    load_saelens,
    load_sparsify,
    load_sparsify_run,
    save_sae,
    save_saelens,
    save_sparsify,
)


def randomized(sae, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec):
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)
    return sae


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("build", [
    lambda: TopKSAE(12, 40, k=5, multi_topk=True), lambda: BatchTopKSAE(12, 40, k=3),
    lambda: FeatureChoiceSAE(12, 40, k=3, capacity="zipf", zipf_exponent=1.3),
    lambda: JumpReLUSAE(12, 40, subtract_b_dec_from_input=False), lambda: TopKSAE(12, 40, k=5, dtype=torch.float64),
])  # fmt: skip
def test_prismkit_layout_round_trip(build, tmp_path):
    sae = randomized(build())
    if isinstance(sae, JumpReLUSAE):
        sae.threshold.uniform_(0, 0.3)
    if isinstance(sae, BatchTopKSAE):
        sae.threshold.fill_(0.123)
    save_sae(sae, str(tmp_path))
    back = load_sae(str(tmp_path))
    assert type(back) is type(sae) and back.config() == sae.config() and same_state(back, sae)


def test_saelens_and_sparsify_round_trips(tmp_path):
    topk = randomized(TopKSAE(12, 40, k=5))
    save_saelens(topk, str(tmp_path / "lens"))
    assert json.load(open(tmp_path / "lens" / "cfg.json"))["architecture"] == "topk"
    assert load_file(str(tmp_path / "lens" / "sae_weights.safetensors"))["W_enc"].shape == (12, 40)  # [d, F]
    assert same_state(load_saelens(str(tmp_path / "lens")), topk)
    jump = randomized(JumpReLUSAE(12, 40, subtract_b_dec_from_input=False))
    jump.threshold.uniform_(0, 0.3)
    save_saelens(jump, str(tmp_path / "lens_j"))
    back = load_saelens(str(tmp_path / "lens_j"))
    assert same_state(back, jump) and not back.subtract_b_dec_from_input
    save_sparsify(topk, str(tmp_path / "sp"))
    assert set(load_file(str(tmp_path / "sp" / "sae.safetensors"))) == {
        "encoder.weight",
        "encoder.bias",
        "W_dec",
        "b_dec",
    }
    assert same_state(load_sparsify(str(tmp_path / "sp")), topk)
    batch = randomized(BatchTopKSAE(12, 40, k=3))
    batch.threshold.fill_(0.2)
    save_saelens(batch, str(tmp_path / "lens_b"))  # exported as JumpReLU with the inference threshold
    x = torch.randn(30, 12)
    torch.testing.assert_close(
        load_saelens(str(tmp_path / "lens_b")).encode(x).to_dense(), batch.eval().encode(x).to_dense()
    )
    choice = randomized(FeatureChoiceSAE(12, 40, k=3))
    with pytest.raises(RuntimeError, match="no inference thresholds yet"):
        save_saelens(choice, str(tmp_path / "x"))
    choice(torch.randn(64, 12))  # a training batch sets the inference thresholds
    save_saelens(choice, str(tmp_path / "lens_c"))  # exported as JumpReLU with them
    torch.testing.assert_close(
        load_saelens(str(tmp_path / "lens_c")).encode(x).to_dense(), choice.eval().encode(x).to_dense()
    )
    with pytest.raises(ValueError, match="sparsify stores TopK or groupmax SAEs"):
        save_sparsify(jump, str(tmp_path / "y"))


@pytest.mark.parametrize("arch", ["topk", "jumprelu"])
def test_real_saelens_checkpoint_matches_saelens_outputs(arch, tmp_path):
    sae_lens = pytest.importorskip("sae_lens")
    torch.manual_seed(0)
    if arch == "topk":
        theirs = sae_lens.TopKSAE(sae_lens.TopKSAEConfig(d_in=16, d_sae=96, k=7))
    else:
        theirs = sae_lens.JumpReLUSAE(sae_lens.JumpReLUSAEConfig(d_in=16, d_sae=96, apply_b_dec_to_input=False))
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.randn_like(p) * (0.05 if name == "threshold" else 0.4))
        if arch == "jumprelu":
            theirs.threshold.abs_()
    theirs.save_model(str(tmp_path))
    ours = load_saelens(str(tmp_path))
    x = torch.randn(50, 16)
    with torch.no_grad():
        feats = theirs.encode(x)
        feats = feats.to_dense() if feats.is_sparse else feats
        torch.testing.assert_close(ours.encode(x).to_dense(), feats, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.decode(ours.encode(x)), theirs.decode(feats), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours(x).x_hat, theirs(x), rtol=1e-5, atol=1e-5)
    save_saelens(ours, str(tmp_path / "again"))  # and SAELens loads what we write
    again = type(theirs).load_from_disk(str(tmp_path / "again"))
    with torch.no_grad():
        torch.testing.assert_close(again(x), theirs(x))


def sparsify_groupmax_codes(x, W_enc, b_enc, b_dec, k):
    """sparsify's groupmax encoder (fused_encoder.py): ReLU(linear(x - b_dec)), the max of each of
    k contiguous groups, the group's first latent added to the index."""
    z = torch.relu(torch.nn.functional.linear(x - b_dec, W_enc, b_enc))
    values, within = z.unflatten(-1, (k, -1)).max(dim=-1)
    return values, within + torch.arange(0, z.shape[1], z.shape[1] // k)


def write_sparsify(directory, cfg, W_enc, b_enc, W_dec, b_dec):
    from safetensors.torch import save_file

    directory.mkdir(parents=True)
    save_file({"encoder.weight": W_enc, "encoder.bias": b_enc, "W_dec": W_dec, "b_dec": b_dec},
              str(directory / "sae.safetensors"))  # fmt: skip
    (directory / "cfg.json").write_text(json.dumps(cfg))


def test_sparsify_groupmax_loads_as_groupmax(tmp_path):
    """A groupmax checkpoint (before: loaded silently as TopK, different latents) encodes as
    sparsify's groupmax, and saves back with its activation."""
    g = torch.Generator().manual_seed(0)
    W_enc, b_enc = torch.randn(32, 8, generator=g), torch.randn(32, generator=g) * 0.1
    W_dec, b_dec = torch.randn(32, 8, generator=g), torch.randn(8, generator=g)
    cfg = {"activation": "groupmax", "expansion_factor": 4, "normalize_decoder": True, "num_latents": 32, "k": 4,
           "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": 8}  # fmt: skip
    write_sparsify(tmp_path / "layers.3", cfg, W_enc, b_enc, W_dec, b_dec)
    sae = load_sparsify(str(tmp_path / "layers.3"))
    assert isinstance(sae, GroupMaxSAE) and sae.k == 4 and sae.metadata == {"hook_name": "layers.3"}
    x = torch.randn(50, 8, generator=g)
    values, indices = sparsify_groupmax_codes(x, W_enc, b_enc, b_dec, 4)
    code = sae.encode(x)
    assert torch.equal(code.indices, indices)
    torch.testing.assert_close(code.values, values)
    torch.testing.assert_close(sae.decode(code), values.unsqueeze(-1).mul(W_dec[indices]).sum(1) + b_dec)
    save_sparsify(sae, str(tmp_path / "again"))
    assert json.loads((tmp_path / "again" / "cfg.json").read_text())["activation"] == "groupmax"
    assert same_state(load_sparsify(str(tmp_path / "again")), sae)
    with pytest.raises(ValueError, match="unsupported activation 'sigmoid'"):
        write_sparsify(tmp_path / "odd", {**cfg, "activation": "sigmoid"}, W_enc, b_enc, W_dec, b_dec)
        load_sparsify(str(tmp_path / "odd"))


def test_sparsify_run_directories_and_metadata(tmp_path):
    """A sparsify run holds one directory per hookpoint; the hookpoint and any metadata survive
    every save and load (SAELens reads metadata.hook_name)."""
    run = tmp_path / "run"
    for layer in (10, 2):
        save_sparsify(randomized(TopKSAE(12, 40, k=5), seed=layer), str(run / f"layers.{layer}"))
    with pytest.raises(ValueError, match=r"pass hookpoint= one of \['layers.2', 'layers.10'\]"):
        load_sparsify(str(run))
    assert load_sparsify(str(run), "layers.2").metadata == {"hook_name": "layers.2"}
    assert list(load_sparsify_run(str(run))) == ["layers.2", "layers.10"]
    with pytest.raises(ValueError, match="no hookpoint 'layers.7'"):
        load_sparsify(str(run), "layers.7")
    sae = randomized(TopKSAE(12, 40, k=5, metadata={"hook_name": "blocks.3.hook_resid_post", "model_name": "gpt2"}))
    save_sae(sae, str(tmp_path / "p"))
    assert load_sae(str(tmp_path / "p")).metadata == sae.metadata
    save_sparsify(sae, str(tmp_path / "s"))
    assert load_sparsify(str(tmp_path / "s")).metadata == sae.metadata
