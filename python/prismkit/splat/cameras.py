"""Pinhole cameras in the splat ops' convention: ``viewmat`` [4, 4] maps world to camera
coordinates with OpenCV axes (x right, y down, z forward), ``K`` [3, 3] holds fx, fy, cx, cy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Camera:
    viewmat: Tensor  # [4, 4] world to camera
    K: Tensor  # [3, 3]
    width: int
    height: int

    @property
    def position(self) -> Tensor:
        """The camera centre in world coordinates, -R^T t."""
        R, t = self.viewmat[:3, :3], self.viewmat[:3, 3]
        return -R.T @ t


def intrinsics_from_fov(fov_x_degrees: float, width: int, height: int, fov_y_degrees: float | None = None) -> Tensor:
    """K [3, 3] with the principal point at the image centre; square pixels unless fov_y is given."""
    if not 0 < fov_x_degrees < 180 or (fov_y_degrees is not None and not 0 < fov_y_degrees < 180):
        raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_x_degrees} and {fov_y_degrees}")
    fx = 0.5 * width / math.tan(math.radians(fov_x_degrees) / 2)
    fy = fx if fov_y_degrees is None else 0.5 * height / math.tan(math.radians(fov_y_degrees) / 2)
    return torch.tensor([[fx, 0.0, width / 2], [0.0, fy, height / 2], [0.0, 0.0, 1.0]])


def look_at(eye: Sequence[float], target: Sequence[float] = (0.0, 0.0, 0.0), up: Sequence[float] = (0.0, 0.0, 1.0),
            fov_x_degrees: float = 60.0, width: int = 512, height: int = 512) -> Camera:  # fmt: skip
    """A camera at ``eye`` looking at ``target`` with ``up`` (world z by default) pointing up in the image."""
    eye_t, target_t, up_t = (torch.tensor(v, dtype=torch.float64) for v in (eye, target, up))
    forward = target_t - eye_t
    right = torch.linalg.cross(forward, up_t)
    if forward.norm() == 0 or right.norm() < 1e-12 * forward.norm() * up_t.norm():
        raise ValueError(f"look_at needs target != eye and up not parallel to the view direction, got eye={eye}, "
                         f"target={target}, up={up}")  # fmt: skip
    z = forward / forward.norm()
    x = right / right.norm()
    y = torch.linalg.cross(z, x)  # down in the image
    R = torch.stack([x, y, z])
    V = torch.eye(4, dtype=torch.float64)
    V[:3, :3], V[:3, 3] = R, -R @ eye_t
    return Camera(V.float(), intrinsics_from_fov(fov_x_degrees, width, height), width, height)


def orbit(n: int, radius: float = 6.0, height: float = 2.5, target: Sequence[float] = (0.0, 0.0, 0.5),
          fov_x_degrees: float = 60.0, width: int = 512, height_px: int = 512, phase: float = 0.0) -> list[Camera]:  # fmt: skip
    """n cameras evenly spaced on a circle of ``radius`` around ``target`` (z up), ``height`` above it;
    ``phase`` turns them by that fraction of a step (0.5: halfway between the cameras of phase 0)."""
    cams = []
    for i in range(n):
        a = 2 * math.pi * (i + phase) / n
        eye = (target[0] + radius * math.cos(a), target[1] + radius * math.sin(a), target[2] + height)
        cams.append(look_at(eye, target, (0.0, 0.0, 1.0), fov_x_degrees, width, height_px))
    return cams


def stack_cameras(cameras: Sequence[Camera]) -> tuple[Tensor, Tensor]:
    """viewmats [C, 4, 4], Ks [C, 3, 3] of cameras that share one image size."""
    sizes = {(c.width, c.height) for c in cameras}
    if len(sizes) != 1:
        raise ValueError(f"stack_cameras needs one image size for all cameras, got {sorted(sizes)}")
    return torch.stack([c.viewmat for c in cameras]), torch.stack([c.K for c in cameras])
