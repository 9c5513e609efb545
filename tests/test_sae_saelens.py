"""SAELens checkpoints as SAELens' own trainer writes them load in prismkit and encode and decode
as SAELens does: every architecture SAELens trains (standard, topk, batchtopk, jumprelu,
matryoshka_batchtopk), saved both ways (``save_inference_model`` and ``save_model``), 5.x-layout
configs, and clear refusals for gated SAEs and transcoders."""

import contextlib
import io
import json
import logging
import warnings

import pytest
import torch

pytest.importorskip("safetensors")
sae_lens = pytest.importorskip("sae_lens")
from sae_lens.config import LoggingConfig, SAETrainerConfig  # noqa: E402
from sae_lens.training.sae_trainer import SAETrainer  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from prismkit.sae import JumpReLUSAE, TopKSAE, load_saelens  # noqa: E402

D, F, BATCH, STEPS = 16, 64, 32, 3
HOOK = "blocks.0.hook_resid_pre"
ARCHITECTURES = {  # name: (training class, its config class, extra config)
    "standard": ("StandardTrainingSAE", "StandardTrainingSAEConfig", {}),
    "topk": ("TopKTrainingSAE", "TopKTrainingSAEConfig", {"k": 4}),  # rescale_acts_by_decoder_norm=True by default
    "batchtopk": ("BatchTopKTrainingSAE", "BatchTopKTrainingSAEConfig", {"k": 4}),
    "jumprelu": ("JumpReLUTrainingSAE", "JumpReLUTrainingSAEConfig", {}),
    "matryoshka_batchtopk": (
        "MatryoshkaBatchTopKTrainingSAE",
        "MatryoshkaBatchTopKTrainingSAEConfig",
        {"k": 4, "matryoshka_widths": [16, 32, 64]},
    ),  # fmt: skip
    "gated": ("GatedTrainingSAE", "GatedTrainingSAEConfig", {}),
}


def activations():
    return torch.randn(BATCH * STEPS, D, generator=torch.Generator().manual_seed(0)) + 0.5


def train_with_saelens(name):
    """A few steps of SAELens' own SAETrainer on in-memory activations."""
    cls_name, cfg_name, extra = ARCHITECTURES[name]
    torch.manual_seed(0)
    sae = getattr(sae_lens, cls_name)(getattr(sae_lens, cfg_name)(d_in=D, d_sae=F, device="cpu", **extra))
    sae.cfg.metadata.hook_name = HOOK  # what SAELens' LanguageModelSAETrainingRunner records
    cfg = SAETrainerConfig(total_training_samples=BATCH * STEPS, train_batch_size_samples=BATCH, lr=1e-2, lr_end=1e-2,
                           device="cpu", logger=LoggingConfig(log_to_wandb=False))  # fmt: skip
    acts = activations()
    data = iter(acts[i * BATCH : (i + 1) * BATCH] for i in range(STEPS))
    logging.getLogger("sae_lens").setLevel(logging.ERROR)
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SAETrainer(cfg, sae, data).fit().eval()


def saelens_outputs(directory, x):
    """SAELens' inference SAE from a directory: (dense code, reconstruction)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sae_lens.SAE.load_from_disk(str(directory), device="cpu").eval()
    with torch.no_grad():
        code = theirs.encode(x)
        return code, theirs.decode(code)


def assert_same_outputs(ours, want_code, want_out, x):
    with torch.no_grad():
        code = ours.encode(x)
        torch.testing.assert_close(code.to_dense(), want_code, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.decode(code), want_out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["standard", "topk", "batchtopk", "jumprelu", "matryoshka_batchtopk"])
def test_checkpoints_saelens_trains_and_saves_load_and_match(name, tmp_path):
    """Both save paths of a trained SAE against SAELens' inference SAE (for batchtopk and matryoshka
    the ``save_model`` checkpoint, with its scalar ``topk_threshold`` and unfolded norms, must give
    what ``save_inference_model`` gives). Before: topk was refused (rescale_acts_by_decoder_norm
    left True), standard and the batchtopk/matryoshka checkpoints were refused as unsupported."""
    sae = train_with_saelens(name)
    sae.save_inference_model(str(tmp_path / "inference"))
    sae.save_model(str(tmp_path / "model"))
    x = activations()[:40]
    want_code, want_out = saelens_outputs(tmp_path / "inference", x)
    for kind in ("inference", "model"):
        ours = load_saelens(str(tmp_path / kind))
        assert isinstance(ours, TopKSAE if name == "topk" else JumpReLUSAE), kind
        assert ours.metadata["hook_name"] == HOOK, kind
        assert_same_outputs(ours, want_code, want_out, x)


def test_gated_and_transcoders_are_refused(tmp_path):
    train_with_saelens("gated").save_model(str(tmp_path / "gated"))
    with pytest.raises(ValueError, match="SAELens 'gated': gated SAEs .* are not supported"):
        load_saelens(str(tmp_path / "gated"))
    sae = train_with_saelens("standard")
    sae.save_inference_model(str(tmp_path / "tc"))
    cfg = json.loads((tmp_path / "tc" / "cfg.json").read_text())
    (tmp_path / "tc" / "cfg.json").write_text(json.dumps({**cfg, "architecture": "transcoder", "d_out": D}))
    with pytest.raises(ValueError, match="transcoders .* are not supported"):
        load_saelens(str(tmp_path / "tc"))


def five_x_config(**changes):
    """A cfg.json in SAELens 5.x's layout (no metadata, no sae_lens_version)."""
    cfg = {"architecture": "standard", "d_in": D, "d_sae": F, "dtype": "float32", "device": "cpu",
           "model_name": "gpt2", "hook_point": HOOK, "hook_layer": 0, "hook_head_index": None,
           "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 4}, "apply_b_dec_to_input": True,
           "finetuning_scaling_factor": False, "sae_lens_training_version": "5.10.0", "prepend_bos": True,
           "context_size": 128, "normalize_activations": False, "neuronpedia_id": None}  # fmt: skip
    return {**cfg, **changes}


def test_pre_6_configs_load(tmp_path):
    """A 5.x TopK config (activation_fn_str "topk", hook_point) loads as SAELens 6 loads it; a 5.x
    finetuning scaling_factor is folded into W_dec (SAELens 6 itself refuses that file)."""
    sae = train_with_saelens("topk")
    sae.save_inference_model(str(tmp_path / "inference"))
    tensors = load_file(str(tmp_path / "inference" / "sae_weights.safetensors"))
    v5 = tmp_path / "v5"
    v5.mkdir()
    save_file(tensors, str(v5 / "sae_weights.safetensors"))
    (v5 / "cfg.json").write_text(json.dumps(five_x_config()))
    x = activations()[:40]
    ours = load_saelens(str(v5))
    assert isinstance(ours, TopKSAE) and ours.k == 4 and ours.metadata["hook_name"] == HOOK
    assert_same_outputs(ours, *saelens_outputs(v5, x), x)
    scale = torch.linspace(0.5, 2.0, F)
    save_file({**tensors, "scaling_factor": scale}, str(v5 / "sae_weights.safetensors"))
    (v5 / "cfg.json").write_text(json.dumps(five_x_config(finetuning_scaling_factor=True)))
    scaled = load_saelens(str(v5))
    torch.testing.assert_close(scaled.W_dec, tensors["W_dec"] * scale[:, None])
    (v5 / "cfg.json").write_text(json.dumps(five_x_config(activation_fn_str="tanh-relu")))
    with pytest.raises(ValueError, match="pre-6.0 activation 'tanh-relu' is not supported"):
        load_saelens(str(v5))


def test_saved_metadata_reaches_saelens(tmp_path):
    """save_saelens writes the SAE's metadata where SAELens 6 reads it (before: an empty metadata
    and no sae_lens_version, so SAELens took the pre-6.0 path and lost hook_name)."""
    from prismkit.sae import save_saelens

    sae = TopKSAE(D, F, k=4, metadata={"hook_name": HOOK, "model_name": "gpt2"})
    save_saelens(sae, str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sae_lens.SAE.load_from_disk(str(tmp_path), device="cpu")
    assert theirs.cfg.metadata.hook_name == HOOK and theirs.cfg.metadata.model_name == "gpt2"
    assert load_saelens(str(tmp_path)).metadata["hook_name"] == HOOK


def test_a_training_checkpoint_with_an_activation_scaler(tmp_path):
    """A BatchTopK checkpoint written during training with normalize_activations
    "expected_average_only_in" keeps its scale in activation_scaler.json: prismkit folds it in as
    SAELens' trainer does at the end (threshold divided by the scale too, since it is measured in
    decoder-norm-rescaled units), so the SAE reads raw activations."""
    sae = train_with_saelens("batchtopk")
    sae.save_model(str(tmp_path / "model"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = sae_lens.TrainingSAE.load_from_disk(str(tmp_path / "model"), device="cpu")
    reference.fold_activation_norm_scaling_factor(4.0)
    reference.save_inference_model(str(tmp_path / "folded"))
    cfg = json.loads((tmp_path / "model" / "cfg.json").read_text())
    (tmp_path / "model" / "cfg.json").write_text(
        json.dumps({**cfg, "normalize_activations": "expected_average_only_in"})
    )
    (tmp_path / "model" / "activation_scaler.json").write_text(json.dumps({"scaling_factor": 4.0}))
    x = 8 * activations()[:40]  # raw activations: the SAE was trained on them times 4 (as 2 * N(0.5, 1))
    assert_same_outputs(load_saelens(str(tmp_path / "model")), *saelens_outputs(tmp_path / "folded", x), x)
