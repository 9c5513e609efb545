"""Sparse-autoencoder encoding and decoding ops: the public functional wrappers.

Where each piece lives (the template every core follows, see CONTRIBUTING.md): schemas in
csrc/sae/sae_schemas.cpp; argument checks in checks.py here and csrc/sae/sae_checks.cpp; fake
implementations in fake.py; autograd in autograd.py; C++ CPU kernels in csrc/sae/<op>_cpu.cpp;
CUDA C++ kernels in cuda/sae/<op>.cu with glue in csrc/sae/<op>_cuda.cpp; Triton kernels in
triton_kernels/sae.py; the dense references in prismkit/reference/sae.py. Capacity policies for
Feature Choice (``equal_capacity``, ``zipf_capacity``) belong to the method: ``prismkit.sae``.

The ops, for x [B, d], W_enc [F, d] (an
``nn.Linear(d, F).weight``), b_enc [F] and the post-ReLU pre-activations
``a = relu(x @ W_enc.T + b_enc)``:

* ``topk_encode(x, W_enc, b_enc, k) -> (values [B, k], indices [B, k])``: the k largest
  entries of each row of ``a``, values descending.
* ``batch_topk_encode(x, W_enc, b_enc, k) -> (values, indices, offsets)``: BatchTopK, the
  same allocation as the Mutual Choice paper's: the k*B largest entries of the whole ``a``,
  positive ones only, so tokens get different counts.
* ``feature_choice_encode(x, W_enc, b_enc, capacity) -> (values, indices, offsets)``: latent j
  keeps its ``capacity[j]`` highest activating tokens (positive entries only); capacities above
  B count as B, negative ones are an error.
* ``threshold_encode(x, W_enc, b_enc, threshold) -> (values, indices, offsets)``: JumpReLU, and
  BatchTopK at inference: entry (t, j) is kept when its pre-activation is above both
  ``threshold[j]`` and 0; its value is the pre-activation.
* ``jumprelu_encode(x, W_enc, b_enc, threshold, bandwidth) -> (values, indices, offsets,
  in_window)``: JumpReLU training: threshold_encode's entries plus the entries in the
  straight-through window ``|z - threshold[j]| < bandwidth / 2`` (value 0 when not kept), flagged
  in ``in_window``; the threshold gets the estimator's gradient.
* ``latent_stats(x, W_enc, b_enc, threshold=None) -> (fire_count [F], max_pre [F])``: per latent,
  how many tokens' pre-activations exceed ``threshold[j]`` (0 without one), and the largest
  pre-activation (not ReLU'd): the statistics Group Bias Adaptation and dead-latent tracking read.
* ``sparse_decode(values, indices, offsets, W_dec, b_dec) -> x_hat [B, d]``:
  ``x_hat[r] = b_dec + sum_p values[p] * W_dec[indices[p]]`` over row r's entries.
* ``sparse_decode_grad_values`` and ``sparse_decode_grad_weight``: the two halves of
  sparse_decode's backward (also used by the encoders' backward), and
  ``sparse_decode_backward``, both in one pass; see their wrappers.

Ranking rule, shared by every implementation: larger value first; NaN ranks above every
number (as in ``torch.topk``) and counts as positive, so a NaN pre-activation shows up in the
output instead of being hidden; equal values go to the lower latent index (TopK), the lower flat
index ``token * F + latent`` (BatchTopK) or the lower token index (Feature Choice). A row with
fewer than k positive entries fills its remaining TopK slots with value 0 at the lowest-numbered
zero latents; those slots get zero gradient.

Layouts: TopK returns the fixed-k layout ([B, k] values and indices, ``offsets=None``); the other
two the row-compressed one (``values``/``indices`` [nnz], latent ids ascending within a row,
``offsets`` [B+1], row r's entries at ``offsets[r]:offsets[r+1]``). ``SparseCode`` holds either.

Gradients flow to x, W_enc and b_enc through the selected entries only (those with a positive
value), and to values, W_dec and b_dec of the decoder, all computed sparsely in O(B*k*d) work:
the backward of every op here is built from ``sparse_decode``, ``sparse_decode_grad_values`` and
``sparse_decode_grad_weight``, which are each other's adjoints (so the decoder is twice
differentiable). Indices and offsets get no gradient.

Determinism: the CPU kernels and the CUDA decode kernels are bit-deterministic (no atomics; the
weight gradient sorts entries by latent). The encoders' selection is exact given the
pre-activations, but a different GEMM (CPU vs GPU, or another BLAS) rounds them differently, so
near-ties may pick different latents across devices.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from .. import registry
from .._checks import check_int_args, check_tensor_args
from . import autograd, fake  # noqa: F401  (register the fake implementations and autograd)

__all__ = [
    "SparseCode",
    "JumpReLUCode",
    "topk_encode",
    "batch_topk_encode",
    "feature_choice_encode",
    "threshold_encode",
    "jumprelu_encode",
    "latent_stats",
    "sparse_decode",
    "sparse_decode_grad_values",
    "sparse_decode_grad_weight",
    "sparse_decode_backward",
]

_ops = torch.ops.prismkit


class SparseCode(NamedTuple):
    """A batch of sparse latent codes, in the fixed-k or the row-compressed layout.

    ``values`` and ``indices`` are [B, k] with ``offsets=None`` (fixed-k, from ``topk_encode``) or
    [nnz] with ``offsets`` [B+1] (row-compressed, from ``batch_topk_encode`` and
    ``feature_choice_encode``). ``num_latents`` is F, the dictionary size.

    >>> code = prismkit.ops.sae.topk_encode(x, sae.W_enc, sae.b_enc, k=32)
    >>> x_hat = code.decode(sae.W_dec, sae.b_dec)
    >>> dense = code.to_dense()          # [B, F], mostly zeros
    """

    values: Tensor
    indices: Tensor
    offsets: Optional[Tensor]
    num_latents: int
    # The input's leading dims when it was [..., d] (the SAE modules' encode sets it): decode then
    # returns [..., d]. None: decode returns [B, d].
    leading_shape: Optional[tuple] = None

    @property
    def batch_size(self) -> int:
        return self.indices.shape[0] if self.offsets is None else self.offsets.shape[0] - 1

    def row_counts(self) -> Tensor:
        """Active latents per token ([B] int64): k everywhere for the fixed-k layout (slots whose
        value is 0 included), ``offsets.diff()`` for the row-compressed one."""
        if self.offsets is None:
            return torch.full((self.batch_size,), self.indices.shape[1], dtype=torch.long, device=self.indices.device)
        return self.offsets.diff()

    def row_ids(self) -> Tensor:
        """The token of every entry, shaped like ``indices``."""
        B = self.batch_size
        rows = torch.arange(B, device=self.indices.device)
        if self.offsets is None:
            return rows[:, None].expand_as(self.indices)
        return torch.repeat_interleave(rows, self.row_counts(), output_size=self.indices.shape[0])

    def to_dense(self) -> Tensor:
        """The [B, F] dense code (differentiable with respect to ``values``). A latent listed twice in
        a row (the encoders never do that) holds the sum, so ``to_dense() @ W_dec`` equals ``decode``."""
        dense = self.values.new_zeros(self.batch_size, self.num_latents)
        if self.offsets is None:
            return dense.scatter_add(1, self.indices, self.values)
        return dense.index_put((self.row_ids(), self.indices), self.values, accumulate=True)

    def decode(self, W_dec: Tensor, b_dec: Optional[Tensor] = None) -> Tensor:
        """``sparse_decode`` of this code: [B, d], or [..., d] when ``leading_shape`` is set."""
        out = sparse_decode(self.values, self.indices, self.offsets, W_dec, b_dec)
        return out if self.leading_shape is None else out.reshape(*self.leading_shape, out.shape[-1])


# --------------------------------------------------------------------------------------------
# Public functional wrappers
# --------------------------------------------------------------------------------------------


def topk_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int) -> SparseCode:
    """TopK SAE encoding: per token, the k largest of ``relu(x @ W_enc.T + b_enc)``.

    Fused: the [B, F] pre-activation matrix is never materialized (tiles of it are computed and
    reduced to a running top-k). Returns a fixed-k ``SparseCode`` (values [B, k] descending,
    indices [B, k] int64). See the module docstring for ties, NaN and gradients.
    """
    check_tensor_args("topk_encode", x=x, W_enc=W_enc, b_enc=b_enc)
    check_int_args("topk_encode", k=k)
    values, indices = _ops.topk_encode(x, W_enc, b_enc, int(k))
    return SparseCode(values, indices, None, W_enc.shape[0])


def batch_topk_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int) -> SparseCode:
    """BatchTopK (= Mutual Choice) encoding: the k*B largest positive entries of the whole batch's
    ``relu(x @ W_enc.T + b_enc)``; tokens get different counts. Returns a row-compressed
    ``SparseCode`` with nnz <= k*B. Fused: only bounded per-token candidate lists are kept."""
    check_tensor_args("batch_topk_encode", x=x, W_enc=W_enc, b_enc=b_enc)
    check_int_args("batch_topk_encode", k=k)
    values, indices, offsets = _ops.batch_topk_encode(x, W_enc, b_enc, int(k))
    return SparseCode(values, indices, offsets, W_enc.shape[0])


def feature_choice_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, capacity: Tensor) -> SparseCode:
    """Feature Choice encoding: latent j keeps its ``capacity[j]`` highest activating tokens of the
    batch (positive entries only; ties to the lower token). ``capacity`` is [F] int64 on x's device;
    build it with ``prismkit.sae.equal_capacity`` or ``prismkit.sae.zipf_capacity``. Returns a row-compressed ``SparseCode``."""
    check_tensor_args("feature_choice_encode", x=x, W_enc=W_enc, b_enc=b_enc, capacity=capacity)
    values, indices, offsets = _ops.feature_choice_encode(x, W_enc, b_enc, capacity)
    return SparseCode(values, indices, offsets, W_enc.shape[0])


def threshold_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, threshold: Tensor) -> SparseCode:
    """Threshold (JumpReLU) encoding: ``z * 1[z > max(threshold[j], 0)]`` for the pre-activations
    ``z = x @ W_enc.T + b_enc``; ``threshold`` is [F], x's dtype. A JumpReLU SAE passes its learned
    per-latent thresholds; a BatchTopK SAE at inference passes its running threshold for every
    latent, so a token's code no longer depends on the rest of its batch. Returns a row-compressed
    ``SparseCode`` (latents ascending per token). Gradients reach x, W_enc and b_enc through the kept
    entries; ``threshold`` gets none (this op serves inference and loading, not JumpReLU training,
    whose threshold gradient needs a straight-through estimator)."""
    check_tensor_args("threshold_encode", x=x, W_enc=W_enc, b_enc=b_enc, threshold=threshold)
    values, indices, offsets = _ops.threshold_encode(x, W_enc, b_enc, threshold)
    return SparseCode(values, indices, offsets, W_enc.shape[0])


class JumpReLUCode(NamedTuple):
    """``jumprelu_encode``'s result: ``code`` (decode it as any code; its window-only entries have
    value 0 and add nothing) and ``in_window`` [nnz] bool, the entries inside the straight-through
    window."""

    code: SparseCode
    in_window: Tensor


def jumprelu_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, threshold: Tensor, bandwidth: float) -> JumpReLUCode:
    """JumpReLU encoding for training: ``threshold_encode``'s kept entries (z above both
    ``threshold[j]`` and 0, value z) plus every entry inside the straight-through estimator's
    rectangle window ``-bandwidth/2 < z - threshold[j] < bandwidth/2`` (value 0 when it is not kept),
    in one sweep over the pre-activation tiles (on CUDA: threshold_encode's count and write passes);
    ``in_window`` flags the window entries. Latents
    ascend within each token. Decoding the code gives the JumpReLU reconstruction, and the
    zero-valued window entries receive their gradient ``dL/da_tj`` from the decoder, which is
    what the threshold's gradient needs:

        dL/dtheta_j = -(theta_j / bandwidth) * sum over window entries (t, j) of dL/da_tj

    (SAELens' ``JumpReLU`` straight-through estimator, DeepMind's formulation; SAELens' default
    bandwidth is 0.05, dictionary_learning's 0.001). x, W_enc and b_enc get their gradients
    through the kept entries, as with ``threshold_encode``; the estimator's gradient does not pass
    to the pre-activations (SAELens' ``jumprelu_ste_to_input=False``). ``bandwidth`` must be
    finite and > 0. The L0 penalty's threshold gradient needs only the window counts:
    ``prismkit.sae.losses.jumprelu_l0``."""
    check_tensor_args("jumprelu_encode", x=x, W_enc=W_enc, b_enc=b_enc, threshold=threshold)
    values, indices, offsets, in_window = _ops.jumprelu_encode(x, W_enc, b_enc, threshold, float(bandwidth))
    return JumpReLUCode(SparseCode(values, indices, offsets, W_enc.shape[0]), in_window)


def latent_stats(x: Tensor, W_enc: Tensor, b_enc: Tensor, threshold: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Per-latent statistics of the batch's pre-activations ``z = x @ W_enc.T + b_enc`` without
    the [B, F] matrix: ``(fire_count, max_pre)``, ``fire_count[j]`` = #tokens with
    ``z[:, j] > threshold[j]`` (threshold 0 when None) as int64, ``max_pre[j]`` = max over tokens
    of ``z[:, j]`` (-inf for an empty batch, NaN if any is NaN). Not differentiable (its outputs
    never require grad). Deterministic on the CPU."""
    check_tensor_args("latent_stats", x=x, W_enc=W_enc, b_enc=b_enc)
    check_tensor_args("latent_stats", optional=True, threshold=threshold)
    return _ops.latent_stats(x, W_enc, b_enc, threshold)


def sparse_decode(
    values: Tensor, indices: Tensor, offsets: Optional[Tensor], W_dec: Tensor, b_dec: Optional[Tensor] = None
) -> Tensor:
    """``x_hat[r] = b_dec + sum over row r's entries p of values[p] * W_dec[indices[p]]``.

    ``W_dec`` is [F, d]; ``offsets=None`` selects the fixed-k layout ([B, k] values/indices),
    otherwise ``offsets`` [B+1] gives the row-compressed one. Indices outside [0, F) are an error.
    """
    check_tensor_args("sparse_decode", values=values, indices=indices, W_dec=W_dec)
    check_tensor_args("sparse_decode", optional=True, offsets=offsets, b_dec=b_dec)
    return _ops.sparse_decode(values, indices, offsets, W_dec, b_dec)


def sparse_decode_grad_values(grad_out: Tensor, indices: Tensor, offsets: Optional[Tensor], W_dec: Tensor) -> Tensor:
    """``grad_values[p] = grad_out[row(p)] . W_dec[indices[p]]``: the selected entries of
    ``grad_out @ W_dec.T`` only (shaped like ``indices``)."""
    check_tensor_args("sparse_decode_grad_values", grad_out=grad_out, indices=indices, W_dec=W_dec)
    check_tensor_args("sparse_decode_grad_values", optional=True, offsets=offsets)
    return _ops.sparse_decode_grad_values(grad_out, indices, offsets, W_dec)


def sparse_decode_grad_weight(
    grad_out: Tensor, values: Tensor, indices: Tensor, offsets: Optional[Tensor], num_latents: int
) -> tuple[Tensor, Tensor]:
    """``(grad_weight [F, d], grad_value_sum [F])`` with ``grad_weight[f] = sum of values[p] *
    grad_out[row(p)]`` and ``grad_value_sum[f] = sum of values[p]`` over the entries p of latent f.
    With ``grad_out`` = the decoder's output gradient this is W_dec's gradient; with ``grad_out = x``
    it is the encoder's weight and bias gradient. Deterministic (entries are sorted by latent)."""
    check_tensor_args("sparse_decode_grad_weight", grad_out=grad_out, values=values, indices=indices)
    check_tensor_args("sparse_decode_grad_weight", optional=True, offsets=offsets)
    check_int_args("sparse_decode_grad_weight", num_latents=num_latents)
    return _ops.sparse_decode_grad_weight(grad_out, values, indices, offsets, int(num_latents))


def sparse_decode_backward(
    grad_out: Tensor, values: Tensor, indices: Tensor, offsets: Optional[Tensor], W_dec: Tensor
) -> tuple[Tensor, Tensor]:
    """Both gradients of ``sparse_decode`` at once: ``(grad_values, grad_W_dec)``, equal to
    ``sparse_decode_grad_values(grad_out, indices, offsets, W_dec)`` and
    ``sparse_decode_grad_weight(grad_out, values, indices, offsets, F)[0]``. On the CPU one pass
    over the entries grouped by latent gathers each grad_out row once for both."""
    check_tensor_args("sparse_decode_backward", grad_out=grad_out, values=values, indices=indices, W_dec=W_dec)
    check_tensor_args("sparse_decode_backward", optional=True, offsets=offsets)
    return _ops.sparse_decode_backward(grad_out, values, indices, offsets, W_dec)


# The registry entry (prismkit/ops/registry.py): every op of this core and its CUDA kernel's kind.
CORE = registry.register_core(
    "sae",
    {
        "topk_encode": "triton",
        "batch_topk_encode": "triton",
        "feature_choice_encode": "triton",
        "threshold_encode": "triton",
        "jumprelu_encode": "triton",
        "latent_stats": "triton",
        "sparse_decode": "cuda",
        "sparse_decode_grad_values": "cuda",
        "sparse_decode_grad_weight": "cuda",
        "sparse_decode_backward": "cuda",
    },
)
