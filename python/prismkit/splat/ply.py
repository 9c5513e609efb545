"""The standard 3DGS ``.ply`` layout (the Inria ``GaussianModel.save_ply`` one, which gsplat,
nerfstudio and most viewers read and write), through the plyfile package.

One ``vertex`` element of float32 properties, in this order: ``x y z`` (mean), ``nx ny nz`` (zeros),
``f_dc_0..2`` (SH degree-0 coefficients), ``f_rest_0..`` (the higher-degree coefficients, channel
major: all of red's, then green's, then blue's), ``opacity`` (a logit), ``scale_0..2`` (logs),
``rot_0..3`` (the quaternion w, x, y, z, not necessarily normalized), then prismkit's optional
extra feature channels ``f_extra_0..``. ``load_ply`` returns activated values (sigmoid opacities,
exp scales) ready for ``rasterization``; ``save_ply`` takes them and stores logits and logs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor


@dataclass
class GaussianCloud:
    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4] (w, x, y, z)
    scales: Tensor  # [N, 3]
    opacities: Tensor  # [N]
    sh: Tensor  # [N, K, 3], K = (degree + 1)^2
    extra: Optional[Tensor] = None  # [N, E] extra feature channels

    @property
    def sh_degree(self) -> int:
        return math.isqrt(self.sh.shape[1]) - 1


def save_ply(path: str | os.PathLike, means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, sh: Tensor,
             extra: Optional[Tensor] = None) -> str:  # fmt: skip
    """Write Gaussians in the standard layout (see the module docstring); sh [N, K, 3] with K a
    square (1, 4, 9 or 16). Returns the path."""
    import numpy as np
    from plyfile import PlyData, PlyElement

    N, K = means.shape[0], sh.shape[1]
    if sh.dim() != 3 or sh.shape[2] != 3 or math.isqrt(K) ** 2 != K or K > 16:
        raise ValueError(f"save_ply: sh must be [N, K, 3] with K in (1, 4, 9, 16), got shape {list(sh.shape)}")
    for name, t, shape in (("means", means, (N, 3)), ("quats", quats, (N, 4)), ("scales", scales, (N, 3)),
                           ("opacities", opacities, (N,)), ("sh", sh, (N, K, 3))):  # fmt: skip
        if tuple(t.shape) != shape:
            raise ValueError(f"save_ply: '{name}' must have shape {list(shape)}, got {list(t.shape)}")
    o = opacities.detach().double().clamp(1e-7, 1 - 1e-7)
    columns = {
        **{k: means[:, i] for i, k in enumerate("xyz")},
        **{k: torch.zeros(N) for k in ("nx", "ny", "nz")},
        **{f"f_dc_{i}": sh[:, 0, i] for i in range(3)},
        **{f"f_rest_{c * (K - 1) + j}": sh[:, 1 + j, c] for c in range(3) for j in range(K - 1)},
        "opacity": torch.log(o / (1 - o)),
        **{f"scale_{i}": torch.log(scales[:, i]) for i in range(3)},
        **{f"rot_{i}": quats[:, i] for i in range(4)},
    }
    if extra is not None:
        columns.update({f"f_extra_{i}": extra[:, i] for i in range(extra.shape[1])})
    data = np.empty(N, dtype=[(k, "f4") for k in columns])
    for k, v in columns.items():
        data[k] = v.detach().float().cpu().numpy()
    PlyData([PlyElement.describe(data, "vertex")]).write(str(path))
    return str(path)


def load_ply(path: str | os.PathLike) -> GaussianCloud:
    """Read a standard 3DGS ``.ply`` (any SH degree up to 3, with or without extra channels)."""
    import numpy as np
    from plyfile import PlyData

    v = PlyData.read(str(path))["vertex"].data
    names = v.dtype.names

    def take(keys):
        missing = [k for k in keys if k not in names]
        if missing:
            raise ValueError(f"load_ply: {path} is not in the 3DGS layout, it lacks the properties {missing}")
        return torch.from_numpy(np.stack([np.asarray(v[k], dtype=np.float32) for k in keys], -1))

    rest = sorted((n for n in names if n.startswith("f_rest_")), key=lambda n: int(n.split("_")[-1]))
    if len(rest) % 3 or math.isqrt(len(rest) // 3 + 1) ** 2 != len(rest) // 3 + 1:
        raise ValueError(f"load_ply: {len(rest)} f_rest properties do not make whole SH degrees for 3 channels")
    K = len(rest) // 3 + 1
    dc = take([f"f_dc_{i}" for i in range(3)])[:, None]
    sh = torch.cat([dc, take(rest).reshape(-1, 3, K - 1).transpose(1, 2)], 1) if rest else dc
    extra_names = sorted((n for n in names if n.startswith("f_extra_")), key=lambda n: int(n.split("_")[-1]))
    return GaussianCloud(
        means=take(["x", "y", "z"]),
        quats=take([f"rot_{i}" for i in range(4)]),
        scales=torch.exp(take([f"scale_{i}" for i in range(3)])),
        opacities=torch.sigmoid(take(["opacity"])[:, 0]),
        sh=sh,
        extra=take(extra_names) if extra_names else None,
    )
