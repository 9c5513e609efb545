"""Small scenes and the argument-contract rows of the splat ops (imported by tests/op_contracts.py;
only torch and prismkit are imported here, so the wheel test can run the valid calls)."""

from __future__ import annotations

import math

import torch

from prismkit.reference import splat as ref


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, -1.0, 0.0), dtype=torch.float64):
    """World-to-camera [4, 4] (OpenCV axes: x right, y down, z forward) for a camera at eye."""
    eye, target, up = (torch.tensor(v, dtype=dtype) for v in (eye, target, up))
    z = torch.nn.functional.normalize(target - eye, dim=0)
    x = torch.nn.functional.normalize(torch.linalg.cross(z, up), dim=0)
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z])
    V = torch.eye(4, dtype=dtype)
    V[:3, :3], V[:3, 3] = R, -R @ eye
    return V


def scene(N=24, C=2, width=16, height=16, dtype=torch.float64, generator=None, spread=1.0, scale=0.25):
    """N Gaussians around the origin seen by C cameras on a circle at distance 4: means, quats,
    scales, viewmats, Ks (focal length = the image width)."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    kw = dict(generator=g, dtype=torch.float64)
    means = torch.randn(N, 3, **kw) * spread
    quats = torch.randn(N, 4, **kw)
    scales = torch.rand(N, 3, **kw) * scale + 0.02
    eyes = [(4 * math.sin(2 * math.pi * c / max(C, 1)), -0.5, -4 * math.cos(2 * math.pi * c / max(C, 1)))
            for c in range(C)]  # fmt: skip
    viewmats = torch.stack([look_at(e) for e in eyes]) if C else torch.zeros(0, 4, 4, dtype=torch.float64)
    K = torch.tensor([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=torch.float64)
    Ks = K.expand(C, 3, 3).clone()
    return tuple(t.to(dtype) for t in (means, quats, scales, viewmats, Ks))


def raster_inputs(N=24, C=2, width=16, height=16, D=3, tile_size=8, dtype=torch.float64, generator=None,
                  camera_features=False, camera_opacities=False, background=False, max_opacity=0.95, **scene_kw):  # fmt: skip
    """Projected and binned inputs of rasterize: (means2d, conics, features, opacities, tile_offsets,
    flatten_ids, width, height, tile_size, backgrounds)."""
    g = generator if generator is not None else torch.Generator().manual_seed(1)
    means, quats, scales, viewmats, Ks = scene(N, C, width, height, torch.float64, g, **scene_kw)
    means2d, conics, depths, radii = ref.project_gaussians(means, quats, scales, viewmats, Ks, width, height)
    tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
    offsets, ids = ref.tile_bin(means2d, radii, depths, tile_size, tiles_x, tiles_y)
    kw = dict(generator=g, dtype=torch.float64)
    features = torch.rand((C, N, D) if camera_features else (N, D), **kw)
    # max_opacity above 0.99 makes some alphas clamp at 0.99 near their Gaussian's centre
    opacities = torch.rand((C, N) if camera_opacities else (N,), **kw) * (max_opacity - 0.05) + 0.05
    bg = torch.rand(C, D, **kw) if background else None
    cast = [t.to(dtype) for t in (means2d, conics, features, opacities)]
    return (*cast, offsets, ids, width, height, tile_size, bg.to(dtype) if bg is not None else None)


def _project(**change):
    means, quats, scales, viewmats, Ks = scene(N=5, C=2, dtype=torch.float32)
    args = dict(means=means, quats=quats, scales=scales, viewmats=viewmats, Ks=Ks, width=16, height=16,
                near_plane=0.01, far_plane=1e10, eps2d=0.3, radius_clip=0.0)  # fmt: skip
    args.update(change)
    return tuple(args.values())


def _project_backward(**change):
    means, quats, scales, viewmats, Ks = scene(N=5, C=2, dtype=torch.float32)
    radii = torch.ops.prismkit.project_gaussians(means, quats, scales, viewmats, Ks, 16, 16)[3]
    args = dict(means=means, quats=quats, scales=scales, viewmats=viewmats, Ks=Ks, width=16, height=16, eps2d=0.3,
                radii=radii, grad_means2d=torch.ones(2, 5, 2), grad_conics=torch.ones(2, 5, 3),
                grad_depths=torch.ones(2, 5))  # fmt: skip
    args.update(change)
    return tuple(args.values())


def _bin(**change):
    means2d, conics, depths, radii = ref.project_gaussians(*scene(N=5, C=2, dtype=torch.float32), 16, 16)
    args = dict(means2d=means2d, radii=radii, depths=depths, tile_size=8, tiles_x=2, tiles_y=2)
    args.update(change)
    return tuple(args.values())


def _raster(**change):
    names = ("means2d", "conics", "features", "opacities", "tile_offsets", "flatten_ids", "width", "height",
             "tile_size", "backgrounds")  # fmt: skip
    args = dict(zip(names, raster_inputs(N=5, D=3, dtype=torch.float32, background=True), strict=True))
    args.update(change)
    return tuple(args.values())


def _raster_backward(**change):
    """The valid forward's inputs, outputs and ones as gradients, then the changes."""
    args = _raster()
    render, alpha, last_ids = torch.ops.prismkit.rasterize(*args)
    names = ("means2d", "conics", "features", "opacities", "tile_offsets", "flatten_ids", "width", "height",
             "tile_size", "backgrounds", "alpha", "last_ids", "grad_render", "grad_alpha")  # fmt: skip
    values = (*args, alpha, last_ids, torch.ones_like(render), torch.ones_like(alpha))
    full = dict(zip(names, values, strict=True))
    full.update(change)
    return tuple(full.values())


VALID = {
    "project_gaussians": _project,
    "project_gaussians_backward": _project_backward,
    "tile_bin": _bin,
    "rasterize": _raster,
    "rasterize_backward": _raster_backward,
}


def contract_rows(Bad) -> list:
    """The bad calls of every splat op, as op_contracts.Bad rows."""
    f64 = dict(dtype=torch.float64)
    rows = []
    for op, build in (("project_gaussians", _project), ("project_gaussians_backward", _project_backward)):
        means = build()[0]
        rows += [
            Bad(op, "quats width", lambda b=build: b(quats=torch.ones(5, 3)), ValueError, "'quats' must have shape [N, 4] (w, x, y, z) = [5, 4], got a 2-D float32 tensor of shape [5, 3]"),
            Bad(op, "means rank", lambda b=build: b(means=torch.ones(5, 3, 1)), ValueError, "'means' must be a 2-D tensor [N, 3], got a 3-D float32"),
            Bad(op, "scales N", lambda b=build: b(scales=torch.ones(4, 3)), ValueError, "'scales' must have shape [N, 3] = [5, 3]"),
            Bad(op, "Ks 4x4", lambda b=build: b(Ks=torch.eye(4).expand(2, 4, 4)), ValueError, "'Ks' must have shape [C, 3, 3] (the cameras' intrinsics) = [2, 3, 3]"),
            Bad(op, "viewmats rank", lambda b=build: b(viewmats=torch.eye(4)), ValueError, "'viewmats' must be a 3-D tensor [C, 4, 4] (world to camera), got a 2-D"),
            Bad(op, "int dtype", lambda b=build, m=means: b(means=m.long()), TypeError, "'means' must have dtype float32 or float64 or float16 or bfloat16 on cpu, got a 2-D int64"),
            Bad(op, "mixed dtype", lambda b=build: b(scales=torch.ones(5, 3, **f64)), TypeError, "'scales' must have the dtype of 'means' (float32), got a 2-D float64"),
            Bad(op, "mixed device", lambda b=build: b(Ks=torch.eye(3, device="meta").expand(2, 3, 3)), ValueError, "'Ks' must be on the device of 'means' (cpu)"),
            Bad(op, "width 0", lambda b=build: b(width=0), ValueError, "'width' must be >= 1, got 0"),
            Bad(op, "eps2d < 0", lambda b=build: b(eps2d=-1.0), ValueError, "'eps2d' must be finite and >= 0, got -1"),
        ]  # fmt: skip
    op = "project_gaussians"
    rows += [
        Bad(op, "near 0", lambda: _project(near_plane=0.0), ValueError, "'near_plane' and 'far_plane' must satisfy 0 < near_plane < far_plane, got 0 and 1e+10"),
        Bad(op, "far < near", lambda: _project(near_plane=2.0, far_plane=1.0), ValueError, "'near_plane' and 'far_plane' must satisfy 0 < near_plane < far_plane, got 2 and 1"),
        Bad(op, "radius_clip < 0", lambda: _project(radius_clip=-0.5), ValueError, "'radius_clip' must be finite and >= 0, got -0.5"),
    ]  # fmt: skip
    op = "project_gaussians_backward"
    rows += [
        Bad(op, "radii dtype", lambda: _project_backward(radii=torch.ones(2, 5, dtype=torch.int64)), TypeError, "'radii' must have dtype int32 on cpu, got a 2-D int64"),
        Bad(op, "radii shape", lambda: _project_backward(radii=torch.ones(5, dtype=torch.int32)), ValueError, "'radii' must be a 2-D tensor [C, N]"),
        Bad(op, "grad_conics shape", lambda: _project_backward(grad_conics=torch.ones(2, 5, 2)), ValueError, "'grad_conics' must have shape [C, N, 3] = [2, 5, 3]"),
        Bad(op, "grad_depths dtype", lambda: _project_backward(grad_depths=torch.ones(2, 5, **f64)), TypeError, "'grad_depths' must have the dtype of 'means' (float32)"),
    ]  # fmt: skip
    op = "tile_bin"
    rows += [
        Bad(op, "means2d rank", lambda: _bin(means2d=torch.ones(5, 2)), ValueError, "'means2d' must be a 3-D tensor [C, N, 2], got a 2-D"),
        Bad(op, "radii dtype", lambda: _bin(radii=torch.ones(2, 5)), TypeError, "'radii' must have dtype int32 on cpu, got a 2-D float32"),
        Bad(op, "depths shape", lambda: _bin(depths=torch.ones(2, 4)), ValueError, "'depths' must have shape [C, N] = [2, 5]"),
        Bad(op, "tile_size 0", lambda: _bin(tile_size=0), ValueError, "'tile_size' must be >= 1, got 0"),
        Bad(op, "tiles_y 0", lambda: _bin(tiles_y=0), ValueError, "'tiles_y' must be >= 1, got 0"),
        Bad(op, "depths device", lambda: _bin(depths=torch.ones(2, 5, device="meta")), ValueError, "'depths' must be on the device of 'means2d' (cpu)"),
    ]  # fmt: skip
    for op, build in (("rasterize", _raster), ("rasterize_backward", _raster_backward)):
        rows += [
            Bad(op, "features rank", lambda b=build: b(features=torch.ones(5)), ValueError, "'features' must be a 2-D tensor [N, D] or a 3-D tensor [C, N, D], got a 1-D"),
            Bad(op, "features N", lambda b=build: b(features=torch.ones(4, 3)), ValueError, "'features' must have shape [N, D] = [5, 3], got a 2-D float32 tensor of shape [4, 3]"),
            Bad(op, "features C", lambda b=build: b(features=torch.ones(3, 5, 3)), ValueError, "'features' must have shape [C, N, D] = [2, 5, 3]"),
            Bad(op, "opacities shape", lambda b=build: b(opacities=torch.ones(5, 1)), ValueError, "'opacities' must have shape [C, N] = [2, 5]"),
            Bad(op, "conics width", lambda b=build: b(conics=torch.ones(2, 5, 4)), ValueError, "'conics' must have shape [C, N, 3] (a, b, c of the inverse 2-D covariance) = [2, 5, 3]"),
            Bad(op, "backgrounds D", lambda b=build: b(backgrounds=torch.ones(2, 4)), ValueError, "'backgrounds' must have shape [C, D] = [2, 3]"),
            Bad(op, "tile grid", lambda b=build: b(tile_size=4), ValueError, "'tile_offsets' must have shape [C, tiles_y, tiles_x] (tile_bin's, for this image and tile_size) = [2, 4, 4], got a 3-D int32 tensor of shape [2, 2, 2]"),
            Bad(op, "ids dtype", lambda b=build: b(flatten_ids=torch.zeros(3, dtype=torch.int64)), TypeError, "'flatten_ids' must have dtype int32 on cpu, got a 1-D int64"),
            Bad(op, "height 0", lambda b=build: b(height=0), ValueError, "'height' must be >= 1, got 0"),
            Bad(op, "mixed dtype", lambda b=build: b(opacities=torch.ones(5, **f64)), TypeError, "'opacities' must have the dtype of 'means2d' (float32)"),
            Bad(op, "ids out of range", lambda b=build: b(flatten_ids=torch.full((_raster()[5].numel(),), 10, dtype=torch.int32)), IndexError, "'flatten_ids' must lie in [0, C * N = 10), got values in [10, 10]", reads_data=True),
            Bad(op, "offsets decreasing", lambda b=build: b(tile_offsets=_raster()[4].flip(-1).contiguous() + 1), IndexError, "'tile_offsets' must be non-decreasing within [0, M = ", reads_data=True),
        ]  # fmt: skip
    rows.append(Bad("tile_bin", "tile grid overflow", lambda: _bin(tiles_x=2**32, tiles_y=2**32), ValueError,
                    "C * N = 2 * 5 and C * tiles_y * tiles_x = 2 * 4294967296 * 4294967296 must fit the int32 ids"))  # fmt: skip
    op = "rasterize_backward"
    rows += [
        Bad(op, "last_ids out of range", lambda: _raster_backward(last_ids=torch.full((2, 16, 16), 10_000, dtype=torch.int32)), IndexError, "'last_ids' must lie in [-1, M = ", reads_data=True),
        Bad(op, "last_ids below -1", lambda: _raster_backward(last_ids=torch.full((2, 16, 16), -2, dtype=torch.int32)), IndexError, "'last_ids' must lie in [-1, M = ", reads_data=True),
        Bad(op, "grad_render D", lambda: _raster_backward(grad_render=torch.ones(2, 16, 16, 4)), ValueError, "'grad_render' must have shape [C, H, W, D] = [2, 16, 16, 3]"),
        Bad(op, "last_ids dtype", lambda: _raster_backward(last_ids=torch.zeros(2, 16, 16, dtype=torch.int64)), TypeError, "'last_ids' must have dtype int32 on cpu"),
        Bad(op, "alpha shape", lambda: _raster_backward(alpha=torch.ones(2, 16, 16)), ValueError, "'alpha' must be a 4-D tensor [C, H, W, 1]"),
        Bad(op, "grad_alpha device", lambda: _raster_backward(grad_alpha=torch.ones(2, 16, 16, 1, device="meta")), ValueError, "'grad_alpha' must be on the device of 'means2d' (cpu)"),
    ]  # fmt: skip
    return rows
