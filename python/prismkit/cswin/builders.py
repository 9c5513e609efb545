"""The official CSWin configurations as builder functions (``cswin_tiny_224()`` ...), with the
official keyword names and defaults, and ``load_official_checkpoint`` for the released files."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping, Sequence

import torch

from .model import CONFIGS, CSWinTransformer

_SUMMARIES = {
    "cswin_tiny_224": "CSWin-T: 23M parameters, 4.3 GFLOPs at 224 (official top-1 82.8; UPerNet ADE20K mIoU 49.3).",
    "cswin_small_224": "CSWin-S: 35M parameters, 6.9 GFLOPs at 224 (official top-1 83.6; UPerNet mIoU 50.4).",
    "cswin_base_224": "CSWin-B: 78M parameters, 15.0 GFLOPs at 224 (official top-1 84.2; UPerNet mIoU 51.1).",
    "cswin_large_224": "CSWin-L (ImageNet-22K pretrained): 173M parameters, 31.5 GFLOPs (official top-1 86.5).",
    "cswin_base_384": "CSWin-B at 384 (stripes 12 in stage 3): 78M parameters, 47.0 GFLOPs (official top-1 85.5).",
    "cswin_large_384": "CSWin-L at 384: 173M parameters, 96.8 GFLOPs (official top-1 87.5).",
}
RELEASES = "https://github.com/microsoft/CSWin-Transformer/releases"


def _builder(name: str):
    embed_dim, depth, split_size, num_heads = CONFIGS[name]
    build_size = 384 if name.endswith("384") else 224

    def build(pretrained: bool = False, *, img_size: int = build_size, in_chans: int = 3, num_classes: int = 1000,
              mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None, drop_rate: float = 0.0,
              attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0, attn_padding: str = "zeros",
              features_only: bool = False, out_indices: Sequence[int] = (0, 1, 2, 3),
              use_chk: bool = False) -> CSWinTransformer:  # fmt: skip
        if pretrained:
            raise ValueError(
                f"{name}(pretrained=True): prismkit does not download weights. Download the official file from "
                f"{RELEASES} and load it with prismkit.cswin.load_official_checkpoint(model, path)"
            )
        return CSWinTransformer(img_size=img_size, in_chans=in_chans, num_classes=num_classes, embed_dim=embed_dim,
                                depth=depth, split_size=split_size, num_heads=num_heads, mlp_ratio=mlp_ratio,
                                qkv_bias=qkv_bias, qk_scale=qk_scale, drop_rate=drop_rate,
                                attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate,
                                attn_padding=attn_padding, features_only=features_only, out_indices=out_indices,
                                use_chk=use_chk)  # fmt: skip

    build.__name__ = build.__qualname__ = name
    build.__doc__ = (
        f"{_SUMMARIES[name]}\n\n"
        f"The official keyword names and defaults (``img_size={build_size}``, ``drop_path_rate=0.0`` ...; the\n"
        "official segmentation configs use ``drop_path_rate`` 0.3 / 0.4 / 0.6 for T / S / B). ``features_only=True``\n"
        "builds the segmentation backbone layout (four normed maps). ``pretrained=True`` raises: weights are\n"
        "loaded from a file with ``load_official_checkpoint``."
    )
    return build


cswin_tiny_224 = _builder("cswin_tiny_224")
cswin_small_224 = _builder("cswin_small_224")
cswin_base_224 = _builder("cswin_base_224")
cswin_large_224 = _builder("cswin_large_224")
cswin_base_384 = _builder("cswin_base_384")
cswin_large_384 = _builder("cswin_large_384")
BUILDERS = {f.__name__: f for f in (cswin_tiny_224, cswin_small_224, cswin_base_224, cswin_large_224,
                                     cswin_base_384, cswin_large_384)}  # fmt: skip


def _is_layout_key(key: str) -> bool:
    """The names in which the two official layouts differ: the classifier's ``norm``/``head`` and
    the backbone's per-stage ``norm1`` ... ``norm4`` (top level only, not the blocks' norms)."""
    return key.split(".")[0] in ("norm", "head", "norm1", "norm2", "norm3", "norm4")


def official_state_dict(checkpoint: str | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The CSWin weights of an official file or loaded checkpoint: the ImageNet files keep them under
    ``state_dict_ema``, ``state_dict`` or ``model``; the segmentation (mmseg) files hold the whole
    segmentor under ``state_dict``, whose ``backbone.`` entries are kept with that prefix removed;
    a ``module.`` prefix (DistributedDataParallel) is removed."""
    if isinstance(checkpoint, str):
        try:
            checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise ValueError(
                f"load_official_checkpoint: {checkpoint} holds objects other than tensors and plain Python values, "
                "which are not unpickled (they can run code). If you trust the file, pass "
                "torch.load(path, weights_only=False) instead of the path."
            ) from e
    for key in ("state_dict_ema", "state_dict", "model"):
        if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    state = {k.removeprefix("module."): v for k, v in checkpoint.items()}
    if any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    return state


def load_official_checkpoint(model: CSWinTransformer, checkpoint: str | Mapping[str, torch.Tensor],
                             strict: bool = True) -> CSWinTransformer:  # fmt: skip
    """Loads a released CSWin checkpoint (a path, or the loaded file; see ``official_state_dict``)
    into ``model``. The file's layout must be the model's: a classifier file (``norm``, ``head``)
    into a classifier, a segmentation-backbone file (``norm1`` ... ``norm4``) into a
    ``features_only=True`` model; every name must match.

    ``strict=False`` is the official fine-tuning start, an ImageNet classifier file into a
    ``features_only`` backbone (or the reverse), or into a classifier with another ``num_classes``:
    every other name must still be in the file with its shape, and only the layout's own norms and
    the head are left at their initialization (named in a warning)."""
    state = official_state_dict(checkpoint)
    have, want = set(state), set(model.state_dict())
    if have != want:
        # the names that break even a strict=False load first: they are what the message is about
        missing = sorted(want - have, key=lambda k: (_is_layout_key(k), k))
        unexpected = sorted(have - want, key=lambda k: (_is_layout_key(k), k))
        layout_only = all(_is_layout_key(k) for k in missing + unexpected)
        if strict or not layout_only:
            file_layout = "segmentation backbone" if "norm1.weight" in have else "classifier"
            model_layout = "features_only backbone" if model.features_only else "classifier"
            hint = (
                " The file is the other layout: pass strict=False to load the shared weights and leave "
                f"{', '.join(sorted({k.split('.')[0] for k in missing}))} at their initialization."
                if layout_only
                else ""
            )
            raise ValueError(
                f"load_official_checkpoint: the file's weights ({file_layout} layout) do not match the model "
                f"({model_layout}): missing {missing[:6]}{' ...' if len(missing) > 6 else ''}, unexpected "
                f"{unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}.{hint}"
            )
        state = {k: v for k, v in state.items() if k in want}
        warnings.warn(f"load_official_checkpoint: left at initialization: {missing}; not loaded: {unexpected}",
                      stacklevel=2)  # fmt: skip
    if not strict:  # fine-tuning with another class count: the head starts fresh
        own = model.state_dict()
        other_head = sorted(k for k, v in state.items() if k.startswith("head.") and v.shape != own[k].shape)
        if other_head:
            warnings.warn(f"load_official_checkpoint: the file's head has another shape; left at initialization: "
                          f"{other_head}", stacklevel=2)  # fmt: skip
            state = {k: v for k, v in state.items() if k not in other_head}
    model.load_state_dict(state, strict=strict)
    return model
