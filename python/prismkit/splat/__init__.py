"""3D Gaussian splatting on prismkit's rasterizer (``prismkit.ops.splat``): a gsplat-compatible
``rasterization`` call, cameras, the standard 3DGS ``.ply`` layout, PNG output and synthetic scenes.

    from prismkit import splat
    scene = splat.scenes.synthetic_scene(50_000)
    viewmats, Ks = splat.stack_cameras(scene.cameras(4, width=256, height=256))
    rgb, alpha, meta = splat.rasterization(scene.means, scene.quats, scene.scales, scene.opacities,
                                           scene.colors, viewmats, Ks, 256, 256)
    splat.save_png(rgb[0], "frame.png")
"""

from __future__ import annotations

from . import scenes
from .cameras import Camera, intrinsics_from_fov, look_at, orbit, stack_cameras
from .image import save_png
from .ply import load_ply, save_ply
from .rendering import rasterization, spherical_harmonics

__all__ = [
    "Camera",
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
