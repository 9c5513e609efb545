"""``patch`` / ``unpatch``: token merging put into a model by binding a new forward to each
transformer block (the originals are kept, so ``unpatch`` restores the model exactly).

Defaults per family follow PiToMe's official patches (see the docstring of ``patch``).
"""

from __future__ import annotations

import math
import types
from collections.abc import Sequence

from . import hf_bert, hf_clip, timm_vit
from .step import METHODS, MergeState

FAMILIES = ("timm VisionTransformer", "Hugging Face CLIPVisionModel / CLIPModel",
            "Hugging Face BertModel (or a wrapper holding one, e.g. a SentenceTransformer)")  # fmt: skip
_ATTR = "_prismkit_merge"
CLIP_TOME_LAYERS = 12  # clip_hf.py merges with plain ToMe while the layer index is <= 12
BERT_MERGE_LAYERS = 3  # bert.py merges in the last three layers only


def _find(model):
    """(family, the module whose blocks are patched, its blocks, class_token)."""
    try:
        from timm.models.vision_transformer import VisionTransformer
    except ImportError:
        VisionTransformer = ()
    if VisionTransformer and isinstance(model, VisionTransformer):
        class_token = model.cls_token is not None
        if model.num_prefix_tokens != int(class_token):
            raise ValueError("prismkit.merge: timm models with register or distillation tokens are not supported")
        return "timm_vit", model, timm_vit.blocks(model), class_token
    try:
        from transformers import CLIPModel, CLIPVisionModel, CLIPVisionModelWithProjection
    except ImportError:
        return None
    if isinstance(model, (CLIPModel, CLIPVisionModel, CLIPVisionModelWithProjection)) or (
        type(model).__name__ == "CLIPVisionTransformer"
    ):
        vision = getattr(model, "vision_model", model)  # older transformers: a CLIPVisionTransformer inside
        return "hf_clip", vision, hf_clip.layers(vision), True
    bert = hf_bert.find_bert(model)
    if bert is not None:
        return "hf_bert", bert, hf_bert.layers(bert), True
    return None


def _margins(family: str, L: int, margin) -> list:
    if margin is not None and not isinstance(margin, (int, float)):
        margins = [float(m) for m in margin]
        if len(margins) != L:
            raise ValueError(f"prismkit.merge: margin has {len(margins)} values for {L} layers")
        return margins
    if family == "hf_bert":  # bert.py: 0.9 - 0.25 i / L
        m0 = 0.9 if margin is None else float(margin)
        return [m0 - 0.25 * i / L for i in range(L)]
    m0 = (0.75 if family == "timm_vit" else 0.9) if margin is None else float(margin)
    return [m0 - m0 * i / L for i in range(L)]  # deit.py: 0.75 (1 - i / L); clip_hf.py: 0.9 (1 - i / L)


def _variants(family: str, method: str, L: int) -> list:
    if method == "divprune":
        return [None] * L
    if family == "timm_vit":
        half = math.ceil(L / 2)
        return ["tome" if method == "tome" else ("pitome_bsm" if i < half else "pitome") for i in range(L)]
    if family == "hf_clip":
        return ["tome" if method == "tome" or i <= CLIP_TOME_LAYERS else "pitome" for i in range(L)]
    first = L - BERT_MERGE_LAYERS
    return [None if i < first else ("tome" if method == "tome" else "pitome_text") for i in range(L)]


def patch(model, method: str = "pitome", ratio: float = 0.9, *, margin: float | Sequence[float] | None = None,
          reduce: str | None = None, prop_attn: bool | None = None, trace_source: bool = False,
          divprune_layer: int | None = None, r: int | None = None):  # fmt: skip
    """Merge tokens inside ``model`` (in place; returns it). ``unpatch`` undoes it.

    ``method``: ``pitome`` (PiToMe, the official patch's variants per family), ``tome`` (ToMe's
    bipartite matching in the same layers with the same r) or ``divprune`` (DivPrune's max-min
    diverse selection, once, at ``divprune_layer``; nothing merges elsewhere). ``ratio`` in (0, 1]:
    for pitome / tome the keep ratio of each merging layer, r = floor(T - T ratio) of the T current
    tokens (class token excluded; at most half of them), recomputed from the token count at each
    layer, so r is static for a given input size; for divprune the kept fraction, k = round(ratio T).
    ``r``: instead of the ratio, merge this many tokens in each merging layer (ToMe's ``model.r``;
    divprune keeps T - r).

    Families and their defaults (PiToMe's ``deit.py``, ``clip_hf.py``, ``bert.py``):

    * timm ``VisionTransformer`` (ViT, DeiT; MAE-style average-pooled encoders): merge between
      attention and MLP, metric = keys averaged over heads, margin 0.75 (1 - i/L), the first
      ceil(L/2) layers ``pitome_bsm``, the others ``pitome`` (DeiT's order; the official MAE patch
      reverses it, which ``margin``/variants here do not); size-weighted average (``reduce="wavg"``);
      a model with ``global_pool="avg"`` pools its merged tokens weighted by size, as the official
      MAE patch does.
    * Hugging Face CLIP vision (``CLIPVisionModel``, or ``CLIPModel``'s vision tower): merge after
      each layer, metric = its output, margin 0.9 (1 - i/L), ToMe matching while i <= 12 and PiToMe
      after (so a 12-layer ViT-B merges with ToMe's matching only, as the official patch does);
      ``reduce="mean"`` (the official ``merge_mean``).
    * Hugging Face ``BertModel`` (also inside a wrapper, e.g. a SentenceTransformer): merge between
      attention and feed-forward in the last 3 layers, metric = keys summed over heads, margin
      0.9 - 0.25 i/L, ``pitome_text``; padding merges first and never into real tokens (hf_bert.py);
      ``divprune`` defaults to the first of those layers.

    ``margin``: the schedule's start (a float) or one margin per layer. ``reduce``: ``wavg`` or
    ``mean`` (None: the family's). ``prop_attn``: add log(size) to the attention scores (SDPA's
    additive mask; None: on for ``tome`` on timm ViTs, as ToMe's timm patch, off otherwise, as
    PiToMe's DeiT patch). ``trace_source``: keep the map
    from input tokens to output slots (``state(model).source``, ``unmerge``, ``visualize``).

    Raises TypeError for an unsupported model, ValueError for a bad method, ratio or an already
    patched model.
    """
    if method not in METHODS:
        raise ValueError(f"prismkit.merge.patch: method must be one of {METHODS}, got {method!r}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ValueError(f"prismkit.merge.patch: ratio must be a number in (0, 1], got {ratio!r}")
    if r is not None and (isinstance(r, bool) or not isinstance(r, int) or r < 0):
        raise ValueError(f"prismkit.merge.patch: r must be a non-negative int or None, got {r!r}")
    if reduce not in (None, "wavg", "mean"):
        raise ValueError(f"prismkit.merge.patch: reduce must be 'wavg' or 'mean', got {reduce!r}")
    found = _find(model)
    if found is None:
        raise TypeError(f"prismkit.merge.patch: unsupported model {type(model).__name__}; supported: "
                        f"{'; '.join(FAMILIES)}")  # fmt: skip
    family, target, blocks, class_token = found
    if getattr(model, _ATTR, None) is not None or getattr(target, _ATTR, None) is not None:
        raise ValueError("prismkit.merge.patch: the model is already patched; unpatch it first")
    L = len(blocks)
    if divprune_layer is None:
        divprune_layer = max(0, L - BERT_MERGE_LAYERS) if family == "hf_bert" else 0
    if method == "divprune" and not 0 <= divprune_layer < L:
        raise ValueError(f"prismkit.merge.patch: divprune_layer must be in [0, {L}), got {divprune_layer}")
    if prop_attn is None:  # ToMe's timm patch turns proportional attention on; PiToMe's DeiT patch does not
        prop_attn = method == "tome" and family == "timm_vit"
    st = MergeState(family=family, method=method, ratio=float(ratio), variants=_variants(family, method, L),
                    margins=_margins(family, L, margin), reduce=reduce or ("mean" if family == "hf_clip" else "wavg"),
                    class_token=class_token, prop_attn=prop_attn, trace_source=trace_source,
                    divprune_layer=divprune_layer, r=r)  # fmt: skip
    make = {"timm_vit": timm_vit.block_forward, "hf_clip": hf_clip.layer_forward, "hf_bert": hf_bert.layer_forward}
    for i, block in enumerate(blocks):
        _replace(st, block, "forward", make[family](st, i))
    if family == "timm_vit" and timm_vit.averages_tokens(target):  # average pooling weighted by size
        _replace(st, target, "pool", timm_vit.pool_forward(st, target.pool))
    for holder in {id(model): model, id(target): target}.values():
        object.__setattr__(holder, _ATTR, st)
    return model


def _replace(st: MergeState, module, name: str, fn) -> None:
    """Bind fn as module.<name>, keeping what unpatch needs to restore it exactly."""
    st.originals.append((module, name, name in module.__dict__, module.__dict__.get(name)))
    setattr(module, name, types.MethodType(fn, module))


def state(model) -> MergeState:
    """The MergeState of a patched model (ValueError when it is not patched)."""
    st = getattr(model, _ATTR, None)
    if st is None:
        raise ValueError("prismkit.merge: the model is not patched (prismkit.merge.patch)")
    return st


def unpatch(model):
    """Restore the blocks' original forwards; returns the model. ValueError when not patched."""
    st = state(model)
    for module, name, had_own, original in st.originals:
        if had_own:
            setattr(module, name, original)
        else:
            delattr(module, name)
    found = _find(model)
    holders = [model] + ([found[1]] if found is not None else [])
    for holder in holders:
        if holder.__dict__.get(_ATTR) is st:
            object.__delattr__(holder, _ATTR)
    return model
