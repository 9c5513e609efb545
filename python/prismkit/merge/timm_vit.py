"""timm ``VisionTransformer`` blocks with a merge between attention and MLP (PiToMe's and ToMe's
timm patches): x = x + attn(norm1(x)); merge x by the keys averaged over heads; x = x + mlp(norm2(x)).

The attention is re-implemented (qkv, q_norm / k_norm, SDPA, norm, proj) because the metric is its
keys and proportional attention adds log(size) to the scores: through SDPA's additive mask, so the
fused attention kernels stay in use.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .step import MergeState, merge_step


def attention(attn, x: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
    """(timm Attention's output, the keys averaged over heads [B, N, head_dim])."""
    B, N, _ = x.shape
    gate = attn.gate(x).sigmoid() if getattr(attn, "gate", None) is not None else None
    qkv = attn.qkv(x).reshape(B, N, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    dropout = attn.attn_drop.p if attn.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout, scale=attn.scale)
    out = attn.norm(out.transpose(1, 2).reshape(B, N, -1))
    if gate is not None:
        out = out * gate
    return attn.proj_drop(attn.proj(out)), k.mean(1)


def block_forward(st: MergeState, i: int):
    """The forward of block i (bound to the block by ``patch``)."""

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        if attn_mask is not None or is_causal:
            raise ValueError("prismkit.merge: a merged timm block takes no attn_mask / is_causal")
        if i == 0:
            st.reset(x)
        bias = st.attention_bias(x.dtype)
        out, metric = attention(self.attn, self.norm1(x), bias)
        x = x + self.drop_path1(self.ls1(out))
        x = merge_step(st, i, x, metric)
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))

    return forward


def blocks(model) -> list:
    return list(model.blocks)


def averages_tokens(model) -> bool:
    """True when the model's head averages its tokens (MAE-style ``global_pool="avg"``)."""
    return getattr(model, "attn_pool", None) is None and getattr(model, "global_pool", None) == "avg"


def pool_forward(st: MergeState, original):
    """The model's pool with average pooling weighted by each merged token's size (the official MAE
    patch's size-weighted global pool); the original pool when nothing merged."""

    def pool(self, x: Tensor, pool_type: str | None = None) -> Tensor:
        if st.size is None or (pool_type or self.global_pool) != "avg":
            return original(x, pool_type)
        off = self.num_prefix_tokens if not self.pool_include_prefix else 0
        w = st.size[:, off:].to(x.dtype)
        return (x[:, off:] * w).sum(1) / w.sum(1)

    return pool
