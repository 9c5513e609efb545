"""Gaussian splatting benchmarks: the whole rasterization pipeline (project_gaussians ->
tile_bin -> rasterize, ``prismkit.splat.rasterization``), forward and forward+backward, on the
synthetic scene (prismkit.splat.scenes, 100k Gaussians, one 512x512 camera) at feature widths 3, 64
and 512, against the plain-PyTorch pipeline (``torch-reference``: prismkit/reference/splat.py, the CPU
path a user can write today) and, at D512, against ``chunked-32``: projection and binning once,
then prismkit's own rasterize on 32-channel slices, as gsplat renders wide features. On a GPU the
same rows, plus forward 1920x1080 frames at D3 and D64 (frames per second = 1000 / median_ms).
Run with bench/run.py (`make bench`).
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from prismkit import splat
from prismkit.ops import splat as ops
from prismkit.reference import splat as ref

# case: (Gaussians, width, height, D)
CASES = {
    "synthetic N100k 512x512 D3": (100_000, 512, 512, 3),
    "synthetic N100k 512x512 D64": (100_000, 512, 512, 64),
    "synthetic N100k 512x512 D512": (100_000, 512, 512, 512),
}
SMALL = "synthetic N5k 128x128 D3"
CASES[SMALL] = (5_000, 128, 128, 3)
GPU_CASES = {
    "synthetic N100k 1920x1080 D3": (100_000, 1920, 1080, 3),
    "synthetic N100k 1920x1080 D64": (100_000, 1920, 1080, 64),
}


@pytest.fixture(params=list(CASES) + list(GPU_CASES))
def case(request, bench_cases, bench_device):
    if bench_cases == "small" and request.param != SMALL:
        pytest.skip("--bench-cases small")
    if request.param in GPU_CASES and bench_device != "cuda":
        pytest.skip("1080p frames are GPU rows")
    return request.param


@functools.lru_cache(maxsize=2)
def inputs(name, device):
    """Scene tensors (float32) and one camera looking at the objects."""
    n, width, height, D = {**CASES, **GPU_CASES}[name]
    scene = splat.scenes.synthetic_scene(n)
    viewmats, Ks = splat.stack_cameras(scene.cameras(1, width, height)[:1])
    features = scene.colors if D == 3 else torch.rand(len(scene), D, generator=torch.Generator().manual_seed(0))
    tensors = (scene.means, scene.quats, scene.scales, scene.opacities, features, viewmats, Ks)
    return tuple(t.to(device) for t in tensors), width, height


def prismkit_pipeline(means, quats, scales, opacities, features, viewmats, Ks, width, height):
    return splat.rasterization(means, quats, scales, opacities, features, viewmats, Ks, width, height)[0]


def reference_pipeline(means, quats, scales, opacities, features, viewmats, Ks, width, height):
    return ref.rasterization(means, quats, scales, opacities, features, viewmats, Ks, width, height)[0]


def chunked_pipeline(means, quats, scales, opacities, features, viewmats, Ks, width, height, chunk=32, tile_size=16):
    """Projection and binning once, then rasterize per 32-channel slice (gsplat's channel_chunk)."""
    means2d, conics, depths, radii = ops.project_gaussians(means, quats, scales, viewmats, Ks, width, height)
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    offsets, ids = ops.tile_bin(means2d, radii, depths, tile_size, tiles_x, tiles_y)
    slices = [ops.rasterize(means2d, conics, features[:, i : i + chunk], opacities, offsets, ids, width, height,
                            tile_size)[0] for i in range(0, features.shape[-1], chunk)]  # fmt: skip
    return torch.cat(slices, -1)


def _pipelines(name):
    fns = {"torch-reference": reference_pipeline}
    if {**CASES, **GPU_CASES}[name][3] >= 512:
        fns["chunked-32"] = chunked_pipeline
    return fns


def impl_for(device):
    return "cpu" if device == "cpu" else "cuda"


def test_rasterization_forward(compare, bench_device, case):
    tensors, width, height = inputs(case, bench_device)
    run = lambda f: lambda: f(*tensors, width, height)  # noqa: E731
    with torch.no_grad():
        compare(run(prismkit_pipeline), {k: run(f) for k, f in _pipelines(case).items()}, core="splat",
                op="rasterization", mode="forward", case=case, impl=impl_for(bench_device))  # fmt: skip


def test_rasterization_forward_backward(compare, bench_device, case):
    if case in GPU_CASES:
        pytest.skip("the 1080p rows are forward frames")
    tensors, width, height = inputs(case, bench_device)
    leaves = [t.clone().requires_grad_() for t in tensors[:5]]
    grad = torch.rand(1, height, width, tensors[4].shape[-1], generator=torch.Generator().manual_seed(1))
    grad = grad.to(bench_device)

    def clear_grads():
        for t in leaves:
            t.grad = None

    run = lambda f: lambda: f(*leaves, *tensors[5:], width, height).backward(grad)  # noqa: E731
    compare(run(prismkit_pipeline), {k: run(f) for k, f in _pipelines(case).items()}, core="splat",
            op="rasterization", mode="forward+backward", case=case, impl=impl_for(bench_device),
            setup=clear_grads)  # fmt: skip
