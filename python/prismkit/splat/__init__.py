"""3D Gaussian splatting on prismkit's rasterizer (``prismkit.ops.splat``): a gsplat-compatible
``rasterization`` call, cameras, the standard 3DGS ``.ply`` layout, PNG output and synthetic scenes.

    from prismkit import splat
    scene = splat.scenes.synthetic_scene(50_000)
    viewmats, Ks = splat.stack_cameras(scene.cameras(4, width=256, height=256))
    rgb, alpha, meta = splat.rasterization(scene.means, scene.quats, scene.scales, scene.opacities,
                                           scene.colors, viewmats, Ks, 256, 256)
    splat.save_png(rgb[0], "frame.png")

LangSplatV2's language field on the sparse coefficient ops (``language``; evaluation in
``language_eval``; a synthetic language scene in ``language_scene``; the official checkpoints in
``checkpoints``):

    ls = splat.language_scene.synthetic_language_scene(20_000, D=512)
    views = ls.views(8, 128, 128)
    field = splat.LanguageGaussianField.from_scene(ls.scene, levels=3, L=64, K=4, D=512)
    field.init_codebooks([views.features(level) for level in range(3)])
    splat.train_language_field(field, views, steps=300)
    relevancy = field.relevancy(ls.embedding("cube")[None], views.viewmats, views.Ks, 128, 128, ls.negatives)
"""

from __future__ import annotations

from . import checkpoints, language_eval, language_scene, scenes
from .cameras import Camera, intrinsics_from_fov, look_at, orbit, stack_cameras
from .checkpoints import load_langsplatv2
from .image import save_png
from .language import LanguageGaussianField, LanguageViews, topk_soft_code, train_language_field
from .ply import load_ply, save_ply
from .rendering import rasterization, spherical_harmonics

__all__ = [
    "Camera",
    "LanguageGaussianField",
    "LanguageViews",
    "checkpoints",
    "language_eval",
    "language_scene",
    "load_langsplatv2",
    "topk_soft_code",
    "train_language_field",
    "intrinsics_from_fov",
    "load_ply",
    "look_at",
    "orbit",
    "rasterization",
    "save_ply",
    "save_png",
    "scenes",
    "spherical_harmonics",
    "stack_cameras",
]
