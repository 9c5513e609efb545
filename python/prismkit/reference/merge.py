"""Plain PyTorch references of token merging (PiToMe, ToMe, DivPrune), written for reading and as
test oracles, not for speed.

Two forms:

* the plan form the merge ops will take: ``merge_plan(metric, r, method, ...) -> (dest, energy)``
  where ``dest`` [B, N] int64 gives each input token's output slot (-1: dropped), and
  ``token_merge(x, size, dest, num_out, reduce)`` the segmented reduction that applies it;
* the official code's computation, op for op (``official_pitome_wavg``, ``official_tome_wavg``,
  ``official_divprune``): the oracle the plan form is tested against, and the benchmarks'
  ``official-pytorch`` baseline. They follow PiToMe's ``algo/pitome/merge.py`` (``pitome_vision``,
  ``pitome``, ``pitome_bsm``, ``pitome_text``, ``merge_wavg``), ToMe's ``tome/merge.py``
  (``bipartite_soft_matching``) and DivPrune's selection in ``llava/model/llava_arch.py``, with one
  change: every sort is stable (ties keep the lower token index), since the official
  ``argsort`` is not, so that both forms decide the same way on tied energies.

Token indices: ``metric`` and ``x`` hold N tokens, the class token (when ``class_token``) first;
PiToMe ranks the T = N - 1 others (or all N without a class token). The reference recomputes each
A token's similarities to the B tokens from the metric rows where the official code gathers them
from its T x T matrix: the same numbers up to float32 rounding, so only a near-tie can match
differently. ``official_divprune`` also excludes tokens already picked from later picks (the
official loop relies on their distance 0 to themselves).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

METHODS = ("pitome", "pitome_bsm", "pitome_text", "tome")
KERNELS = ("elu", "gaussian", "paper")
REDUCES = ("wavg", "mean", "sum", "amax")


def keep_ratio_to_r(tokens: int, ratio: float) -> int:
    """The official number of tokens to merge at keep ratio ``ratio`` over ``tokens`` (class token
    excluded): ``floor(T - T * ratio)`` in double precision, 0 at ratio >= 1."""
    return math.floor(tokens - tokens * ratio) if ratio < 1.0 else 0


def pitome_energy(metric: Tensor, margin: float, alpha: float = 1.0, kernel: str = "elu") -> Tensor:
    """Energy [B, T] of each token: the mean over j (j = i included) of a kernel of the cosine
    similarity s_ij. ``elu``: the official ``elu(s - margin, alpha)``; ``gaussian``: the text
    variant's ``exp(-((1 - s) / sigma)^2 / 2) / (sigma sqrt(2 pi))``, sigma = 1 - margin; ``paper``:
    the paper's f_m(s) = s if s >= margin else alpha (exp(s - margin) - 1) (as recalled, unverified).
    Computed in float32 (float64 for float64 metrics)."""
    m = F.normalize(metric if metric.dtype == torch.float64 else metric.float(), p=2, dim=-1)
    sim = m @ m.transpose(-1, -2)
    if kernel == "elu":
        return F.elu(sim - margin, alpha=alpha).mean(-1)
    if kernel == "gaussian":
        sigma = 1 - margin
        return torch.exp(-(((1 - sim) / sigma) ** 2) * 0.5).mean(-1) / (sigma * math.sqrt(2 * math.pi))
    if kernel == "paper":
        return torch.where(sim >= margin, sim, alpha * (torch.exp(sim - margin) - 1)).mean(-1)
    raise ValueError(f"pitome_energy: kernel must be one of {KERNELS}, got {kernel!r}")


def _descending(values: Tensor) -> Tensor:
    """Indices that sort each row descending, ties in ascending index order (stable)."""
    return torch.sort(values, dim=-1, descending=True, stable=True).indices


def _best_match(m: Tensor, a_idx: Tensor, b_idx: Tensor) -> tuple[Tensor, Tensor]:
    """For each A token, the highest cosine similarity to a B token and that B token's position in
    ``b_idx`` (the first on ties). m: normalized metric [B, T, d]."""
    if b_idx.shape[1] == 0:  # pitome_bsm over one token: no B token to match
        return torch.full(a_idx.shape, -math.inf, device=m.device), torch.zeros_like(a_idx)
    a = m.gather(1, a_idx[..., None].expand(-1, -1, m.shape[-1]))
    b = m.gather(1, b_idx[..., None].expand(-1, -1, m.shape[-1]))
    return (a @ b.transpose(-1, -2)).max(-1)


def merge_plan(metric: Tensor, r: int, method: str, margin: float = 0.9, alpha: float = 1.0,
               class_token: bool = True, prune: bool = False, *,
               energy_fn=None, match_fn=None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(dest [B, N] int64, energy [B, T]) of one merging step (module docstring; empty energy for
    ``tome``). Output order: PiToMe ``[cls, protected by descending energy, B]``, ``pitome_bsm``
    ``[cls, unmerged A by descending best match, B]``, ToMe ``[unmerged A, B]`` with the unmerged
    A sorted by index when there is a class token (so it stays first), by descending best match
    otherwise. ``prune``: merged A tokens get -1 instead of their match's slot. r = 0: every token
    keeps its place, except for ``pitome_bsm``, which reorders as the official code does.
    ``energy_fn``, ``match_fn``: what computes the energy (``pitome_energy``'s signature) and each A
    token's best B match (``_best_match``'s); default: this module's, the CUDA launcher passes its
    Triton kernels."""
    energy_fn = energy_fn or pitome_energy
    match_fn = match_fn or _best_match
    if method not in METHODS:
        raise ValueError(f"merge_plan: method must be one of {METHODS}, got {method!r}")
    Bn, N, _ = metric.shape
    dev = metric.device
    dest = torch.full((Bn, N), -1, dtype=torch.int64, device=dev)
    rows = torch.arange(Bn, device=dev)[:, None]
    offset = int(class_token)
    # PiToMe merges r of its A tokens: r <= T // 2 (pitome_bsm: A is every other token, ceil(T / 2))
    T = N - offset
    largest = ((T + 1) // 2 if T >= 2 else 0) if method == "pitome_bsm" else T // 2
    if method != "tome" and r > largest:
        raise ValueError(f"merge_plan: r={r} merges more than half of the {N - offset} tokens; the largest r is "
                         f"{largest}")  # fmt: skip
    if r <= 0 and method != "pitome_bsm":  # nothing merges: every token keeps its place (ToMe's do_nothing)
        energy = (
            metric.new_empty(0)
            if method == "tome"
            else energy_fn(metric[:, offset:], margin, alpha, "gaussian" if method == "pitome_text" else "elu")
        )
        return torch.arange(N, device=dev).expand(Bn, N).clone(), energy
    if method == "tome":
        protected = int(class_token)
        r = min(r, (N - protected) // 2)
        m = F.normalize(metric.float(), p=2, dim=-1)
        a_idx = torch.arange(0, N, 2, device=dev).expand(Bn, -1)
        b_idx = torch.arange(1, N, 2, device=dev).expand(Bn, -1)
        node_max, node_idx = match_fn(m, a_idx, b_idx)
        if class_token:  # ToMe's -inf scores of the class token's row: it never merges
            node_max[:, 0], node_idx[:, 0] = -math.inf, 0
        edge = _descending(node_max)
        unm, src = edge[:, r:], edge[:, :r]
        if class_token:
            unm = unm.sort(dim=-1).values
        n_unm = unm.shape[1]
        dest[rows, a_idx.gather(1, unm)] = torch.arange(n_unm, device=dev).expand(Bn, -1)
        dest[rows, b_idx] = n_unm + torch.arange(b_idx.shape[1], device=dev).expand(Bn, -1)
        merged = -1 if prune else n_unm + node_idx.gather(1, src)
        dest[rows, a_idx.gather(1, src)] = merged
        return dest, metric.new_empty(0)
    if class_token:
        dest[:, 0] = 0
    m = F.normalize(metric[:, offset:].float(), p=2, dim=-1)
    kernel = "gaussian" if method == "pitome_text" else "elu"
    energy = energy_fn(metric[:, offset:], margin, alpha, kernel)
    order = _descending(energy)
    if method == "pitome_bsm":
        a_idx, b_idx = order[:, 0::2], order[:, 1::2]
        node_max, node_idx = match_fn(m, a_idx, b_idx)
        edge = _descending(node_max)
        unm, src = edge[:, r:], edge[:, :r]
        n_keep = unm.shape[1]
        dest[rows, offset + a_idx.gather(1, unm)] = offset + torch.arange(n_keep, device=dev).expand(Bn, -1)
        match = node_idx.gather(1, src)
        a_merged = a_idx.gather(1, src)
    else:
        merge_idx, kept = order[:, : 2 * r], order[:, 2 * r :]
        if method == "pitome_text":  # the higher-energy half merges into the lower-energy half
            a_idx, b_idx = merge_idx[:, :r], merge_idx[:, r:]
        else:
            a_idx, b_idx = merge_idx[:, 0::2], merge_idx[:, 1::2]
        n_keep = kept.shape[1]
        dest[rows, offset + kept] = offset + torch.arange(n_keep, device=dev).expand(Bn, -1)
        _, match = match_fn(m, a_idx, b_idx)
        a_merged = a_idx
    dest[rows, offset + b_idx] = offset + n_keep + torch.arange(b_idx.shape[1], device=dev).expand(Bn, -1)
    dest[rows, offset + a_merged] = -1 if prune else offset + n_keep + match
    return dest, energy


def token_merge(
    x: Tensor, size: Tensor | None, dest: Tensor, num_out: int, reduce: str = "wavg"
) -> tuple[Tensor, Tensor]:
    """(x_out [B, num_out, C], size_out [B, num_out, 1]): the tokens of each output slot reduced
    (``wavg``: sum(size x) / sum(size), the official ``merge_wavg``; ``mean``, ``sum``, ``amax``)
    in float32 (float64 for float64 inputs); dropped tokens (dest -1) are left out, and a slot
    without tokens gets 0. size_out is the slots' summed sizes (ones when ``size`` is None)."""
    if reduce not in REDUCES:
        raise ValueError(f"token_merge: reduce must be one of {REDUCES}, got {reduce!r}")
    Bn, N, C = x.shape
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    xf = x.to(acc)
    s = torch.ones(Bn, N, 1, dtype=acc, device=x.device) if size is None else size.to(acc).reshape(Bn, N, 1)
    keep = (dest >= 0)[..., None]
    slot = dest.clamp_min(0)[..., None]
    zeros = torch.zeros(Bn, num_out, 1, dtype=acc, device=x.device)
    size_out = zeros.scatter_add(1, slot, torch.where(keep, s, 0.0))
    count = zeros.scatter_add(1, slot, keep.to(acc))
    if reduce == "amax":
        out = torch.full((Bn, num_out, C), -math.inf, dtype=acc, device=x.device)
        out = out.scatter_reduce(1, slot.expand(-1, -1, C), torch.where(keep, xf, -math.inf), "amax")
    else:
        weight = s if reduce == "wavg" else torch.ones_like(s)
        out = torch.zeros(Bn, num_out, C, dtype=acc, device=x.device)
        out = out.scatter_add(1, slot.expand(-1, -1, C), torch.where(keep, xf * weight, 0.0))
        if reduce != "sum":
            norm = size_out if reduce == "wavg" else count
            out = out / norm.clamp_min(1e-30)
    out = torch.where(count > 0, out, torch.zeros_like(out))  # a slot without tokens: 0
    return out.to(x.dtype), size_out.to(x.dtype)


def divprune_select(metric: Tensor, k: int) -> Tensor:
    """DivPrune's greedy max-min selection on cosine distance (1 - cos): first the token whose
    nearest other token is farthest, then repeatedly the token farthest from the selected set (ties:
    the lower index); the k indices [B, k] in ascending order."""
    Bn, N, _ = metric.shape
    if k == 0:
        return torch.zeros(Bn, 0, dtype=torch.int64, device=metric.device)
    m = F.normalize(metric.float(), p=2, dim=-1)
    dist = 1 - m @ m.transpose(-1, -2)
    eye = torch.eye(N, dtype=torch.bool, device=metric.device)
    nearest = dist.masked_fill(eye, math.inf).amin(-1)
    picks = [nearest.argmax(-1)]
    running = dist.gather(1, picks[0][:, None, None].expand(-1, 1, N))[:, 0]
    for _ in range(1, k):
        chosen = torch.zeros(Bn, N, dtype=torch.bool, device=metric.device)
        chosen.scatter_(1, torch.stack(picks, 1), True)
        nxt = running.masked_fill(chosen, -math.inf).argmax(-1)
        picks.append(nxt)
        running = torch.minimum(running, dist.gather(1, nxt[:, None, None].expand(-1, 1, N))[:, 0])
    return torch.stack(picks, 1).sort(-1).values


# ---- the official computations, op for op (stable sorts), for tests and the benchmark baseline ----


def official_pitome_wavg(x: Tensor, size: Tensor | None, metric: Tensor, r: int, margin: float, alpha: float = 1.0,
                         class_token: bool = True, variant: str = "pitome") -> tuple[Tensor, Tensor]:  # fmt: skip
    """PiToMe's ``pitome_vision`` (variant ``pitome`` or ``pitome_bsm``) or ``pitome_text`` (variant
    ``pitome_text``: the Gaussian energy, the higher-energy half of the 2r merging tokens into the
    lower) then ``merge_wavg``: the full T x T similarity, the energy, gathers of the r x r block, and
    ``scatter_reduce`` merges of x * size and size (include_self), as the official code does them.
    r = 0 returns the input for ``pitome`` and ``pitome_text`` (as at keep ratio 1; the official
    code would reach a max over an empty dimension); ``pitome_bsm`` still reorders its tokens there,
    as the official code does."""
    if size is None:
        size = torch.ones_like(x[..., 0, None])
    if r <= 0 and variant != "pitome_bsm":
        return x, size
    if class_token:
        metric = metric[:, 1:, :]
    B, T, _ = metric.shape
    metric = F.normalize(metric, p=2, dim=-1)
    sim = metric @ metric.transpose(-1, -2)
    if variant == "pitome_text":
        sigma = 1 - margin
        energy = torch.exp(-(((1 - sim) / sigma) ** 2 * 0.5)).mean(-1) * 1 / (sigma * math.sqrt(2 * math.pi))
    else:
        energy = F.elu(sim - margin, alpha=alpha).mean(dim=-1)
    indices = torch.argsort(energy, descending=True, stable=True)
    batch_idx = torch.arange(B, device=x.device)[:, None]
    if variant == "pitome_bsm":
        a_idx, b_idx = indices[..., ::2], indices[..., 1::2]
        scores = sim.gather(-1, b_idx[:, None, :].expand(B, T, b_idx.shape[-1]))
        scores = scores.gather(-2, a_idx[..., None].expand(B, a_idx.shape[-1], b_idx.shape[-1]))
        node_max, node_idx = scores.max(dim=-1)
        edge_idx = torch.argsort(node_max, dim=-1, descending=True, stable=True)[..., None]
        unm_idx, src_idx = edge_idx[..., r:, :], edge_idx[..., :r, :]
        dst_idx = node_idx[..., None].gather(-2, src_idx)

        def merge(t, mode):
            cls, t = (t[:, :1], t[:, 1:]) if class_token else (None, t)
            src, dst = t[batch_idx, a_idx, :], t[batch_idx, b_idx, :]
            n, t1, c = src.shape
            unm = src.gather(-2, unm_idx.expand(n, t1 - r, c))
            src = src.gather(-2, src_idx.expand(n, r, c))
            dst = dst.scatter_reduce(-2, dst_idx.expand(n, r, c), src, reduce=mode)
            return torch.cat(([cls] if class_token else []) + [unm, dst], dim=1)
    else:
        merge_idx, protected_idx = indices[..., : 2 * r], indices[..., 2 * r :]
        if variant == "pitome_text":
            a_idx, b_idx = merge_idx[..., :r], merge_idx[..., r:]
        else:
            a_idx, b_idx = merge_idx[..., ::2], merge_idx[..., 1::2]
        scores = sim.gather(-1, b_idx[:, None, :].expand(B, T, r))
        scores = scores.gather(-2, a_idx[..., None].expand(B, r, r))
        _, dst_idx = scores.max(dim=-1)

        def merge(t, mode):
            cls, t = (t[:, :1], t[:, 1:]) if class_token else (None, t)
            c = t.shape[-1]
            protected = t[batch_idx, protected_idx, :]
            src, dst = t[batch_idx, a_idx, :], t[batch_idx, b_idx, :]
            dst = dst.scatter_reduce(-2, dst_idx[..., None].expand(B, r, c), src, reduce=mode)
            return torch.cat(([cls] if class_token else []) + [protected, dst], dim=1)

    x = merge(x * size, "sum")
    size = merge(size, "sum")
    return x / size, size


def official_tome_wavg(x: Tensor, size: Tensor | None, metric: Tensor, r: int,
                       class_token: bool = True) -> tuple[Tensor, Tensor]:  # fmt: skip
    """ToMe's ``bipartite_soft_matching`` then ``merge_wavg`` (stable sorts)."""
    protected = int(class_token)
    t = metric.shape[1]
    r = min(r, (t - protected) // 2)
    if size is None:
        size = torch.ones_like(x[..., 0, None])
    if r <= 0:  # ToMe's do_nothing
        return x, size
    metric = metric / metric.norm(dim=-1, keepdim=True)
    a, b = metric[..., ::2, :], metric[..., 1::2, :]
    scores = a @ b.transpose(-1, -2)
    if class_token:
        scores[..., 0, :] = -math.inf
    node_max, node_idx = scores.max(dim=-1)
    edge_idx = torch.argsort(node_max, dim=-1, descending=True, stable=True)[..., None]
    unm_idx, src_idx = edge_idx[..., r:, :], edge_idx[..., :r, :]
    dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)
    if class_token:
        unm_idx = unm_idx.sort(dim=1)[0]

    def merge(t, mode):
        src, dst = t[..., ::2, :], t[..., 1::2, :]
        n, t1, c = src.shape
        unm = src.gather(dim=-2, index=unm_idx.expand(n, t1 - r, c))
        src = src.gather(dim=-2, index=src_idx.expand(n, r, c))
        dst = dst.scatter_reduce(-2, dst_idx.expand(n, r, c), src, reduce=mode)
        return torch.cat([unm, dst], dim=1)

    x = merge(x * size, "sum")
    size = merge(size, "sum")
    return x / size, size


def official_divprune(metric: Tensor, k: int) -> Tensor:
    """DivPrune's loop for one image's tokens [N, d]: the full distance matrix, the first pick by
    the second-smallest distance of each column, then each step the minimum over all picks so far,
    recomputed (O(k^2 N)); the indices sorted."""
    m = metric / metric.norm(dim=-1, keepdim=True)
    dist = 1 - m @ m.T
    picks = torch.topk(dist, 2, dim=0, largest=False).values[1].argmax().view(1)
    for _ in range(1, k):
        min_dist = dist[picks].min(dim=0).values
        min_dist[picks] = -math.inf
        picks = torch.cat([picks, min_dist.argmax().view(1)])
    return picks.sort().values
