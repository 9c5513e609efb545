"""Sparse-autoencoder methods on prismkit's fused SAE ops: modules (TopK, BatchTopK = Mutual
Choice, Feature Choice, JumpReLU), losses (FVU, AuxK, aux_zipf, Multi-TopK), Group Bias
Adaptation, a trainer (single process or torchrun), checkpoint interop with SAELens and
sparsify, and steering hooks. ``python -m prismkit.sae --help`` for the command line."""

from .capacity import equal_capacity, zipf_capacity, zipf_split
from .data import HookSource, MemmapSource, ShuffleBuffer, TensorSource, cache_activations, capture_activations
from .evaluation import (
    causal_lm_logits,
    causal_lm_loss,
    downstream_scores,
    embedding_cosine_loss,
    latent_frequency_histogram,
    splice,
)
from .foreign import load_dictionary_learning, load_gemma_scope
from .gba import GBAConfig, GroupBiasAdaptation
from .io import (
    load_sae,
    load_saelens,
    load_sparsify,
    load_sparsify_run,
    save_sae,
    save_saelens,
    save_sparsify,
    sparsify_hookpoints,
)
from .losses import aux_k_loss, aux_zipf_loss, fvu, normalized_mse, zipf_underused
from .modules import (
    SAE_CLASSES,
    BatchTopKSAE,
    FeatureChoiceSAE,
    GroupMaxSAE,
    JumpReLUSAE,
    MatryoshkaBatchTopKSAE,
    MutualChoiceSAE,
    SAEOutput,
    SparseAutoencoder,
    TopKSAE,
    geometric_median,
    sae_from_config,
)
from .steering import TIERS, SAESteering, steer_activations
from .trainer import LatentTracker, TrainConfig, Trainer, evaluate, l0_per_token

__all__ = [
    "equal_capacity", "zipf_capacity", "zipf_split",
    "HookSource", "MemmapSource", "ShuffleBuffer", "TensorSource", "cache_activations", "capture_activations",
    "GBAConfig", "GroupBiasAdaptation", "load_dictionary_learning", "load_gemma_scope",
    "load_sae", "load_saelens", "load_sparsify", "load_sparsify_run", "sparsify_hookpoints", "save_sae", "save_saelens",
    "save_sparsify", "aux_k_loss", "aux_zipf_loss", "fvu", "normalized_mse", "zipf_underused", "SAE_CLASSES",
    "BatchTopKSAE", "FeatureChoiceSAE", "GroupMaxSAE", "JumpReLUSAE", "MatryoshkaBatchTopKSAE", "MutualChoiceSAE",
    "SAEOutput", "SparseAutoencoder",
    "TopKSAE", "geometric_median", "sae_from_config", "LatentTracker", "TrainConfig", "Trainer", "evaluate",
    "l0_per_token", "TIERS", "SAESteering", "steer_activations", "causal_lm_logits", "causal_lm_loss",
    "downstream_scores", "embedding_cosine_loss", "latent_frequency_histogram", "splice",
]  # fmt: skip
