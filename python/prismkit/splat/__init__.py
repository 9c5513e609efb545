"""3D Gaussian splatting on prismkit's rasterizer (``prismkit.ops.splat``): a gsplat-compatible
``rasterization`` call, cameras, the standard 3DGS ``.ply`` layout, and synthetic scenes.

    from prismkit import splat
    scene = splat.scenes.synthetic_scene(n_gaussians=50_000)
    cams = splat.orbit(4, radius=7.0, height=3.0, width=256, height_px=256)
    viewmats, Ks = splat.stack_cameras(cams)
    rgb, alpha, meta = splat.rasterization(scene.means, scene.quats, scale=None, ...)  # see rasterization
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
