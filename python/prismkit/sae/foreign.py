"""Loading SAEs from two more formats researchers hold (``io.py`` has prismkit's own, SAELens' and
sparsify's):

* **Gemma Scope** (``google/gemma-scope-*``: ``layer_<L>/width_<W>/average_l0_<n>/params.npz``):
  five float32 arrays, ``W_enc`` [d, F], ``W_dec`` [F, d], ``b_enc`` [F], ``b_dec`` [d],
  ``threshold`` [F]. JumpReLU: ``a = relu(z) * 1[z > threshold]`` with ``z = x @ W_enc + b_enc``
  (x itself: no ``b_dec`` subtracted), ``x_hat = a @ W_dec + b_dec``: the Gemma Scope tutorial's and
  SAELens' ``jumprelu`` rule (strict ``>``). -> ``JumpReLUSAE``; the layer, width and target L0 of
  the path go into ``metadata``.
* **dictionary_learning** (saprmarks): a run directory with ``ae.pt`` (a ``state_dict``) and
  ``config.json`` (``{"trainer": {"dict_class": ..., "activation_dim": d, "dict_size": F, "k": ...,
  "lm_name", "layer", "submodule_name", ...}, "buffer": {...}}``), by ``dict_class``:

  =========================  ===========================================================  ==================================
  dict_class                 keys                                                         -> prismkit
  =========================  ===========================================================  ==================================
  ``AutoEncoder``            ``encoder.weight`` [F, d], ``encoder.bias``,                 ``JumpReLUSAE`` at threshold 0:
                             ``decoder.weight`` [d, F], ``bias`` [d]                      ``relu(encoder(x - bias))``
  ``AutoEncoderTopK``        the same with ``b_dec`` [d], buffers ``k``, ``threshold``    ``TopKSAE(k)``: relu, then top k
  ``BatchTopKSAE``           as TopK                                                      ``JumpReLUSAE``, every latent at
                                                                                          the inference ``threshold``
  ``MatryoshkaBatchTopKSAE`` ``W_enc`` [d, F], ``b_enc``, ``W_dec`` [F, d], ``b_dec``,    as BatchTopK (all groups active)
                             ``k``, ``threshold``, ``group_sizes``
  ``JumpReluAutoEncoder``    ``W_enc`` [d, F], ``b_enc``, ``W_dec`` [F, d], ``b_dec``,    ``JumpReLUSAE``, x itself encoded
                             ``threshold`` [F]
  =========================  ===========================================================  ==================================

  dictionary_learning folds its activation normalization into the saved biases and thresholds,
  so an ``ae.pt`` reads raw activations, as here. A BatchTopK threshold that was never set (-1, a
  run shorter than its ``threshold_start_step``) keeps every positive latent, as its ``encode`` does.

Both loaders check the shapes against each other and the config, and refuse other classes saying
which are supported. Codes and reconstructions equal the formats' own formulas (tests/test_sae_formats.py).
"""

from __future__ import annotations

import json
import os
import re
from typing import Optional

import torch

from .modules import JumpReLUSAE, SparseAutoencoder, TopKSAE

__all__ = ["load_gemma_scope", "load_dictionary_learning"]

_GEMMA_SCOPE_ARRAYS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")


def _shape_error(where: str, name: str, got, want) -> ValueError:
    return ValueError(f"{where}: '{name}' must have shape {list(want)}, got {list(got)}")


def _load(sae: SparseAutoencoder, state: dict) -> SparseAutoencoder:
    with torch.no_grad():
        sae.load_state_dict({k: v.to(device=sae.W_enc.device, dtype=sae.W_enc.dtype) for k, v in state.items()})
    return sae


def load_gemma_scope(path: str, device=None, dtype: torch.dtype = torch.float32) -> JumpReLUSAE:
    """A Gemma Scope SAE from its ``params.npz`` (or the directory holding it)."""
    import numpy as np  # Gemma Scope ships numpy archives; numpy is only needed here

    file = os.path.join(path, "params.npz") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise FileNotFoundError(f"load_gemma_scope: no params.npz at {path!r}")
    with np.load(file) as archive:
        missing = [name for name in _GEMMA_SCOPE_ARRAYS if name not in archive.files]
        if missing:
            raise ValueError(f"load_gemma_scope: {file} is not a Gemma Scope archive: no {missing} "
                             f"(it holds {sorted(archive.files)})")  # fmt: skip
        arrays = {name: torch.from_numpy(np.array(archive[name])) for name in _GEMMA_SCOPE_ARRAYS}
    d, F = arrays["W_enc"].shape
    for name, want in (("W_dec", (F, d)), ("b_enc", (F,)), ("b_dec", (d,)), ("threshold", (F,))):
        if tuple(arrays[name].shape) != want:
            raise _shape_error("load_gemma_scope", name, arrays[name].shape, want)
    metadata = {"format": "gemma-scope"}
    for key, pattern in (("hook_layer", r"layer_(\d+)"), ("width", r"width_(\w+?)(?:/|$)"),
                         ("average_l0", r"average_l0_(\d+)")):  # fmt: skip
        found = re.search(pattern, "/".join(os.path.abspath(file).split(os.sep)[-4:]))  # layer/width/l0/params.npz
        if found:
            metadata[key] = int(found.group(1)) if found.group(1).isdigit() else found.group(1)
    sae = JumpReLUSAE(d, F, subtract_b_dec_from_input=False, metadata=metadata, dtype=dtype, device=device)
    return _load(sae, {"W_enc": arrays["W_enc"].t(), "b_enc": arrays["b_enc"], "W_dec": arrays["W_dec"],
                       "b_dec": arrays["b_dec"], "threshold": arrays["threshold"]})  # fmt: skip


_DICTIONARY_CLASSES = (
    "AutoEncoder",
    "AutoEncoderTopK",
    "BatchTopKSAE",
    "MatryoshkaBatchTopKSAE",
    "JumpReluAutoEncoder",
)


def load_dictionary_learning(directory: str, device=None, dtype: Optional[torch.dtype] = None) -> SparseAutoencoder:
    """An SAE from a dictionary_learning run directory (``ae.pt`` + ``config.json``); see the
    module docstring for the classes and what each becomes."""
    ae, cfg_path = os.path.join(directory, "ae.pt"), os.path.join(directory, "config.json")
    if not (os.path.isfile(ae) and os.path.isfile(cfg_path)):
        raise FileNotFoundError(f"load_dictionary_learning: {directory!r} needs ae.pt and config.json")
    with open(cfg_path) as f:
        trainer = json.load(f).get("trainer", {})
    cls = trainer.get("dict_class")
    if cls not in _DICTIONARY_CLASSES:
        raise ValueError(f"load_dictionary_learning: dict_class {cls!r} is not supported "
                         f"(supported: {', '.join(_DICTIONARY_CLASSES)})")  # fmt: skip
    state = torch.load(ae, map_location="cpu", weights_only=True)
    where = f"load_dictionary_learning ({cls})"
    if cls in ("AutoEncoder", "AutoEncoderTopK", "BatchTopKSAE"):
        W_enc, b_enc = state["encoder.weight"], state["encoder.bias"]
        W_dec = state["decoder.weight"].t()
        b_dec = state["bias"] if cls == "AutoEncoder" else state["b_dec"]
        subtract = True
    else:
        W_enc, b_enc, W_dec, b_dec = state["W_enc"].t(), state["b_enc"], state["W_dec"], state["b_dec"]
        subtract = cls == "MatryoshkaBatchTopKSAE"  # JumpReluAutoEncoder encodes x itself
    F, d = W_enc.shape
    for name, t, want in (("W_dec", W_dec, (F, d)), ("b_enc", b_enc, (F,)), ("b_dec", b_dec, (d,))):
        if tuple(t.shape) != want:
            raise _shape_error(where, name, t.shape, want)
    for key, value in (("activation_dim", d), ("dict_size", F)):
        if key in trainer and int(trainer[key]) != value:
            raise ValueError(f"{where}: config.json says {key} = {trainer[key]}, the weights have {value}")
    metadata = {"format": "dictionary_learning", "dict_class": cls}
    names = {"lm_name": "model_name", "layer": "hook_layer", "submodule_name": "submodule_name"}
    metadata.update({ours: trainer[theirs] for theirs, ours in names.items() if trainer.get(theirs) is not None})
    common = dict(subtract_b_dec_from_input=subtract, metadata=metadata, dtype=dtype or W_enc.dtype, device=device)
    weights = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    if cls == "AutoEncoderTopK":
        k = int(state["k"]) if "k" in state else int(trainer["k"])
        return _load(TopKSAE(d, F, k, **common), weights)
    if cls == "AutoEncoder":
        threshold = torch.zeros(F)
    elif cls == "JumpReluAutoEncoder":
        threshold = state["threshold"]
        if tuple(threshold.shape) != (F,):
            raise _shape_error(where, "threshold", threshold.shape, (F,))
    else:  # BatchTopK / Matryoshka at inference: one threshold for every latent
        threshold = torch.full((F,), float(state["threshold"]))
    return _load(JumpReLUSAE(d, F, **common), {**weights, "threshold": threshold})
