"""Gemma Scope's params.npz and dictionary_learning's ae.pt + config.json, written by the test in
exactly those layouts (array and key names, shapes, the config's fields), load into prismkit and
encode and decode by each format's own formulas, written out here as their code computes them."""

import json
import os

import pytest
import torch

from prismkit.sae import JumpReLUSAE, TopKSAE, load_sae
from prismkit.sae.foreign import load_dictionary_learning, load_gemma_scope

np = pytest.importorskip("numpy")  # Gemma Scope's archives (the GPU machine may have no numpy)

D, F = 12, 40


def tensors(seed, shape_of):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(*shape, generator=g) * 0.5 for name, shape in shape_of.items()}


def inputs():
    return torch.randn(50, D, generator=torch.Generator().manual_seed(9)) + 0.3


def assert_code_and_reconstruction(sae, x, code, reconstruction):
    torch.testing.assert_close(sae.encode(x, dense=True), code, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae.decode(sae.encode(x)), reconstruction, atol=1e-5, rtol=1e-5)


def test_gemma_scope_params_npz(tmp_path):
    w = tensors(0, {"W_enc": (D, F), "W_dec": (F, D), "b_enc": (F,), "b_dec": (D,)})
    w["threshold"] = torch.rand(F, generator=torch.Generator().manual_seed(1)) * 0.8
    folder = tmp_path / "multilayer_5" / "layer_12" / "width_16k" / "average_l0_71"  # a parent's name is not read
    folder.mkdir(parents=True)
    np.savez(folder / "params.npz", **{k: v.numpy().astype(np.float32) for k, v in w.items()})
    sae = load_gemma_scope(str(folder))
    assert isinstance(sae, JumpReLUSAE) and not sae.subtract_b_dec_from_input
    assert sae.metadata == {"format": "gemma-scope", "hook_layer": 12, "width": "16k", "average_l0": 71}
    x = inputs()
    pre = x @ w["W_enc"] + w["b_enc"]  # the Gemma Scope tutorial's JumpReLU
    code = (pre > w["threshold"]) * torch.relu(pre)
    assert_code_and_reconstruction(sae, x, code, code @ w["W_dec"] + w["b_dec"])
    assert code.count_nonzero() > 0 and (code == 0).any()
    assert isinstance(load_sae(str(folder)), JumpReLUSAE)  # load_sae recognizes the layout
    np.savez(tmp_path / "bad.npz", W_enc=np.zeros((D, F), np.float32))
    with pytest.raises(ValueError, match=r"not a Gemma Scope archive: no \['W_dec', 'b_enc', 'b_dec', 'threshold'\]"):
        load_gemma_scope(str(tmp_path / "bad.npz"))
    bad = {k: v.numpy() for k, v in w.items()}
    bad["b_dec"] = np.zeros(D + 1, np.float32)
    np.savez(tmp_path / "shape.npz", **bad)
    with pytest.raises(ValueError, match=r"'b_dec' must have shape \[12\], got \[13\]"):
        load_gemma_scope(str(tmp_path / "shape.npz"))


def write_dictionary_learning(directory, dict_class, state, k=None):
    """A dictionary_learning run directory: ae.pt (the state_dict) and config.json."""
    os.makedirs(directory, exist_ok=True)
    torch.save(state, os.path.join(directory, "ae.pt"))
    trainer = {"trainer_class": dict_class.replace("AutoEncoder", "Trainer"), "dict_class": dict_class, "lr": 1e-3,
               "steps": 10, "seed": 0, "activation_dim": D, "dict_size": F, "device": "cpu", "layer": 3,
               "lm_name": "EleutherAI/pythia-70m-deduped", "wandb_name": "run", "submodule_name": "resid_post_layer_3"}  # fmt: skip
    if k is not None:
        trainer.update(k=k, auxk_alpha=1 / 32, warmup_steps=1, decay_start=None, threshold_beta=0.999,
                       threshold_start_step=1000)  # fmt: skip
    config = {"trainer": trainer, "buffer": {"d_submodule": D, "io": "out", "n_ctxs": 10, "ctx_len": 128,
                                             "refresh_batch_size": 4, "out_batch_size": 8, "device": "cpu"}}  # fmt: skip
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)


def linear_layout(seed, bias_name):
    """encoder/decoder nn.Linear weights, as AutoEncoder, AutoEncoderTopK and BatchTopKSAE hold them."""
    t = tensors(seed, {"encoder.weight": (F, D), "encoder.bias": (F,), "decoder.weight": (D, F), bias_name: (D,)})
    t["encoder.bias"] = t["encoder.bias"] - 0.2
    return t


def test_dictionary_learning_autoencoder(tmp_path):
    s = linear_layout(2, "bias")
    write_dictionary_learning(tmp_path / "relu", "AutoEncoder", s)
    sae = load_dictionary_learning(str(tmp_path / "relu"))
    x = inputs()
    code = torch.relu((x - s["bias"]) @ s["encoder.weight"].T + s["encoder.bias"])  # relu(encoder(x - bias))
    assert_code_and_reconstruction(sae, x, code, code @ s["decoder.weight"].T + s["bias"])
    assert sae.metadata["model_name"] == "EleutherAI/pythia-70m-deduped" and sae.metadata["hook_layer"] == 3


def test_dictionary_learning_topk_and_batch_topk(tmp_path):
    s = linear_layout(3, "b_dec")
    s["k"], s["threshold"] = torch.tensor(5, dtype=torch.int32), torch.tensor(0.35)
    write_dictionary_learning(tmp_path / "topk", "AutoEncoderTopK", s, k=5)
    write_dictionary_learning(tmp_path / "batch", "BatchTopKSAE", s, k=5)
    x = inputs()
    post_relu = torch.relu((x - s["b_dec"]) @ s["encoder.weight"].T + s["encoder.bias"])
    top = post_relu.topk(5, dim=-1)  # AutoEncoderTopK.encode: relu, then top k (use_threshold=False)
    code = torch.zeros_like(post_relu).scatter_(-1, top.indices, top.values)
    sae = load_dictionary_learning(str(tmp_path / "topk"))
    assert isinstance(sae, TopKSAE) and sae.k == 5
    assert_code_and_reconstruction(sae, x, code, code @ s["decoder.weight"].T + s["b_dec"])
    code = post_relu * (post_relu > 0.35)  # BatchTopKSAE.encode at inference (use_threshold=True)
    sae = load_dictionary_learning(str(tmp_path / "batch"))
    assert isinstance(sae, JumpReLUSAE)
    assert_code_and_reconstruction(sae, x, code, code @ s["decoder.weight"].T + s["b_dec"])
    s["threshold"] = torch.tensor(-1.0)  # never set: every positive latent is kept
    write_dictionary_learning(tmp_path / "unset", "BatchTopKSAE", s, k=5)
    assert_code_and_reconstruction(load_dictionary_learning(str(tmp_path / "unset")), x, post_relu,
                                   post_relu @ s["decoder.weight"].T + s["b_dec"])  # fmt: skip


def test_dictionary_learning_jumprelu_and_matryoshka(tmp_path):
    s = tensors(4, {"W_enc": (D, F), "b_enc": (F,), "W_dec": (F, D), "b_dec": (D,)})
    s["threshold"] = torch.rand(F, generator=torch.Generator().manual_seed(5)) * 0.5
    write_dictionary_learning(tmp_path / "jump", "JumpReluAutoEncoder", s)
    x = inputs()
    pre = x @ s["W_enc"] + s["b_enc"]
    code = torch.relu(pre * (pre > s["threshold"]))  # JumpReluAutoEncoder.encode (no b_dec subtracted)
    assert_code_and_reconstruction(load_dictionary_learning(str(tmp_path / "jump")), x, code,
                                   code @ s["W_dec"] + s["b_dec"])  # fmt: skip
    m = {k: v for k, v in s.items() if k != "threshold"}
    m.update(k=torch.tensor(4, dtype=torch.int32), threshold=torch.tensor(0.3), group_sizes=torch.tensor([10, 30]))
    write_dictionary_learning(tmp_path / "matryoshka", "MatryoshkaBatchTopKSAE", m, k=4)
    post_relu = torch.relu((x - s["b_dec"]) @ s["W_enc"] + s["b_enc"])
    code = post_relu * (post_relu > 0.3)
    sae = load_dictionary_learning(str(tmp_path / "matryoshka"))
    assert_code_and_reconstruction(sae, x, code, code @ s["W_dec"] + s["b_dec"])
    assert isinstance(load_sae(str(tmp_path / "matryoshka")), JumpReLUSAE)  # load_sae recognizes the layout


def test_dictionary_learning_refusals(tmp_path):
    s = linear_layout(6, "bias")
    write_dictionary_learning(tmp_path / "gated", "GatedAutoEncoder", s)
    with pytest.raises(ValueError, match="dict_class 'GatedAutoEncoder' is not supported"):
        load_dictionary_learning(str(tmp_path / "gated"))
    write_dictionary_learning(tmp_path / "mismatch", "AutoEncoder", {**s, "bias": torch.zeros(D + 2)})
    with pytest.raises(ValueError, match=r"'b_dec' must have shape \[12\], got \[14\]"):
        load_dictionary_learning(str(tmp_path / "mismatch"))
    with pytest.raises(FileNotFoundError, match="needs ae.pt and config.json"):
        load_dictionary_learning(str(tmp_path / "nothing"))
