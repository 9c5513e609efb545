"""CSWin Transformer (Dong et al., CVPR 2022) with its attention on ``prismkit::cswin_attention``.

Two layouts, each the official one, so the released checkpoints load strictly:
* classifier (``features_only=False``): microsoft/CSWin-Transformer ``models/cswin.py``: a final
  ``norm`` and a ``head`` on the mean token;
* backbone (``features_only=True``): the official segmentation backbone
  (``segmentation/backbone/cswin_transformer.py``): per-stage norms ``norm1`` ... ``norm4`` applied
  to the four stage maps [B, C_i, H_i, W_i] (strides 4, 8, 16, 32), no ``norm``, no ``head``.

Differences from the official code, none of which changes the parameters:
* any input resolution, non-square too, chosen at call time (the official classifier fixes it at
  construction and needs it divisible by the stripe widths); maps the stripes do not divide are
  padded as the official segmentation backbone does (``attn_padding``, see prismkit/ops/cswin);
* ``torch.compile(model, dynamic=True)`` traces one graph for every input size;
* ``use_chk=True`` (the official name) recomputes each block in the backward (less memory);
* timm's conventions: ``num_features``, ``feature_info``, ``forward_features``, ``forward_head``,
  ``reset_classifier``, ``set_grad_checkpointing``, ``pretrained_cfg`` (prismkit/cswin/timm.py
  registers the builders with timm's model registry);
* ``attn_drop_rate`` > 0 is refused: the fused kernel has no dropout on the attention weights (the
  official configurations all use 0); the official ``proj_drop`` is built but never applied there,
  so it is left out here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.utils.checkpoint

from ..ops import cswin as cswin_ops

# Official configurations: (embed_dim, depths, stripe widths, heads per stage).
CONFIGS = {
    "cswin_tiny_224": (64, (1, 2, 21, 1), (1, 2, 7, 7), (2, 4, 8, 16)),
    "cswin_small_224": (64, (2, 4, 32, 2), (1, 2, 7, 7), (2, 4, 8, 16)),
    "cswin_base_224": (96, (2, 4, 32, 2), (1, 2, 7, 7), (4, 8, 16, 32)),
    "cswin_large_224": (144, (2, 4, 32, 2), (1, 2, 7, 7), (6, 12, 24, 24)),
    "cswin_base_384": (96, (2, 4, 32, 2), (1, 2, 12, 12), (4, 8, 16, 32)),
    "cswin_large_384": (144, (2, 4, 32, 2), (1, 2, 12, 12), (6, 12, 24, 24)),
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class FeatureInfo(list):
    """timm's ``feature_info``: a list of ``{"num_chs", "reduction", "module"}`` dicts, one per
    returned map, with timm's ``FeatureInfo`` accessors."""

    def channels(self) -> list[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> list[int]:
        return [f["reduction"] for f in self]

    def module_name(self) -> list[str]:
        return [f["module"] for f in self]


class LePE(nn.Module):
    """Holds one branch's LePE conv under the official name (``attns.<i>.get_v``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.get_v = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)


class CSWinAttention(nn.Module):
    """Cross-shaped window self-attention layer: qkv projection, the fused attention with LePE, and
    the output projection. ``full=True`` is the last stage's attention over the whole map.
    Parameters: ``qkv``, ``attns.<i>.get_v``, ``proj`` (the official names).

    ``attn_padding`` defaults to ``"zeros"`` here and in the backbones (the official segmentation
    backbone's zero padding, which its checkpoints were trained with), while the bare
    ``prismkit.ops.cswin.cswin_attention`` defaults to ``"mask"``; ``repr`` shows the choice.

    >>> attn = CSWinAttention(dim=64, num_heads=2, split_size=1)
    >>> y = attn(x, H=56, W=56)             # x [B, 56*56, 64]
    """

    # The attention function, a class attribute so tests can swap in the reference.
    attention_fn = staticmethod(cswin_ops.cswin_attention)

    def __init__(self, dim: int, num_heads: int, split_size: int, full: bool = False, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_padding: str = "zeros"):  # fmt: skip
        super().__init__()
        if dim % num_heads or (not full and (num_heads % 2 or dim % 2)):
            raise ValueError(f"CSWinAttention: dim {dim} and num_heads {num_heads} must split evenly into two branches")
        if attn_padding not in ("zeros", "mask"):
            raise ValueError(f"CSWinAttention: attn_padding must be 'zeros' or 'mask', got {attn_padding!r}")
        self.dim, self.num_heads, self.split_size, self.full = dim, num_heads, split_size, full
        self.attn_padding = attn_padding
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attns = nn.ModuleList([LePE(dim)] if full else [LePE(dim // 2), LePE(dim // 2)])
        self.proj = nn.Linear(dim, dim)

    def extra_repr(self) -> str:
        mode = "full" if self.full else f"cross, split_size={self.split_size}"
        return f"dim={self.dim}, num_heads={self.num_heads}, {mode}, attn_padding={self.attn_padding!r}"

    def attention(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        weight = torch.cat([a.get_v.weight for a in self.attns]) if len(self.attns) > 1 else self.attns[0].get_v.weight
        bias = torch.cat([a.get_v.bias for a in self.attns]) if len(self.attns) > 1 else self.attns[0].get_v.bias
        out = type(self).attention_fn(self.qkv(x), H, W, self.split_size, self.num_heads, weight, bias, self.scale,
                                      "full" if self.full else "cross", self.attn_padding)  # fmt: skip
        return self.proj(out)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        return self.attention(x, H, W)


class Mlp(nn.Module):
    """fc1, GELU, dropout, fc2, dropout (the official Mlp; ``drop`` is the model's ``drop_rate``)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth: drops whole residual branches per sample during training."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class CSWinBlock(CSWinAttention):
    """A CSWin block: ``x + attention(norm1(x))``, then ``x + mlp(norm2(x))``. It extends
    CSWinAttention so the parameter names are the official block's (``qkv``, ``norm1``, ``proj``,
    ``attns``, ``mlp``, ``norm2``)."""

    def __init__(self, dim: int, num_heads: int, split_size: int, full: bool = False, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.0, drop_path: float = 0.0,
                 attn_padding: str = "zeros"):  # fmt: skip
        super().__init__(dim, num_heads, split_size, full, qkv_bias, qk_scale, attn_padding)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.norm2 = nn.LayerNorm(dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        x = x + self.drop_path(self.attention(self.norm1(x), H, W))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class MergeBlock(nn.Module):
    """Between stages: a stride-2 3x3 conv (halving H and W, doubling channels) and a LayerNorm."""

    def __init__(self, dim: int, dim_out: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim_out, 3, 2, 1)
        self.norm = nn.LayerNorm(dim_out)

    def forward(self, x: torch.Tensor, H: int, W: int):
        B, _, C = x.shape
        x = self.conv(x.transpose(1, 2).reshape(B, C, H, W))
        H, W = x.shape[2], x.shape[3]
        return self.norm(x.flatten(2).transpose(1, 2)), H, W


class _ToTokens(nn.Module):
    def forward(self, x):
        return x.flatten(2).transpose(1, 2)


def _to_map(x: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Tokens [B, H*W, C] -> map [B, C, H, W] (a view)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], H, W)


class CSWinTransformer(nn.Module):
    """The CSWin backbone: ``forward(images)`` gives logits (classifier layout), or with
    ``features_only=True`` the maps of the stages in ``out_indices`` (backbone layout, see the module
    docstring). Runs at any input size of at least 32 x 32. ``img_size`` is the training resolution:
    it goes into ``pretrained_cfg`` and, as in the official classifier code, a classifier stage
    whose map at that size equals its stripe width attends over the whole map (none of the official
    configurations; the segmentation backbone has no such rule). Stage widths double, as in the
    classifier; the official segmentation code grows them by the head ratio, the same for every
    released backbone (T, S, B), but not for CSWin-L's 24 -> 24 heads, of which none was released."""

    def __init__(self, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000, embed_dim: int = 64,
                 depth: Sequence[int] = (1, 2, 21, 1), split_size: Sequence[int] = (1, 2, 7, 7),
                 num_heads: Sequence[int] = (2, 4, 8, 16), mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: float | None = None, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, attn_padding: str = "zeros", features_only: bool = False,
                 out_indices: Sequence[int] = (0, 1, 2, 3), use_chk: bool = False):  # fmt: skip
        super().__init__()
        if attn_drop_rate:
            raise ValueError(
                f"CSWinTransformer: attn_drop_rate={attn_drop_rate} is not supported: the fused attention kernel has "
                "no dropout on the attention weights (every official configuration uses 0); use drop_rate or "
                "drop_path_rate for regularization"
            )
        if not features_only and (out_indices is None or tuple(out_indices) != (0, 1, 2, 3)):
            raise ValueError("CSWinTransformer: out_indices selects feature maps; it needs features_only=True")
        if not set(out_indices) <= {0, 1, 2, 3} or not out_indices:
            raise ValueError(f"CSWinTransformer: out_indices must be a non-empty subset of 0..3, got {out_indices}")
        self.features_only, self.out_indices, self.use_chk = features_only, tuple(out_indices), use_chk
        self.attn_padding, self.img_size = attn_padding, img_size
        self.stage1_conv_embed = nn.Sequential(
            nn.Conv2d(in_chans, embed_dim, 7, 4, 2), _ToTokens(), nn.LayerNorm(embed_dim)
        )
        n = sum(depth)
        rates = [drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # stochastic depth grows linearly
        dim, first = embed_dim, 0
        self.channels = []
        for i in range(4):
            if i > 0:
                setattr(self, f"merge{i}", MergeBlock(dim, dim * 2))
                dim *= 2
            # the official classifier's rule, by the build size; the segmentation backbone's blocks
            # decide by stage alone (full attention in stage 4 only)
            full = i == 3 or (not features_only and img_size // (4 * 2**i) == split_size[i])
            blocks = [CSWinBlock(dim, num_heads[i], split_size[i], full=full, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                                 qk_scale=qk_scale, drop=drop_rate, drop_path=rates[first + j],
                                 attn_padding=attn_padding)
                      for j in range(depth[i])]  # fmt: skip
            setattr(self, f"stage{i + 1}", nn.ModuleList(blocks))
            if features_only:
                setattr(self, f"norm{i + 1}", nn.LayerNorm(dim))
            first += depth[i]
            self.channels.append(dim)
        self.num_features = dim
        self.num_classes = 0 if features_only else num_classes
        if not features_only:
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        stages = self.out_indices if features_only else range(4)
        self.feature_info = FeatureInfo(
            {"num_chs": self.channels[i], "reduction": 4 * 2**i, "module": f"norm{i + 1}" if features_only
             else f"stage{i + 1}"} for i in stages
        )  # fmt: skip
        self.pretrained_cfg = {
            "input_size": (in_chans, img_size, img_size), "num_classes": self.num_classes, "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD, "crop_pct": 1.0 if img_size >= 384 else 0.9, "interpolation": "bicubic",
            "first_conv": "stage1_conv_embed.0", "classifier": "head",
        }  # fmt: skip
        self.default_cfg = self.pretrained_cfg  # the older timm name
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def extra_repr(self) -> str:
        layout = f"backbone, out_indices={self.out_indices}" if self.features_only else "classifier"
        return f"{layout}, attn_padding={self.attn_padding!r}"

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm's switch for ``use_chk``: recompute each block in the backward."""
        self.use_chk = enable

    def get_classifier(self) -> nn.Module:
        self._need_classifier("get_classifier")
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new, freshly initialised head for ``num_classes`` (0: no head, ``forward`` gives the
        pooled features). Only average pooling exists (``global_pool`` None or "avg")."""
        self._need_classifier("reset_classifier")
        if global_pool not in (None, "avg"):
            raise ValueError(f"CSWinTransformer: only global_pool='avg' is supported, got {global_pool!r}")
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.head.apply(self._init_weights)

    def _need_classifier(self, what: str) -> None:
        if self.features_only:
            raise RuntimeError(f"CSWinTransformer.{what}: a features_only backbone has no classifier head")

    def _run(self, blk, x, H, W):
        if self.use_chk and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(blk, x, H, W, use_reentrant=False)
        return blk(x, H, W)

    def forward_stages(self, images: torch.Tensor) -> list[tuple[torch.Tensor, int, int]]:
        """The token sequences after each stage, [B, H_i*W_i, C_i], with their (H_i, W_i), before
        any final norm."""
        if images.dim() != 4 or images.shape[-1] < 32 or images.shape[-2] < 32:
            raise ValueError(f"CSWinTransformer: images must be [B, C, H, W] with H, W >= 32, got {list(images.shape)}")
        x = self.stage1_conv_embed[0](images)
        H, W = x.shape[2], x.shape[3]
        x = self.stage1_conv_embed[2](self.stage1_conv_embed[1](x))
        stages = []
        for i in range(4):
            if i > 0:
                x, H, W = getattr(self, f"merge{i}")(x, H, W)
            for blk in getattr(self, f"stage{i + 1}"):
                x = self._run(blk, x, H, W)
            stages.append((x, H, W))
        return stages

    def forward_features(self, images: torch.Tensor):
        """timm's ``forward_features``. Classifier layout: the last stage after ``norm``,
        [B, C, H/32, W/32]. Backbone layout: the list of normed stage maps ``forward`` returns."""
        stages = self.forward_stages(images)
        if self.features_only:
            return [_to_map(getattr(self, f"norm{i + 1}")(stages[i][0]), *stages[i][1:]) for i in self.out_indices]
        x, H, W = stages[-1]
        return _to_map(self.norm(x), H, W)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """timm's ``forward_head``: average over the map from ``forward_features``, then the head
        (not with ``pre_logits=True``)."""
        self._need_classifier("forward_head")
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, images: torch.Tensor):
        features = self.forward_features(images)
        return features if self.features_only else self.forward_head(features)
