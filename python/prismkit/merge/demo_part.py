"""The token-merging part of ``python -m prismkit demo``: a random-weight timm ViT-B/16 (a tiny ViT
with ``small``) on synthetic pictures of coloured shapes, PiToMe at keep ratio 0.9 against the
unpatched model; time, tokens per layer, output cosine, and a picture of the merged groups."""

from __future__ import annotations

import os
import tempfile

import torch

from .. import _measure
from . import patch, state, unpatch, visualize


def synthetic_images(B: int, size: int, seed: int = 0) -> torch.Tensor:
    """[B, 3, size, size] in [0, 1]: a soft gradient background with a few flat coloured
    rectangles and discs, so that merging has regions to find."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    images = []
    for _ in range(B):
        img = torch.stack([0.2 + 0.3 * xx, 0.3 + 0.2 * yy, 0.5 - 0.2 * xx]).clone()
        for _ in range(4):
            colour = torch.rand(3, generator=g)
            cx, cy, rad = (torch.rand(3, generator=g) * torch.tensor([1.0, 1.0, 0.25]) + 0.1 * torch.eye(3)[2]).tolist()
            if torch.rand(1, generator=g).item() < 0.5:
                inside = ((xx - cx) ** 2 + (yy - cy) ** 2) < rad**2
            else:
                inside = ((xx - cx).abs() < rad) & ((yy - cy).abs() < rad * 0.6)
            img = torch.where(inside, colour[:, None, None], img)
        images.append(img)
    return torch.stack(images)


def merge_part(device: str, small: bool, repeat: int, out_dir: str | None = None) -> bool:
    from timm.models.vision_transformer import VisionTransformer

    size, patch_size, dim, depth, heads, B = (64, 8, 64, 4, 4, 2) if small else (224, 16, 768, 12, 12, 8)
    print(f"\nToken merging: a random-weight ViT ({size}px, patch {patch_size}, dim {dim}, depth {depth}), "
          f"{B} synthetic images, float32 on {device}; PiToMe at keep ratio 0.9 against the unmerged model")  # fmt: skip
    torch.manual_seed(0)
    vit = VisionTransformer(img_size=size, patch_size=patch_size, embed_dim=dim, depth=depth, num_heads=heads)
    vit = vit.eval().to(device)
    images = synthetic_images(B, size).to(device)
    with torch.no_grad():
        plain_out = vit(images)
        t_plain = _measure.median_ms(lambda: vit(images), device, repeat)
        patch(vit, "pitome", 0.9, trace_source=True)
        merged_out = vit(images)
        st = state(vit)
        tokens, source = list(st.tokens), st.source[0, 1:].cpu()
        t_merged = _measure.median_ms(lambda: vit(images), device, repeat)
        unpatch(vit)
    cos = torch.nn.functional.cosine_similarity(merged_out, plain_out, dim=-1).mean().item()
    print(f"tokens per layer: {st.n_input} in, then {', '.join(map(str, tokens))}")
    print(f"unmerged {t_plain:.1f} ms, PiToMe {t_merged:.1f} ms per batch ({t_plain / t_merged:.2f}x); "
          f"output cosine to the unmerged model {cos:.4f}")  # fmt: skip
    path = os.path.join(out_dir or tempfile.gettempdir(), "prismkit-merge-demo.png")  # where the other parts write
    visualize(images[0].cpu(), source, patch_size=patch_size).save(path)
    print(f"merged groups of the first image written to {path}")
    ok = bool(torch.isfinite(merged_out).all()) and tokens[-1] < st.n_input
    print("merging ran" if ok else "MERGING FAILED")
    return ok
