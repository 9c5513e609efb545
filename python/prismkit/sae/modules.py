"""Sparse autoencoders on prismkit's fused SAE ops.

Every SAE holds ``W_enc`` [F, d], ``b_enc`` [F], ``W_dec`` [F, d] (one decoder direction per row,
kept at unit norm) and ``b_dec`` [d], and computes

    z = (x - b_dec) @ W_enc.T + b_enc          (pre-activations, never materialized as [N, F])
    code = <sparsity rule>(z)                  (a SparseCode: values and latent indices)
    x_hat = code @ W_dec + b_dec               (sparse_decode)

The sparsity rules:

* ``TopKSAE`` (Gao et al.): the k largest ReLU'd pre-activations per token.
* ``BatchTopKSAE`` (Bussmann et al.): the k*N largest over the whole batch. At evaluation
  (``.eval()``) it encodes with a running threshold instead, so a token's code does not depend on
  its batch; ``to_jumprelu()`` exports that threshold as a per-latent JumpReLU threshold.
* ``MutualChoiceSAE`` (Ayonrinde): the Mutual Choice allocation is the same operation as
  BatchTopK (a global top-k*N with no per-token or per-latent limit), so it is the same class under
  the paper's name.
* ``FeatureChoiceSAE`` (Ayonrinde): in training latent j keeps its ``capacity[j]`` best tokens;
  capacities are equal (k*N/F each) or Zipf-shaped, summing to k*N, handed out by running usage
  rank. At evaluation per-latent running thresholds make encoding batch-independent.
* ``JumpReLUSAE``: ``z * 1[z > threshold_j]``, for loading and evaluating JumpReLU checkpoints
  (Gemma Scope, SAELens, dictionary_learning), and trained with a straight-through estimator for
  the thresholds and an L0 penalty when given a ``bandwidth``.

``forward(x)`` accepts any leading shape ([..., d]) and returns an ``SAEOutput``: the
reconstruction, the code, and the loss terms (FVU, the auxiliary loss when the trainer passes the
eligible latents, Multi-TopK for TopK SAEs when enabled). Decoder rows stay at unit norm:
``remove_parallel_decoder_grad()`` before the optimizer step, ``normalize_decoder()`` after it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor, nn

from prismkit.ops import sae as ops
from prismkit.ops.sae import SparseCode

from . import losses
from .capacity import equal_capacity, zipf_split

__all__ = [
    "SAEOutput",
    "SparseAutoencoder",
    "TopKSAE",
    "BatchTopKSAE",
    "MutualChoiceSAE",
    "FeatureChoiceSAE",
    "GroupMaxSAE",
    "JumpReLUSAE",
    "SAE_CLASSES",
    "sae_from_config",
]


class SAEOutput(NamedTuple):
    x_hat: Tensor  # reconstruction, the input's shape
    code: SparseCode  # over the flattened [N, d] tokens
    fvu: Tensor  # fraction of variance unexplained, 0-d
    aux_loss: Tensor  # AuxK / aux_zipf (0 when no eligible latents were passed), 0-d
    multi_topk_fvu: Optional[Tensor]  # TopK SAEs with multi_topk=True only
    loss: Tensor  # fvu + aux_coef * aux_loss (+ multi_topk_coef * multi_topk_fvu)
    # JumpReLU training (a JumpReLUSAE with a bandwidth, in train mode): which entries of ``code``
    # lie in the straight-through window (``losses.jumprelu_l0`` reads it). None otherwise.
    in_window: Optional[Tensor] = None


class SparseAutoencoder(nn.Module):
    """Shared parameters, initialization, decode, losses and decoder-norm upkeep.

    ``aux_k`` is the number of eligible latents the auxiliary loss may use (default d // 2, as
    sparsify and SAELens) and ``aux_coef`` its weight (default 1/32, the TopK paper's).
    ``subtract_b_dec_from_input=False`` encodes x instead of x - b_dec (SAELens'
    ``apply_b_dec_to_input=False``, used by many JumpReLU checkpoints). ``metadata`` (a dict, e.g.
    ``{"hook_name": "blocks.8.hook_resid_pre"}``) travels with the SAE through every save and load.
    ``encoder_bias=False``: no encoder bias (``b_enc`` is then a zero buffer, never trained).
    """

    architecture = "base"
    # Running statistics a checkpoint written before they existed may lack (io.load_sae starts them fresh).
    statistics_buffers: tuple[str, ...] = ()

    def __init__(
        self,
        d_in: int,
        num_latents: int,
        *,
        aux_k: Optional[int] = None,
        aux_coef: float = 1 / 32,
        subtract_b_dec_from_input: bool = True,
        encoder_bias: bool = True,
        metadata: Optional[dict] = None,
        dtype: torch.dtype = torch.float32,
        device: Any = None,
        seed: Optional[int] = None,
    ):
        super().__init__()
        # Where the SAE belongs (SAELens' names: hook_name, model_name, ...): kept by every loader and
        # written by every saver, so a checkpoint says which activations it reads.
        self.metadata = dict(metadata or {})
        if d_in <= 0 or num_latents <= 0:
            raise ValueError(f"{type(self).__name__}: d_in and num_latents must be positive, got {d_in}, {num_latents}")
        self.d_in, self.num_latents = d_in, num_latents
        self.aux_k = d_in // 2 if aux_k is None else aux_k
        self.aux_coef = aux_coef
        self.subtract_b_dec_from_input = subtract_b_dec_from_input
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        W_dec = torch.randn(num_latents, d_in, generator=gen, dtype=torch.float64)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        kw = dict(dtype=dtype, device=device)
        self.W_dec = nn.Parameter(W_dec.to(**kw))
        self.W_enc = nn.Parameter(W_dec.clone().to(**kw))  # encoder = decoder transpose (TopK paper)
        self.encoder_bias = encoder_bias
        if encoder_bias:
            self.b_enc = nn.Parameter(torch.zeros(num_latents, **kw))
        else:  # a bias-free encoder: b_enc stays a zero buffer (the ops take a bias; it gets no gradient)
            self.register_buffer("b_enc", torch.zeros(num_latents, **kw))
        self.b_dec = nn.Parameter(torch.zeros(d_in, **kw))

    # ---- configuration -------------------------------------------------------------------

    def config(self) -> dict:
        """Everything needed to rebuild the module (saved as JSON beside the weights)."""
        return {
            "architecture": self.architecture,
            "d_in": self.d_in,
            "num_latents": self.num_latents,
            "aux_k": self.aux_k,
            "aux_coef": self.aux_coef,
            "subtract_b_dec_from_input": self.subtract_b_dec_from_input,
            "encoder_bias": self.encoder_bias,
            **self._extra_config(),
            "metadata": self.metadata,
        }

    def _extra_config(self) -> dict:
        return {}

    # ---- encode / decode -----------------------------------------------------------------

    def encoder_input(self, x: Tensor) -> Tensor:
        return x - self.b_dec if self.subtract_b_dec_from_input else x

    def _check_input(self, x: Tensor) -> Tensor:
        if x.dim() < 1 or x.shape[-1] != self.d_in:
            raise ValueError(
                f"{type(self).__name__}: expected activations [..., {self.d_in}], got shape {list(x.shape)}"
            )
        if x.dtype != self.W_enc.dtype:
            x = x.to(self.W_enc.dtype)
        return x.reshape(-1, self.d_in)

    def encode(self, x: Tensor, dense: bool = False) -> SparseCode | Tensor:
        """The sparse code of x [..., d]: over the flattened [N, d] tokens, remembering the leading
        dims, so ``decode(encode(x))`` is [..., d] again. ``dense=True``: the dense code [..., F]."""
        flat = self._check_input(x)
        code = self._encode(self.encoder_input(flat))._replace(leading_shape=tuple(x.shape[:-1]))
        return code.to_dense().reshape(*x.shape[:-1], self.num_latents) if dense else code

    def _encode(self, x_in: Tensor) -> SparseCode:
        raise NotImplementedError

    def _training_encode(self, x_in: Tensor) -> tuple[SparseCode, Optional[Tensor]]:
        """The code ``forward`` trains on, and the straight-through window flags of a JumpReLU SAE
        in training (None for every other rule)."""
        return self._encode(x_in), None

    def decode(self, code: SparseCode | Tensor) -> Tensor:
        """The reconstruction of a code from ``encode``: [..., d] (a dense [..., F] code works too)."""
        if isinstance(code, Tensor):
            return code @ self.W_dec + self.b_dec
        return code.decode(self.W_dec, self.b_dec)

    def pre_activations(self, x: Tensor) -> Tensor:
        """Dense [N, F] pre-activations (for analysis; training never builds them)."""
        x = self._check_input(x)
        return torch.nn.functional.linear(self.encoder_input(x), self.W_enc, self.b_enc)

    def forward(
        self, x: Tensor, aux_eligible: Optional[Tensor] = None, variance_fn: Optional[Callable[[Tensor], Tensor]] = None
    ) -> SAEOutput:
        """Reconstruction, code and loss terms. ``aux_eligible`` ([F] bool) lists the latents the
        auxiliary loss may use (dead ones for AuxK, under-used ones for aux_zipf); the trainer
        passes it. The losses are computed over the flattened tokens. ``variance_fn(t)`` gives the
        ``sum ||t - mean(t)||^2`` that normalizes each FVU-style term (default: over this batch; the
        distributed trainer passes one over the global batch, so every rank's terms add up)."""
        flat = self._check_input(x)
        x_in = self.encoder_input(flat)
        code, in_window = self._training_encode(x_in) if self.training else (self._encode(x_in), None)
        x_hat = self.decode(code)
        variance = variance_fn or losses.total_variance
        fvu = losses.fvu(flat, x_hat, variance(flat))
        loss = fvu
        aux = fvu.new_zeros(())
        if aux_eligible is not None and self.aux_k > 0 and bool(aux_eligible.any()):
            x_aux = flat - self.b_dec.detach() if self.subtract_b_dec_from_input else flat
            residual = (flat - x_hat).detach()
            aux = losses.aux_k_loss(x_aux, residual, self.W_enc, self.b_enc, self.W_dec, aux_eligible, self.aux_k,
                                    denominator=variance(residual))  # fmt: skip
            loss = loss + self.aux_coef * aux
        multi = self._multi_topk_fvu(flat, x_in, variance(flat))
        if multi is not None:
            loss = loss + self.multi_topk_coef * multi
        return SAEOutput(x_hat.view(x.shape), code, fvu, aux, multi, loss, in_window)

    def _multi_topk_fvu(self, flat: Tensor, x_in: Tensor, denominator: Tensor) -> Optional[Tensor]:
        return None

    # ---- decoder norm --------------------------------------------------------------------

    @torch.no_grad()
    def normalize_decoder(self, fold: bool = False) -> None:
        """Rescale every decoder row to unit norm (what training does after each step, as sparsify
        and the TopK paper do). ``fold=True`` also moves each row's norm n_j into the encoder
        (``W_enc[j]``, ``b_enc[j]`` and a per-latent ``threshold[j]`` times n_j), so the latent's
        activation grows by n_j as its direction shrinks by it: for per-latent rules (JumpReLU,
        ReLU) the SAE then computes exactly what it did; rank-based rules (TopK, BatchTopK, Feature
        Choice) then rank latents by ``z_j * n_j``, as SAELens' ``rescale_acts_by_decoder_norm``
        does. The Trainer folds once when it is given an SAE whose rows are not unit-norm."""
        norm = self.W_dec.norm(dim=1).clamp_min(torch.finfo(self.W_dec.dtype).eps)
        self.W_dec.div_(norm[:, None])
        if not fold:
            return
        self.W_enc.mul_(norm[:, None])
        self.b_enc.mul_(norm)
        threshold = getattr(self, "threshold", None)
        if threshold is not None and threshold.dim() == 1:
            threshold.mul_(norm.to(threshold.dtype))

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Remove from W_dec's gradient its component along each decoder row, so the optimizer
        step moves the rows tangentially to their sphere (``g -= (g.w / w.w) w`` per row; rows of a
        loaded checkpoint need not be unit-norm)."""
        if self.W_dec.grad is None:
            return
        w = self.W_dec
        parallel = (self.W_dec.grad * w).sum(1, keepdim=True) / (w * w).sum(1, keepdim=True).clamp_min(1e-30)
        self.W_dec.grad.sub_(parallel * w)

    # ---- initialization from data --------------------------------------------------------

    @torch.no_grad()
    def init_from_data(
        self, sample: Tensor, b_dec: str = "geometric_median", encoder_scale: Optional[float] = None
    ) -> None:
        """b_dec at the geometric median (or ``"mean"``, or ``"zeros"``) of ``sample`` [n, d]; then
        the encoder is the decoder's transpose (``W_enc = W_dec`` in this [F, d] layout) times
        ``encoder_scale``, or, when that is None, scaled as the TopK paper's code does
        (openai/sparse_autoencoder ``init_from_data_``): so that reconstructions of the sample have,
        in the median, the norm of the centered inputs."""
        sample = self._check_input(sample)
        if b_dec == "geometric_median":
            self.b_dec.copy_(geometric_median(sample))
        elif b_dec == "mean":
            self.b_dec.copy_(sample.mean(0))
        elif b_dec != "zeros":
            raise ValueError(f"init_from_data: b_dec must be 'geometric_median', 'mean' or 'zeros', got {b_dec!r}")
        self.W_enc.copy_(self.W_dec)
        if encoder_scale is not None:
            self.W_enc.mul_(encoder_scale)
            return
        x_in = self.encoder_input(sample)
        out = self.decode(self._encode(x_in)) - self.b_dec
        ratio = x_in.norm(dim=1) / out.norm(dim=1).clamp_min(1e-12)
        scale = float(ratio[out.norm(dim=1) > 0].median()) if bool((out.norm(dim=1) > 0).any()) else 1.0
        if math.isfinite(scale) and scale > 0:
            self.W_enc.mul_(scale)


def geometric_median(points: Tensor, iterations: int = 100, tol: float = 1e-6) -> Tensor:
    """Weiszfeld's algorithm, in float64: the point minimizing the sum of Euclidean distances."""
    p = points.double()
    median = p.mean(0)
    for _ in range(iterations):
        dist = (p - median).norm(dim=1).clamp_min(1e-12)
        w = 1.0 / dist
        new = (w[:, None] * p).sum(0) / w.sum()
        if float((new - median).norm()) <= tol * max(1.0, float(median.norm())):
            median = new
            break
        median = new
    return median.to(points.dtype)


class TopKSAE(SparseAutoencoder):
    """TopK SAE: the k largest ReLU'd pre-activations per token (``topk_encode``). With
    ``multi_topk=True`` the loss adds ``multi_topk_coef`` (default 1/8) times the FVU of the
    top-(4k) reconstruction (sparsify's Multi-TopK), so the code stays useful at larger k."""

    architecture = "topk"

    def __init__(self, d_in: int, num_latents: int, k: int, *, multi_topk: bool = False,
                 multi_topk_coef: float = 1 / 8, **kwargs):  # fmt: skip
        super().__init__(d_in, num_latents, **kwargs)
        if not 1 <= k <= num_latents:
            raise ValueError(f"TopKSAE: k must be in [1, num_latents={num_latents}], got {k}")
        self.k, self.multi_topk, self.multi_topk_coef = k, multi_topk, multi_topk_coef

    def _extra_config(self) -> dict:
        return {"k": self.k, "multi_topk": self.multi_topk, "multi_topk_coef": self.multi_topk_coef}

    def _encode(self, x_in: Tensor) -> SparseCode:
        return ops.topk_encode(x_in, self.W_enc, self.b_enc, self.k)

    def _multi_topk_fvu(self, flat: Tensor, x_in: Tensor, denominator: Tensor) -> Optional[Tensor]:
        if not self.multi_topk:
            return None
        code = ops.topk_encode(x_in, self.W_enc, self.b_enc, min(4 * self.k, self.num_latents))
        return losses.fvu(flat, self.decode(code), denominator)


class BatchTopKSAE(SparseAutoencoder):
    """BatchTopK: the k*N largest ReLU'd pre-activations of the batch (``batch_topk_encode``).

    The inference threshold: after every training forward, ``threshold <- (1 - m) * threshold +
    m * (smallest selected value of the batch)`` with ``threshold_momentum`` m = 0.01, kept in
    float64. SAELens uses the same average but starts it at 0; here the first batch's smallest
    value sets it, so a short run's threshold is not pulled toward 0. In eval mode, or always once ``use_threshold`` is
    set, encoding is ``threshold_encode`` with that value for every latent: batch-independent.
    """

    architecture = "batch_topk"

    def __init__(self, d_in: int, num_latents: int, k: int, *, threshold_momentum: float = 0.01, **kwargs):
        super().__init__(d_in, num_latents, **kwargs)
        if not 1 <= k <= num_latents:
            raise ValueError(f"{type(self).__name__}: k must be in [1, num_latents={num_latents}], got {k}")
        self.k, self.threshold_momentum = k, threshold_momentum
        self.register_buffer(
            "threshold", torch.tensor(-1.0, dtype=torch.float64, device=self.W_enc.device)
        )  # < 0: unset

    def _extra_config(self) -> dict:
        return {"k": self.k, "threshold_momentum": self.threshold_momentum}

    def _encode(self, x_in: Tensor) -> SparseCode:
        if not self.training:
            if float(self.threshold) < 0:
                raise RuntimeError(
                    f"{type(self).__name__}: no inference threshold yet (it is learned during training); "
                    "call .train() to encode with the batch rule"
                )
            theta = torch.full_like(self.b_enc, float(self.threshold))
            return ops.threshold_encode(x_in, self.W_enc, self.b_enc, theta.detach())
        code = ops.batch_topk_encode(x_in, self.W_enc, self.b_enc, self.k)
        if torch.is_grad_enabled():
            self._update_threshold(code.values.detach())
        return code

    @torch.no_grad()
    def _update_threshold(self, values: Tensor) -> None:
        # Tensor operations only, no Python branch on the data, so torch.compile(fullgraph=True)
        # traces training steps: an empty selection gives +inf and, like a NaN activation (which
        # must not poison the threshold for good), leaves the threshold as it is.
        smallest = torch.cat([values.flatten(), values.new_full((1,), float("inf"))]).min().double()
        m = self.threshold_momentum
        updated = torch.where(self.threshold < 0, smallest, (1 - m) * self.threshold + m * smallest)
        self.threshold.copy_(torch.where(torch.isfinite(smallest), updated, self.threshold))

    def to_jumprelu(self) -> JumpReLUSAE:
        """A JumpReLUSAE with the same weights and the running threshold for every latent (SAELens
        and dictionary_learning ship BatchTopK SAEs this way)."""
        if float(self.threshold) < 0:
            raise RuntimeError(f"{type(self).__name__}.to_jumprelu: no inference threshold yet (train first)")
        return _jumprelu_copy(self, torch.full_like(self.b_enc, max(float(self.threshold), 0.0)))


class MatryoshkaBatchTopKSAE(BatchTopKSAE):
    """Matryoshka BatchTopK (Bussmann et al.; SAELens' ``matryoshka_batchtopk``, dictionary_learning's
    ``MatryoshkaBatchTopKSAE``): BatchTopK's selection over all latents, and every prefix of the
    dictionary in ``prefixes`` (increasing widths, the last = num_latents; default F/16, F/4, F)
    must reconstruct on its own: the loss is the mean over the prefixes of the FVU of
    ``sum over latents j < width of a_j W_dec[j] + b_dec`` (each a ``sparse_decode`` of the code with
    the later latents' values zeroed), so the first latents learn the coarsest features. Inference
    is BatchTopK's (the running threshold); ``to_jumprelu()`` exports it."""

    architecture = "matryoshka_batch_topk"

    def __init__(self, d_in: int, num_latents: int, k: int, *, prefixes: Optional[list] = None, **kwargs):
        super().__init__(d_in, num_latents, k, **kwargs)
        widths = (
            list(prefixes) if prefixes else sorted({max(1, num_latents // 16), max(1, num_latents // 4), num_latents})
        )
        if widths[-1] != num_latents or any(b <= a for a, b in zip(widths, widths[1:], strict=False)) or widths[0] < 1:
            raise ValueError(f"MatryoshkaBatchTopKSAE: prefixes must increase from >= 1 to num_latents={num_latents}, "
                             f"got {widths}")  # fmt: skip
        self.prefixes = [int(w) for w in widths]

    def _extra_config(self) -> dict:
        return {**super()._extra_config(), "prefixes": list(self.prefixes)}

    def forward(
        self, x: Tensor, aux_eligible: Optional[Tensor] = None, variance_fn: Optional[Callable[[Tensor], Tensor]] = None
    ) -> SAEOutput:
        out = super().forward(x, aux_eligible, variance_fn)
        if not self.training or len(self.prefixes) == 1:
            return out
        flat = x.reshape(-1, self.d_in)
        denominator = (variance_fn or losses.total_variance)(flat)
        code = out.code
        prefix_fvus = [out.fvu]
        for width in self.prefixes[:-1]:
            kept = torch.where(code.indices < width, code.values, torch.zeros_like(code.values))
            x_hat = ops.sparse_decode(kept, code.indices, code.offsets, self.W_dec, self.b_dec)
            prefix_fvus.append(losses.fvu(flat, x_hat, denominator))
        matryoshka = torch.stack(prefix_fvus).mean()
        return out._replace(loss=out.loss - out.fvu + matryoshka)

    def prefix_fvu(self, x: Tensor, width: int) -> Tensor:
        """FVU of the reconstruction from the first ``width`` latents only, with the inference code
        (eval mode: the running threshold, left as it is)."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                flat = self._check_input(x)
                code = self.encode(flat)
                kept = torch.where(code.indices < width, code.values, torch.zeros_like(code.values))
                x_hat = ops.sparse_decode(kept, code.indices, code.offsets, self.W_dec, self.b_dec)
                return losses.fvu(flat, x_hat, losses.total_variance(flat))
        finally:
            self.train(was_training)


class MutualChoiceSAE(BatchTopKSAE):
    """Mutual Choice (Ayonrinde): a global top-k*N over the token-latent matrix. It is the same
    allocation as BatchTopK, so this is ``BatchTopKSAE`` under the paper's name."""

    architecture = "mutual_choice"


class FeatureChoiceSAE(SparseAutoencoder):
    """Feature Choice (Ayonrinde): in training, latent j keeps its ``capacity[j]`` highest-activating
    tokens of the batch (``feature_choice_encode``); the budget k*N is split ``"equal"`` or
    ``"zipf"`` (``zipf_capacity`` with ``zipf_exponent``).

    Who gets which capacity (so that no latent is starved for good):
    * by running usage: latents are ranked by how fully they use their capacity (``usage``, an
      exponential average, momentum ``stats_momentum``, of kept entries / capacity; ties by index),
      and the r-th ranked latent gets the r-th largest capacity. A latent that fills its capacity
      moves up to larger ones and one that leaves its capacity unfilled moves down, so the Zipf
      head goes to the latents that would take the most tokens, not to latent 0;
    * with a floor of one: when the budget k*N covers every latent, each gets at least one entry
      (the rest is split by the rule), so a latent that stopped firing can come back;
    * rotating: when k*N < F (small batches: a rank's slice, an evaluation chunk), the ranks shift
      by the number of latents served every batch, so every latent is served within about F / (k*N)
      batches.

    Inference (``.eval()``) is batch-independent: each latent fires above its own threshold, a
    running average of the smallest value it kept in a training batch (0 when it kept fewer than
    its capacity: every positive value), as ``threshold_encode``; ``to_jumprelu()`` exports it. The
    average is a plain mean over a latent's first 1 / ``stats_momentum`` batches, then exponential
    with that momentum. A latent never selected in training does not fire at inference.
    """

    architecture = "feature_choice"
    statistics_buffers = ("usage", "threshold", "updates", "batches")

    def __init__(self, d_in: int, num_latents: int, k: int, *, capacity: str = "equal",
                 zipf_exponent: float = 1.0, stats_momentum: float = 0.01, **kwargs):  # fmt: skip
        super().__init__(d_in, num_latents, **kwargs)
        if capacity not in ("equal", "zipf"):
            raise ValueError(f"FeatureChoiceSAE: capacity must be 'equal' or 'zipf', got {capacity!r}")
        if k < 1:
            raise ValueError(f"FeatureChoiceSAE: k must be >= 1, got {k}")
        self.k, self.capacity, self.zipf_exponent, self.stats_momentum = k, capacity, zipf_exponent, stats_momentum
        self._capacity_cache: dict = {}
        device = self.W_enc.device
        self.register_buffer("usage", torch.zeros(num_latents, dtype=torch.float64, device=device))
        self.register_buffer("threshold", torch.full((num_latents,), -1.0, dtype=torch.float64, device=device))
        self.register_buffer("updates", torch.zeros(num_latents, dtype=torch.float64, device=device))
        self.register_buffer("batches", torch.zeros((), dtype=torch.long, device=device))

    def _extra_config(self) -> dict:
        return {"k": self.k, "capacity": self.capacity, "zipf_exponent": self.zipf_exponent,
                "stats_momentum": self.stats_momentum}  # fmt: skip

    def rank_capacities(self, batch_size: int) -> Tensor:
        """The capacities by rank ([F] int64, non-increasing): the budget min(k*N, F*N) split by
        the rule (``equal_capacity`` / ``zipf_split``), each latent at most N, on a floor of one
        entry per latent when the budget covers every latent."""
        key = (batch_size, self.W_enc.device)
        if key not in self._capacity_cache:
            F, N = self.num_latents, batch_size
            budget = min(self.k * N, F * N)
            floor = 1 if budget >= F else 0
            rest, limit = budget - floor * F, N - floor
            if self.capacity == "equal":
                cap = equal_capacity(F, 1, rest)  # at most ceil(rest / F) <= limit
            else:
                cap = zipf_split(F, rest, limit, self.zipf_exponent)
            self._capacity_cache = {key: (cap + floor).to(self.W_enc.device)}
        return self._capacity_cache[key]

    def capacities(self, batch_size: int) -> Tensor:
        """Each latent's capacity for a training batch of ``batch_size`` tokens ([F] int64): the
        rank capacities handed out by running usage (rotating when k*N < F)."""
        F, by_rank = self.num_latents, self.rank_capacities(batch_size)
        order = torch.argsort(self.usage, descending=True, stable=True)  # latent of each rank
        if self.k * batch_size < F:  # shift the ranks by the number served, every batch
            served = (by_rank > 0).sum()  # a tensor: no data-dependent Python value under torch.compile
            order = order[(torch.arange(F, device=order.device) + self.batches * served) % F]
        cap = torch.empty_like(order)
        cap[order] = by_rank
        return cap

    def inference_thresholds(self, what: str = "encode") -> Tensor:
        """Each latent's inference threshold, +inf (never firing) for latents never selected in
        training. Raises when none is set yet (outside torch.compile, which cannot branch on it)."""
        if not torch.compiler.is_compiling() and bool((self.threshold < 0).all()):
            raise RuntimeError(
                f"{type(self).__name__}.{what}: no inference thresholds yet (they are learned during training; "
                "sae.calibrate(batches) sets them for a trained SAE without them); call .train() to encode with "
                "the batch rule"
            )
        return torch.where(self.threshold < 0, torch.inf, self.threshold)

    def _batch_rule(self, x_in: Tensor) -> tuple[SparseCode, Tensor]:
        capacity = self.capacities(x_in.shape[0])
        return ops.feature_choice_encode(x_in, self.W_enc, self.b_enc, capacity), capacity

    def _encode(self, x_in: Tensor) -> SparseCode:
        if not self.training:
            theta = self.inference_thresholds().to(x_in.dtype)
            return ops.threshold_encode(x_in, self.W_enc, self.b_enc, theta.detach())
        code, capacity = self._batch_rule(x_in)
        if torch.is_grad_enabled():
            self._update_statistics(code, capacity)
        return code

    @torch.no_grad()
    def calibrate(self, batches) -> None:
        """Sets the inference thresholds (and usage) from the training rule on ``batches`` (an
        iterable of [..., d] activations) without training: for a Feature Choice SAE saved before
        it kept them, or to re-estimate them on other data."""
        for x in batches:
            self._update_statistics(*self._batch_rule(self.encoder_input(self._check_input(x))))

    @torch.no_grad()
    def _update_statistics(self, code: SparseCode, capacity: Tensor) -> None:
        # Tensor operations only (torch.compile traces training steps); NaN values are not counted.
        values, latents = code.values.detach().double().flatten(), code.indices.flatten()
        kept = torch.isfinite(values)
        count = torch.zeros_like(self.usage).index_add_(0, latents, kept.double())
        smallest = torch.full_like(self.usage, torch.inf).scatter_reduce(
            0, latents, torch.where(kept, values, torch.inf), "amin"
        )
        smallest = torch.where(count < capacity, 0.0, smallest)  # kept every positive value
        # A running mean over each latent's first 1/m updates, then an exponential average with
        # momentum m: a short run's thresholds are not stuck near the first (untrained) batches.
        m = self.stats_momentum
        update = (capacity > 0) & torch.isfinite(smallest)
        rate = torch.clamp(1.0 / (self.updates + 1), min=m)
        self.threshold.copy_(torch.where(update, torch.where(self.threshold < 0, smallest,
                                                             (1 - rate) * self.threshold + rate * smallest),
                                         self.threshold))  # fmt: skip
        self.updates.add_(update.double())
        # usage: the share of its capacity each latent filled (kept / capacity, not capped by the
        # capacity itself, so the ranking can move); latents without capacity this batch keep theirs
        filled = count / capacity.clamp_min(1)
        self.usage.copy_(torch.where(capacity > 0, (1 - m) * self.usage + m * filled, self.usage))
        self.batches.add_(1)

    def to_jumprelu(self) -> JumpReLUSAE:
        """A JumpReLUSAE with the same weights and each latent's inference threshold (+inf, never
        firing, for latents never selected in training)."""
        return _jumprelu_copy(self, self.inference_thresholds("to_jumprelu"))


def _jumprelu_copy(sae: SparseAutoencoder, threshold: Tensor) -> JumpReLUSAE:
    out = JumpReLUSAE(sae.d_in, sae.num_latents, aux_k=sae.aux_k, aux_coef=sae.aux_coef,
                      subtract_b_dec_from_input=sae.subtract_b_dec_from_input, metadata=sae.metadata,
                      encoder_bias=sae.encoder_bias,
                      dtype=sae.W_enc.dtype, device=sae.W_enc.device)  # fmt: skip
    with torch.no_grad():
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            getattr(out, name).copy_(getattr(sae, name))
        out.threshold.copy_(threshold.to(out.threshold.dtype))
    return out


class GroupMaxSAE(SparseAutoencoder):
    """sparsify's ``groupmax`` activation: the F latents form k contiguous groups of F/k, and each
    token keeps the largest ReLU'd pre-activation of every group (k entries, one per group). For
    loading, evaluating and fine-tuning sparsify checkpoints; the pre-activations are computed
    densely ([N, F]), with autograd through the max."""

    architecture = "groupmax"

    def __init__(self, d_in: int, num_latents: int, k: int, **kwargs):
        super().__init__(d_in, num_latents, **kwargs)
        if k < 1 or num_latents % k:
            raise ValueError(f"GroupMaxSAE: k must divide num_latents={num_latents} into groups, got {k}")
        self.k = k

    def _extra_config(self) -> dict:
        return {"k": self.k}

    def _encode(self, x_in: Tensor) -> SparseCode:
        z = torch.relu(torch.nn.functional.linear(x_in, self.W_enc, self.b_enc))
        values, within = z.unflatten(-1, (self.k, -1)).max(dim=-1)
        first = torch.arange(0, self.num_latents, self.num_latents // self.k, device=z.device)
        return SparseCode(values, within + first, None, self.num_latents)


class JumpReLUSAE(SparseAutoencoder):
    """JumpReLU: ``z * 1[z > threshold_j]`` (``threshold_encode``), one threshold per latent.

    Without ``bandwidth`` the thresholds are a buffer (loading and evaluating checkpoints: Gemma
    Scope, SAELens, dictionary_learning; Group Bias Adaptation's SAE at threshold 0). With
    ``bandwidth`` they are a parameter, initialized to ``init_threshold``, and training mode
    encodes with ``jumprelu_encode``: the thresholds learn through SAELens' straight-through
    estimator (rectangle window of width ``bandwidth``; SAELens' 0.05, dictionary_learning's 0.001),
    and ``forward`` returns the window flags (``SAEOutput.in_window``) that the L0 penalty
    (``losses.jumprelu_l0``) reads. Eval mode encodes with ``threshold_encode`` either way."""

    architecture = "jumprelu"

    def __init__(self, d_in: int, num_latents: int, *, bandwidth: Optional[float] = None,
                 init_threshold: float = 0.0, **kwargs):  # fmt: skip
        super().__init__(d_in, num_latents, **kwargs)
        if bandwidth is not None and not (bandwidth > 0 and math.isfinite(bandwidth)):
            raise ValueError(f"JumpReLUSAE: bandwidth must be finite and > 0 (or None), got {bandwidth}")
        self.bandwidth = None if bandwidth is None else float(bandwidth)
        threshold = torch.full((num_latents,), float(init_threshold), dtype=self.W_enc.dtype, device=self.W_enc.device)
        if self.bandwidth is None:
            self.register_buffer("threshold", threshold)
        else:
            self.threshold = nn.Parameter(threshold)

    def _extra_config(self) -> dict:
        return {} if self.bandwidth is None else {"bandwidth": self.bandwidth}

    def train_thresholds(self, bandwidth: float) -> None:
        """Make the thresholds a parameter trained through the estimator of width ``bandwidth``
        (a loaded checkpoint's thresholds are a buffer), keeping their values."""
        if not (bandwidth > 0 and math.isfinite(bandwidth)):
            raise ValueError(f"JumpReLUSAE: bandwidth must be finite and > 0, got {bandwidth}")
        if self.bandwidth is None:
            threshold = self.threshold.detach().clone()
            del self._buffers["threshold"]
            self.threshold = nn.Parameter(threshold)
        self.bandwidth = float(bandwidth)

    @torch.no_grad()
    def init_thresholds_for_l0(self, x: Tensor, l0: float) -> None:
        """Set each threshold so that its latent fires on m = round(N l0 / F) (at least 1) of the N
        tokens of x [..., d]: threshold_j = latent j's (m+1)-th largest pre-activation, from one
        fused ``feature_choice_encode`` with capacity m+1 (0 where fewer are positive). The SAE then
        starts at an L0 of about l0 per token with every latent equally used."""
        x_in = self.encoder_input(self._check_input(x))
        m = max(1, round(x_in.shape[0] * l0 / self.num_latents))
        if m + 1 > x_in.shape[0]:
            raise ValueError(f"JumpReLUSAE.init_thresholds_for_l0: l0={l0} of {self.num_latents} latents needs more "
                             f"than the {x_in.shape[0]} tokens given (each latent would fire on {m} of them)")  # fmt: skip
        capacity = torch.full((self.num_latents,), m + 1, dtype=torch.long, device=x_in.device)
        code = ops.feature_choice_encode(x_in, self.W_enc, self.b_enc, capacity)
        count = torch.bincount(code.indices, minlength=self.num_latents)
        smallest = torch.zeros_like(self.threshold).scatter_reduce(0, code.indices, code.values.to(self.threshold.dtype),
                                                                   "amin", include_self=False)  # fmt: skip
        self.threshold.copy_(torch.where(count == m + 1, smallest, torch.zeros_like(smallest)).clamp_min(0))

    def _encode(self, x_in: Tensor) -> SparseCode:
        return ops.threshold_encode(x_in, self.W_enc, self.b_enc, self.threshold.to(x_in.dtype))

    def _training_encode(self, x_in: Tensor) -> tuple[SparseCode, Optional[Tensor]]:
        if self.bandwidth is None:
            return self._encode(x_in), None
        code, in_window = ops.jumprelu_encode(x_in, self.W_enc, self.b_enc, self.threshold.to(x_in.dtype),
                                              self.bandwidth)  # fmt: skip
        return code, in_window


SAE_CLASSES = {c.architecture: c for c in (TopKSAE, BatchTopKSAE, MatryoshkaBatchTopKSAE, MutualChoiceSAE,
                                            FeatureChoiceSAE, GroupMaxSAE, JumpReLUSAE)}  # fmt: skip


def sae_from_config(config: dict, **overrides) -> SparseAutoencoder:
    """Build an SAE (fresh weights) from ``SparseAutoencoder.config()``'s dict."""
    cfg = {**config, **overrides}
    arch = cfg.pop("architecture", None)
    if arch not in SAE_CLASSES:
        raise ValueError(f"unknown SAE architecture {arch!r}; known: {sorted(SAE_CLASSES)}")
    return SAE_CLASSES[arch](**cfg)
