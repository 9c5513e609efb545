"""Plain-PyTorch cross-shaped window attention, computed the way the official CSWin code does
(microsoft/CSWin-Transformer: ``LePEAttention`` with ``img2windows``/``windows2img``, the LePE conv run
per stripe, softmax in the input dtype), with the segmentation backbone's centred zero padding for
maps the stripes do not divide. It is the test oracle of ``prismkit::cswin_attention`` and, with its
permutes and copies, the ``official-pytorch`` benchmark baseline.

``padding="zeros"`` is the segmentation backbone exactly (padded q, k, v are zero and the padded keys
stay in the softmax with score 0); ``padding="mask"`` leaves padded keys out of the softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def img2windows(img: Tensor, H_sp: int, W_sp: int) -> Tensor:
    """[B, C, H, W] -> [B * windows, H_sp * W_sp, C], tokens row-major within a window."""
    B, C, H, W = img.shape
    img = img.view(B, C, H // H_sp, H_sp, W // W_sp, W_sp)
    return img.permute(0, 2, 4, 3, 5, 1).contiguous().reshape(-1, H_sp * W_sp, C)


def windows2img(windows: Tensor, H_sp: int, W_sp: int, H: int, W: int) -> Tensor:
    """[B * windows, H_sp * W_sp, C] -> [B, H, W, C]."""
    B = windows.shape[0] // ((H // H_sp) * (W // W_sp))
    img = windows.view(B, H // H_sp, W // W_sp, H_sp, W_sp, -1)
    return img.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W, -1)


def lepe_attention(
    qkv: Tensor, H_sp: int, W_sp: int, num_heads: int, lepe_weight: Tensor, lepe_bias: Tensor, scale: float,
    padding: str = "zeros",
) -> Tensor:  # fmt: skip
    """One branch: qkv [3, B, C, H, W] (this branch's channels) -> [B, H*W, C]. Windows are
    H_sp x W_sp (H_sp = H and W_sp = split_size for vertical stripes, and so on)."""
    _, B, C, H, W = qkv.shape
    pad_h, pad_w = (H_sp - H % H_sp) % H_sp, (W_sp - W % W_sp) % W_sp
    top, left = pad_h // 2, pad_w // 2
    qkv = F.pad(qkv, (left, pad_w - left, top, pad_h - top))
    Hp, Wp = H + pad_h, W + pad_w
    q, k, v = qkv[0], qkv[1], qkv[2]
    head_dim = C // num_heads

    def heads(x):  # [B, C, Hp, Wp] -> [B*windows, heads, L, head_dim]
        return img2windows(x, H_sp, W_sp).reshape(-1, H_sp * W_sp, num_heads, head_dim).permute(0, 2, 1, 3)

    q, k = heads(q) * scale, heads(k)
    v_win = v.view(B, C, Hp // H_sp, H_sp, Wp // W_sp, W_sp).permute(0, 2, 4, 1, 3, 5).reshape(-1, C, H_sp, W_sp)
    lepe = F.conv2d(v_win, lepe_weight, lepe_bias, padding=1, groups=C)  # per window: zero padding at its edges
    lepe = lepe.reshape(-1, num_heads, head_dim, H_sp * W_sp).permute(0, 1, 3, 2)
    v = v_win.reshape(-1, num_heads, head_dim, H_sp * W_sp).permute(0, 1, 3, 2)

    attn = q @ k.transpose(-2, -1)
    if padding == "mask" and (pad_h or pad_w):
        real = F.pad(
            torch.ones(1, 1, H, W, dtype=torch.bool, device=qkv.device), (left, pad_w - left, top, pad_h - top)
        )
        real = img2windows(real.expand(B, 1, Hp, Wp).to(q.dtype), H_sp, W_sp)[..., 0] > 0  # [B*windows, L]
        attn = attn.masked_fill(~real[:, None, None, :], float("-inf"))
    attn = F.softmax(attn, dim=-1, dtype=attn.dtype)
    x = (attn @ v) + lepe
    x = windows2img(x.transpose(1, 2).reshape(-1, H_sp * W_sp, C), H_sp, W_sp, Hp, Wp)
    return x[:, top : top + H, left : left + W, :].reshape(B, H * W, C)


def cswin_attention(
    qkv: Tensor, H: int, W: int, split_size: int, num_heads: int, lepe_weight: Tensor, lepe_bias: Tensor,
    scale: float, mode: str = "cross", padding: str = "mask",
) -> Tensor:  # fmt: skip
    """The reference of ``prismkit::cswin_attention``: qkv [B, H*W, 3C] -> [B, H*W, C]."""
    B, L, C3 = qkv.shape
    C = C3 // 3
    qkv = qkv.reshape(B, H, W, 3, C).permute(3, 0, 4, 1, 2)  # [3, B, C, H, W]
    if mode == "full":
        return lepe_attention(qkv, H, W, num_heads, lepe_weight, lepe_bias, scale, padding)
    half = C // 2
    vertical = lepe_attention(qkv[:, :, :half], H, split_size, num_heads // 2, lepe_weight[:half],
                              lepe_bias[:half], scale, padding)  # fmt: skip
    horizontal = lepe_attention(qkv[:, :, half:], split_size, W, num_heads // 2, lepe_weight[half:],
                                lepe_bias[half:], scale, padding)  # fmt: skip
    return torch.cat([vertical, horizontal], dim=2)


def official_branch(qkv: Tensor, H: int, W: int, H_sp: int, W_sp: int, num_heads: int, get_v, scale: float) -> Tensor:
    """One branch exactly as the official ImageNet ``LePEAttention.forward`` runs it, op for op
    (transpose + contiguous per q, k and v, ``img2windows``, ``get_lepe`` with the conv module
    ``get_v``): qkv [3, B, H*W, C'] -> [B, H*W, C']. Maps must divide into windows. This is the
    ``official-pytorch`` baseline of the benchmarks; ``lepe_attention`` is the same math."""
    q, k, v = qkv[0], qkv[1], qkv[2]
    B, L, C = q.shape
    head_dim = C // num_heads

    def im2cswin(x):
        x = x.transpose(-2, -1).contiguous().view(B, C, H, W)
        x = img2windows(x, H_sp, W_sp)
        return x.reshape(-1, H_sp * W_sp, num_heads, head_dim).permute(0, 2, 1, 3).contiguous()

    q, k = im2cswin(q), im2cswin(k)
    v = v.transpose(-2, -1).contiguous().view(B, C, H, W)
    v = v.view(B, C, H // H_sp, H_sp, W // W_sp, W_sp).permute(0, 2, 4, 1, 3, 5).contiguous().reshape(-1, C, H_sp, W_sp)
    lepe = get_v(v).reshape(-1, num_heads, head_dim, H_sp * W_sp).permute(0, 1, 3, 2).contiguous()
    v = v.reshape(-1, num_heads, head_dim, H_sp * W_sp).permute(0, 1, 3, 2).contiguous()
    attn = (q * scale) @ k.transpose(-2, -1)
    attn = F.softmax(attn, dim=-1, dtype=attn.dtype)
    x = (attn @ v) + lepe
    x = x.transpose(1, 2).reshape(-1, H_sp * W_sp, C)
    return windows2img(x, H_sp, W_sp, H, W).view(B, -1, C)


def official_attention(qkv: Tensor, H: int, W: int, split_size: int, num_heads: int, get_v, scale: float,
                       mode: str = "cross") -> Tensor:  # fmt: skip
    """The official ImageNet ``CSWinBlock``'s attention part, op for op, for qkv [B, H*W, 3C] (the
    qkv Linear's output): ``get_v`` lists the branches' LePE conv modules. -> [B, H*W, C]."""
    B, L, C3 = qkv.shape
    C = C3 // 3
    qkv = qkv.reshape(B, -1, 3, C).permute(2, 0, 1, 3)
    if mode == "full":
        return official_branch(qkv, H, W, H, W, num_heads, get_v[0], scale)
    x1 = official_branch(qkv[:, :, :, : C // 2], H, W, H, split_size, num_heads // 2, get_v[0], scale)
    x2 = official_branch(qkv[:, :, :, C // 2 :], H, W, split_size, W, num_heads // 2, get_v[1], scale)
    return torch.cat([x1, x2], dim=2)


# ---- The official ImageNet model, re-created op for op (test oracle and end-to-end baseline) ----
# Same module tree and parameter names as microsoft/CSWin-Transformer models/cswin.py, so one
# state dict loads into it and into prismkit.cswin.CSWinTransformer. Fixed, square resolution
# divisible by the stripes, as the official model requires; no stochastic depth.


class OfficialMlp(torch.nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class OfficialLePE(torch.nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.get_v = torch.nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)


class OfficialCSWinBlock(torch.nn.Module):
    def __init__(self, dim: int, reso: int, num_heads: int, split_size: int, last_stage: bool, mlp_ratio=4.0,
                 qkv_bias=True, qk_scale=None):  # fmt: skip
        super().__init__()
        self.reso, self.num_heads, self.split_size = reso, num_heads, split_size
        self.last_stage = last_stage or reso == split_size
        self.qkv = torch.nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.norm1 = torch.nn.LayerNorm(dim)
        self.proj = torch.nn.Linear(dim, dim)
        branch_dim = dim if self.last_stage else dim // 2
        self.attns = torch.nn.ModuleList([OfficialLePE(branch_dim) for _ in range(1 if self.last_stage else 2)])
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.mlp = OfficialMlp(dim, int(dim * mlp_ratio))
        self.norm2 = torch.nn.LayerNorm(dim)

    def forward(self, x):
        qkv = self.qkv(self.norm1(x))
        convs = [a.get_v for a in self.attns]
        mode = "full" if self.last_stage else "cross"
        x = x + self.proj(official_attention(qkv, self.reso, self.reso, self.split_size, self.num_heads, convs,
                                             self.scale, mode))  # fmt: skip
        return x + self.mlp(self.norm2(x))


class OfficialMergeBlock(torch.nn.Module):
    def __init__(self, dim: int, dim_out: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(dim, dim_out, 3, 2, 1)
        self.norm = torch.nn.LayerNorm(dim_out)

    def forward(self, x):
        B, L, C = x.shape
        H = W = int(round(L**0.5))
        x = self.conv(x.transpose(-2, -1).contiguous().view(B, C, H, W))
        return self.norm(x.view(x.shape[0], x.shape[1], -1).transpose(-2, -1).contiguous())


class _ToTokens(torch.nn.Module):
    """b c h w -> b (h w) c (the official model's einops Rearrange; no parameters)."""

    def forward(self, x):
        return x.flatten(2).transpose(1, 2)


class OfficialCSWinTransformer(torch.nn.Module):
    def __init__(self, img_size=224, in_chans=3, num_classes=1000, embed_dim=64, depth=(1, 2, 21, 1),
                 split_size=(1, 2, 7, 7), num_heads=(2, 4, 8, 16), mlp_ratio=4.0, qkv_bias=True, qk_scale=None):  # fmt: skip
        super().__init__()
        self.stage1_conv_embed = torch.nn.Sequential(
            torch.nn.Conv2d(in_chans, embed_dim, 7, 4, 2), _ToTokens(), torch.nn.LayerNorm(embed_dim)
        )
        dim, reso = embed_dim, img_size // 4
        for i in range(4):
            if i > 0:
                setattr(self, f"merge{i}", OfficialMergeBlock(dim, dim * 2))
                dim, reso = dim * 2, reso // 2
            blocks = [OfficialCSWinBlock(dim, reso, num_heads[i], split_size[i], i == 3, mlp_ratio, qkv_bias, qk_scale)
                      for _ in range(depth[i])]  # fmt: skip
            setattr(self, f"stage{i + 1}", torch.nn.ModuleList(blocks))
        self.norm = torch.nn.LayerNorm(dim)
        self.head = torch.nn.Linear(dim, num_classes) if num_classes > 0 else torch.nn.Identity()

    def forward(self, x):
        x = self.stage1_conv_embed(x)
        for i in range(4):
            if i > 0:
                x = getattr(self, f"merge{i}")(x)
            for blk in getattr(self, f"stage{i + 1}"):
                x = blk(x)
        return self.head(self.norm(x).mean(dim=1))


def window_lepe(qkv: Tensor, H: int, W: int, split_size: int, get_v, mode: str = "cross") -> Tensor:
    """LePE alone, the official way (each window's V through the branch's depthwise conv):
    qkv [B, H*W, 3C] -> [B, H*W, C]. Maps must divide into windows."""
    B, L, C3 = qkv.shape
    C = C3 // 3
    v = qkv[..., 2 * C :].transpose(1, 2).reshape(B, C, H, W)

    def branch(v, H_sp, W_sp, conv):
        c = v.shape[1]
        win = v.reshape(B, c, H // H_sp, H_sp, W // W_sp, W_sp).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, H_sp, W_sp)
        out = conv(win).view(B, H // H_sp, W // W_sp, c, H_sp, W_sp).permute(0, 3, 1, 4, 2, 5)
        return out.reshape(B, c, H * W).transpose(1, 2)

    if mode == "full":
        return branch(v, H, W, get_v[0])
    half = C // 2
    return torch.cat([branch(v[:, :half], H, split_size, get_v[0]), branch(v[:, half:], split_size, W, get_v[1])], 2)


def sdpa_window_attention(qkv: Tensor, H: int, W: int, split_size: int, num_heads: int, get_v, scale: float,
                          mode: str = "cross") -> Tensor:  # fmt: skip
    """The same attention with ``scaled_dot_product_attention`` on window-batched tensors (the
    permutes it needs around it, LePE as the official per-window conv): the ``sdpa-windows``
    benchmark baseline. Maps must divide into windows."""
    B, L, C3 = qkv.shape
    C = C3 // 3
    qkv = qkv.reshape(B, H, W, 3, C).permute(3, 0, 4, 1, 2)  # [3, B, C, H, W]

    def branch(x, H_sp, W_sp, heads, conv):
        c = x.shape[2]
        wins = [img2windows(t.contiguous(), H_sp, W_sp).reshape(-1, H_sp * W_sp, heads, c // heads).transpose(1, 2)
                for t in (x[0], x[1], x[2])]  # fmt: skip
        v_img = x[2].contiguous().view(B, c, H // H_sp, H_sp, W // W_sp, W_sp)
        v_img = v_img.permute(0, 2, 4, 1, 3, 5).reshape(-1, c, H_sp, W_sp)
        lepe = conv(v_img).reshape(-1, heads, c // heads, H_sp * W_sp).transpose(2, 3)
        out = F.scaled_dot_product_attention(wins[0], wins[1], wins[2], scale=scale) + lepe
        return windows2img(out.transpose(1, 2).reshape(-1, H_sp * W_sp, c), H_sp, W_sp, H, W).view(B, -1, c)

    if mode == "full":
        return branch(qkv, H, W, num_heads, get_v[0])
    half = C // 2
    return torch.cat([branch(qkv[:, :, :half], H, split_size, num_heads // 2, get_v[0]),
                      branch(qkv[:, :, half:], split_size, W, num_heads // 2, get_v[1])], dim=2)  # fmt: skip


# ---- The official segmentation backbone, re-created op for op (test oracle and baseline) ----
# segmentation/backbone/cswin_transformer.py in microsoft/CSWin-Transformer (it imports mmseg and
# mmcv, so it is re-created here): any input size, the maps padded per branch (centred zeros, no
# mask), per-stage norms norm1 ... norm4 on the four outputs, no norm and head. Same parameter
# names, so one state dict loads into it and into prismkit's features_only CSWinTransformer.


def official_segmentation_branch(temp: Tensor, idx: int, split_size: int, num_heads: int, get_v,
                                 scale: float) -> Tensor:  # fmt: skip
    """The segmentation ``LePEAttention.forward``, op for op: temp [B, 3, C', H, W] (this branch's
    channels) -> [B, H*W, C']. idx 0: vertical stripes, 1: horizontal, -1: the whole map."""
    B, _, C, H, W = temp.shape
    H_sp, W_sp = {-1: (H, W), 0: (H, split_size), 1: (split_size, W)}[idx]
    H_pad, W_pad = (H_sp - H % H_sp) % H_sp, (W_sp - W % W_sp) % W_sp
    top_pad, left_pad = H_pad // 2, W_pad // 2
    H_, W_ = H + H_pad, W + W_pad
    qkv = F.pad(temp, (left_pad, W_pad - left_pad, top_pad, H_pad - top_pad)).permute(1, 0, 2, 3, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]

    def im2cswin(x):
        x = img2windows(x, H_sp, W_sp)
        return x.reshape(-1, H_sp * W_sp, num_heads, C // num_heads).permute(0, 2, 1, 3).contiguous()

    q, k = im2cswin(q), im2cswin(k)
    v = (
        v.view(B, C, H_ // H_sp, H_sp, W_ // W_sp, W_sp)
        .permute(0, 2, 4, 1, 3, 5)
        .contiguous()
        .reshape(-1, C, H_sp, W_sp)
    )
    rpe = get_v(v).reshape(-1, num_heads, C // num_heads, H_sp * W_sp).permute(0, 1, 3, 2).contiguous()
    v = v.reshape(-1, num_heads, C // num_heads, H_sp * W_sp).permute(0, 1, 3, 2).contiguous()
    attn = (q * scale) @ k.transpose(-2, -1)
    attn = F.softmax(attn, dim=-1, dtype=attn.dtype)
    x = (attn @ v) + rpe
    x = x.transpose(1, 2).reshape(-1, H_sp * W_sp, C)
    x = windows2img(x, H_sp, W_sp, H_, W_)
    return x[:, top_pad : H + top_pad, left_pad : W + left_pad, :].reshape(B, -1, C)


class OfficialSegmentationBlock(OfficialCSWinBlock):
    """The segmentation ``CSWinBlock`` (same parameters as the ImageNet block), run at the (H, W)
    it is given."""

    def forward(self, x, H, W):
        B, L, C = x.shape
        temp = self.qkv(self.norm1(x)).reshape(B, H, W, 3, C).permute(0, 3, 4, 1, 2)
        if self.last_stage:
            attended = official_segmentation_branch(temp, -1, self.split_size, self.num_heads, self.attns[0].get_v,
                                                    self.scale)  # fmt: skip
        else:
            halves = [official_segmentation_branch(temp[:, :, i * C // 2 : (i + 1) * C // 2], i, self.split_size,
                                                   self.num_heads // 2, self.attns[i].get_v, self.scale)
                      for i in range(2)]  # fmt: skip
            attended = torch.cat(halves, dim=2)
        x = x + self.proj(attended)
        return x + self.mlp(self.norm2(x))


class OfficialSegmentationMergeBlock(OfficialMergeBlock):
    def forward(self, x, H, W):
        B, _, C = x.shape
        x = self.conv(x.transpose(-2, -1).contiguous().view(B, C, H, W))
        B, C, H, W = x.shape
        return self.norm(x.view(B, C, -1).transpose(-2, -1).contiguous()), H, W


class OfficialCSWinSegmentation(torch.nn.Module):
    """The official segmentation backbone ``CSWin``: images -> four maps [B, C_i, H_i, W_i], each
    after its stage's norm. Stage widths grow by the head ratio, as there (2 for T, S and B)."""

    def __init__(self, in_chans=3, embed_dim=64, depth=(1, 2, 21, 1), split_size=(1, 2, 7, 7), num_heads=(2, 4, 8, 16),
                 mlp_ratio=4.0, qkv_bias=True, qk_scale=None):  # fmt: skip
        super().__init__()
        self.stage1_conv_embed = torch.nn.Sequential(
            torch.nn.Conv2d(in_chans, embed_dim, 7, 4, 2), _ToTokens(), torch.nn.LayerNorm(embed_dim)
        )
        dim = embed_dim
        for i in range(4):
            if i > 0:
                dim_out = dim * (num_heads[i] // num_heads[i - 1])
                setattr(self, f"merge{i}", OfficialSegmentationMergeBlock(dim, dim_out))
                dim = dim_out
            setattr(self, f"norm{i + 1}", torch.nn.LayerNorm(dim))
            # reso 0: the block's attention layout comes from last_stage alone, as in that file
            blocks = [OfficialSegmentationBlock(dim, 0, num_heads[i], split_size[i], i == 3, mlp_ratio, qkv_bias,
                                                qk_scale) for _ in range(depth[i])]  # fmt: skip
            setattr(self, f"stage{i + 1}", torch.nn.ModuleList(blocks))

    def forward(self, x):
        x = self.stage1_conv_embed[0](x)
        B, C, H, W = x.size()
        x = self.stage1_conv_embed[2](x.reshape(B, C, -1).transpose(-1, -2).contiguous())
        out = []
        for i in range(4):
            if i > 0:
                x, H, W = getattr(self, f"merge{i}")(x, H, W)
            for blk in getattr(self, f"stage{i + 1}"):
                x = blk(x, H, W)
            y = getattr(self, f"norm{i + 1}")(x)
            out.append(y.view(B, H, W, -1).permute(0, 3, 1, 2).contiguous())
        return tuple(out)
