"""Hugging Face BERT layers with a merge between the attention block and the feed-forward block, as
PiToMe's ``bert.py`` does: the metric is the keys summed over heads.

Padding: the first layer reads the real tokens from the attention mask Hugging Face passes (2-D, or
the 4-D boolean or additive forms). r comes from the padded length, and padding is merged first:
every padding token gets the same metric, the opposite of its sentence's mean real metric, so
padding tokens are each other's best matches (cosine 1) and, under PiToMe's energy, the
highest-energy tokens once there are a few of them. A short sentence in a long batch thus loses its
padding before its words; with enough padding (at least 2r per merging layer) its real tokens are
not merged at all. Whatever the plan, a padding token whose slot also holds a real token is dropped
instead of averaged in (step.py), and the mask is merged with ``amax``, so a slot is real when any
of its tokens is. DivPrune gives padding a copy of the first real token's metric: picked only after
every distinct real token. The merged mask and the sizes are in ``prismkit.merge.state(model)``;
pool with ``prismkit.merge.mean_pool``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .step import MergeState, merge_step


def real_tokens(attention_mask: Tensor | None, x: Tensor) -> Tensor | None:
    """[B, N] bool, True for real tokens, from any of Hugging Face's mask forms; None: all real."""
    if attention_mask is None:
        return None
    m = attention_mask
    if m.dim() == 4:  # [B, 1, Nq, Nk]: a bidirectional encoder's rows are all the key mask
        m = m[:, 0, 0, :]
    valid = m if m.dtype == torch.bool else (m == 0 if m.dim() != 2 else m > 0)
    valid = valid.expand(x.shape[0], x.shape[1])
    return None if bool(valid.all()) else valid


def layer_forward(st: MergeState, i: int):
    """The forward of BertLayer i (bound to the layer by ``patch``)."""

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None, *args, **kwargs) -> Tensor:
        if i == 0:
            st.reset(hidden_states)
            st.attention_mask = real_tokens(attention_mask, hidden_states)
        sa = self.attention.self
        B, N, _ = hidden_states.shape
        shape = (B, N, -1, sa.attention_head_size)
        q = sa.query(hidden_states).view(shape).transpose(1, 2)
        k = sa.key(hidden_states).view(shape).transpose(1, 2)
        v = sa.value(hidden_states).view(shape).transpose(1, 2)
        dropout = sa.dropout.p if self.training else 0.0
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=st.attention_bias(hidden_states.dtype),
                                             dropout_p=dropout)  # fmt: skip
        x = self.attention.output(ctx.transpose(1, 2).reshape(B, N, -1), hidden_states)
        x = merge_step(st, i, x, k.sum(1))
        return self.feed_forward_chunk(x)

    return forward


def find_bert(model):
    """The BertModel in ``model`` (itself, or inside a wrapper such as a SentenceTransformer whose
    first module holds ``auto_model``), or None."""
    from transformers import BertModel

    if isinstance(model, BertModel):
        return model
    for module in model.modules():
        if isinstance(module, BertModel):
            return module
    return None


def layers(model) -> list:
    return list(model.encoder.layer)
