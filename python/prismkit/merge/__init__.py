"""Token merging for whole models (PiToMe, ToMe, DivPrune) built on the ``prismkit.ops.merge`` ops.

    import prismkit.merge
    prismkit.merge.patch(vit, "pitome", ratio=0.9, trace_source=True)
    logits = vit(images)
    st = prismkit.merge.state(vit)          # tokens per layer, plans, sizes, the source map
    full, restored = prismkit.merge.unmerge(features, st)
    prismkit.merge.visualize(images[0], st.source[0, 1:], patch_size=16).save("merged.png")
    prismkit.merge.unpatch(vit)

Supported: timm ``VisionTransformer``, Hugging Face CLIP vision and ``BertModel`` (patching.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .patching import FAMILIES, patch, state, unpatch
from .step import METHODS, MergeState
from .visualize import visualize

__all__ = [
    "FAMILIES",
    "METHODS",
    "MergeState",
    "mean_pool",
    "patch",
    "source_matrix",
    "state",
    "unmerge",
    "unpatch",
    "visualize",
]


def unmerge(x_out: Tensor, st: MergeState) -> tuple[Tensor, Tensor]:
    """(x [B, N_input, C], restored [B, N_input] bool): each input token gets the row of the output
    token it went into (zeros where it was dropped). Needs ``trace_source=True``."""
    source = st.source
    C = x_out.shape[-1]
    x = x_out.gather(1, source.clamp_min(0)[..., None].expand(-1, -1, C))
    restored = source >= 0
    return torch.where(restored[..., None], x, torch.zeros_like(x)), restored


def source_matrix(st: MergeState) -> Tensor:
    """[B, N_out, N_input] bool: which input tokens each output token holds (ToMe's ``source``
    layout, from the composed map ``st.source``; dropped tokens in no row). Needs
    ``trace_source=True``."""
    source = st.source
    n_out = st.tokens[-1] if st.tokens else source.shape[1]
    slots = torch.arange(n_out, device=source.device)
    return source[:, None, :] == slots[None, :, None]


def mean_pool(hidden: Tensor, attention_mask: Tensor | None = None, size: Tensor | None = None) -> Tensor:
    """[B, C]: the mean of the real tokens of ``hidden`` [B, N, C], each weighted by its size (the
    number of input tokens it holds), i.e. the unmerged model's mean pooling over merged tokens.
    For a patched model pass ``state(model).attention_mask`` and ``state(model).size``."""
    w = hidden.new_ones(hidden.shape[:2]) if attention_mask is None else attention_mask.to(hidden.dtype)
    if size is not None:
        w = w * size[..., 0].to(hidden.dtype)
    return (hidden * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp_min(1e-9)
