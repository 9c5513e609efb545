"""Group Bias Adaptation (Chen, Sheen, Xiong, Wang, Yang: "Taming Polysemanticity in LLMs",
arXiv 2506.14002).

The encoder biases are not trained by gradient. Latents are split into ``num_groups`` groups;
group g has a target activation frequency (TAF) ``p_g``, geometrically spaced from
``highest_target_frequency`` down to ``lowest_target_frequency``. Over a buffer of recent
pre-activations (``buffer_tokens`` tokens, read with the ``latent_stats`` op, no [N, F] matrix),
each latent's firing frequency ``f_m`` (share of tokens with pre-activation > 0, or above a
JumpReLU SAE's threshold) and its largest
pre-activation ``r_m`` are measured; then, once per buffer:

    if f_m > p_g:         b_m <- max(b_m - gamma * max(r_m, 0), floor_m)   (fires too often: lower)
    if f_m < dead_freq:   b_m <- min(b_m + gamma * rbar_g, 0)               (dead: raise toward 0)

where ``rbar_g`` is the mean over group g of ``max(r_m, 0)``. Biases stay in [floor_m, 0] with
``floor_m = -bias_max * rms(x) * ||W_enc[m]||``, rms(x) the root mean square norm of the buffer's
encoder inputs: the largest pre-activation a typical token gives latent m, so the floor follows
the activations' scale (an absolute floor of -1 left unnormalized activations unable to reach
their target frequencies).

The paper's code was not available; this rule follows the paper's Algorithm 1 as described by its
reviewers and a public reimplementation, whose values are our defaults: 10 groups, TAF from 0.1 to
0.001, a 40,960-token buffer, gamma = 0.01, dead below 1e-6; that reimplementation bounds the
biases to [-1, 0] for its normalized activations, which ``bias_max = 1`` keeps in relative terms. Groups are
contiguous latent ranges (latent m is in group ``m * num_groups // F``).

Under torch.distributed the counts are summed over ranks before each adaptation, so every rank
applies the same update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor

from prismkit.ops import sae as ops

__all__ = ["GBAConfig", "GroupBiasAdaptation"]


@dataclass
class GBAConfig:
    """Group Bias Adaptation's settings (module docstring: the rule); metadata holds help lines."""

    num_groups: int = field(default=10, metadata={"help": "latent groups, each with its own target frequency"})
    highest_target_frequency: float = field(default=0.1, metadata={"help": "the first group's target frequency"})
    lowest_target_frequency: float = field(default=1e-3, metadata={"help": "the last group's target frequency"})
    buffer_tokens: int = field(default=40_960, metadata={"help": "tokens observed between two adaptations"})
    gamma: float = field(default=0.01, metadata={"help": "step of each bias change, times the latent's largest "
                                                         "pre-activation"})  # fmt: skip
    dead_frequency: float = field(default=1e-6, metadata={"help": "below this frequency a latent's bias is raised"})
    bias_max: float = field(default=1.0, metadata={"help": "biases go no lower than -bias_max * rms input norm * "
                                                           "|W_enc row|"})  # fmt: skip

    def __post_init__(self):
        if self.num_groups < 1 or self.buffer_tokens < 1:
            raise ValueError(
                f"GBA: num_groups and buffer_tokens must be >= 1, got {self.num_groups}, {self.buffer_tokens}"
            )
        if not 0 < self.lowest_target_frequency <= self.highest_target_frequency <= 1:
            raise ValueError(
                "GBA: need 0 < lowest_target_frequency <= highest_target_frequency <= 1, got "
                f"{self.lowest_target_frequency}, {self.highest_target_frequency}"
            )


class GroupBiasAdaptation:
    """Keeps the buffer statistics and adapts ``b_enc`` in place. Call ``observe(x_in, W_enc,
    b_enc)`` on every training batch (the encoder input); it adapts when the buffer is full and
    returns True then."""

    def __init__(self, num_latents: int, config: GBAConfig = GBAConfig(), device=None):
        self.config = config
        self.num_latents = num_latents
        group = torch.arange(num_latents) * config.num_groups // num_latents
        taf = torch.logspace(
            torch.log10(torch.tensor(config.highest_target_frequency)),
            torch.log10(torch.tensor(config.lowest_target_frequency)),
            config.num_groups,
            dtype=torch.float64,
        )
        self.group = group.to(device)
        self.target_frequency = taf[group].to(device)  # per latent
        self.fire_count = torch.zeros(num_latents, dtype=torch.long, device=device)
        self.max_pre = torch.full((num_latents,), float("-inf"), dtype=torch.float64, device=device)
        self.sq_norm = torch.zeros((), dtype=torch.float64, device=device)  # sum of ||x||^2 over the buffer
        self.tokens = 0

    def observe(self, x_in: Tensor, W_enc: Tensor, b_enc: Tensor, threshold: Optional[Tensor] = None) -> bool:
        """``threshold``: a JumpReLU SAE's thresholds, above which a latent fires (0 without)."""
        count, maximum = ops.latent_stats(x_in, W_enc, b_enc, threshold)
        self.fire_count += count
        self.max_pre = torch.maximum(self.max_pre, maximum.double())
        self.sq_norm += x_in.detach().double().pow(2).sum()
        self.tokens += x_in.shape[0]
        world = (
            torch.distributed.get_world_size()
            if torch.distributed.is_available() and torch.distributed.is_initialized()
            else 1
        )
        if self.tokens * world < self.config.buffer_tokens:  # every rank sees the same number of tokens
            return False
        self.adapt(b_enc, W_enc)
        return True

    @torch.no_grad()
    def adapt(self, b_enc: Tensor, W_enc: Tensor) -> None:
        count, maximum, sq_norm, tokens = self.fire_count, self.max_pre, self.sq_norm, self.tokens
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            count, maximum, sq_norm = count.clone(), maximum.clone(), sq_norm.clone()
            torch.distributed.all_reduce(count)
            torch.distributed.all_reduce(sq_norm)
            torch.distributed.all_reduce(maximum, op=torch.distributed.ReduceOp.MAX)
            t = torch.tensor([tokens], dtype=torch.long, device=count.device)
            torch.distributed.all_reduce(t)
            tokens = int(t)
        c = self.config
        freq = count.double() / max(tokens, 1)
        r = maximum.clamp_min(0).nan_to_num(0.0)
        group_mean = torch.zeros(c.num_groups, dtype=torch.float64, device=r.device).index_add_(0, self.group, r)
        group_mean /= torch.bincount(self.group, minlength=c.num_groups).clamp_min(1)
        floor = -c.bias_max * (sq_norm / max(tokens, 1)).sqrt() * W_enc.detach().double().norm(dim=1)
        b = b_enc.double()
        lowered = torch.maximum(b - c.gamma * r, floor)
        raised = (b + c.gamma * group_mean[self.group]).clamp_max(0.0)
        b = torch.where(freq > self.target_frequency, lowered, b)
        b = torch.where(freq < c.dead_frequency, raised, b)
        b_enc.copy_(torch.minimum(torch.maximum(b, floor), torch.zeros_like(b)).to(b_enc.dtype))
        self.fire_count.zero_()
        self.max_pre.fill_(float("-inf"))
        self.sq_norm.zero_()
        self.tokens = 0

    def state_dict(self) -> dict:
        return {"fire_count": self.fire_count, "max_pre": self.max_pre, "sq_norm": self.sq_norm,
                "tokens": torch.tensor(self.tokens)}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.fire_count.copy_(state["fire_count"])
        self.max_pre.copy_(state["max_pre"])
        self.tokens = int(state["tokens"])
        if "sq_norm" in state:
            self.sq_norm.copy_(state["sq_norm"])
        else:  # a checkpoint from before the relative floor: its partial buffer cannot give one; start afresh
            self.fire_count.zero_()
            self.max_pre.fill_(float("-inf"))
            self.sq_norm.zero_()
            self.tokens = 0
