"""Semantic segmentation with a CSWin-T backbone: prismkit's features_only CSWin (the official
segmentation backbone's layout, on the fused attention) under a small UPerNet-style head (FPN
lateral and top-down convs, the four levels fused at stride 4), trained from scratch on synthetic
images of shapes with their masks; nothing is downloaded.

    python examples/cswin_segmentation.py                # until validation mIoU >= 0.5 (or 5 minutes)
    python examples/cswin_segmentation.py --help

First it times a training step and measures its peak memory with prismkit's backbone and with the
official backbone code (prismkit.reference.cswin.OfficialCSWinSegmentation, the same weights and
head), then it trains, printing loss and validation mIoU as it goes. To start from ImageNet weights
instead, load an official classifier file into the backbone (the per-stage norms start fresh):

    prismkit.cswin.load_official_checkpoint(backbone, "cswin_tiny_224.pth", strict=False)
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from prismkit import cswin
from prismkit._measure import median_ms, peak_memory_mb
from prismkit.reference import cswin as cswin_ref

CLASSES = ("background", "disk", "square", "triangle")


def synthetic_batch(n: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n images [n, 3, size, size] of 1-3 shapes (class by shape, colour random) on a noisy
    gradient background, and their masks [n, size, size] (class index; later shapes on top)."""
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    images = torch.empty(n, 3, size, size)
    masks = torch.zeros(n, size, size, dtype=torch.long)
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    for i in range(n):
        direction = rand(2) - 0.5
        images[i] = rand(3, 1, 1) * 0.5 + (xs * direction[0] + ys * direction[1]) / size * 0.5
        for _ in range(int(rand(1) * 3) + 1):
            cls = int(rand(1) * 3) + 1
            r = size * (0.08 + 0.14 * rand(1).item())
            cx, cy = (r + (size - 2 * r) * rand(2)).tolist()
            dx, dy = xs - cx, ys - cy
            if cls == 1:
                inside = dx**2 + dy**2 <= r**2
            elif cls == 2:
                inside = (dx.abs() <= r * 0.9) & (dy.abs() <= r * 0.9)
            else:  # an upward triangle
                inside = (dy <= r * 0.8) & (dy >= -r) & (dx.abs() <= (dy + r) * 0.6)
            images[i][:, inside] = rand(3, 1)
            masks[i][inside] = cls
    images += 0.05 * torch.randn(images.shape, generator=generator)
    return (images - 0.5) / 0.25, masks


class UPerHead(nn.Module):
    """A small UPerNet-style decoder: 1x1 lateral convs to ``channels``, a top-down pathway
    (upsample and add), 3x3 convs per level, every level upsampled to stride 4, concatenated,
    fused by a 3x3 conv, then a 1x1 classifier; logits upsampled to the image."""

    def __init__(self, in_channels: list[int], num_classes: int, channels: int = 64):
        super().__init__()
        block = lambda cin, k: nn.Sequential(nn.Conv2d(cin, channels, k, padding=k // 2, bias=False),  # noqa: E731
                                             nn.BatchNorm2d(channels), nn.ReLU(inplace=True))  # fmt: skip
        self.lateral = nn.ModuleList(block(c, 1) for c in in_channels)
        self.smooth = nn.ModuleList(block(channels, 3) for _ in in_channels)
        self.fuse = block(channels * len(in_channels), 3)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        levels = [lateral(f) for lateral, f in zip(self.lateral, features, strict=True)]
        for i in range(len(levels) - 1, 0, -1):  # top-down
            levels[i - 1] = levels[i - 1] + F.interpolate(levels[i], size=levels[i - 1].shape[2:], mode="bilinear")
        top = levels[0].shape[2:]
        levels = [F.interpolate(s(x), size=top, mode="bilinear") if i else s(x)
                  for i, (s, x) in enumerate(zip(self.smooth, levels, strict=True))]  # fmt: skip
        return F.interpolate(self.classifier(self.fuse(torch.cat(levels, 1))), size=size, mode="bilinear")


class Segmenter(nn.Module):
    def __init__(self, backbone: nn.Module, head: UPerHead):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, images):
        return self.head(list(self.backbone(images)), images.shape[2:])


@torch.no_grad()
def mean_iou(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, batch: int) -> float:
    """Mean over the classes of intersection / union over the whole validation set."""
    model.eval()
    pred = torch.cat([model(images[i : i + batch]).argmax(1) for i in range(0, len(images), batch)])
    model.train()
    ious = []
    for c in range(len(CLASSES)):
        inter = ((pred == c) & (masks == c)).sum().item()
        union = ((pred == c) | (masks == c)).sum().item()
        if union:
            ious.append(inter / union)
    return sum(ious) / len(ious)


def compare_backbones(args, model: Segmenter) -> None:
    """Time per training step and its peak memory: prismkit's backbone against the official
    segmentation backbone code with the same weights and the same head."""
    embed_dim, depth, split_size, num_heads = args.config
    official = cswin_ref.OfficialCSWinSegmentation(embed_dim=embed_dim, depth=depth, split_size=split_size,
                                                   num_heads=num_heads)  # fmt: skip
    official.load_state_dict(model.backbone.state_dict(), strict=True)
    images, masks = synthetic_batch(args.batch, args.image_size, torch.Generator().manual_seed(1))
    results = {}
    for name, backbone in (("prismkit", model.backbone), ("official", official)):
        segmenter = Segmenter(backbone, model.head)

        def step():
            segmenter.zero_grad(set_to_none=True)
            F.cross_entropy(segmenter(images), masks).backward()

        results[name] = (median_ms(step, repeat=args.compare_steps), peak_memory_mb(step))
    (ms, mb), (base_ms, base_mb) = results["prismkit"], results["official"]
    print(f"training step, batch {args.batch} at {args.image_size}x{args.image_size}: prismkit backbone "
          f"{ms:.0f} ms, {mb:.0f} MiB peak; official backbone code {base_ms:.0f} ms, {base_mb:.0f} MiB peak "
          f"({base_ms / ms:.2f}x time, {base_mb / max(mb, 1e-9):.2f}x memory)", flush=True)  # fmt: skip
    model.zero_grad(set_to_none=True)


def train(args) -> float:
    torch.manual_seed(args.seed)
    embed_dim, depth, split_size, num_heads = args.config
    backbone = cswin.CSWinTransformer(embed_dim=embed_dim, depth=depth, split_size=split_size, num_heads=num_heads,
                                      drop_path_rate=args.drop_path_rate, features_only=True)  # fmt: skip
    model = Segmenter(backbone, UPerHead(backbone.feature_info.channels(), len(CLASSES)))
    if args.compare_steps:
        compare_backbones(args, model)
    val_images, val_masks = synthetic_batch(args.val_images, args.image_size, torch.Generator().manual_seed(2))
    data = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warmup = max(1, args.max_steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s / args.max_steps, 1)))
    )
    start, miou = time.perf_counter(), 0.0
    for step in range(1, args.max_steps + 1):
        images, masks = synthetic_batch(args.batch, args.image_size, data)
        loss = F.cross_entropy(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        elapsed = time.perf_counter() - start
        out_of_time = elapsed > args.time_budget
        if step % args.eval_every == 0 or step == args.max_steps or out_of_time:
            miou = mean_iou(model, val_images, val_masks, args.batch)
            print(f"step {step:4d}  loss {loss.item():.3f}  val mIoU {miou:.3f}  {elapsed:5.0f} s "
                  f"({elapsed / step * 1e3:.0f} ms/step)", flush=True)  # fmt: skip
            if miou >= args.target_miou or out_of_time:
                break
    verdict = "reached" if miou >= args.target_miou else "did not reach"
    print(f"val mIoU {miou:.3f} after {step} steps, {time.perf_counter() - start:.0f} s: {verdict} the target "
          f"{args.target_miou}", flush=True)  # fmt: skip
    return miou


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--image-size", type=int, default=112, help="square training images (default 112)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--drop-path-rate", type=float, default=0.0)
    p.add_argument("--max-steps", type=int, default=1500)
    p.add_argument("--time-budget", type=float, default=300.0, help="seconds of training before it stops")
    p.add_argument("--target-miou", type=float, default=0.5, help="stop once validation mIoU reaches it")
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--val-images", type=int, default=32)
    p.add_argument("--compare-steps", type=int, default=3, help="timed steps per backbone (0: no comparison)")
    p.add_argument("--config", default="cswin_tiny_224", choices=sorted(cswin.CONFIGS),
                   help="the backbone configuration (default CSWin-T)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("image_size", "batch", "max_steps", "eval_every", "val_images"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.image_size < 32:
        p.error("--image-size must be at least 32 (the backbone's stride)")
    args.config = cswin.CONFIGS[args.config]
    return args


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(0 if train(arguments) >= arguments.target_miou else 1)
