"""Training SAEs on prismkit's fused ops.

``Trainer(TrainConfig(...), source).fit()`` trains on a source of activations (see ``data.py``):
batches of ``batch_size`` tokens shuffled through a buffer, Adam, decoder rows kept at unit norm
(parallel gradient removed before each step, rows renormalized after), an auxiliary loss on dead
(AuxK) or under-used (aux_zipf) latents, optional Group Bias Adaptation of the encoder biases.

Initialization: ``b_dec`` at the geometric median of the first ``init_tokens`` tokens, the encoder
as the decoder's transpose times ``encoder_init_scale`` (default 0.1), or, with
``encoder_init_scale=None``, scaled as the TopK paper's code does so reconstructions match the
input norm (``SparseAutoencoder.init_from_data``). The default is the small start of Anthropic's
and SAELens' recipes: on all-MiniLM-L6-v2 activations at a 180k-token budget (bench/sae_quality.py)
it reached a held-out FVU of 0.130 against 0.138 with the norm matching (seed 0, lr 4e-3), and the
TopK paper itself reports no clear benefit from its scaling.

Tracking: a latent is dead once it has not fired (a positive code value) for ``dead_tokens``
tokens; latent frequencies for aux_zipf are an exponential average over about the same window. The
default window (``default_dead_tokens``) is sparsify's and the TopK paper's 10M tokens for long
runs, but at most a tenth of the run, so AuxK switches on in short runs too, and at least 5
batches (the BatchTopK repo's "dead after 5 idle batches"): 1M tokens for the default 10M-token run.
Every ``log_every`` steps the trainer writes a JSON line to ``<out_dir>/metrics.jsonl`` (step,
tokens, FVU, aux loss, L0 mean and quantiles, dead fraction, tokens/s) and updates the progress bar.

Checkpoints (``<out_dir>/checkpoints/step_<n>/``): the SAE in prismkit's layout (``config.json``,
``sae.safetensors``), ``train_config.json``, and the trainer state (optimizer, trackers, shuffle
buffer, GBA buffer, the input scale) in ``trainer_state.safetensors`` + ``trainer_state.json``.
``Trainer.resume`` continues from one and produces the same next steps as the uninterrupted run.
With ``normalize_activations`` a checkpoint's SAE is the training state (it reads scaled inputs);
``<out_dir>/sae/`` and ``fit()``'s result have the scale folded in (``Trainer.trained_sae``).

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the trainer joins the process group (gloo on
CPU, nccl on GPUs), wraps the SAE in DistributedDataParallel, and each rank takes its slice of
the same global batch. Every FVU-style term (FVU, AuxK, aux_zipf, Multi-TopK) is normalized by the
global batch's variance, so for TopK SAEs the averaged gradient equals the single-process gradient
on the global batch (tested with 2 processes). BatchTopK / Mutual Choice and Feature Choice select
within each rank's slice (k*B/N entries, capacities for B/N tokens): the per-rank batch is their
batch; their running threshold is rank 0's (DDP broadcasts buffers). Trackers and GBA sum their
counts over ranks; the logged L0 quantiles are rank 0's slice. Only rank 0 writes files.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import sys
import threading
import time
import warnings
from typing import Optional

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import Tensor

from prismkit.ops.sae import SparseCode

from . import io, losses
from .config import TrainConfig, default_dead_tokens
from .gba import GroupBiasAdaptation
from .modules import JumpReLUSAE, SparseAutoencoder

__all__ = ["TrainConfig", "Trainer", "LatentTracker", "default_dead_tokens", "evaluate", "l0_per_token"]


def l0_per_token(code: SparseCode) -> Tensor:
    """Active (positive) latents per token, [N] int64."""
    active = ~(code.values <= 0)
    if code.offsets is None:
        return active.sum(1)
    return torch.bincount(code.row_ids()[active], minlength=code.batch_size)


def fired_latents(code: SparseCode) -> Tensor:
    """How many tokens each latent fired on in this code, [F] int64."""
    active = ~(code.values <= 0)
    return torch.bincount(code.indices[active].flatten(), minlength=code.num_latents)


class LatentTracker:
    """Dead latents (no firing for ``dead_tokens`` tokens) and smoothed latent frequencies."""

    def __init__(self, num_latents: int, dead_tokens: int, device=None):
        self.dead_tokens = dead_tokens
        self.tokens_since_fired = torch.zeros(num_latents, dtype=torch.long, device=device)
        self.frequency = torch.zeros(num_latents, dtype=torch.float64, device=device)

    def update(self, fired: Tensor, num_tokens: int) -> None:
        self.tokens_since_fired += num_tokens
        self.tokens_since_fired[fired > 0] = 0
        beta = min(1.0, num_tokens / max(self.dead_tokens, 1))
        self.frequency.mul_(1 - beta).add_(beta * fired.double() / max(num_tokens, 1))

    def dead(self) -> Tensor:
        return self.tokens_since_fired >= self.dead_tokens

    def state_dict(self) -> dict:
        return {"tokens_since_fired": self.tokens_since_fired, "frequency": self.frequency}

    def load_state_dict(self, state: dict) -> None:
        self.tokens_since_fired.copy_(state["tokens_since_fired"])
        self.frequency.copy_(state["frequency"])


def _distributed(device: str) -> tuple[int, int]:
    """(rank, world size), joining the process group when torchrun started us: nccl when training
    on GPUs, gloo on the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        on_gpu = device.startswith("cuda")
        if on_gpu:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if on_gpu else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Trainer:
    """Trains an SAE on a source of activations (``TensorSource``, ``MemmapSource``, ``HookSource``
    or anything with ``d_in``, ``read(start, stop)`` and ``len``) as ``config`` says: ``fit()``
    runs the steps, ``train_step()`` one, ``save_checkpoint`` / ``Trainer.resume`` stop and go on.
    ``sae``: an SAE to fine-tune (a loaded checkpoint; it keeps its weights, no data-dependent
    initialization); by default ``config.build_sae(source.d_in)`` builds a fresh one. Warns when
    the run reads the data several times, when a batch is larger than the data, and when a
    BatchTopK run is too short for its inference threshold to settle."""

    def __init__(self, config: TrainConfig, source, sae: Optional[SparseAutoencoder] = None, *,
                 _resuming: bool = False):  # fmt: skip
        self.config = c = config
        if c.normalize_activations and sae is not None and not _resuming:
            raise ValueError("Trainer: normalize_activations=True trains in scaled units, and a given SAE reads raw "
                             "activations; fine-tune it with normalize_activations=False")  # fmt: skip
        self.source = source
        self.rank, self.world_size = _distributed(c.device)
        if c.device.startswith("cuda") and self.world_size > 1:
            c.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        self.device = torch.device(c.device)
        self.sae = sae.to(self.device) if sae is not None else c.build_sae(source.d_in)
        if sae is not None and not torch.allclose(sae.W_dec.detach().norm(dim=1), sae.W_dec.new_ones(()), atol=1e-4):
            # a loaded checkpoint with decoder rows of other norms (SAELens' standard and JumpReLU
            # files): fold the norms into the encoder once, so training's unit-norm upkeep keeps its function
            sae.normalize_decoder(fold=True)
        if c.k_start is not None and c.k_start > self.sae.num_latents:
            raise ValueError(f"Trainer: k_start={c.k_start} exceeds the SAE's {self.sae.num_latents} latents")
        if self.sae.d_in != source.d_in:
            raise ValueError(f"Trainer: the SAE expects d_in={self.sae.d_in}, the source gives {source.d_in}")
        self._check_jumprelu_training()
        self.gba = None
        if c.bias_adaptation == "gba":
            self.sae.b_enc.requires_grad_(False)
            self.gba = GroupBiasAdaptation(self.sae.num_latents, c.gba, device=self.device)
        self.lr = c.lr if c.lr is not None else 2e-4 / math.sqrt(self.sae.num_latents / 2**14)
        decoder = [self.sae.W_dec]
        others = [p for p in self.sae.parameters() if p.requires_grad and p is not self.sae.W_dec]
        groups = [{"params": others, "lr_scale": 1.0}, {"params": decoder, "lr_scale": c.decoder_lr_scale}]
        fused = self.device.type in ("cpu", "cuda")  # one kernel per group for all its parameters
        self.optimizer = torch.optim.Adam(groups, lr=self.lr, eps=c.adam_eps, fused=fused)
        self.buffer = _make_buffer(c, source, self.rank, self.world_size)
        if self.rank == 0:
            self._warn_about_the_schedule(_source_len(source))
        self.tracker = LatentTracker(self.sae.num_latents, c.dead_window, self.device)
        self.step = 0
        # normalize_activations: the factor inputs are multiplied by (None until estimated)
        self.input_scale: Optional[float] = None
        self.wandb_id: Optional[str] = None  # the Weights & Biases run, kept so a resumed run continues it
        # A given SAE (a loaded checkpoint to fine-tune) keeps its weights: no data initialization.
        self._initialized = sae is not None
        self.model = self.sae
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.sae, device_ids=ids)

    def _check_jumprelu_training(self) -> None:
        """The L0 penalty and trainable thresholds go together. A given JumpReLU SAE whose thresholds
        are a buffer (a loaded SAELens, Gemma Scope or dictionary_learning file) gets them as a
        parameter when l0_coef > 0; the config's bandwidth applies either way."""
        c, sae = self.config, self.sae
        trains_thresholds = getattr(sae, "bandwidth", None) is not None
        if c.l0_coef > 0:
            if not isinstance(sae, JumpReLUSAE):
                raise ValueError(f"Trainer: l0_coef trains JumpReLU thresholds; the given SAE is a "
                                 f"{type(sae).__name__}")  # fmt: skip
            if not trains_thresholds:
                sae.train_thresholds(c.jumprelu_bandwidth)
            sae.bandwidth = float(c.jumprelu_bandwidth)
            if c.l0_target is not None and c.l0_target > sae.num_latents:
                raise ValueError(f"Trainer: l0_target={c.l0_target} exceeds the SAE's {sae.num_latents} latents")
        elif trains_thresholds:
            raise ValueError("Trainer: the given SAE trains its JumpReLU thresholds (it has a bandwidth), which needs "
                             "the L0 penalty: set l0_coef > 0")  # fmt: skip

    def _warn_about_the_schedule(self, data_tokens: int) -> None:
        c = self.config
        if c.batch_size > data_tokens:
            warnings.warn(f"Trainer: batch_size {c.batch_size} is larger than the data ({data_tokens} tokens): "
                          "every batch repeats tokens", stacklevel=3)  # fmt: skip
        elif c.total_tokens > data_tokens:
            warnings.warn(f"Trainer: total_tokens {c.total_tokens:,} is {c.total_tokens / data_tokens:.1f} passes over "
                          f"the {data_tokens:,} tokens of data (set total_tokens for one pass)", stacklevel=3)  # fmt: skip
        momentum = getattr(self.sae, "threshold_momentum", None)
        if momentum and self.total_steps < 3 / momentum:
            warnings.warn(f"Trainer: {self.total_steps} steps are too few for the running inference threshold "
                          f"(momentum {momentum}, about {1 / momentum:.0f} batches per time constant) to settle: "
                          "eval-mode codes may differ from training's", stacklevel=3)  # fmt: skip

    # ---- training ------------------------------------------------------------------------

    @property
    def total_steps(self) -> int:
        return math.ceil(self.config.total_tokens / self.config.batch_size)

    def lr_multiplier(self, step: int) -> float:
        """The learning rate of step ``step`` (from 0) over ``lr``: the linear warm-up, then, over the
        run's last ``lr_decay_steps``, the linear or cosine decay to ``lr_end_scale`` (reached at the
        last step). A function of the step alone, so a resumed run follows the same schedule."""
        c = self.config
        m = min(1.0, (step + 1) / c.lr_warmup_steps) if c.lr_warmup_steps else 1.0
        if c.lr_decay != "none":
            n = min(c.lr_decay_steps or max(1, round(0.2 * self.total_steps)), self.total_steps)
            start = self.total_steps - n
            if step >= start:
                p = min(1.0, (step - start + 1) / n)
                shape = 1 - p if c.lr_decay == "linear" else 0.5 * (1 + math.cos(math.pi * p))
                m *= c.lr_end_scale + (1 - c.lr_end_scale) * shape
        return m

    def l1_coef_at(self, step: int) -> float:
        """The relu architecture's L1 weight at step ``step``: ``l1_coef``, ramped linearly from 0
        over the first ``l1_warmup_steps`` (SAELens' l1_warm_up_steps)."""
        c = self.config
        return c.l1_coef * (min(1.0, (step + 1) / c.l1_warmup_steps) if c.l1_warmup_steps else 1.0)

    def l0_coef_at(self, step: int) -> float:
        """The jumprelu architecture's L0 weight at step ``step``: ``l0_coef``, ramped linearly from 0
        over the first ``l0_warmup_steps`` (SAELens' l0_warm_up_steps)."""
        c = self.config
        return c.l0_coef * (min(1.0, (step + 1) / c.l0_warmup_steps) if c.l0_warmup_steps else 1.0)

    def _l0_penalty(self, out, num_tokens: int) -> tuple[Tensor, Tensor]:
        """(the loss term, the penalty's value) of a JumpReLU run. The loss term is w * L0 with L0
        ``losses.jumprelu_l0``'s (its gradient the straight-through one) and w the penalty's slope at
        the global batch's L0: l0_coef for SAELens' step loss, 2 l0_coef (L0 / target - 1) / target
        for dictionary_learning's (L0 / target - 1)^2, so each rank's term adds up to the global
        batch's gradient."""
        c, sae = self.config, self.sae
        coef = self.l0_coef_at(self.step)
        l0 = losses.jumprelu_l0(out.code, out.in_window, sae.threshold, sae.bandwidth, num_tokens)
        total = l0.detach().double().reshape(1)
        if self.world_size > 1:
            dist.all_reduce(total)
        if c.l0_target is None:
            return coef * l0, coef * total[0]
        ratio = total[0] / c.l0_target - 1
        return float(2 * coef * ratio / c.l0_target) * l0, coef * ratio**2

    def k_at(self, step: int) -> int:
        """k of step ``step``: from ``k_start`` down to ``k`` linearly over ``k_anneal_steps``."""
        c = self.config
        if c.k_start is None:
            return c.k
        return round(c.k_start + (c.k - c.k_start) * min(1.0, step / c.k_anneal_steps))

    def estimate_input_scale(self) -> float:
        """normalize_activations' factor s = sqrt(d_in / mean |x|^2) over the first init_tokens
        tokens (at least 4096): SAELens' and dictionary_learning's normalization to a mean squared
        norm of d_in, estimated once (a resumed run reads it from its checkpoint)."""
        n = min(max(self.config.init_tokens, 4096), _source_len(self.source))
        sample = self.source.read(0, n).double()
        self.input_scale = math.sqrt(sample.shape[1] / float(sample.pow(2).sum(1).mean()))
        return self.input_scale

    def _inputs(self, x: Tensor) -> Tensor:
        if not self.config.normalize_activations:
            return x
        if self.input_scale is None:
            self.estimate_input_scale()
        return x * self.input_scale

    def initialize(self) -> None:
        """Data-dependent initialization (before the first step of a fresh run)."""
        if self.config.b_dec_init is not None and self.config.init_tokens > 0:
            sample = self.source.read(0, min(self.config.init_tokens, _source_len(self.source))).to(self.device)
            self.sae.init_from_data(self._inputs(sample), self.config.b_dec_init, self.config.encoder_init_scale)
            if self.config.jumprelu_init_l0 is not None:
                self.sae.init_thresholds_for_l0(self._inputs(sample), self.config.jumprelu_init_l0)
        self._initialized = True

    def trained_sae(self) -> SparseAutoencoder:
        """The SAE as it should be used: with normalize_activations, a copy with the input scale s
        folded in as dictionary_learning's ``scale_biases`` does (b_enc / s, b_dec / s and every
        threshold / s; W_enc and the unit-norm decoder unchanged): on raw activations x its
        pre-activations are those of the trained SAE on s x divided by s, so it selects the same
        latents, with activations a / s, and reconstructs x exactly as the trained one reconstructs
        s x, divided by s. Otherwise the trained SAE itself."""
        if self.input_scale is None:
            return self.sae
        sae = copy.deepcopy(self.sae)
        s = self.input_scale
        with torch.no_grad():
            sae.b_enc.div_(s)
            sae.b_dec.div_(s)
            threshold = getattr(sae, "threshold", None)
            if threshold is not None:
                threshold.div_(s)  # BatchTopK's unset -1 stays negative (unset)
        if getattr(sae, "bandwidth", None) is not None:
            sae.bandwidth /= s  # the estimator's window, in the raw units of the thresholds
        sae.metadata = {**sae.metadata, "input_scale_folded": s}
        return sae

    def _global_variance(self, x: Tensor) -> Tensor:
        """sum ||x - mean||^2 over the global batch (all ranks), in float64, centered with the
        global mean first (activations often have a large mean next to a small spread)."""
        x = x.detach().double()
        sums = torch.cat([x.sum(0), torch.tensor([x.shape[0]], dtype=x.dtype, device=x.device)])
        dist.all_reduce(sums)
        centered = (x - sums[:-1] / sums[-1]).pow(2).sum().reshape(1)
        dist.all_reduce(centered)
        return centered[0]

    def train_step(self) -> dict:
        c, sae = self.config, self.sae
        if c.k_start is not None:
            sae.k = self.k_at(self.step)  # before the initialization, which calibrates for this k
        if self.step == 0 and not self._initialized:
            self.initialize()
        sae.train()  # an SAE handed over in eval mode would otherwise train with its inference rule
        x = self._inputs(self.buffer.next_batch().to(self.device, sae.W_enc.dtype))
        multiplier = self.lr_multiplier(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * multiplier * group["lr_scale"]
        eligible = None
        if c.aux == "auxk":
            eligible = self.tracker.dead()
        elif c.aux == "aux_zipf" and self.step > 0:
            eligible = losses.zipf_underused(self.tracker.frequency, c.aux_zipf_alpha)
        variance_fn = self._global_variance if self.world_size > 1 else None
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=c.autocast == "bf16"):
            out = self.model(x, aux_eligible=eligible, variance_fn=variance_fn)
            loss, l1 = out.loss.float(), None
            if c.architecture == "relu":
                variance = (variance_fn or losses.total_variance)(x)
                l1 = losses.l1_penalty(out.code, sae.W_dec, x.shape[0] * self.world_size, variance)
                loss = loss + self.l1_coef_at(self.step) * l1
            l0_penalty = None
            if out.in_window is not None:  # jumprelu with its L0 penalty
                l0_term, l0_penalty = self._l0_penalty(out, x.shape[0] * self.world_size)
                loss = loss + l0_term
        self.optimizer.zero_grad(set_to_none=True)
        # Every term is (this rank's part of a global sum) / (a global variance); DDP averages the
        # gradients over ranks, so scaling by the world size makes them the global batch's.
        (loss * self.world_size).backward()
        sae.remove_parallel_decoder_grad()
        grad_norm = None
        if c.grad_clip is not None:
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, c.grad_clip))
        self.optimizer.step()
        sae.normalize_decoder()
        if getattr(sae, "bandwidth", None) is not None:
            # JumpReLU thresholds stay >= 0 (SAELens projects them the same way): below 0 the
            # rule would pass negative pre-activations.
            sae.threshold.data.clamp_(min=0)
        if self.gba is not None:
            threshold = getattr(sae, "threshold", None)  # JumpReLU fires above its threshold
            threshold = threshold.detach().to(x.dtype) if threshold is not None and threshold.dim() == 1 else None
            self.gba.observe(sae.encoder_input(x).detach(), sae.W_enc.detach(), sae.b_enc, threshold)
        fired = fired_latents(out.code)
        l0 = l0_per_token(out.code)
        l1_value = l1.detach().float() if l1 is not None else out.fvu.new_zeros(())
        stats = torch.stack([out.fvu.detach().float(), out.aux_loss.detach().float(), l0.sum().float(), l1_value])
        if self.world_size > 1:
            dist.all_reduce(fired)
            dist.all_reduce(stats)
        self.tracker.update(fired, c.batch_size)
        self.step += 1
        result = {
            "fvu": float(stats[0]),
            "aux_loss": float(stats[1]),
            "l0": l0,
            "l0_mean": float(stats[2]) / c.batch_size,
        }
        if grad_norm is not None:
            result["grad_norm"] = grad_norm  # before clipping
        if l1 is not None:
            result["l1"] = float(stats[3])  # the ranks' shares summed
            result["l1_coef"] = self.l1_coef_at(self.step - 1)
        if l0_penalty is not None:
            result["l0_penalty"] = float(l0_penalty)  # already the global batch's
            result["l0_coef"] = self.l0_coef_at(self.step - 1)
        return result

    def fit(self, max_steps: Optional[int] = None, progress: bool = True) -> SparseAutoencoder:
        """Train until ``total_tokens`` (or ``max_steps`` more steps). Returns the SAE."""
        from tqdm.auto import tqdm

        c = self.config
        end = self.total_steps if max_steps is None else min(self.total_steps, self.step + max_steps)
        main = self.rank == 0
        log_path = os.path.join(c.out_dir, "metrics.jsonl") if c.out_dir and main else None
        if log_path:
            os.makedirs(c.out_dir, exist_ok=True)
        bar = tqdm(total=end, initial=self.step, unit="step", desc=f"train {self.sae.architecture}",
                   disable=not (progress and main))  # fmt: skip
        t0, tokens0 = time.perf_counter(), self.step * c.batch_size
        self.interrupted = False
        run = self._start_wandb() if c.wandb and main else None
        try:
            with _StopOnInterrupt(enabled=self.world_size == 1) as stop:  # torchrun: ranks must stop together
                self._fit_loop(end, bar, log_path, t0, tokens0, stop, run)
            bar.close()
            trained = self.trained_sae()
            if c.out_dir:
                self.save_checkpoint(os.path.join(c.out_dir, "checkpoints", f"step_{self.step}"))
                if main and not self.interrupted:
                    io.save_sae(trained, os.path.join(c.out_dir, "sae"))
        finally:
            if run is not None:
                run.finish()
        return trained

    def _start_wandb(self):
        """A Weights & Biases run for this training run (the same one again after a resume)."""
        c = self.config
        try:
            import wandb
        except ImportError as e:
            raise ImportError("TrainConfig(wandb=True) needs the wandb package (pip install wandb); with "
                              "WANDB_MODE=offline it logs without a network") from e  # fmt: skip
        name = os.path.basename(os.path.abspath(c.out_dir)) if c.out_dir else None
        run = wandb.init(project=c.wandb_project, id=self.wandb_id, resume="allow", config=c.to_dict(),
                         dir=c.out_dir or None, name=name)  # fmt: skip
        self.wandb_id = run.id
        return run

    def _fit_loop(self, end, bar, log_path, t0, tokens0, stop, run=None) -> None:
        c = self.config
        while self.step < end:
            if stop.requested:  # Ctrl-C: stop between steps; fit saves a checkpoint
                self.interrupted = True
                break
            m = self.train_step()
            bar.update(1)
            if self.step % c.log_every == 0 or self.step == end:
                record = self._metrics(m, (self.step * c.batch_size - tokens0) / max(time.perf_counter() - t0, 1e-9))
                bar.set_postfix(fvu=f"{record['fvu']:.4f}", l0=f"{record['l0_mean']:.1f}",
                                dead=f"{record['dead_fraction']:.1%}", tok_s=f"{record['tokens_per_s']:.0f}")  # fmt: skip
                if log_path:
                    with open(log_path, "a") as f:
                        f.write(json.dumps(record) + "\n")
                if run is not None:
                    run.log(record, step=self.step)
            if c.out_dir and c.checkpoint_every and self.step % c.checkpoint_every == 0 and self.step < end:
                self.save_checkpoint(os.path.join(c.out_dir, "checkpoints", f"step_{self.step}"))

    def _metrics(self, m: dict, tokens_per_s: float) -> dict:
        q = torch.quantile(m["l0"].double(), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64, device=m["l0"].device))
        record = {
            "step": self.step,
            "tokens": self.step * self.config.batch_size,
            "fvu": m["fvu"],
            "aux_loss": m["aux_loss"],
            "l0_mean": m["l0_mean"],
            "l0_p10": float(q[0]), "l0_p50": float(q[1]), "l0_p90": float(q[2]),
            "dead_fraction": float(self.tracker.dead().double().mean()),
            "tokens_per_s": tokens_per_s,
            "lr": self.optimizer.param_groups[0]["lr"],
        }  # fmt: skip
        if hasattr(self.sae, "threshold") and self.sae.threshold.dim() == 0:
            record["threshold"] = float(self.sae.threshold)
        if self.config.k_start is not None:
            record["k"] = self.sae.k
        if "grad_norm" in m:
            record["grad_norm"] = m["grad_norm"]
        if "l1" in m:
            record["l1"], record["l1_coef"] = m["l1"], m["l1_coef"]
        if "l0_penalty" in m:
            record["l0_penalty"], record["l0_coef"] = m["l0_penalty"], m["l0_coef"]
            record["threshold_mean"] = float(self.sae.threshold.detach().double().mean())
        return record

    # ---- checkpoints ---------------------------------------------------------------------

    def save_checkpoint(self, directory: str) -> None:
        if self.rank != 0:
            if self.world_size > 1:
                dist.barrier()
            return
        os.makedirs(directory, exist_ok=True)
        io.save_sae(self.sae, directory)
        with open(os.path.join(directory, "train_config.json"), "w") as f:
            json.dump(self.config.to_dict(), f, indent=2)
        tensors, meta = {}, {"step": self.step, "initialized": self._initialized, "input_scale": self.input_scale,
                             "wandb_id": self.wandb_id}  # fmt: skip
        for i, state in self.optimizer.state_dict()["state"].items():
            for key, value in state.items():
                tensors[f"optimizer.{i}.{key}"] = torch.as_tensor(value).contiguous()
        for key, value in self.tracker.state_dict().items():
            tensors[f"tracker.{key}"] = value.contiguous()
        buffer_state = self.buffer.state_dict()
        tensors["buffer.leftover"] = buffer_state.pop("leftover").contiguous()
        meta["buffer"] = buffer_state
        if self.gba is not None:
            for key, value in self.gba.state_dict().items():
                tensors[f"gba.{key}"] = value.contiguous()
        save_file({k: v.cpu() for k, v in tensors.items()}, os.path.join(directory, "trainer_state.safetensors"))
        with open(os.path.join(directory, "trainer_state.json"), "w") as f:
            json.dump(meta, f, indent=2)
        if self.world_size > 1:
            dist.barrier()

    @classmethod
    def resume(cls, directory: str, source, **overrides) -> Trainer:
        """A trainer in the state saved in ``directory`` (``overrides`` change config fields such
        as ``total_tokens`` or ``out_dir``). Its output goes to the run the checkpoint belongs to
        (``<run>/checkpoints/step_<n>`` -> ``<run>``, wherever that run was copied), not to the
        ``out_dir`` recorded in it, unless ``out_dir`` is given; that run's ``metrics.jsonl`` is
        cut back to the resumed step, so no step is logged twice."""
        with open(os.path.join(directory, "train_config.json")) as f:
            recorded = json.load(f)
        if "out_dir" not in overrides:
            parent = os.path.dirname(os.path.abspath(directory))
            if os.path.basename(parent) != "checkpoints":
                raise ValueError(
                    f"Trainer.resume: {directory} is not inside a run's checkpoints/ directory, so the run to continue "
                    "in is unknown; pass out_dir= (--out on the command line)"
                )
            overrides["out_dir"] = os.path.dirname(parent)
        config = TrainConfig.from_dict({**recorded, **overrides})
        sae = io.load_sae(directory)
        trainer = cls(config, source, sae=sae, _resuming=True)
        with open(os.path.join(directory, "trainer_state.json")) as f:
            meta = json.load(f)
        if bool(recorded.get("normalize_activations", False)) != config.normalize_activations and meta["step"] > 0:
            raise ValueError("Trainer.resume: normalize_activations cannot change in the middle of a run (the "
                             "checkpoint's SAE is in the units it was trained in)")  # fmt: skip
        tensors = load_file(os.path.join(directory, "trainer_state.safetensors"))
        opt_state = trainer.optimizer.state_dict()
        for name, value in tensors.items():
            if name.startswith("optimizer."):
                _, i, key = name.split(".", 2)
                opt_state["state"].setdefault(int(i), {})[key] = value.to(trainer.device) if key != "step" else value
        trainer.optimizer.load_state_dict(opt_state)
        trainer.tracker.load_state_dict(
            {k[len("tracker.") :]: v.to(trainer.device) for k, v in tensors.items() if k.startswith("tracker.")}
        )
        trainer.buffer.load_state_dict({**meta["buffer"], "leftover": tensors["buffer.leftover"]})
        if trainer.gba is not None:
            trainer.gba.load_state_dict(
                {k[len("gba.") :]: v.to(trainer.device) for k, v in tensors.items() if k.startswith("gba.")}
            )
        trainer.step = int(meta["step"])
        trainer._initialized = bool(meta["initialized"])
        trainer.input_scale = meta.get("input_scale")
        trainer.wandb_id = meta.get("wandb_id")
        log_path = os.path.join(config.out_dir, "metrics.jsonl") if config.out_dir else None
        if log_path and trainer.rank == 0 and os.path.exists(log_path):
            with open(log_path) as f:
                steps = ((line, _logged_step(line)) for line in f)
                kept = [line for line, step in steps if step is not None and step <= trainer.step]
            with open(log_path, "w") as f:
                f.writelines(kept)
        return trainer


def _logged_step(line: str) -> Optional[int]:
    """The step of a metrics.jsonl line; None for a blank or half-written one (a crash mid-write)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


class _StopOnInterrupt:
    """While training: the first Ctrl-C (SIGINT) asks the loop to stop after the current step (so
    a checkpoint of a consistent state is saved); a second one interrupts at once. Only in the main
    thread (signal handlers live there)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __enter__(self):
        self.requested, self._installed = False, False
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)  # None: a handler set from C
            self._installed = True
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: stopping after this step and saving a checkpoint (Ctrl-C again to quit now)",
              file=sys.stderr, flush=True)  # fmt: skip

    def __exit__(self, *exc):
        if self._installed:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.SIG_DFL)
        return False


def _source_len(source) -> int:
    try:
        return len(source)
    except TypeError:
        return 1 << 62


def _make_buffer(c: TrainConfig, source, rank: int, world: int):
    from .data import ShuffleBuffer

    return ShuffleBuffer(source, c.batch_size, c.buffer_tokens, c.seed, rank, world)


@torch.no_grad()
def evaluate(sae: SparseAutoencoder, source, num_tokens: int, batch_size: int = 4096, start: int = 0,
             dense_threshold: float = 0.1, return_frequencies: bool = False) -> dict:  # fmt: skip
    """Reconstruction metrics over ``num_tokens`` tokens of ``source`` from ``start``, the SAE in
    eval mode (BatchTopK: threshold encoding):

    * ``fvu`` = sum |x - x_hat|^2 / sum |x - mean(x)|^2 and ``explained_variance`` = 1 - fvu;
    * ``cosine_similarity``: the mean over tokens of cos(x, x_hat);
    * ``l0_mean``: active latents per token;
    * ``dead_fraction``: latents that never fired; ``dense_fraction``: latents that fired on more
      than ``dense_threshold`` of the tokens;
    * with ``return_frequencies``, ``frequencies``: each latent's firing frequency [F] (a tensor,
      for ``evaluation.latent_frequency_histogram``)."""
    was_training = sae.training
    sae.eval()
    device = sae.W_enc.device
    sq_err = total_sum = total_sq = cos_sum = 0.0
    l0_sum, fired = 0, torch.zeros(sae.num_latents, dtype=torch.long, device=device)
    sums = None
    try:
        for s in range(start, start + num_tokens, batch_size):
            x = source.read(s, min(batch_size, start + num_tokens - s)).to(device, sae.W_enc.dtype)
            out = sae(x)
            sq_err += float((x - out.x_hat).double().pow(2).sum())
            cos_sum += float(torch.nn.functional.cosine_similarity(x.double(), out.x_hat.double(), dim=1).sum())
            sums = x.double().sum(0) if sums is None else sums + x.double().sum(0)
            total_sq += float(x.double().pow(2).sum())
            l0_sum += int(l0_per_token(out.code).sum())
            fired += fired_latents(out.code)
    finally:
        sae.train(was_training)
    total_sum = float(sums.pow(2).sum()) / num_tokens
    variance = total_sq - total_sum
    frequency = fired.double() / num_tokens
    result = {"fvu": sq_err / variance, "explained_variance": 1 - sq_err / variance,
              "cosine_similarity": cos_sum / num_tokens, "l0_mean": l0_sum / num_tokens,
              "dead_fraction": float((fired == 0).double().mean()),
              "dense_fraction": float((frequency > dense_threshold).double().mean()), "tokens": num_tokens}  # fmt: skip
    if return_frequencies:
        result["frequencies"] = frequency.cpu()
    return result
