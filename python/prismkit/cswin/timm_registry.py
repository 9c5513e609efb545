"""Registers the CSWin builders with timm's model registry when timm is installed, so that
``timm.create_model("cswin_tiny_224", features_only=True)`` builds prismkit's model (the names are
the builders', e.g. ``cswin_base_384``). prismkit.cswin calls ``register()`` on import."""

from __future__ import annotations

import importlib.util

from .builders import BUILDERS


def _entrypoint(build):
    # timm's create_model passes its own pretrained-config and cache arguments to every entrypoint;
    # weights come from files here: load_official_checkpoint (any official file), or create_model's
    # checkpoint_path= for classifier files (timm's loader does not unwrap mmseg's backbone. prefix).
    def entrypoint(pretrained=False, pretrained_cfg=None, pretrained_cfg_overlay=None, cache_dir=None, **kwargs):
        return build(pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = build.__name__
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = build.__doc__
    return entrypoint


def register() -> bool:
    """Adds every builder to timm's registry; False (nothing done) where timm is not installed."""
    if importlib.util.find_spec("timm") is None:
        return False
    from timm.models import is_model, register_model

    for name, build in BUILDERS.items():
        if not is_model(name):
            register_model(_entrypoint(build))
    return True
