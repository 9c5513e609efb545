"""CSWin Transformer backbones on prismkit's fused cross-shaped window attention.

``cswin_tiny_224()`` and friends build the official configurations; the module tree and
parameter names match microsoft/CSWin-Transformer, so the released checkpoints load with
``load_official_checkpoint`` (or ``load_state_dict(..., strict=True)`` on their state dict).
"""

from .model import (
    CONFIGS,
    CSWinAttention,
    CSWinBlock,
    CSWinTransformer,
    MergeBlock,
    cswin_base_224,
    cswin_base_384,
    cswin_large_224,
    cswin_large_384,
    cswin_small_224,
    cswin_tiny_224,
    load_official_checkpoint,
)

__all__ = [
    "CONFIGS", "CSWinAttention", "CSWinBlock", "CSWinTransformer", "MergeBlock", "cswin_tiny_224", "cswin_small_224",
    "cswin_base_224", "cswin_large_224", "cswin_base_384", "cswin_large_384", "load_official_checkpoint",
]  # fmt: skip
