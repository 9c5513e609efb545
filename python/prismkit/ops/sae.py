"""Sparse-autoencoder encoding and decoding ops: public wrappers, fake (torch.compile)
implementations, autograd, and the Triton kernels registered for CUDA tensors.

The ops (schemas in csrc/registration.cpp), for x [B, d], W_enc [F, d] (an
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

from ._checks import (
    check_dtype,
    check_float_dtype,
    check_rank,
    check_same_device,
    check_same_dtype,
    check_size,
    describe,
)
from ._triton import register_triton_kernels

__all__ = [
    "SparseCode",
    "topk_encode",
    "batch_topk_encode",
    "feature_choice_encode",
    "threshold_encode",
    "latent_stats",
    "sparse_decode",
    "sparse_decode_grad_values",
    "sparse_decode_grad_weight",
    "sparse_decode_backward",
    "equal_capacity",
    "zipf_capacity",
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
        """The [B, F] dense code (differentiable with respect to ``values``)."""
        dense = self.values.new_zeros(self.batch_size, self.num_latents)
        if self.offsets is None:
            return dense.scatter(1, self.indices, self.values)
        return dense.index_put((self.row_ids(), self.indices), self.values)

    def decode(self, W_dec: Tensor, b_dec: Optional[Tensor] = None) -> Tensor:
        """``sparse_decode`` of this code: [B, d]."""
        return sparse_decode(self.values, self.indices, self.offsets, W_dec, b_dec)


# --------------------------------------------------------------------------------------------
# Public functional wrappers
# --------------------------------------------------------------------------------------------


def topk_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int) -> SparseCode:
    """TopK SAE encoding: per token, the k largest of ``relu(x @ W_enc.T + b_enc)``.

    Fused: the [B, F] pre-activation matrix is never materialized (tiles of it are computed and
    reduced to a running top-k). Returns a fixed-k ``SparseCode`` (values [B, k] descending,
    indices [B, k] int64). See the module docstring for ties, NaN and gradients.
    """
    values, indices = _ops.topk_encode(x, W_enc, b_enc, k)
    return SparseCode(values, indices, None, W_enc.shape[0])


def batch_topk_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, k: int) -> SparseCode:
    """BatchTopK (= Mutual Choice) encoding: the k*B largest positive entries of the whole batch's
    ``relu(x @ W_enc.T + b_enc)``; tokens get different counts. Returns a row-compressed
    ``SparseCode`` with nnz <= k*B. Fused: only bounded per-token candidate lists are kept."""
    values, indices, offsets = _ops.batch_topk_encode(x, W_enc, b_enc, k)
    return SparseCode(values, indices, offsets, W_enc.shape[0])


def feature_choice_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, capacity: Tensor) -> SparseCode:
    """Feature Choice encoding: latent j keeps its ``capacity[j]`` highest activating tokens of the
    batch (positive entries only; ties to the lower token). ``capacity`` is [F] int64 on x's device;
    build it with ``equal_capacity`` or ``zipf_capacity``. Returns a row-compressed ``SparseCode``."""
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
    values, indices, offsets = _ops.threshold_encode(x, W_enc, b_enc, threshold)
    return SparseCode(values, indices, offsets, W_enc.shape[0])


def latent_stats(
    x: Tensor, W_enc: Tensor, b_enc: Tensor, threshold: Optional[Tensor] = None
) -> tuple[Tensor, Tensor]:
    """Per-latent statistics of the batch's pre-activations ``z = x @ W_enc.T + b_enc`` without
    the [B, F] matrix: ``(fire_count, max_pre)``, ``fire_count[j]`` = #tokens with
    ``z[:, j] > threshold[j]`` (threshold 0 when None) as int64, ``max_pre[j]`` = max over tokens
    of ``z[:, j]`` (-inf for an empty batch, NaN if any is NaN). Not differentiable (its outputs
    never require grad). Deterministic on the CPU."""
    return _ops.latent_stats(x, W_enc, b_enc, threshold)


def sparse_decode(
    values: Tensor, indices: Tensor, offsets: Optional[Tensor], W_dec: Tensor, b_dec: Optional[Tensor] = None
) -> Tensor:
    """``x_hat[r] = b_dec + sum over row r's entries p of values[p] * W_dec[indices[p]]``.

    ``W_dec`` is [F, d]; ``offsets=None`` selects the fixed-k layout ([B, k] values/indices),
    otherwise ``offsets`` [B+1] gives the row-compressed one. Indices outside [0, F) are an error.
    """
    return _ops.sparse_decode(values, indices, offsets, W_dec, b_dec)


def sparse_decode_grad_values(grad_out: Tensor, indices: Tensor, offsets: Optional[Tensor], W_dec: Tensor) -> Tensor:
    """``grad_values[p] = grad_out[row(p)] . W_dec[indices[p]]``: the selected entries of
    ``grad_out @ W_dec.T`` only (shaped like ``indices``)."""
    return _ops.sparse_decode_grad_values(grad_out, indices, offsets, W_dec)


def sparse_decode_grad_weight(
    grad_out: Tensor, values: Tensor, indices: Tensor, offsets: Optional[Tensor], num_latents: int
) -> tuple[Tensor, Tensor]:
    """``(grad_weight [F, d], grad_value_sum [F])`` with ``grad_weight[f] = sum of values[p] *
    grad_out[row(p)]`` and ``grad_value_sum[f] = sum of values[p]`` over the entries p of latent f.
    With ``grad_out`` = the decoder's output gradient this is W_dec's gradient; with ``grad_out = x``
    it is the encoder's weight and bias gradient. Deterministic (entries are sorted by latent)."""
    return _ops.sparse_decode_grad_weight(grad_out, values, indices, offsets, num_latents)


def sparse_decode_backward(
    grad_out: Tensor, values: Tensor, indices: Tensor, offsets: Optional[Tensor], W_dec: Tensor
) -> tuple[Tensor, Tensor]:
    """Both gradients of ``sparse_decode`` at once: ``(grad_values, grad_W_dec)``, equal to
    ``sparse_decode_grad_values(grad_out, indices, offsets, W_dec)`` and
    ``sparse_decode_grad_weight(grad_out, values, indices, offsets, F)[0]``. On the CPU one pass
    over the entries grouped by latent gathers each grad_out row once for both."""
    return _ops.sparse_decode_backward(grad_out, values, indices, offsets, W_dec)


def equal_capacity(num_latents: int, k: int, batch_size: int, device=None) -> Tensor:
    """Feature Choice capacities with the budget k*B spread evenly: floor(k*B/F) each, plus one for
    the first (k*B mod F) latents, so they sum to k*B. Returns [F] int64."""
    if num_latents <= 0 or k <= 0 or batch_size < 0:
        raise ValueError(
            f"equal_capacity: need num_latents > 0, k > 0, batch_size >= 0, got {num_latents}, {k}, {batch_size}"
        )
    budget = k * batch_size
    cap = torch.full((num_latents,), budget // num_latents, dtype=torch.long)
    cap[: budget % num_latents] += 1
    return cap.to(device) if device is not None else cap


def zipf_capacity(num_latents: int, k: int, batch_size: int, exponent: float = 1.0, device=None) -> Tensor:
    """Zipf-shaped Feature Choice capacities: latent j (0-based) gets a share proportional to
    ``1 / (j + 1) ** exponent`` of the budget k*B, no latent more than B (the excess is spread over
    the others in the same proportions), rounded by largest remainder so they sum to exactly
    min(k*B, F*B). Latent 0 gets the most; permute the result to give the head to other latents.
    Returns [F] int64."""
    if num_latents <= 0 or k <= 0 or batch_size < 0 or exponent < 0:
        raise ValueError(
            "zipf_capacity: need num_latents > 0, k > 0, batch_size >= 0, exponent >= 0, got "
            f"{num_latents}, {k}, {batch_size}, {exponent}"
        )
    budget = min(k * batch_size, num_latents * batch_size)
    weight = torch.arange(1, num_latents + 1, dtype=torch.float64).pow(-exponent)
    share = torch.zeros(num_latents, dtype=torch.float64)
    full = torch.zeros(num_latents, dtype=torch.bool)
    while True:  # water-filling: latents whose share exceeds B are fixed at B
        left = budget - batch_size * int(full.sum())
        free_weight = weight.masked_fill(full, 0)
        share = torch.where(full, float(batch_size), free_weight * (left / free_weight.sum()))
        over = (share > batch_size) & ~full
        if not bool(over.any()):
            break
        full |= over
    cap = share.floor().long()
    missing = budget - int(cap.sum())
    if missing > 0:
        remainder = (share - cap).masked_fill(cap >= batch_size, -1.0)
        cap[torch.argsort(remainder, descending=True, stable=True)[:missing]] += 1
    return cap.to(device) if device is not None else cap


# --------------------------------------------------------------------------------------------
# Argument checks for the Python-side implementations (fake tensors, Triton). They mirror
# csrc/sae/sae_checks.cpp; checks that read data (index ranges, offsets, capacity signs) are done
# by the kernels.
# --------------------------------------------------------------------------------------------


def check_encode_args(op: str, x: Tensor, W_enc: Tensor, b_enc: Tensor) -> tuple[int, int, int]:
    check_rank(op, "x", x, 2, "[B, d]")
    check_rank(op, "W_enc", W_enc, 2, "[F, d] (an nn.Linear(d, F).weight)")
    check_rank(op, "b_enc", b_enc, 1, "[F]")
    check_float_dtype(op, "x", x)
    check_same_device(op, "W_enc", W_enc, "x", x)
    check_same_device(op, "b_enc", b_enc, "x", x)
    check_same_dtype(op, "W_enc", W_enc, "x", x)
    check_same_dtype(op, "b_enc", b_enc, "x", x)
    check_size(op, "W_enc", W_enc, 1, x.shape[1], "d, the feature size of x")
    check_size(op, "b_enc", b_enc, 0, W_enc.shape[0], "F, the number of latents of W_enc")
    return x.shape[0], x.shape[1], W_enc.shape[0]


def check_k(op: str, k: int, F: int) -> None:
    if not (1 <= k <= F):
        raise ValueError(f"prismkit::{op}: 'k' must be in [1, F] = [1, {F}] (F is the number of latents), got {k}")


def check_capacity_args(op: str, capacity: Tensor, x: Tensor, F: int) -> None:
    check_rank(op, "capacity", capacity, 1, "[F]")
    check_dtype(op, "capacity", capacity, (torch.long,))
    check_same_device(op, "capacity", capacity, "x", x)
    check_size(op, "capacity", capacity, 0, F, "F, the number of latents of W_enc")


def check_threshold_args(op: str, threshold: Tensor, x: Tensor, F: int) -> None:
    check_rank(op, "threshold", threshold, 1, "[F] (one threshold per latent)")
    check_same_device(op, "threshold", threshold, "x", x)
    check_same_dtype(op, "threshold", threshold, "x", x)
    check_size(op, "threshold", threshold, 0, F, "F, the number of latents of W_enc")


def _check_layout_shapes(op: str, indices: Tensor, offsets: Optional[Tensor], ref: Tensor, ref_name: str) -> int:
    """Shape-only part of check_sparse_layout; returns B."""
    check_dtype(op, "indices", indices, (torch.long,))
    check_same_device(op, "indices", indices, ref_name, ref)
    if offsets is None:
        check_rank(op, "indices", indices, 2, "[B, k] (fixed-k layout, offsets None)")
        return indices.shape[0]
    check_rank(op, "indices", indices, 1, "[nnz] (row-compressed layout, offsets given)")
    check_rank(op, "offsets", offsets, 1, "[B + 1]")
    check_dtype(op, "offsets", offsets, (torch.long,))
    check_same_device(op, "offsets", offsets, ref_name, ref)
    if offsets.shape[0] < 1:
        raise ValueError(f"prismkit::{op}: 'offsets' must have B + 1 >= 1 entries, got {describe(offsets)}")
    return offsets.shape[0] - 1


def _check_values(op: str, name: str, values: Tensor, indices: Tensor) -> None:
    if not isinstance(values, Tensor) or values.shape != indices.shape:
        raise ValueError(
            f"prismkit::{op}: '{name}' must have the shape of indices {list(indices.shape)}, got {describe(values)}"
        )
    check_float_dtype(op, name, values)
    check_same_device(op, name, values, "indices", indices)


def _check_weight(op: str, name: str, weight: Tensor) -> None:
    check_rank(op, name, weight, 2, "[F, d]")
    check_float_dtype(op, name, weight)


def _check_rows(op: str, name: str, rows: Tensor, B: int) -> None:
    check_rank(op, name, rows, 2, "[B, d]")
    check_float_dtype(op, name, rows)
    check_size(op, name, rows, 0, B, "B, the number of rows of the sparse code")


# --------------------------------------------------------------------------------------------
# Fake implementations (shapes only), for torch.compile and opcheck
# --------------------------------------------------------------------------------------------


@torch.library.register_fake("prismkit::topk_encode")
def _topk_encode_fake(x, W_enc, b_enc, k):
    B, _, F = check_encode_args("topk_encode", x, W_enc, b_enc)
    check_k("topk_encode", k, F)
    return x.new_empty(B, k), x.new_empty(B, k, dtype=torch.long)


def _row_compressed_fake(x):
    nnz = torch.library.get_ctx().new_dynamic_size()
    B = x.shape[0]
    return x.new_empty(nnz), x.new_empty(nnz, dtype=torch.long), x.new_empty(B + 1, dtype=torch.long)


@torch.library.register_fake("prismkit::batch_topk_encode")
def _batch_topk_encode_fake(x, W_enc, b_enc, k):
    _, _, F = check_encode_args("batch_topk_encode", x, W_enc, b_enc)
    check_k("batch_topk_encode", k, F)
    return _row_compressed_fake(x)


@torch.library.register_fake("prismkit::feature_choice_encode")
def _feature_choice_encode_fake(x, W_enc, b_enc, capacity):
    _, _, F = check_encode_args("feature_choice_encode", x, W_enc, b_enc)
    check_capacity_args("feature_choice_encode", capacity, x, F)
    return _row_compressed_fake(x)


@torch.library.register_fake("prismkit::threshold_encode")
def _threshold_encode_fake(x, W_enc, b_enc, threshold):
    _, _, F = check_encode_args("threshold_encode", x, W_enc, b_enc)
    check_threshold_args("threshold_encode", threshold, x, F)
    return _row_compressed_fake(x)


@torch.library.register_fake("prismkit::latent_stats")
def _latent_stats_fake(x, W_enc, b_enc, threshold=None):
    _, _, F = check_encode_args("latent_stats", x, W_enc, b_enc)
    if threshold is not None:
        check_threshold_args("latent_stats", threshold, x, F)
    return x.new_empty(F, dtype=torch.long), x.new_empty(F)


def _check_code_and_weight(op: str, values: Tensor, indices: Tensor, offsets: Optional[Tensor], W_dec: Tensor) -> int:
    """A code to decode with W_dec [F, d]; returns B."""
    _check_weight(op, "W_dec", W_dec)
    _check_values(op, "values", values, indices)
    check_same_dtype(op, "W_dec", W_dec, "values", values)
    check_same_device(op, "W_dec", W_dec, "values", values)
    return _check_layout_shapes(op, indices, offsets, values, "values")


def _check_grad_out(op: str, grad_out: Tensor, B: int, values: Tensor) -> None:
    _check_rows(op, "grad_out", grad_out, B)
    check_same_dtype(op, "grad_out", grad_out, "values", values)
    check_same_device(op, "grad_out", grad_out, "values", values)


@torch.library.register_fake("prismkit::sparse_decode")
def _sparse_decode_fake(values, indices, offsets, W_dec, b_dec):
    op = "sparse_decode"
    B = _check_code_and_weight(op, values, indices, offsets, W_dec)
    if b_dec is not None:
        check_rank(op, "b_dec", b_dec, 1, "[d]")
        check_size(op, "b_dec", b_dec, 0, W_dec.shape[1], "d, the feature size of W_dec")
        check_same_dtype(op, "b_dec", b_dec, "values", values)
        check_same_device(op, "b_dec", b_dec, "values", values)
    return W_dec.new_empty(B, W_dec.shape[1])


@torch.library.register_fake("prismkit::sparse_decode_grad_values")
def _sparse_decode_grad_values_fake(grad_out, indices, offsets, W_dec):
    op = "sparse_decode_grad_values"
    _check_weight(op, "W_dec", W_dec)
    check_rank(op, "grad_out", grad_out, 2, "[B, d]")
    check_same_device(op, "W_dec", W_dec, "grad_out", grad_out)
    B = _check_layout_shapes(op, indices, offsets, grad_out, "grad_out")
    _check_rows(op, "grad_out", grad_out, B)
    check_same_dtype(op, "W_dec", W_dec, "grad_out", grad_out)
    check_size(op, "grad_out", grad_out, 1, W_dec.shape[1], "d, the feature size of W_dec")
    return grad_out.new_empty(indices.shape)


@torch.library.register_fake("prismkit::sparse_decode_grad_weight")
def _sparse_decode_grad_weight_fake(grad_out, values, indices, offsets, num_latents):
    op = "sparse_decode_grad_weight"
    if num_latents < 0:
        raise ValueError(f"prismkit::{op}: 'num_latents' must be >= 0, got {num_latents}")
    _check_values(op, "values", values, indices)
    B = _check_layout_shapes(op, indices, offsets, values, "values")
    _check_grad_out(op, grad_out, B, values)
    return grad_out.new_empty(num_latents, grad_out.shape[1]), grad_out.new_empty(num_latents)


@torch.library.register_fake("prismkit::sparse_decode_backward")
def _sparse_decode_backward_fake(grad_out, values, indices, offsets, W_dec):
    op = "sparse_decode_backward"
    B = _check_code_and_weight(op, values, indices, offsets, W_dec)
    _check_grad_out(op, grad_out, B, values)
    check_size(op, "grad_out", grad_out, 1, W_dec.shape[1], "d, the feature size of W_dec")
    return grad_out.new_empty(indices.shape), grad_out.new_empty(W_dec.shape)


# --------------------------------------------------------------------------------------------
# Autograd: every backward is made of the three decode ops (and cheap ATen reductions).
# --------------------------------------------------------------------------------------------


def _encode_setup_context(ctx, inputs, output):
    x, W_enc = inputs[0], inputs[1]
    values, indices = output[0], output[1]
    offsets = output[2] if len(output) == 3 else None
    ctx.save_for_backward(x, W_enc, values, indices, offsets)


def _encode_backward(ctx, grad_values, *_unused_grads):
    # Shared by every encoder: the selected values are the pre-activations themselves.
    x, W_enc, values, indices, offsets = ctx.saved_tensors
    # d value / d pre-activation is 1 where the selected value is positive (ReLU), else 0.
    g = torch.where(values > 0, grad_values, torch.zeros_like(grad_values))
    grad_x = grad_W = grad_b = None
    if ctx.needs_input_grad[0]:
        grad_x = _ops.sparse_decode(g, indices, offsets, W_enc, None)
    if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
        grad_W, grad_b = _ops.sparse_decode_grad_weight(x, g, indices, offsets, W_enc.shape[0])
    return grad_x, grad_W, grad_b, None


for _name in ("topk_encode", "batch_topk_encode", "feature_choice_encode", "threshold_encode"):
    torch.library.register_autograd(
        f"prismkit::{_name}", _encode_backward, setup_context=_encode_setup_context
    )


def _decode_setup_context(ctx, inputs, output):
    values, indices, offsets, W_dec, _ = inputs
    ctx.save_for_backward(values, indices, offsets, W_dec)


def _decode_backward(ctx, grad_out):
    values, indices, offsets, W_dec = ctx.saved_tensors
    grad_values = grad_W = grad_b = None
    if ctx.needs_input_grad[0] and ctx.needs_input_grad[3]:
        grad_values, grad_W = _ops.sparse_decode_backward(grad_out, values, indices, offsets, W_dec)
    elif ctx.needs_input_grad[0]:
        grad_values = _ops.sparse_decode_grad_values(grad_out, indices, offsets, W_dec)
    elif ctx.needs_input_grad[3]:
        grad_W, _ = _ops.sparse_decode_grad_weight(grad_out, values, indices, offsets, W_dec.shape[0])
    if ctx.needs_input_grad[4]:
        grad_b = grad_out.sum(0)
    return grad_values, None, None, grad_W, grad_b


torch.library.register_autograd("prismkit::sparse_decode", _decode_backward, setup_context=_decode_setup_context)


def _statistics_setup_context(ctx, inputs, output):
    ctx.mark_non_differentiable(*output)  # counts and maxima: statistics, not a function to train through


def _no_backward(ctx, *grads):
    return None, None, None, None


torch.library.register_autograd("prismkit::latent_stats", _no_backward, setup_context=_statistics_setup_context)


def _grad_values_setup_context(ctx, inputs, output):
    grad_out, indices, offsets, W_dec = inputs
    ctx.save_for_backward(grad_out, indices, offsets, W_dec)


def _grad_values_backward(ctx, gg):
    grad_out, indices, offsets, W_dec = ctx.saved_tensors
    d_grad_out = d_W = None
    if ctx.needs_input_grad[0]:
        d_grad_out = _ops.sparse_decode(gg, indices, offsets, W_dec, None)
    if ctx.needs_input_grad[3]:
        d_W, _ = _ops.sparse_decode_grad_weight(grad_out, gg, indices, offsets, W_dec.shape[0])
    return d_grad_out, None, None, d_W


torch.library.register_autograd(
    "prismkit::sparse_decode_grad_values", _grad_values_backward, setup_context=_grad_values_setup_context
)


def _grad_weight_setup_context(ctx, inputs, output):
    grad_out, values, indices, offsets, _ = inputs
    ctx.save_for_backward(grad_out, values, indices, offsets)


def _grad_weight_backward(ctx, g_weight, g_value_sum):
    grad_out, values, indices, offsets = ctx.saved_tensors
    d_grad_out = d_values = None
    if ctx.needs_input_grad[0]:
        d_grad_out = _ops.sparse_decode(values, indices, offsets, g_weight, None)
    if ctx.needs_input_grad[1]:
        d_values = _ops.sparse_decode_grad_values(grad_out, indices, offsets, g_weight) + g_value_sum[indices]
    return d_grad_out, d_values, None, None, None


torch.library.register_autograd(
    "prismkit::sparse_decode_grad_weight", _grad_weight_backward, setup_context=_grad_weight_setup_context
)


def _backward_setup_context(ctx, inputs, output):
    grad_out, values, indices, offsets, W_dec = inputs
    ctx.save_for_backward(grad_out, values, indices, offsets, W_dec)


def _backward_backward(ctx, gg_values, gg_weight):
    grad_out, values, indices, offsets, W_dec = ctx.saved_tensors
    d_grad_out = d_values = d_W = None
    if ctx.needs_input_grad[0]:
        d_grad_out = _ops.sparse_decode(gg_values, indices, offsets, W_dec, None) + _ops.sparse_decode(
            values, indices, offsets, gg_weight, None
        )
    if ctx.needs_input_grad[1]:
        d_values = _ops.sparse_decode_grad_values(grad_out, indices, offsets, gg_weight)
    if ctx.needs_input_grad[4]:
        d_W, _ = _ops.sparse_decode_grad_weight(grad_out, gg_values, indices, offsets, W_dec.shape[0])
    return d_grad_out, d_values, None, None, d_W


torch.library.register_autograd(
    "prismkit::sparse_decode_backward", _backward_backward, setup_context=_backward_setup_context
)


# --------------------------------------------------------------------------------------------
# CUDA: the encoders run Triton kernels (triton_kernels/sae.py), imported on first use.
# --------------------------------------------------------------------------------------------

TRITON_OPS = ("topk_encode", "batch_topk_encode", "feature_choice_encode", "threshold_encode", "latent_stats")
register_triton_kernels("sae", TRITON_OPS)
