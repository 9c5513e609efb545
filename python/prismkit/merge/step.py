"""The merging step every patched block runs, and the state it keeps per forward.

One step: a plan (the destination map ``dest`` [B, N], -1 = dropped) from the layer's metric
(the fused ``merge_plan`` or ``divprune_select`` op), then ``token_merge`` of the tokens and of
their sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..ops import merge as merge_ops
from ..ops.merge.checks import largest_r
from ..reference import merge as merge_ref

METHODS = ("pitome", "tome", "divprune")


@dataclass
class MergeState:
    """What a patched model merges and, after each forward, what it did.

    Configuration (set by ``patch``): ``family`` (``timm_vit``, ``hf_clip``, ``hf_bert``),
    ``method``, ``ratio`` (per merging layer keep ratio; divprune: the kept fraction), per layer
    ``variants`` (the plan method, None where the layer does not merge) and ``margins``, ``reduce``
    (``wavg`` or ``mean``), ``class_token``, ``prop_attn``, ``trace_source``, ``divprune_layer``, ``r`` (a fixed number of tokens to merge per
    merging layer instead of the ratio's).

    Per forward (reset by the first block): ``n_input`` tokens in, ``tokens[i]`` tokens out of
    block i, ``dests[i]`` the plan of block i (None where it did not merge), ``size`` [B, N, 1] the
    number of input tokens in each current token, ``attention_mask`` [B, N] bool (text models with
    padding: True for real tokens; None when every token is real), and with ``trace_source`` the composed map ``source``.
    """

    family: str
    method: str
    ratio: float
    variants: list
    margins: list
    reduce: str = "wavg"
    class_token: bool = True
    prop_attn: bool = False
    trace_source: bool = False
    divprune_layer: int = 0
    r: int | None = None
    originals: list = field(default_factory=list, repr=False)
    n_input: int = 0
    tokens: list = field(default_factory=list)
    dests: list = field(default_factory=list)
    size: Tensor | None = None
    attention_mask: Tensor | None = None
    _source: Tensor | None = field(default=None, repr=False)

    def reset(self, x: Tensor) -> None:
        """Start a forward over ``x`` [B, N, C]."""
        self.n_input = x.shape[1]
        self.tokens, self.dests = [], []
        self.size, self.attention_mask, self._source = None, None, None

    @property
    def source(self) -> Tensor:
        """[B, N_input] int64: each input token's slot in the last output (-1: dropped)."""
        if not self.trace_source:
            raise ValueError("prismkit.merge: the source map needs patch(..., trace_source=True)")
        if self._source is None:
            raise ValueError("prismkit.merge: run a forward of the patched model first")
        return self._source

    def attention_bias(self, dtype) -> Tensor | None:
        """The additive SDPA mask [B, 1, 1, N]: padding at the dtype's lowest value (so no row is all
        -inf), plus log(size) with proportional attention; None when neither applies."""
        bias = None
        if self.attention_mask is not None:
            bias = torch.zeros(self.attention_mask.shape, dtype=dtype, device=self.attention_mask.device)
            bias = bias.masked_fill(~self.attention_mask, torch.finfo(dtype).min)[:, None, None, :]
        if self.prop_attn and self.size is not None:
            log_size = self.size.to(dtype).log()[:, None, None, :, 0]
            bias = log_size if bias is None else bias + log_size
        return bias


def _plan(st: MergeState, i: int, metric: Tensor) -> tuple[Tensor | None, int]:
    """(dest, num_out) of block i, or (None, N) where it keeps every token."""
    Bn, N, _ = metric.shape
    off = int(st.class_token)
    T = N - off
    if st.method == "divprune":
        if i != st.divprune_layer:
            return None, N
        k = min(T, max(1, round(st.ratio * T) if st.r is None else T - st.r))
        if k == T:
            return None, N
        if st.attention_mask is not None:  # a padding token repeats a real token: picked only after it
            metric = torch.where(st.attention_mask[..., None], metric, metric[:, off : off + 1])
        keep = merge_ops.divprune_select(metric[:, off:], k) + off
        dest = torch.full((Bn, N), -1, dtype=torch.int64, device=metric.device)
        dest[:, :off] = 0
        dest.scatter_(1, keep, torch.arange(off, off + k, device=metric.device).expand(Bn, -1))
        return dest, off + k
    variant = st.variants[i]
    if variant is None:
        return None, N
    largest = T // 2 if variant == "tome" else largest_r(variant, T)
    # CLIP's ToMe layers (clip_hf.py's bsm) take r over all tokens, the class token included
    counted = N if st.family == "hf_clip" and variant == "tome" else T
    r = min(merge_ref.keep_ratio_to_r(counted, st.ratio) if st.r is None else st.r, largest)
    if r <= 0:
        return None, N
    if st.attention_mask is not None:  # padding: one vector opposite the real tokens' mean (hf_bert.py)
        w = st.attention_mask[..., None].to(metric.dtype)
        pad = -(metric * w).sum(1, keepdim=True) / w.sum(1, keepdim=True)
        metric = torch.where(st.attention_mask[..., None], metric, pad)
    dest, _ = merge_ops.merge_plan(metric, r, variant, margin=st.margins[i], class_token=st.class_token)
    return dest, N - r


def _keep_padding_apart(dest: Tensor, valid: Tensor, num_out: int) -> Tensor:
    """Drop (-1) each padding token whose slot also holds a real token, so padding never enters a
    real token's average; a slot of padding only stays (masked)."""
    real = valid[..., None].float()
    slot_real = merge_ops.token_merge(real, None, dest, num_out, "amax")[0][..., 0] > 0
    joins_real = slot_real.gather(1, dest.clamp_min(0)) & (dest >= 0)
    return torch.where(~valid & joins_real, -1, dest)


def merge_step(st: MergeState, i: int, x: Tensor, metric: Tensor) -> Tensor:
    """Block i's merge of x [B, N, C] by ``metric`` [B, N, d]; updates the state, returns x merged."""
    dest, num_out = _plan(st, i, metric.detach())
    st.dests.append(dest)
    if dest is not None:
        if st.attention_mask is not None:
            dest = _keep_padding_apart(dest, st.attention_mask, num_out)
            st.dests[-1] = dest
            mask = st.attention_mask[..., None].to(x.dtype)
            st.attention_mask = merge_ops.token_merge(mask, None, dest, num_out, "amax")[0][..., 0] > 0
        size = st.size.to(x.dtype) if st.size is not None else None
        x, st.size = merge_ops.token_merge(x, size, dest, num_out, st.reduce)
        if st.trace_source:
            prev = st._source
            st._source = dest if prev is None else torch.where(prev >= 0, dest.gather(1, prev.clamp_min(0)), -1)
    if st.trace_source and st._source is None and i == 0:
        st._source = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
    st.tokens.append(x.shape[1])
    return x
