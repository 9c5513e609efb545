"""CSWin Transformer (Dong et al., CVPR 2022) with its attention on ``prismkit::cswin_attention``.

Differences from the official ``models/cswin.py``, none of which changes the parameters:
* any input resolution, non-square too, chosen at call time (the official model fixes it at
  construction and needs it divisible by the stripe widths); maps the stripes do not divide are
  padded as the official segmentation backbone does (``attn_padding``, see prismkit/ops/cswin);
* ``features_only=True`` returns the four stage maps [B, C_i, H_i, W_i] (strides 4, 8, 16, 32);
* ``use_checkpoint=True`` recomputes each block in the backward (less memory for training);
* the stages' attention mode comes from the architecture (stage 4 attends over the whole map), not
  from the construction resolution.
"""

from __future__ import annotations

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


class LePE(nn.Module):
    """Holds one branch's LePE conv under the official name (``attns.<i>.get_v``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.get_v = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)


class CSWinAttention(nn.Module):
    """Cross-shaped window self-attention layer: qkv projection, the fused attention with LePE, and
    the output projection. ``full=True`` is the last stage's attention over the whole map.
    Parameters: ``qkv``, ``attns.<i>.get_v``, ``proj`` (the official names).

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
        self.num_heads, self.split_size, self.full, self.attn_padding = num_heads, split_size, full, attn_padding
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attns = nn.ModuleList([LePE(dim)] if full else [LePE(dim // 2), LePE(dim // 2)])
        self.proj = nn.Linear(dim, dim)

    def attention(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        weight = torch.cat([a.get_v.weight for a in self.attns]) if len(self.attns) > 1 else self.attns[0].get_v.weight
        bias = torch.cat([a.get_v.bias for a in self.attns]) if len(self.attns) > 1 else self.attns[0].get_v.bias
        out = type(self).attention_fn(self.qkv(x), H, W, self.split_size, self.num_heads, weight, bias, self.scale,
                                      "full" if self.full else "cross", self.attn_padding)  # fmt: skip
        return self.proj(out)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        return self.attention(x, H, W)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


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
                 qkv_bias: bool = True, qk_scale: float | None = None, drop_path: float = 0.0,
                 attn_padding: str = "zeros"):  # fmt: skip
        super().__init__(dim, num_heads, split_size, full, qkv_bias, qk_scale, attn_padding)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
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


class CSWinTransformer(nn.Module):
    """The CSWin backbone and classifier. ``forward(images)`` gives logits, or with
    ``features_only=True`` the four stage maps. Runs at any input size (at least 32 x 32)."""

    def __init__(self, in_chans: int = 3, num_classes: int = 1000, embed_dim: int = 64,
                 depth=(1, 2, 21, 1), split_size=(1, 2, 7, 7), num_heads=(2, 4, 8, 16), mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, drop_path_rate: float = 0.0,
                 attn_padding: str = "zeros", features_only: bool = False, use_checkpoint: bool = False):  # fmt: skip
        super().__init__()
        self.features_only, self.use_checkpoint = features_only, use_checkpoint
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
            blocks = [CSWinBlock(dim, num_heads[i], split_size[i], full=i == 3, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                                 qk_scale=qk_scale, drop_path=rates[first + j], attn_padding=attn_padding)
                      for j in range(depth[i])]  # fmt: skip
            setattr(self, f"stage{i + 1}", nn.ModuleList(blocks))
            first += depth[i]
            self.channels.append(dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
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

    def _run(self, blk, x, H, W):
        if self.use_checkpoint and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(blk, x, H, W, use_reentrant=False)
        return blk(x, H, W)

    def forward_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The token sequences after each stage, [B, H_i*W_i, C_i], with their (H_i, W_i)."""
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

    def forward(self, images: torch.Tensor):
        stages = self.forward_features(images)
        if self.features_only:
            return [x.transpose(1, 2).reshape(x.shape[0], -1, H, W) for x, H, W in stages]
        return self.head(self.norm(stages[-1][0]).mean(dim=1))


def _build(name: str, **kwargs) -> CSWinTransformer:
    embed_dim, depth, split_size, num_heads = CONFIGS[name]
    return CSWinTransformer(embed_dim=embed_dim, depth=depth, split_size=split_size, num_heads=num_heads, **kwargs)


def cswin_tiny_224(**kwargs) -> CSWinTransformer:
    """CSWin-T: 23M parameters, 4.3 GFLOPs at 224 (official top-1 82.8)."""
    return _build("cswin_tiny_224", **kwargs)


def cswin_small_224(**kwargs) -> CSWinTransformer:
    """CSWin-S: 35M parameters, 6.9 GFLOPs at 224 (official top-1 83.6)."""
    return _build("cswin_small_224", **kwargs)


def cswin_base_224(**kwargs) -> CSWinTransformer:
    """CSWin-B: 78M parameters, 15.0 GFLOPs at 224 (official top-1 84.2)."""
    return _build("cswin_base_224", **kwargs)


def cswin_large_224(**kwargs) -> CSWinTransformer:
    """CSWin-L (ImageNet-22K pretrained): 173M parameters, 31.5 GFLOPs at 224 (official top-1 86.5)."""
    return _build("cswin_large_224", **kwargs)


def cswin_base_384(**kwargs) -> CSWinTransformer:
    """CSWin-B at 384 (stripes 12 in stage 3): 78M parameters, 47.0 GFLOPs (official top-1 85.5)."""
    return _build("cswin_base_384", **kwargs)


def cswin_large_384(**kwargs) -> CSWinTransformer:
    """CSWin-L at 384: 173M parameters, 96.8 GFLOPs (official top-1 87.5)."""
    return _build("cswin_large_384", **kwargs)


def load_official_checkpoint(model: CSWinTransformer, path: str) -> CSWinTransformer:
    """Loads a released CSWin checkpoint file (from microsoft/CSWin-Transformer; the files keep the
    weights under ``state_dict_ema``, ``state_dict`` or ``model``, or are the state dict itself)
    into ``model``, strictly: every official name must match."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict_ema", "state_dict", "model"):
        if isinstance(checkpoint, dict) and key in checkpoint and isinstance(checkpoint[key], dict):
            checkpoint = checkpoint[key]
            break
    model.load_state_dict(checkpoint, strict=True)
    return model
