"""Loading LangSplatV2's trained language fields (the official train.py's checkpoints): one file per
SAM level, ``output/<scene>_<index>_<level>/chkpnt10000.pth`` for levels 1, 2, 3, each
``torch.save((gaussians.capture(include_feature=True), iteration))``. The captured tuple holds 14
items: sh degree, xyz [N, 3], features_dc, features_rest, log scales [N, 3], rotations (w, x, y, z)
[N, 4], opacity logits [N, 1], the language logits [N, vq_layer_num * L] (item 7), the codebook
[vq_layer_num, L, D] (item 8), then training state. The geometry is frozen during language
training, so it is read from the first level's file (as the official evaluation does)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from .language import LanguageGaussianField

CAPTURE_ITEMS = 14
LOGITS, CODEBOOKS = 7, 8


def _capture(path: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_langsplatv2: no checkpoint at {path}")
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    model = loaded[0] if isinstance(loaded, (tuple, list)) and len(loaded) == 2 else loaded
    if not isinstance(model, (tuple, list)) or len(model) != CAPTURE_ITEMS:
        n = len(model) if isinstance(model, (tuple, list)) else type(model).__name__
        raise ValueError(
            f"load_langsplatv2: {path} is not a LangSplatV2 language checkpoint (GaussianModel.capture(True) "
            f"has {CAPTURE_ITEMS} items; got {n}; a 12-item capture is an RGB-only 3DGS checkpoint)"
        )
    return model


def load_langsplatv2(paths: Sequence[str], K: int = 4) -> LanguageGaussianField:
    """A LanguageGaussianField from the per-level checkpoints (in level order), with the official
    top-K (4) and the geometry of the first."""
    captures = [_capture(p) for p in paths]
    first = captures[0]
    means, scales, quats, opacity = first[1], first[4], first[5], first[6]
    logits, codebooks = [], []
    for path, c in zip(paths, captures, strict=True):
        lg, cb = c[LOGITS].detach().float(), c[CODEBOOKS].detach().float()
        if cb.dim() != 3 or cb.shape[0] != 1 or lg.shape != (means.shape[0], cb.shape[1]):
            raise ValueError(
                f"load_langsplatv2: {path}: expected logits [N = {means.shape[0]}, L] and a codebook [1, L, D] "
                f"(vq_layer_num 1, the official setting), got {list(lg.shape)} and {list(cb.shape)}"
            )
        logits.append(lg)
        codebooks.append(cb[0])
    L, D = codebooks[0].shape
    field = LanguageGaussianField(means.float(), torch.nn.functional.normalize(quats.float(), dim=-1),
                                  torch.exp(scales.float()), torch.sigmoid(opacity.float().reshape(-1)),
                                  levels=len(paths), L=L, K=K, D=D)  # fmt: skip
    with torch.no_grad():
        field.logits.copy_(torch.stack(logits, 1))
        field.codebooks.copy_(torch.stack(codebooks))
    return field
