"""Hugging Face CLIP vision encoder layers that merge after the layer, as PiToMe's ``clip_hf.py``
does: the metric is the layer's output hidden state, and the merge is an unweighted mean by default
(the official ``merge_mean``). Proportional attention, when asked, goes through the attention's
additive mask.
"""

from __future__ import annotations

from torch import Tensor

from .step import MergeState, merge_step


def layer_forward(st: MergeState, i: int):
    """The forward of encoder layer i (bound to the layer by ``patch``)."""

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None, *args, **kwargs) -> Tensor:
        if attention_mask is not None:
            raise ValueError("prismkit.merge: a merged CLIP vision layer takes no attention_mask")
        kwargs.pop("causal_attention_mask", None)
        if i == 0:
            st.reset(hidden_states)
        residual = hidden_states
        h, _ = self.self_attn(hidden_states=self.layer_norm1(hidden_states),
                              attention_mask=st.attention_bias(hidden_states.dtype))  # fmt: skip
        h = residual + h
        h = h + self.mlp(self.layer_norm2(h))
        return merge_step(st, i, h, h)

    return forward


def layers(model) -> list:
    return list(model.encoder.layers)
