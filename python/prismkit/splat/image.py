"""Writing renders as PNG files (Pillow)."""

from __future__ import annotations

import os

import torch
from torch import Tensor


def save_png(image: Tensor, path: str | os.PathLike) -> str:
    """Write an [H, W, 3] (or [H, W, 1]) image with values in [0, 1] as an 8-bit PNG; returns the path."""
    from PIL import Image

    if image.dim() != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"save_png takes an [H, W, 3] or [H, W, 1] image, got shape {list(image.shape)}")
    pixels = (image.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)
    return str(path)
