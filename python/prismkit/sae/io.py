"""Saving and loading SAEs: prismkit's own layout, SAELens', and sparsify's (Gemma Scope's and
dictionary_learning's: ``foreign.py``, which ``load_sae`` also dispatches to).

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
from torch import Tensor

from .foreign import load_dictionary_learning, load_gemma_scope
from .modules import (
    BatchTopKSAE,
    FeatureChoiceSAE,
    GroupMaxSAE,
    JumpReLUSAE,
    SparseAutoencoder,
    TopKSAE,
    sae_from_config,
)

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
    """An SAE from a directory in any layout prismkit reads: its own (``config.json`` +
    ``sae.safetensors``), SAELens' (``cfg.json`` + ``sae_weights.safetensors``: ``load_saelens``),
    sparsify's (``cfg.json`` + ``sae.safetensors``, or a run with one directory per hookpoint:
    ``load_sparsify``), Gemma Scope's (``params.npz``: ``foreign.load_gemma_scope``) or
    dictionary_learning's (``ae.pt`` + ``config.json``: ``foreign.load_dictionary_learning``)."""
    has = lambda name: os.path.isfile(os.path.join(directory, name))  # noqa: E731
    if not os.path.isdir(directory):
        raise ValueError(f"load_sae: no such directory {directory!r}")
    if has("params.npz"):
        return load_gemma_scope(directory, device=device)
    if has("ae.pt") and has("config.json"):
        return load_dictionary_learning(directory, device=device)
    if not has("config.json"):
        if has("cfg.json") and has("sae_weights.safetensors"):
            return load_saelens(directory, device=device)
        if has("cfg.json") or sparsify_hookpoints(directory):
            return load_sparsify(directory, device=device)
        raise ValueError(f"load_sae: {directory!r} holds no SAE in prismkit's, SAELens' or sparsify's layout")
    cfg = _read_json(os.path.join(directory, "config.json"))
    dtype = getattr(torch, cfg.pop("dtype", "torch.float32").replace("torch.", ""))
    sae = sae_from_config(cfg, dtype=dtype, device=device)
    return _load_tensors(sae, load_file(os.path.join(directory, "sae.safetensors")))


# ---- SAELens ----------------------------------------------------------------------------------


def save_saelens(sae: SparseAutoencoder, directory: str, extra_cfg: Optional[dict] = None) -> None:
    """SAELens' 6.x layout. TopK stays TopK; BatchTopK / Mutual Choice and Feature Choice export as
    JumpReLU with their inference thresholds (as SAELens ships trained BatchTopK SAEs); JumpReLU as
    JumpReLU. ``metadata`` carries the SAE's metadata (``hook_name`` ...) and a ``sae_lens_version``
    of 6.0.0, without which SAELens reads the file as a pre-6.0 one and drops the metadata."""
    if isinstance(sae, (BatchTopKSAE, FeatureChoiceSAE)):
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
        "metadata": {"sae_lens_version": "6.0.0", **sae.metadata},
        **extra,
        **(extra_cfg or {}),
    }
    _write_json(os.path.join(directory, "cfg.json"), cfg)


# SAELens architectures prismkit refuses, with why.
_TRANSCODERS = "transcoders (which read one hook and write another) are not supported"
_SAELENS_REFUSED = {
    "gated": "gated SAEs (separate gate and magnitude paths) are not supported",
    **dict.fromkeys(("transcoder", "skip_transcoder", "jumprelu_transcoder", "jumprelu_skip_transcoder"), _TRANSCODERS),
}
# SAELens 5.x keys that 6.x keeps under "metadata" (loading/pretrained_sae_loaders.py's list).
_SAELENS_METADATA_KEYS = ("model_name", "hook_name", "hook_layer", "hook_head_index", "model_class_name",
                          "model_from_pretrained_kwargs", "prepend_bos", "context_size", "dataset_path",
                          "dataset_trust_remote_code", "seqpos_slice", "sae_lens_training_version",
                          "neuronpedia_id", "exclude_special_tokens")  # fmt: skip


def _saelens_major(cfg: dict) -> int:
    version = cfg.get("sae_lens_version") or (cfg.get("metadata") or {}).get("sae_lens_version") or "0"
    return int(str(version).split(".")[0] or 0)


def _saelens_6_config(cfg: dict) -> dict:
    """A pre-6.0 (5.x) ``cfg.json`` in 6.x terms, as SAELens' ``handle_pre_6_0_config`` converts it:
    ``hook_point`` -> ``hook_name``, ``activation_fn_str`` "topk" with ``activation_fn_kwargs.k``
    -> architecture "topk" with ``k``, a boolean ``normalize_activations``, the run's details moved
    into ``metadata``."""
    if _saelens_major(cfg) >= 6:
        return cfg
    cfg = dict(cfg)
    if "hook_point" in cfg:
        cfg.setdefault("hook_name", cfg.pop("hook_point"))
    activation = cfg.pop("activation_fn_str", cfg.pop("activation_fn", "relu"))
    kwargs = cfg.pop("activation_fn_kwargs", None) or {}
    if activation == "topk":
        cfg["architecture"], cfg["k"] = "topk", cfg.get("k", kwargs.get("k"))
        if cfg["k"] is None:
            raise ValueError("load_saelens: a pre-6.0 topk config without k (activation_fn_kwargs.k)")
    elif activation not in ("relu", None):
        raise ValueError(f"load_saelens: the pre-6.0 activation {activation!r} is not supported (relu, topk are)")
    cfg.setdefault("architecture", "standard")
    normalize = cfg.get("normalize_activations")
    if isinstance(normalize, bool) or normalize is None:
        cfg["normalize_activations"] = "expected_average_only_in" if normalize else "none"
    metadata = dict(cfg.get("metadata") or {})
    for key in _SAELENS_METADATA_KEYS:
        if key in cfg:
            metadata.setdefault(key, cfg.pop(key))
    cfg["metadata"] = metadata
    return cfg


def _fold_decoder_norms(W_enc: Tensor, b_enc: Tensor, W_dec: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``rescale_acts_by_decoder_norm``: SAELens multiplies latent j's pre-activation by ||W_dec[j]||
    and divides its activation by it before decoding; with the norms moved into the encoder
    (W_enc[j], b_enc[j] times ||W_dec[j]||, W_dec[j] divided by it) the plain formulas compute the
    same, as SAELens' ``save_inference_model`` does (unit rows stay unchanged)."""
    norm = W_dec.norm(dim=1).clamp_min(1e-8)  # SAELens' clamp: an all-zero row stays zero, not NaN
    return W_enc * norm[:, None], b_enc * norm, W_dec / norm[:, None]


def load_saelens(directory: str, device=None) -> SparseAutoencoder:
    """An SAE from SAELens' layout (``cfg.json`` + ``sae_weights.safetensors``), as SAELens 6.x
    writes it with ``save_inference_model`` or ``save_model``, or as 5.x wrote it:

    * ``standard`` (ReLU) -> ``JumpReLUSAE`` at threshold 0; ``jumprelu`` -> ``JumpReLUSAE``
      (``log_threshold`` files: ``exp`` of it);
    * ``topk`` -> ``TopKSAE``; ``batchtopk`` / ``matryoshka_batchtopk`` training checkpoints (a
      scalar ``topk_threshold``) -> ``JumpReLUSAE`` with that threshold for every latent, which is
      what SAELens' ``save_inference_model`` makes of them;
    * ``rescale_acts_by_decoder_norm=True`` (SAELens' TopK training default, left in the config
      even after ``save_inference_model`` folded the norms): the decoder norms are folded in;
    * a 5.x ``scaling_factor`` (``finetuning_scaling_factor``) is folded into ``W_dec``; a
      neighbouring ``activation_scaler.json`` (checkpoints written during training with
      ``normalize_activations="expected_average_only_in"``) is folded in as SAELens' trainer does at
      the end, so the SAE reads raw activations;
    * refused, saying why: gated SAEs, transcoders, other architectures, per-token input
      normalizations (``constant_norm_rescale``, ``layer_norm``) and whitening.

    ``metadata`` (``hook_name``, ``model_name`` ...) is kept on the SAE."""
    cfg = _saelens_6_config(_read_json(os.path.join(directory, "cfg.json")))
    arch = cfg.get("architecture", "standard")
    if arch in _SAELENS_REFUSED or "d_out" in cfg:
        raise ValueError(f"load_saelens: {directory} is a SAELens {arch!r}: {_SAELENS_REFUSED.get(arch, _TRANSCODERS)}")
    known = ("standard", "topk", "jumprelu", "batchtopk", "matryoshka_batchtopk")
    if arch not in known:
        raise ValueError(f"load_saelens: unsupported SAELens architecture {arch!r} (supported: {', '.join(known)})")
    dtype = getattr(torch, str(cfg.get("dtype", "float32")).replace("torch.", ""))
    tensors = {k: v.to(dtype) for k, v in load_file(os.path.join(directory, "sae_weights.safetensors")).items()}
    W_enc, b_enc, W_dec, b_dec = tensors["W_enc"].t(), tensors["b_enc"], tensors["W_dec"], tensors["b_dec"]
    scale = tensors.get("scaling_factor", tensors.get("finetuning_scaling_factor"))
    if scale is not None:  # 5.x decoded (acts * s) @ W_dec
        W_dec = W_dec * scale[:, None]
    normalize = cfg.get("normalize_activations", "none") or "none"
    scaler_path = os.path.join(directory, "activation_scaler.json")
    input_scale = 1.0
    if normalize == "expected_average_only_in" and os.path.exists(scaler_path):
        scaler = _read_json(scaler_path)
        if scaler.get("has_whitening"):
            raise ValueError("load_saelens: checkpoints with activation whitening are not supported")
        input_scale = float(scaler["scaling_factor"])  # the trainer's fold: inputs were multiplied by s
        W_enc, W_dec, b_dec = W_enc * input_scale, W_dec / input_scale, b_dec / input_scale
    elif normalize == "expected_average_only_in":
        warnings.warn(
            f"load_saelens: {directory} was trained on activations scaled by a factor it does not store "
            "(normalize_activations='expected_average_only_in', no activation_scaler.json): it expects scaled "
            "inputs, as SAELens' own load does",
            stacklevel=2,
        )
    elif normalize not in ("none", "expected_average_only_in"):
        raise ValueError(f"load_saelens: normalize_activations={normalize!r} is not supported (a per-token input "
                         "transform SAELens applies at run time)")  # fmt: skip
    rescaled = bool(cfg.get("rescale_acts_by_decoder_norm", False))
    if rescaled:
        W_enc, b_enc, W_dec = _fold_decoder_norms(W_enc, b_enc, W_dec)
    common = dict(subtract_b_dec_from_input=bool(cfg.get("apply_b_dec_to_input", True)), dtype=dtype, device=device,
                  metadata=dict(cfg.get("metadata") or {}))  # fmt: skip
    d_in, F = W_enc.shape[1], W_enc.shape[0]
    state = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    if arch == "topk":
        sae = TopKSAE(d_in, F, int(cfg["k"]), **common)
    else:
        sae = JumpReLUSAE(d_in, F, **common)
        if "threshold" in tensors:
            state["threshold"] = tensors["threshold"]
        elif "log_threshold" in tensors:
            state["threshold"] = tensors["log_threshold"].exp()
        elif "topk_threshold" in tensors:
            # in units of pre-activation * ||W_dec[j]||: the scaler fold divided W_dec by s, so the
            # threshold shrinks with it (SAELens' BatchTopK fold_activation_norm_scaling_factor)
            theta = float(tensors["topk_threshold"]) / (input_scale if rescaled else 1.0)
            state["threshold"] = torch.full((F,), theta, dtype=dtype)
        elif arch == "standard":
            state["threshold"] = torch.zeros(F, dtype=dtype)
        else:
            raise ValueError(f"load_saelens: the {arch!r} checkpoint has no threshold tensor")
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
