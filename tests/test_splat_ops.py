"""The splat ops (project_gaussians, tile_bin, rasterize and their backwards) against the
plain-PyTorch reference (prismkit/reference/splat.py) and, for projection and binning, against
gsplat's own pure-PyTorch functions (gsplat.cuda._torch_impl, from the pinned PyPI gsplat, where
installed); gradients against the reference's autograd and gradcheck; edge cases; opcheck."""

import pytest
import torch
from conftest import TOLERANCES
from splat_cases import raster_inputs, scene

from prismkit.ops import splat
from prismkit.reference import splat as ref

P = torch.ops.prismkit
DTYPES = [torch.float32, torch.float64]


def assert_projection_equal(got, want, dtype):
    means2d, conics, depths, radii = got
    torch.testing.assert_close(radii, want[3], rtol=0, atol=0)
    for g, w in zip((means2d, conics, depths), want[:3], strict=True):
        torch.testing.assert_close(g, w, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_projection_matches_reference(dtype):
    for seed, (N, C, W, H) in enumerate([(1, 1, 16, 16), (37, 3, 33, 17), (200, 2, 64, 48)]):
        g = torch.Generator().manual_seed(seed)
        means, quats, scales, viewmats, Ks = scene(N, C, W, H, dtype, g, spread=2.0)
        got = splat.project_gaussians(means, quats, scales, viewmats, Ks, W, H)
        assert_projection_equal(got, ref.project_gaussians(means, quats, scales, viewmats, Ks, W, H), dtype)
        assert 0 < (got[3] > 0).sum() < C * N or N == 1  # some culled, some kept


def test_projection_culls_and_never_crashes_on_bad_gaussians():
    """Behind the camera, before the near plane, beyond the far plane, off-screen, and non-finite
    means, scales or quaternions: radius 0 and zeros, never an error."""
    means, quats, scales, viewmats, Ks = scene(8, 1, 16, 16, torch.float64)
    eye_z = -4.0  # scene() puts camera 0 at (0, -0.5, -4) looking at the origin
    means[0] = torch.tensor([0.0, -0.5, eye_z - 1.0])  # behind
    means[1] = torch.tensor([0.0, -0.5, eye_z + 0.005])  # inside the near plane (0.01)
    means[2] = torch.tensor([50.0, 0.0, 0.0])  # far off-screen
    means[3, 0] = float("nan")
    scales[4, 1] = float("inf")
    quats[5] = 0.0
    quats[6, 2] = float("nan")
    means2d, conics, depths, radii = splat.project_gaussians(means, quats, scales, viewmats, Ks, 16, 16)
    assert radii[0, :7].tolist() == [0] * 7 and radii[0, 7] > 0
    assert torch.all(means2d[0, :7] == 0) and torch.all(conics[0, :7] == 0) and torch.all(depths[0, :7] == 0)
    far = splat.project_gaussians(means, quats, scales, viewmats, Ks, 16, 16, far_plane=3.0)[3]
    assert far[0, 7] == 0  # the remaining Gaussian lies beyond 3 units


@pytest.mark.parametrize("dtype", DTYPES)
def test_projection_matches_gsplat_torch_impl(dtype):
    """means2d, conics and depths equal gsplat's _fully_fused_projection (eps2d 0.3, pinhole) on the
    Gaussians both keep; gsplat 1.5's radii are per axis at 3.33 sigma, ours one radius at 3 sigma."""
    impl = pytest.importorskip("gsplat.cuda._torch_impl")
    means, quats, scales, viewmats, Ks = scene(64, 2, 40, 30, dtype, spread=1.5)
    covars = ref.covariance(quats, scales)
    radii_g, means2d_g, depths_g, conics_g, _ = impl._fully_fused_projection(means, covars, viewmats, Ks, 40, 30)
    means2d, conics, depths, radii = splat.project_gaussians(means, quats, scales, viewmats, Ks, 40, 30)
    both = (radii > 0) & (radii_g > 0).all(-1)
    assert both.sum() > 20
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(means2d[both], means2d_g[both], **tol)
    torch.testing.assert_close(conics[both], conics_g[both], **tol)
    torch.testing.assert_close(depths[both], depths_g[both], **tol)


def test_projection_gradients_match_reference_autograd():
    means, quats, scales, viewmats, Ks = scene(50, 3, 24, 20, torch.float64, spread=1.5)
    ours = [t.clone().requires_grad_() for t in (means, quats, scales)]
    theirs = [t.clone().requires_grad_() for t in (means, quats, scales)]
    out = splat.project_gaussians(*ours, viewmats, Ks, 24, 20)
    want = ref.project_gaussians(*theirs, viewmats, Ks, 24, 20)
    g = torch.Generator().manual_seed(3)
    weights = [torch.randn(o.shape, generator=g, dtype=torch.float64) for o in out[:3]]
    got = torch.autograd.grad(sum((o * w).sum() for o, w in zip(out[:3], weights, strict=True)), ours)
    expected = torch.autograd.grad(sum((o * w).sum() for o, w in zip(want[:3], weights, strict=True)), theirs)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)


def test_projection_gradcheck():
    means, quats, scales, viewmats, Ks = scene(4, 2, 16, 16, torch.float64, scale=0.5)
    inputs = [t.clone().requires_grad_() for t in (means, quats, scales)]

    def f(m, q, s):
        return splat.project_gaussians(m, q, s, viewmats, Ks, 16, 16)[:3]

    assert (splat.project_gaussians(means, quats, scales, viewmats, Ks, 16, 16)[3] > 0).all()
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5)


def test_tile_bin_matches_reference_and_gsplat():
    binned = []
    for seed, (N, C, W, H, ts) in enumerate([(30, 2, 40, 30, 8), (300, 3, 64, 40, 16), (5, 1, 7, 5, 4)]):
        means, quats, scales, viewmats, Ks = scene(N, C, W, H, torch.float32, torch.Generator().manual_seed(seed))
        means2d, _, depths, radii = splat.project_gaussians(means, quats, scales, viewmats, Ks, W, H)
        tx, ty = -(-W // ts), -(-H // ts)
        offsets, ids = splat.tile_bin(means2d, radii, depths, ts, tx, ty)
        want_offsets, want_ids = ref.tile_bin(means2d, radii, depths, ts, tx, ty)
        assert torch.equal(offsets, want_offsets) and torch.equal(ids, want_ids)
        binned.append((means2d, radii, depths, ts, tx, ty, ids))
    impl = pytest.importorskip("gsplat.cuda._torch_impl")
    for means2d, radii, depths, ts, tx, ty, ids in binned:
        C, N = radii.shape
        _, _, g_ids = impl._isect_tiles(means2d, radii[..., None].expand(C, N, 2), depths, ts, tx, ty)
        assert torch.equal(ids, g_ids.to(torch.int32))


def test_tile_bin_orders_depth_ties_by_gaussian_index():
    means2d = torch.full((1, 6, 2), 8.0)
    radii = torch.full((1, 6), 3, dtype=torch.int32)
    depths = torch.tensor([[2.0, 1.0, 2.0, 1.0, 3.0, 1.0]])
    offsets, ids = splat.tile_bin(means2d, radii, depths, 16, 1, 1)
    assert offsets.tolist() == [[[0]]] and ids.tolist() == [1, 3, 5, 0, 2, 4]


def compare_rasterize(args, dtype, grads=False):
    """rasterize (and, with grads, its backward) against the reference on the same inputs."""
    tensors = [a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
               for a in args]  # fmt: skip
    theirs = [a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
              for a in args]  # fmt: skip
    render, alpha, last = splat.rasterize(*tensors)
    want_render, want_alpha, want_last = ref.rasterize(*theirs)
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(render, want_render, **tol)
    torch.testing.assert_close(alpha, want_alpha, **tol)
    assert torch.equal(last, want_last)
    if not grads:
        return
    g = torch.Generator().manual_seed(7)
    grad_render = torch.randn(render.shape, generator=g, dtype=torch.float64).to(dtype)
    grad_alpha = torch.randn(alpha.shape, generator=g, dtype=torch.float64).to(dtype)
    wrt = [t for t in tensors if isinstance(t, torch.Tensor) and t.requires_grad]
    wrt_ref = [t for t in theirs if isinstance(t, torch.Tensor) and t.requires_grad]
    got = torch.autograd.grad((render, alpha), wrt, (grad_render, grad_alpha))
    want = torch.autograd.grad((want_render, want_alpha), wrt_ref, (grad_render, grad_alpha))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-9 if dtype == torch.float64 else 2e-3, rtol=1e-6)


@pytest.mark.parametrize("D", [1, 3, 16, 32, 64, 192, 513, 1536])
def test_rasterize_matches_reference_for_any_width(D):
    args = raster_inputs(N=60, C=2, width=29, height=21, D=D, tile_size=8, dtype=torch.float32,
                         generator=torch.Generator().manual_seed(D), background=D % 2 == 1, max_opacity=1.0)  # fmt: skip
    compare_rasterize(args, torch.float32, grads=D in (3, 64, 513))


@pytest.mark.parametrize("layout", ["shared", "per-camera"])
def test_rasterize_gradients_match_reference_autograd(layout):
    per_camera = layout == "per-camera"
    args = raster_inputs(N=80, C=2, width=24, height=19, D=5, tile_size=8, dtype=torch.float64,
                         camera_features=per_camera, camera_opacities=per_camera, background=not per_camera,
                         max_opacity=1.0)  # fmt: skip
    compare_rasterize(args, torch.float64, grads=True)


def test_rasterize_gradcheck():
    """float64 finite differences on a tiny scene: a few Gaussians, 16x16 pixels, 2 cameras."""
    means2d, conics, features, opacities, offsets, ids, W, H, ts, bg = raster_inputs(
        N=4, C=2, width=16, height=16, D=3, tile_size=8, background=True, scale=0.6
    )
    assert ids.numel() > 4

    def f(m, c, feat, o, b):
        return splat.rasterize(m, c, feat, o, offsets, ids, W, H, ts, b)[:2]

    inputs = [t.clone().requires_grad_() for t in (means2d, conics, features, opacities * 0.8, bg)]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-7, atol=1e-5)


def test_rasterize_with_no_gaussians_renders_the_background():
    args = list(raster_inputs(N=3, C=2, width=10, height=7, D=4, tile_size=4, background=True))
    args[0], args[1] = args[0][:, :0], args[1][:, :0]
    args[2], args[3] = args[2][:0], args[3][:0]
    args[4] = torch.zeros_like(args[4])
    args[5] = args[5][:0]
    render, alpha, last = splat.rasterize(*args)
    assert torch.equal(render, args[9][:, None, None].expand(2, 7, 10, 4))
    assert torch.all(alpha == 0) and torch.all(last == -1)


def test_rasterize_saturates_and_stops():
    """Many opaque Gaussians over one pixel: it stops when T would fall to 1e-4 (that Gaussian
    excluded), so alpha stays just below 1 and later Gaussians get no gradient."""
    N = 12
    means2d = torch.full((1, N, 2), 4.5, dtype=torch.float64)
    conics = torch.tensor([0.05, 0.0, 0.05], dtype=torch.float64).expand(1, N, 3).contiguous()
    features = torch.arange(N, dtype=torch.float64)[:, None]
    opacities = torch.full((N,), 0.95, dtype=torch.float64)
    radii = torch.full((1, N), 8, dtype=torch.int32)
    depths = torch.arange(N, dtype=torch.float64)[None] + 1
    offsets, ids = splat.tile_bin(means2d, radii, depths, 8, 1, 1)
    args = (means2d, conics, features, opacities, offsets, ids, 8, 8, 8, None)
    render, alpha, last = splat.rasterize(*args)
    assert last[0, 4, 4] == 2  # 0.05^3 = 1.25e-4 > 1e-4 after three; the fourth would go below
    assert alpha[0, 4, 4, 0] == pytest.approx(1 - 0.05**3)
    compare_rasterize(args, torch.float64, grads=True)


def test_rasterize_a_gaussian_covering_the_whole_image():
    means2d = torch.tensor([[[20.0, 15.0], [3.0, 3.0]]], dtype=torch.float64)
    conics = torch.tensor([[[1e-4, 0.0, 1e-4], [0.5, 0.1, 0.4]]], dtype=torch.float64)
    radii = torch.tensor([[300, 6]], dtype=torch.int32)
    depths = torch.tensor([[5.0, 1.0]], dtype=torch.float64)
    offsets, ids = splat.tile_bin(means2d, radii, depths, 8, 5, 4)
    assert (offsets.flatten().diff() >= 1).all()  # every tile holds the big one
    args = (means2d, conics, torch.rand(2, 6, dtype=torch.float64), torch.tensor([0.7, 0.9], dtype=torch.float64),
            offsets, ids, 40, 30, 8, None)  # fmt: skip
    compare_rasterize(args, torch.float64, grads=True)
    assert (splat.rasterize(*args)[1] > 0.5).all()


def test_rasterize_skips_non_finite_gaussians():
    args = list(raster_inputs(N=20, C=1, width=16, height=16, D=3, tile_size=8))
    clean = splat.rasterize(*args)
    means2d, opacities = args[0].clone(), args[3].clone()
    means2d[0, 0, 0] = float("nan")
    opacities[1] = float("inf")
    args[0], args[3] = means2d, opacities
    render, alpha, _ = splat.rasterize(*args)
    assert torch.isfinite(render).all() and torch.isfinite(alpha).all()
    compare_rasterize(args, torch.float64)
    assert not torch.equal(render, clean[0])


def test_full_pipeline_matches_reference_rasterization():
    means, quats, scales, viewmats, Ks = scene(120, 2, 48, 32, torch.float32, spread=1.5)
    features = torch.rand(120, 8)
    opacities = torch.rand(120)
    means2d, conics, depths, radii = splat.project_gaussians(means, quats, scales, viewmats, Ks, 48, 32)
    offsets, ids = splat.tile_bin(means2d, radii, depths, 16, 3, 2)
    render, alpha, _ = splat.rasterize(means2d, conics, features, opacities, offsets, ids, 48, 32, 16)
    want_render, want_alpha = ref.rasterization(means, quats, scales, opacities, features, viewmats, Ks, 48, 32)
    torch.testing.assert_close(render, want_render, **TOLERANCES[torch.float32])
    torch.testing.assert_close(alpha, want_alpha, **TOLERANCES[torch.float32])


def test_opcheck():
    means, quats, scales, viewmats, Ks = scene(10, 2, 16, 16, torch.float32)
    means2d, conics, depths, radii = P.project_gaussians(means, quats, scales, viewmats, Ks, 16, 16)
    torch.library.opcheck(P.project_gaussians, (means, quats, scales, viewmats, Ks, 16, 16))
    torch.library.opcheck(
        P.project_gaussians_backward,
        (means, quats, scales, viewmats, Ks, 16, 16, 0.3, radii, torch.ones(2, 10, 2), torch.ones(2, 10, 3),
         torch.ones(2, 10)),
    )  # fmt: skip
    torch.library.opcheck(P.tile_bin, (means2d, radii, depths, 8, 2, 2))
    args = raster_inputs(N=10, C=2, width=16, height=16, D=3, tile_size=8, dtype=torch.float32, background=True)
    args = tuple(a.requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
    torch.library.opcheck(P.rasterize, args)
    render, alpha, last = P.rasterize(*args)
    back = (*[a.detach() if isinstance(a, torch.Tensor) else a for a in args], alpha.detach(), last,
            torch.ones_like(render), torch.ones_like(alpha))  # fmt: skip
    torch.library.opcheck(P.rasterize_backward, back)


@pytest.mark.parametrize("tile_size", [1, 2, 3, 5, 24])
def test_rasterize_any_tile_size(tile_size):
    """Tiles narrower than a vector and wider than the image (the CPU takes any tile_size; the
    kernels' row scratch is padded for whole-vector stores)."""
    for D in (1, 3, 9, 17):
        args = raster_inputs(N=25, C=1, width=13, height=9, D=D, tile_size=tile_size, dtype=torch.float32,
                             background=True, max_opacity=1.0, scale=0.4)  # fmt: skip
        compare_rasterize(args, torch.float32, grads=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_gradients_come_from_a_float32_walk(dtype):
    """The backward of float16/bfloat16 inputs walks back from an alpha recomputed in float32 (a
    rounded saved alpha would zero the gradients of nearly opaque pixels): its gradients are the
    float32 gradients of the same (rounded) inputs, rounded once."""
    args = raster_inputs(N=300, C=1, width=24, height=20, D=5, tile_size=8, dtype=torch.float32, background=True,
                         max_opacity=1.0, spread=0.5, scale=0.5)  # fmt: skip
    low = [a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    results = []
    for inputs in (low, [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in low]):
        leaves = [a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                  for a in inputs]  # fmt: skip
        render, alpha, _ = splat.rasterize(*leaves)
        grad = torch.ones_like(render)
        results.append(torch.autograd.grad((render, alpha), [a for a in leaves if isinstance(a, torch.Tensor)
                                                             and a.requires_grad], (grad, torch.ones_like(alpha))))  # fmt: skip
    assert (1 - splat.rasterize(*low)[1].float()).min() < 0.004  # some pixels are nearly opaque
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want.to(dtype), **TOLERANCES[dtype])
