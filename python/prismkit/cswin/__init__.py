"""CSWin Transformer backbones on prismkit's fused cross-shaped window attention.

``cswin_tiny_224()`` and friends build the official configurations; the module tree and
parameter names match microsoft/CSWin-Transformer, so the released checkpoints load with
``load_official_checkpoint``: classifier files into the default model, segmentation-backbone files
into ``features_only=True`` models. Where timm is installed, importing this package registers the
builders with timm (``timm.create_model("cswin_tiny_224", features_only=True)``).
"""

from . import timm_registry
from .builders import (
    BUILDERS,
    cswin_base_224,
    cswin_base_384,
    cswin_large_224,
    cswin_large_384,
    cswin_small_224,
    cswin_tiny_224,
    load_official_checkpoint,
    official_state_dict,
)
from .model import CONFIGS, CSWinAttention, CSWinBlock, CSWinTransformer, FeatureInfo, MergeBlock

timm_registry.register()

__all__ = [
    "BUILDERS", "CONFIGS", "CSWinAttention", "CSWinBlock", "CSWinTransformer", "FeatureInfo", "MergeBlock",
    "cswin_tiny_224", "cswin_small_224", "cswin_base_224", "cswin_large_224", "cswin_base_384", "cswin_large_384",
    "load_official_checkpoint", "official_state_dict",
]  # fmt: skip
