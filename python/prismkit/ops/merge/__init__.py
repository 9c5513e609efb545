"""Token-merging ops (PiToMe, ToMe, DivPrune): the public functional wrappers.

Where each piece lives (the template every core follows, see CONTRIBUTING.md): schemas in
csrc/merge/merge_schemas.cpp; argument checks in checks.py here and csrc/merge/merge_checks.cpp;
fake implementations in fake.py; autograd in autograd.py; C++ CPU kernels in
csrc/merge/<op>_cpu.cpp; Triton kernels in triton_kernels/merge.py; the references (and the
official computations, op for op) in prismkit/reference/merge.py.

One representation for every merge, the destination map: ``dest`` [B, N] int64 gives each input
token's output slot (``0 <= dest < num_out``), or -1 when the token is dropped. The output order is
part of the plan. Merging is then ``token_merge``, a deterministic segmented reduction; unmerging is
a gather by dest (``x_out.gather(1, dest.clamp_min(0)[..., None].expand(-1, -1, C))``, zeros where
dest is -1); chained layers compose (``torch.where(dest1 >= 0, dest2.gather(1, dest1.clamp_min(0)),
-1)``).

* ``token_merge(x, size, dest, num_out, reduce="wavg") -> (x_out [B, num_out, C], size_out [B,
  num_out, 1])``;
* ``pitome_energy(metric, margin, alpha=1.0, kernel="elu") -> energy [B, T]``;
* ``merge_plan(metric, r, method, margin=0.9, alpha=1.0, class_token=True, prune=False) -> (dest
  [B, N], energy [B, T])``: PiToMe's and ToMe's plans;
* ``divprune_select(metric, k) -> indices [B, k]``: DivPrune's greedy max-min selection.

The plan ops compute in float32 whatever the metric's dtype and never hold a T x T similarity
matrix (CPU: 64 rows of similarities at a time; CUDA: Triton energy tiles); they are not
differentiable (their outputs are decisions; the energy is returned for analysis).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import registry
from .._checks import check_float_args, check_int_args, check_str_args, check_tensor_args
from . import autograd, fake  # noqa: F401  (register the fake implementations and autograd)

__all__ = ["divprune_select", "merge_plan", "pitome_energy", "token_merge"]

_ops = torch.ops.prismkit


def token_merge(x: Tensor, size: Optional[Tensor], dest: Tensor, num_out: int,
                reduce: str = "wavg") -> tuple[Tensor, Tensor]:  # fmt: skip
    """Reduce the tokens of ``x`` [B, N, C] into ``num_out`` slots per image by ``dest`` [B, N]
    int64 (each token's slot, -1: dropped). ``reduce``: ``wavg`` (the official ``merge_wavg``:
    x_out = sum(size x) / sum(size)), ``mean``, ``sum`` or ``amax``; ``size`` [B, N, 1] (x's dtype,
    positive; None: ones). Returns ``(x_out [B, num_out, C], size_out [B, num_out, 1])``, size_out
    the slots' summed sizes. A slot no token maps to gets 0 and size 0.

    Each slot sums its tokens in ascending token order in float32 (float64 for float64 inputs),
    without atomics: bit-identical from run to run. Differentiable in x (the backward is a gather by
    dest, never an N x N matrix), not in size or dest. CPU: float32, float64 (float16 / bfloat16 in
    float32); CUDA (Triton): float32, float16, bfloat16. NaN: a NaN token makes its slot's output NaN
    in that channel (every reduce). ``amax``'s gradient is split equally among a slot's tokens that
    equal its maximum. Errors: dest outside [-1, num_out) (IndexError), a size not positive."""
    check_tensor_args("token_merge", x=x, dest=dest)
    check_tensor_args("token_merge", optional=True, size=size)
    check_int_args("token_merge", num_out=num_out)
    check_str_args("token_merge", reduce=reduce)
    return tuple(_ops.token_merge(x, size, dest, int(num_out), reduce))


def pitome_energy(metric: Tensor, margin: float, alpha: float = 1.0, kernel: str = "elu") -> Tensor:
    """Energy [B, T] of each of the T tokens of ``metric`` [B, T, d] (strip a class token first):
    the mean over j (j = i included, as the official code does) of a kernel of the cosine
    similarity s_ij. ``kernel``: ``elu`` (official PiToMe, ``pitome_vision``): ``elu(s - margin,
    alpha)``; ``gaussian`` (official ``pitome_text``): ``exp(-((1 - s) / sigma)^2 / 2) / (sigma
    sqrt(2 pi))`` with sigma = 1 - margin (margin < 1); ``paper``: the paper's f_m(s) = s if s >=
    margin else alpha (exp(s - margin) - 1), as recalled from the paper, unverified against its
    text. Rows are normalized as ``F.normalize`` does (eps 1e-12). Computed in float32 (returned in
    the metric's dtype); the row sums' order differs from torch's mean, so energies match the
    reference to about 1e-6. NaN in a token's metric makes its energy and every energy NaN."""
    check_tensor_args("pitome_energy", metric=metric)
    check_float_args("pitome_energy", margin=margin, alpha=alpha)
    check_str_args("pitome_energy", kernel=kernel)
    return _ops.pitome_energy(metric, float(margin), float(alpha), kernel)


def merge_plan(metric: Tensor, r: int, method: str, margin: float = 0.9, alpha: float = 1.0,
               class_token: bool = True, prune: bool = False) -> tuple[Tensor, Tensor]:  # fmt: skip
    """One merging step's plan: ``(dest [B, N] int64, energy [B, T])`` from ``metric`` [B, N, d]
    (the class token first when ``class_token``; T = N - 1 ranked tokens, or N). ``dest`` maps each
    token to its output slot (``token_merge(x, size, dest, N - r)`` applies it), -1 when ``prune``
    drops it. ``method``:

    * ``pitome`` (official ``pitome``, the protecting variant): energy ``elu(s - margin, alpha)``,
      tokens ranked by descending energy; the 2r highest pair up, A = ranks 0, 2, 4, ..., B = ranks
      1, 3, 5, ...; every A token merges into its most similar B token; output order ``[cls,
      protected tokens by descending energy, B tokens in rank order]``. r <= T // 2.
    * ``pitome_bsm`` (official ``pitome_bsm``): all T ranked tokens alternate A, B; ToMe's matching
      then merges the r A tokens with the best matches; ``[cls, unmerged A by descending best
      match, B]``. r <= ceil(T / 2) (0 when T < 2). It reorders tokens even at r = 0.
    * ``pitome_text`` (official ``pitome_text``): the Gaussian energy, sigma = 1 - margin; the
      higher-energy half of the 2r tokens (A) merges into the lower-energy half (B).
    * ``tome`` (ToMe's ``bipartite_soft_matching``): A = tokens 0, 2, 4, ..., B = 1, 3, 5, ...,
      the class token never merges; r is clamped to (N - class_token) // 2 as ToMe does; unmerged A
      tokens keep ToMe's order (by index with a class token, by descending best match without).
      ``energy`` is empty.

    Ties: the energy order and the best-match order are stable (equal values keep the lower token
    index; the official ``argsort`` is not stable), and a best match ties to the lower B position.
    Matches are computed from the metric rows (not a stored T x T matrix) in float32. r = 0: every
    token keeps its place (except ``pitome_bsm``). The PiToMe methods raise an error naming the
    largest r. NaN: a NaN energy ranks first (as torch's sort puts NaN first) and a NaN similarity
    never wins a match, so a NaN metric still gives a valid plan."""
    check_tensor_args("merge_plan", metric=metric)
    check_int_args("merge_plan", r=r)
    check_str_args("merge_plan", method=method)
    check_float_args("merge_plan", margin=margin, alpha=alpha)
    return tuple(_ops.merge_plan(metric, int(r), method, float(margin), float(alpha), bool(class_token), bool(prune)))


def divprune_select(metric: Tensor, k: int) -> Tensor:
    """DivPrune's greedy max-min diversity selection of k of the N tokens of ``metric`` [B, N, d]
    on cosine distance 1 - cos: first the token whose nearest other token is farthest, then
    repeatedly the unpicked token farthest from the picked set. Returns the indices [B, k] int64 in
    ascending (original) order. O(N^2 d / 2) for the nearest neighbours (the symmetric similarities
    a panel at a time, never an N x N matrix) plus O(k N d) for the picks (a running minimum; the
    official loop recomputes the minimum over all picks at each step). Ties: the lower index; a NaN
    distance never wins. Rows are normalized with eps 1e-12 (the official code divides by the
    norm, so a zero row would give NaN there). k = 0 gives [B, 0]."""
    check_tensor_args("divprune_select", metric=metric)
    check_int_args("divprune_select", k=k)
    return _ops.divprune_select(metric, int(k))


CORE = registry.register_core(
    "merge", {"token_merge": "triton", "pitome_energy": "triton", "merge_plan": "triton", "divprune_select": "triton"}
)
