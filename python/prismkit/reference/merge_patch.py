"""The official PiToMe / ToMe timm patch re-created op for op: the test oracle of
``prismkit.merge.patch`` on timm ViTs and the ``official-pytorch`` baseline of its end-to-end
benchmark.

As PiToMe's ``patch/timm.py`` + ``deit.py``: each block runs its attention the explicit way (scores,
optional + log(size), softmax, @ v) returning the keys averaged over heads; then
``official_pitome_wavg`` (``pitome_bsm`` in the first ceil(L/2) blocks, ``pitome`` after, margin
0.75 (1 - i/L)) or ToMe's ``official_tome_wavg``; then the MLP. One change: r per block is the
keep-ratio schedule r = floor(T - T ratio) for both methods (ToMe's own patch takes a fixed r), and
a block with r = 0 is left alone (the official ``pitome_bsm`` would still reorder its tokens).
"""

from __future__ import annotations

import math
import types

from torch import Tensor

from .merge import keep_ratio_to_r, official_pitome_wavg, official_tome_wavg

_ATTR = "_official_merge"


def _attention(attn, x: Tensor, size: Tensor | None) -> tuple[Tensor, Tensor]:
    B, N, C = x.shape
    qkv = attn.qkv(x).reshape(B, N, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    scores = (q * attn.scale) @ k.transpose(-2, -1)
    if size is not None:
        scores = scores + size.log()[:, None, None, :, 0]
    out = attn.attn_drop(scores.softmax(dim=-1)) @ v
    out = attn.norm(out.transpose(1, 2).reshape(B, N, -1))
    return attn.proj_drop(attn.proj(out)), k.mean(1)


def _block_forward(info: dict, i: int):
    def forward(self, x: Tensor, attn_mask=None, is_causal: bool = False) -> Tensor:
        if i == 0:
            info["size"] = None
        out, metric = _attention(self.attn, self.norm1(x), info["size"] if info["prop_attn"] else None)
        x = x + self.drop_path1(self.ls1(out))
        off = int(info["class_token"])
        r = keep_ratio_to_r(x.shape[1] - off, info["ratio"])
        if r > 0:
            if info["method"] == "tome":
                x, info["size"] = official_tome_wavg(x, info["size"], metric, r, info["class_token"])
            else:
                x, info["size"] = official_pitome_wavg(x, info["size"], metric, r, info["margins"][i],
                                                       class_token=info["class_token"],
                                                       variant=info["variants"][i])  # fmt: skip
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))

    return forward


def _pool(info: dict, original):
    """mae.py's global pool: the tokens after the prefix averaged with their sizes as weights."""

    def pool(self, x: Tensor, pool_type=None) -> Tensor:
        if info["size"] is None or (pool_type or self.global_pool) != "avg":
            return original(x, pool_type)
        size = info["size"][:, self.num_prefix_tokens :]
        return (x[:, self.num_prefix_tokens :] * size).sum(1) / size.sum(1)

    return pool


def official_patch(model, method: str = "pitome", ratio: float = 0.9, prop_attn: bool | None = None):
    """Patch a timm ``VisionTransformer`` the official way (in place; returns it). ``prop_attn``
    None: on for ToMe (its timm patch's default), off for PiToMe (its DeiT patch never applies it).
    A model with ``global_pool="avg"`` pools with size weights, as the official MAE patch does."""
    if method not in ("pitome", "tome"):
        raise ValueError(f"official_patch: method must be 'pitome' or 'tome', got {method!r}")
    if prop_attn is None:
        prop_attn = method == "tome"
    L = len(model.blocks)
    info = {"method": method, "ratio": float(ratio), "prop_attn": prop_attn, "size": None,
            "class_token": model.cls_token is not None,
            "margins": [0.75 - 0.75 * i / L for i in range(L)],
            "variants": ["pitome_bsm" if i < math.ceil(L / 2) else "pitome" for i in range(L)]}  # fmt: skip
    for i, block in enumerate(model.blocks):
        block.forward = types.MethodType(_block_forward(info, i), block)
    if model.global_pool == "avg" and getattr(model, "attn_pool", None) is None:
        model.pool = types.MethodType(_pool(info, model.pool), model)
    setattr(model, _ATTR, info)
    return model


def official_unpatch(model):
    """Undo ``official_patch``."""
    for block in model.blocks:
        block.__dict__.pop("forward", None)
    model.__dict__.pop("pool", None)
    model.__dict__.pop(_ATTR, None)
    return model
