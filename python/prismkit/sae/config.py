"""``TrainConfig``: every setting of an SAE training run, with its help line (the command line's
``--help`` is built from these; ``python -m prismkit.sae train --help`` lists them with defaults)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from .gba import GBAConfig
from .modules import SparseAutoencoder, sae_from_config

__all__ = ["TrainConfig", "default_dead_tokens"]


def _setting(default, help_line: str, choices: tuple = ()):
    """A TrainConfig field with its command-line help line (and its choices, which are checked)."""
    return field(default=default, metadata={"help": help_line, **({"choices": choices} if choices else {})})


def default_dead_tokens(total_tokens: int, batch_size: int) -> int:
    """The dead-latent window when ``dead_tokens`` is None: min(10M, max(total / 10, 5 batches))."""
    return min(10_000_000, max(total_tokens // 10, 5 * batch_size))


@dataclass
class TrainConfig:
    """An SAE training run: the SAE (``architecture``, ``expansion`` / ``num_latents``, ``k``
    ...), its auxiliary loss, the data schedule (``batch_size``, ``total_tokens``, shuffle
    buffer), Adam's settings, the data-dependent initialization, optional Group Bias Adaptation
    (``gba``: a ``GBAConfig``), logging, checkpoints and the device. Each field's metadata holds
    its help line and, where it has them, its choices; bad values raise ``ValueError`` here.
    ``TrainConfig.from_dict`` / ``to_dict`` read and write the JSON form (``--config run.json``)."""

    architecture: str = _setting(
        "topk",
        "the sparsity rule: topk (k per token), batch_topk / mutual_choice (k*N per batch), matryoshka_batch_topk (batch_topk with nested prefixes each reconstructing), feature_choice (capacities per latent), groupmax (sparsify's), relu (the classic ReLU SAE with an L1 penalty, --l1-coef), jumprelu (per-latent thresholds trained with a straight-through estimator and an L0 penalty, --l0-coef; or a ReLU at threshold 0 trained with --bias-adaptation gba)",
        (
            "topk",
            "batch_topk",
            "mutual_choice",
            "matryoshka_batch_topk",
            "feature_choice",
            "groupmax",
            "relu",
            "jumprelu",
        ),  # fmt: skip
    )
    expansion: int = _setting(32, "num_latents = expansion * d_in unless num_latents is given")
    num_latents: Optional[int] = _setting(None, "the dictionary size F (overrides expansion)")
    k: int = _setting(
        32,
        "active latents per token (topk, groupmax) or per token on average (batch_topk, mutual_choice, feature_choice)",
    )
    capacity: str = _setting("equal", "feature_choice: how k*N entries are split over the latents", ("equal", "zipf"))
    zipf_exponent: float = _setting(1.0, "feature_choice with zipf capacities: the exponent s of the 1/rank^s shares")
    l1_coef: float = _setting(
        0.0, "relu: the L1 penalty's weight, on sum_j a_j |W_dec[j]| per token over the tokens' RMS deviation"
    )
    l1_warmup_steps: int = _setting(0, "relu: the L1 weight ramps linearly from 0 over this many steps")
    l0_coef: float = _setting(
        0.0,
        "jumprelu: the L0 penalty's weight, per active latent per token in FVU units (SAELens' l0_coefficient is "
        "this times the tokens' mean squared deviation from their mean)",
    )
    l0_target: Optional[float] = _setting(
        None,
        "jumprelu: penalize l0_coef * (L0 / l0_target - 1)^2 (dictionary_learning's) instead of l0_coef * L0 "
        "(SAELens' step loss)",
    )
    l0_warmup_steps: int = _setting(0, "jumprelu: the L0 weight ramps linearly from 0 over this many steps")
    jumprelu_bandwidth: float = _setting(
        0.05, "jumprelu: the straight-through estimator's window width (SAELens' 0.05; dictionary_learning's 0.001)"
    )
    jumprelu_init_threshold: float = _setting(0.01, "jumprelu: every threshold's initial value (SAELens' 0.01)")
    jumprelu_init_l0: Optional[float] = _setting(
        None,
        "jumprelu: instead, start each threshold where its latent fires on a share l0/F of the first init_tokens "
        "tokens (a sparse start, where the fused sparse kernels are fast; a small fixed threshold such as 0.01 "
        "usually starts with about half the latents active)",
    )
    matryoshka_prefixes: str = _setting(
        "",
        "matryoshka_batch_topk: the nested prefix widths, comma-separated, ending at the dictionary size "
        "(default: F/16, F/4, F)",
    )
    multi_topk: bool = _setting(False, "topk: add the Multi-TopK loss (FVU of the top-4k reconstruction, weight 1/8)")
    aux: str = _setting(
        "auxk",
        "the auxiliary loss: auxk (dead latents reconstruct the residual), aux_zipf (under-used latents), none",
        ("auxk", "aux_zipf", "none"),
    )
    aux_k: Optional[int] = _setting(None, "latents the auxiliary loss may use (default d_in // 2)")
    aux_coef: float = _setting(1 / 32, "the auxiliary loss's weight")
    aux_zipf_alpha: float = _setting(
        0.5, "aux_zipf: a latent is under-used below alpha times its fitted Zipf frequency"
    )
    dead_tokens: Optional[int] = _setting(
        None,
        "a latent is dead after this many tokens without firing (default: 10M, at most a tenth of the run, at least 5 batches)",
    )
    batch_size: int = _setting(4096, "tokens per step")
    total_tokens: int = _setting(
        10_000_000, "tokens to train on (steps = total_tokens / batch_size; more than the data means several passes)"
    )
    buffer_tokens: int = _setting(65_536, "tokens of the shuffle buffer batches are drawn from")
    lr: Optional[float] = _setting(
        None, "Adam's learning rate (default 2e-4 / sqrt(num_latents / 2**14), sparsify's scaling)"
    )
    lr_warmup_steps: int = _setting(0, "linear learning-rate warm-up over this many steps")
    lr_decay: str = _setting(
        "none",
        "learning-rate decay over the run's last lr_decay_steps, to lr * lr_end_scale",
        ("none", "linear", "cosine"),
    )
    lr_decay_steps: Optional[int] = _setting(
        None, "steps the decay takes, ending with the run (default: the last fifth of the steps, dictionary_learning's)"
    )
    lr_end_scale: float = _setting(0.0, "the learning rate at the end of the decay, as a fraction of lr")
    grad_clip: Optional[float] = _setting(None, "clip the gradients' global norm to this (SAELens: 1.0); None: no clip")
    k_start: Optional[int] = _setting(
        None, "topk, batch_topk, mutual_choice: start at this k and anneal it linearly to k (sparsify's k decay)"
    )
    k_anneal_steps: int = _setting(0, "steps over which k anneals from k_start to k")
    decoder_lr_scale: float = _setting(1.0, "W_dec's learning rate is lr times this")
    adam_eps: float = _setting(6.25e-10, "Adam's epsilon (the TopK paper's 6.25e-10)")
    autocast: str = _setting(
        "none",
        "bf16: the forward under torch.autocast in bfloat16 (on GPUs the fused kernels run in bf16 on fp32 master "
        "weights; on the CPU prismkit's ops stay in float32), none: float32",
        ("none", "bf16"),
    )
    normalize_activations: bool = _setting(
        False,
        "train on inputs scaled to a mean squared norm of d_in (the factor from the first init_tokens tokens), "
        "folded into the saved SAE so it reads raw activations",
    )
    encoder_bias: bool = _setting(True, "false: a bias-free encoder (no b_enc)")
    b_dec_init: str = _setting(
        "geometric_median",
        "b_dec's initialization from the first init_tokens tokens",
        ("geometric_median", "mean", "zeros"),
    )
    encoder_init_scale: Optional[float] = _setting(
        0.1,
        "W_enc = scale * W_dec at the start (0.1); unset: scaled so reconstructions match the input norm (the TopK paper's code)",
    )
    init_tokens: int = _setting(4096, "tokens read for the data-dependent initialization")
    bias_adaptation: Optional[str] = _setting(
        None, "gba: Group Bias Adaptation of b_enc instead of its gradient (architecture jumprelu)", ("gba",)
    )
    gba: GBAConfig = field(default_factory=GBAConfig)
    seed: int = _setting(0, "random seed of the initialization and the shuffle")
    log_every: int = _setting(10, "steps between metrics lines (metrics.jsonl and the progress bar)")
    checkpoint_every: int = _setting(0, "steps between checkpoints (0: only at the end)")
    wandb: bool = _setting(
        False, "also log the metrics to Weights & Biases (the wandb package; WANDB_MODE=offline needs no network)"
    )
    wandb_project: str = _setting("prismkit-sae", "the Weights & Biases project")
    out_dir: Optional[str] = _setting(
        None, "output directory: metrics.jsonl, checkpoints/, sae/ (--out on the command line)"
    )
    device: str = _setting("cpu", "cpu, cuda or cuda:N")

    def __post_init__(self):
        if isinstance(self.gba, dict):
            self.gba = GBAConfig(**self.gba)
        for f in fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices and not (value is None and f.default is None):
                listed = ", ".join(repr(c) for c in choices)
                raise ValueError(f"TrainConfig: {f.name} must be one of {listed}, got {value!r}")
        for name in ("expansion", "k", "batch_size", "total_tokens", "log_every", "init_tokens", "buffer_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig: {name} must be positive, got {getattr(self, name)}")
        if self.num_latents is not None and not 1 <= self.k <= self.num_latents:
            raise ValueError(f"TrainConfig: k must be in [1, num_latents={self.num_latents}], got {self.k}")
        if self.bias_adaptation == "gba" and self.architecture != "jumprelu":
            raise ValueError(
                f"TrainConfig: bias_adaptation='gba' needs architecture='jumprelu' (a ReLU at threshold 0, where the "
                f"bias decides which latents fire); with {self.architecture!r} the sparsity rule, not the bias, "
                "decides, so GBA's frequency targets would not be what it controls"
            )
        if self.bias_adaptation == "gba" and not self.encoder_bias:
            raise ValueError("TrainConfig: bias_adaptation='gba' adapts the encoder bias; encoder_bias=False has none")
        if self.architecture == "jumprelu" and (self.bias_adaptation == "gba") == (self.l0_coef > 0):
            raise ValueError(
                "TrainConfig: architecture='jumprelu' needs one sparsity mechanism: l0_coef > 0 (thresholds "
                "trained with the straight-through estimator and an L0 penalty) or bias_adaptation='gba' (a ReLU "
                f"at threshold 0 whose biases GBA adapts), got l0_coef={self.l0_coef} and "
                f"bias_adaptation={self.bias_adaptation!r}"
            )
        if self.l0_coef and self.architecture != "jumprelu":
            raise ValueError(f"TrainConfig: l0_coef is the jumprelu architecture's penalty, got architecture="
                             f"{self.architecture!r}")  # fmt: skip
        if not (math.isfinite(self.l0_coef) and (self.l0_target is None or math.isfinite(self.l0_target))):
            raise ValueError(f"TrainConfig: l0_coef and l0_target must be finite, got {self.l0_coef} and "
                             f"{self.l0_target}")  # fmt: skip
        if self.l0_coef < 0 or self.l0_warmup_steps < 0:
            raise ValueError(f"TrainConfig: l0_coef and l0_warmup_steps must be >= 0, got {self.l0_coef} and "
                             f"{self.l0_warmup_steps}")  # fmt: skip
        if self.l0_target is not None and not (self.l0_target > 0 and self.l0_coef > 0):
            raise ValueError(f"TrainConfig: l0_target must be > 0 and needs l0_coef > 0, got l0_target="
                             f"{self.l0_target}, l0_coef={self.l0_coef}")  # fmt: skip
        if not (self.jumprelu_bandwidth > 0 and math.isfinite(self.jumprelu_bandwidth)):
            raise ValueError(f"TrainConfig: jumprelu_bandwidth must be finite and > 0, got {self.jumprelu_bandwidth}")
        if self.jumprelu_init_l0 is not None and not (self.jumprelu_init_l0 > 0 and self.l0_coef > 0):
            raise ValueError(f"TrainConfig: jumprelu_init_l0 must be > 0 and needs architecture='jumprelu' with "
                             f"l0_coef > 0, got {self.jumprelu_init_l0}")  # fmt: skip
        if not self.jumprelu_init_threshold >= 0:
            raise ValueError(f"TrainConfig: jumprelu_init_threshold must be >= 0 (thresholds are kept non-negative), "
                             f"got {self.jumprelu_init_threshold}")  # fmt: skip
        if self.architecture == "relu" and not self.l1_coef > 0:
            raise ValueError(f"TrainConfig: architecture='relu' needs l1_coef > 0 (its sparsity penalty), got "
                             f"{self.l1_coef}")  # fmt: skip
        if self.l1_coef and self.architecture != "relu":
            raise ValueError(f"TrainConfig: l1_coef is the relu architecture's penalty, got architecture="
                             f"{self.architecture!r}")  # fmt: skip
        if self.l1_warmup_steps < 0:
            raise ValueError(f"TrainConfig: l1_warmup_steps must be >= 0, got {self.l1_warmup_steps}")
        if self.matryoshka_prefixes.strip():
            if self.architecture != "matryoshka_batch_topk":
                raise ValueError(f"TrainConfig: matryoshka_prefixes is for architecture='matryoshka_batch_topk', "
                                 f"got {self.architecture!r}")  # fmt: skip
            try:
                [int(w) for w in self.matryoshka_prefixes.split(",")]
            except ValueError:
                raise ValueError(f"TrainConfig: matryoshka_prefixes must be comma-separated widths such as "
                                 f"'256,1024,4096', got {self.matryoshka_prefixes!r}") from None  # fmt: skip
        if self.lr_decay_steps is not None and self.lr_decay_steps < 1:
            raise ValueError(f"TrainConfig: lr_decay_steps must be positive (or None), got {self.lr_decay_steps}")
        if not 0 <= self.lr_end_scale <= 1:
            raise ValueError(f"TrainConfig: lr_end_scale must lie in [0, 1], got {self.lr_end_scale}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig: grad_clip must be positive (or None), got {self.grad_clip}")
        if self.k_start is not None:
            if self.architecture not in ("topk", "batch_topk", "mutual_choice", "matryoshka_batch_topk"):
                raise ValueError(f"TrainConfig: k_start (a k schedule) needs topk, batch_topk or mutual_choice, got "
                                 f"{self.architecture!r} (feature_choice's capacities and groupmax's groups are fixed by k)")  # fmt: skip
            steps = -(-self.total_tokens // self.batch_size)
            if self.k_anneal_steps > steps:
                raise ValueError(f"TrainConfig: k_anneal_steps={self.k_anneal_steps} outlasts the run ({steps} steps): "
                                 "k would never reach its target")  # fmt: skip
            if self.k_start < self.k or self.k_anneal_steps < 1:
                raise ValueError(f"TrainConfig: a k schedule anneals down: k_start >= k and k_anneal_steps >= 1, got "
                                 f"k_start={self.k_start}, k={self.k}, k_anneal_steps={self.k_anneal_steps}")  # fmt: skip
        if self.dead_tokens is not None and self.dead_tokens < 1:
            raise ValueError(f"TrainConfig: dead_tokens must be positive (or None), got {self.dead_tokens}")

    @property
    def dead_window(self) -> int:
        """``dead_tokens``, or the default for this run's length (``default_dead_tokens``)."""
        if self.dead_tokens is not None:
            return self.dead_tokens
        return default_dead_tokens(self.total_tokens, self.batch_size)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown keys {unknown}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

    def build_sae(self, d_in: int) -> SparseAutoencoder:
        F = self.num_latents or self.expansion * d_in
        # relu: a JumpReLU SAE at threshold 0 (z 1[z > 0]), the penalty added by the trainer
        cfg = {"architecture": "jumprelu" if self.architecture == "relu" else self.architecture, "d_in": d_in, "num_latents": F, "aux_k": self.aux_k,
               "aux_coef": self.aux_coef, "encoder_bias": self.encoder_bias, "seed": self.seed}  # fmt: skip
        if self.architecture in ("topk", "batch_topk", "mutual_choice", "matryoshka_batch_topk", "feature_choice",
                                 "groupmax"):  # fmt: skip
            cfg["k"] = self.k
        if self.architecture == "matryoshka_batch_topk" and self.matryoshka_prefixes.strip():
            cfg["prefixes"] = [int(w) for w in self.matryoshka_prefixes.split(",")]
        if self.architecture == "topk":
            cfg["multi_topk"] = self.multi_topk
        if self.architecture == "jumprelu" and self.l0_coef > 0:
            cfg.update(bandwidth=self.jumprelu_bandwidth, init_threshold=self.jumprelu_init_threshold)
        if self.architecture == "feature_choice":
            cfg.update(capacity=self.capacity, zipf_exponent=self.zipf_exponent)
        return sae_from_config(cfg, device=self.device)
