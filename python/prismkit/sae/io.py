"""Saving and loading SAEs: prismkit's own layout, SAELens', and sparsify's.

* prismkit: ``config.json`` (``SparseAutoencoder.config()``) + ``sae.safetensors`` with ``W_enc``
  [F, d], ``b_enc``, ``W_dec`` [F, d], ``b_dec`` (+ ``threshold`` for BatchTopK / JumpReLU).
* SAELens (``sae_lens`` >= 6): ``cfg.json`` + ``sae_weights.safetensors`` with ``W_enc`` [d, F]
  (transposed), ``b_enc``, ``W_dec`` [F, d], ``b_dec``, and ``threshold`` [F] for JumpReLU; the
  ``architecture`` field is ``"topk"``, ``"batchtopk"`` or ``"jumprelu"``, ``k`` for TopK, and
  ``apply_b_dec_to_input`` says whether the encoder sees x - b_dec. SAELens saves a BatchTopK SAE
  as JumpReLU with its inference threshold; so do we.
* sparsify: ``cfg.json`` (``num_latents``, ``k``, ``d_in``...) + ``sae.safetensors`` with
  ``encoder.weight`` [F, d], ``encoder.bias``, ``W_dec`` [F, d], ``b_dec``; TopK, encoder input
  x - b_dec.

Round trips through each layout are exact (same tensors, bit for bit). Decoder rows are not
renormalized on load: a checkpoint whose rows are not unit-norm keeps them.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

from .modules import BatchTopKSAE, GroupMaxSAE, JumpReLUSAE, SparseAutoencoder, TopKSAE, sae_from_config

__all__ = ["save_sae", "load_sae", "save_saelens", "load_saelens", "save_sparsify", "load_sparsify",
           "load_sparsify_run", "sparsify_hookpoints"]  # fmt: skip


def _weights(sae: SparseAutoencoder) -> dict:
    return {name: t.detach().contiguous() for name, t in sae.state_dict().items()}


def _write_json(path: str, obj: dict) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)


def _read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _load_tensors(sae: SparseAutoencoder, tensors: dict) -> SparseAutoencoder:
    missing = set(sae.state_dict()) - set(tensors)
    late = missing and missing <= set(sae.statistics_buffers)  # a file from before the class kept them
    if late:
        warnings.warn(f"{type(sae).__name__}: the file has no {sorted(missing)}; they start fresh", stacklevel=3)
    with torch.no_grad():
        sae.load_state_dict({k: v.to(sae.W_enc.device) for k, v in tensors.items()}, strict=not late)
    return sae


def save_sae(sae: SparseAutoencoder, directory: str) -> None:
    """prismkit's layout: ``config.json`` + ``sae.safetensors``."""
    os.makedirs(directory, exist_ok=True)
    save_file(_weights(sae), os.path.join(directory, "sae.safetensors"))
    _write_json(os.path.join(directory, "config.json"), {**sae.config(), "dtype": str(sae.W_enc.dtype)})


def load_sae(directory: str, device=None) -> SparseAutoencoder:
    cfg = _read_json(os.path.join(directory, "config.json"))
    dtype = getattr(torch, cfg.pop("dtype", "torch.float32").replace("torch.", ""))
    sae = sae_from_config(cfg, dtype=dtype, device=device)
    return _load_tensors(sae, load_file(os.path.join(directory, "sae.safetensors")))


# ---- SAELens ----------------------------------------------------------------------------------


def save_saelens(sae: SparseAutoencoder, directory: str, extra_cfg: Optional[dict] = None) -> None:
    """SAELens' layout. TopK stays TopK; BatchTopK / Mutual Choice export as JumpReLU with the
    inference threshold (as SAELens does); JumpReLU as JumpReLU. Feature Choice has no SAELens
    counterpart (its code depends on the batch) and is refused."""
    if isinstance(sae, BatchTopKSAE):
        sae = sae.to_jumprelu()
    if isinstance(sae, TopKSAE):
        arch, extra = "topk", {"k": sae.k, "rescale_acts_by_decoder_norm": False}
    elif isinstance(sae, JumpReLUSAE):
        arch, extra = "jumprelu", {}
    else:
        raise ValueError(f"save_saelens: SAELens has no architecture for {type(sae).__name__}")
    os.makedirs(directory, exist_ok=True)
    tensors = {
        "W_enc": sae.W_enc.detach().t().contiguous(),
        "b_enc": sae.b_enc.detach().contiguous(),
        "W_dec": sae.W_dec.detach().contiguous(),
        "b_dec": sae.b_dec.detach().contiguous(),
    }
    if arch == "jumprelu":
        tensors["threshold"] = sae.threshold.detach().contiguous()
    save_file(tensors, os.path.join(directory, "sae_weights.safetensors"))
    cfg = {
        "architecture": arch,
        "d_in": sae.d_in,
        "d_sae": sae.num_latents,
        "dtype": str(sae.W_enc.dtype).replace("torch.", ""),
        "device": "cpu",
        "apply_b_dec_to_input": sae.subtract_b_dec_from_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {},
        **extra,
        **(extra_cfg or {}),
    }
    _write_json(os.path.join(directory, "cfg.json"), cfg)


def load_saelens(directory: str, device=None) -> SparseAutoencoder:
    """A TopK or JumpReLU SAE from SAELens' layout (a ``batchtopk`` file with a ``threshold`` loads
    as JumpReLU; SAELens itself saves trained BatchTopK SAEs as JumpReLU)."""
    cfg = _read_json(os.path.join(directory, "cfg.json"))
    tensors = load_file(os.path.join(directory, "sae_weights.safetensors"))
    arch = cfg.get("architecture", "standard")
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise ValueError(f"load_saelens: normalize_activations={cfg['normalize_activations']!r} is not supported")
    if cfg.get("rescale_acts_by_decoder_norm", False):
        raise ValueError(
            "load_saelens: rescale_acts_by_decoder_norm=True checkpoints are not supported (SAELens folds "
            "the decoder norm into the weights when it saves a trained SAE; load that file)"
        )
    dtype = getattr(torch, str(cfg.get("dtype", "float32")).replace("torch.", ""))
    common = dict(subtract_b_dec_from_input=bool(cfg.get("apply_b_dec_to_input", True)), dtype=dtype, device=device)
    d_in, F = tensors["W_enc"].shape
    if arch == "topk":
        sae = TopKSAE(d_in, F, int(cfg["k"]), **common)
    elif arch in ("jumprelu", "batchtopk") and "threshold" in tensors:
        sae = JumpReLUSAE(d_in, F, **common)
    else:
        raise ValueError(f"load_saelens: unsupported SAELens architecture {arch!r} (supported: topk, jumprelu)")
    state = {
        "W_enc": tensors["W_enc"].t(),
        "b_enc": tensors["b_enc"],
        "W_dec": tensors["W_dec"],
        "b_dec": tensors["b_dec"],
    }
    if isinstance(sae, JumpReLUSAE):
        state["threshold"] = tensors["threshold"]
    return _load_tensors(sae, state)


# ---- sparsify ---------------------------------------------------------------------------------


def save_sparsify(sae: SparseAutoencoder, directory: str) -> None:
    """sparsify's layout (TopK and groupmax SAEs, as sparsify trains): ``cfg.json`` +
    ``sae.safetensors`` in ``directory``. sparsify names that directory after the hookpoint
    (``<run>/<hookpoint>/``); the SAE's ``metadata`` goes into ``cfg.json`` beside sparsify's fields."""
    if not isinstance(sae, (TopKSAE, GroupMaxSAE)) or not sae.subtract_b_dec_from_input:
        raise ValueError("save_sparsify: sparsify stores TopK or groupmax SAEs whose encoder sees x - b_dec")
    os.makedirs(directory, exist_ok=True)
    tensors = {
        "encoder.weight": sae.W_enc.detach().contiguous(),
        "encoder.bias": sae.b_enc.detach().contiguous(),
        "W_dec": sae.W_dec.detach().contiguous(),
        "b_dec": sae.b_dec.detach().contiguous(),
    }
    save_file(tensors, os.path.join(directory, "sae.safetensors"))
    cfg = {"activation": sae.architecture, "num_latents": sae.num_latents, "k": sae.k,
           "expansion_factor": sae.num_latents // sae.d_in, "normalize_decoder": True,
           "multi_topk": getattr(sae, "multi_topk", False), "skip_connection": False, "transcode": False,
           "d_in": sae.d_in, "metadata": sae.metadata}  # fmt: skip
    _write_json(os.path.join(directory, "cfg.json"), cfg)


def sparsify_hookpoints(directory: str) -> list[str]:
    """The hookpoints of a sparsify run directory (one subdirectory with ``cfg.json`` per
    hookpoint, e.g. ``layers.6``), in natural order."""
    names = [n for n in os.listdir(directory) if os.path.isfile(os.path.join(directory, n, "cfg.json"))]
    return sorted(names, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])


def load_sparsify(directory: str, hookpoint: Optional[str] = None, device=None) -> SparseAutoencoder:
    """A sparsify checkpoint: ``directory`` holds ``cfg.json`` + ``sae.safetensors``, or is a run
    directory with one such subdirectory per hookpoint (pass ``hookpoint``, or the run must have
    just one; ``load_sparsify_run`` loads them all). ``activation`` "topk" loads as ``TopKSAE``,
    "groupmax" as ``GroupMaxSAE``. The hookpoint (the directory's name) is kept as
    ``metadata["hook_name"]``, with any metadata the file holds."""
    if hookpoint is not None or not os.path.isfile(os.path.join(directory, "cfg.json")):
        found = sparsify_hookpoints(directory) if os.path.isdir(directory) else []
        if hookpoint is None:
            if len(found) != 1:
                raise ValueError(f"load_sparsify: {directory} has no cfg.json; pass hookpoint= one of {found} "
                                 "(or load_sparsify_run for all)" if found else
                                 f"load_sparsify: {directory} holds no sparsify checkpoint (no cfg.json)")  # fmt: skip
            hookpoint = found[0]
        elif hookpoint not in found:
            raise ValueError(f"load_sparsify: no hookpoint {hookpoint!r} in {directory}; it has {found}")
        directory = os.path.join(directory, hookpoint)
    cfg = _read_json(os.path.join(directory, "cfg.json"))
    tensors = load_file(os.path.join(directory, "sae.safetensors"))
    if cfg.get("skip_connection") or cfg.get("transcode") or "W_skip" in tensors:
        raise ValueError("load_sparsify: transcoders and skip connections are not supported")
    activation = cfg.get("activation", "topk")
    F, d_in = tensors["encoder.weight"].shape
    metadata = {"hook_name": os.path.basename(os.path.normpath(directory)), **cfg.get("metadata", {})}
    common = dict(metadata=metadata, dtype=tensors["encoder.weight"].dtype, device=device)
    if activation == "topk":
        sae = TopKSAE(d_in, F, int(cfg["k"]), multi_topk=bool(cfg.get("multi_topk", False)), **common)
    elif activation == "groupmax":
        sae = GroupMaxSAE(d_in, F, int(cfg["k"]), **common)
    else:
        raise ValueError(f"load_sparsify: unsupported activation {activation!r} (supported: topk, groupmax)")
    state = {"W_enc": tensors["encoder.weight"], "b_enc": tensors["encoder.bias"], "W_dec": tensors["W_dec"],
             "b_dec": tensors["b_dec"]}  # fmt: skip
    return _load_tensors(sae, state)


def load_sparsify_run(directory: str, device=None) -> dict[str, SparseAutoencoder]:
    """Every hookpoint's SAE of a sparsify run directory: {hookpoint: SAE}."""
    hookpoints = sparsify_hookpoints(directory)
    if not hookpoints:
        raise ValueError(f"load_sparsify_run: {directory} has no hookpoint subdirectories with cfg.json")
    return {h: load_sparsify(directory, h, device=device) for h in hookpoints}
