"""A picture of which patches merged, as in the ToMe paper's figures: each merged group painted
with its mean colour, with a border around each group."""

from __future__ import annotations

import torch
from torch import Tensor


def visualize(image, source_map: Tensor, patch_size: int = 16, border: tuple = (0, 0, 0),
              dropped: tuple = (40, 40, 40)):  # fmt: skip
    """A PIL image: ``image`` (PIL image, or a [3, H, W] tensor in [0, 1] or uint8) with each group of
    patches of ``source_map`` ([N_patches] output slots in row-major patch order, class token
    excluded, -1: dropped) filled with the group's mean colour, group borders in ``border`` and
    dropped patches in ``dropped``. Cropped to whole patches."""
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("prismkit.merge.visualize needs Pillow (pip install pillow)") from e
    if isinstance(image, Image.Image):
        import numpy as np

        img = torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)
    else:
        img = image.detach().cpu()
    img = img.float() / 255 if not img.is_floating_point() else img.float().clamp(0, 1)
    p = patch_size
    gh, gw = img.shape[1] // p, img.shape[2] // p
    src = source_map.detach().cpu().reshape(-1).long()
    if src.numel() != gh * gw:
        raise ValueError(f"prismkit.merge.visualize: source_map has {src.numel()} patches, the image {gh}x{gw}")
    img = img[:, : gh * p, : gw * p]
    patch_mean = img.reshape(3, gh, p, gw, p).mean((2, 4)).reshape(3, -1)  # [3, patches]
    groups = int(src.max()) + 1 if src.numel() else 0
    slot = src.clamp_min(0)
    total = torch.zeros(3, max(groups, 1)).index_add_(1, slot, patch_mean * (src >= 0))
    count = torch.zeros(max(groups, 1)).index_add_(0, slot, (src >= 0).float())
    colour = (total / count.clamp_min(1))[:, slot]  # [3, patches]
    colour = torch.where(src >= 0, colour, torch.tensor(dropped, dtype=torch.float32)[:, None] / 255)
    pixels = colour.reshape(3, gh, gw).repeat_interleave(p, 1).repeat_interleave(p, 2)
    group = src.reshape(gh, gw).repeat_interleave(p, 0).repeat_interleave(p, 1)
    edge = torch.zeros_like(group, dtype=torch.bool)
    edge[:, 1:] |= group[:, 1:] != group[:, :-1]
    edge[1:, :] |= group[1:, :] != group[:-1, :]
    pixels = torch.where(edge, torch.tensor(border, dtype=torch.float32)[:, None, None] / 255, pixels)
    array = (pixels.permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    return Image.fromarray(array, "RGB")
