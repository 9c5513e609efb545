"""The splat ops on CUDA tensors (skipped without a GPU): the CUDA kernels against the CPU kernels
and the reference, float32 and float64 to tolerance, binning exactly; bfloat16 by the "twice the
eager error" rule against a float64 reference."""

import pytest
import torch
from conftest import TOLERANCES
from splat_cases import raster_inputs, scene

from prismkit.ops import splat
from prismkit.reference import splat as ref

pytestmark = pytest.mark.gpu


def cuda(args):
    return tuple(a.cuda() if isinstance(a, torch.Tensor) else a for a in args)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_projection_and_binning_match_the_cpu(dtype):
    for N, C, W, H in [(1, 1, 16, 16), (300, 3, 67, 45), (5000, 2, 256, 192)]:
        means, quats, scales, viewmats, Ks = scene(N, C, W, H, dtype, spread=2.0)
        cpu = splat.project_gaussians(means, quats, scales, viewmats, Ks, W, H)
        gpu = splat.project_gaussians(*cuda((means, quats, scales, viewmats, Ks)), W, H)
        # nvcc fuses multiply-adds, so a radius on an integer boundary may round the other way
        assert (gpu[3].cpu() - cpu[3]).abs().max() <= 1 and (gpu[3].cpu() != cpu[3]).float().mean() < 1e-3
        kept = (gpu[3].cpu() > 0) & (cpu[3] > 0)
        for g, c in zip(gpu[:3], cpu[:3], strict=True):
            torch.testing.assert_close(g.cpu()[kept], c[kept], **TOLERANCES[dtype])
        tx, ty = -(-W // 16), -(-H // 16)
        offsets, ids = splat.tile_bin(*cpu[0:1], cpu[3], cpu[2], 16, tx, ty)
        g_offsets, g_ids = splat.tile_bin(*cuda((cpu[0], cpu[3], cpu[2])), 16, tx, ty)
        assert torch.equal(g_offsets.cpu(), offsets) and torch.equal(g_ids.cpu(), ids)


def test_projection_gradients_match_the_cpu():
    means, quats, scales, viewmats, Ks = scene(200, 2, 64, 48, torch.float64, spread=1.5)
    grads = []
    for device in ("cpu", "cuda"):
        leaves = [t.to(device).requires_grad_() for t in (means, quats, scales)]
        out = splat.project_gaussians(*leaves, viewmats.to(device), Ks.to(device), 64, 48)
        loss = sum((o.double() * (i + 1)).sin().sum() for i, o in enumerate(out[:3]))
        grads.append([g.cpu() for g in torch.autograd.grad(loss, leaves)])
    for g, c in zip(*grads, strict=True):
        torch.testing.assert_close(g, c, atol=1e-9, rtol=1e-9)


def assert_compositing_matches_the_cpu(op, args, dtype):
    """op(*args) (a compositing op returning (out, alpha, last_ids)) on CUDA against the CPU: the
    outputs to tolerance, last_ids exactly, and the gradients of every floating input."""
    results = []
    for device_args in (args, cuda(args)):
        leaves = [a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                  for a in device_args]  # fmt: skip
        out, alpha, last = op(*leaves)
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=dtype).to(out.device)
        wrt = [a for a in leaves if isinstance(a, torch.Tensor) and a.requires_grad]
        grads = torch.autograd.grad((out, alpha), wrt, (grad, torch.ones_like(alpha)))
        results.append([t.detach().cpu() for t in (out, alpha, last, *grads)])
    cpu, gpu = results
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(gpu[0], cpu[0], **tol)
    torch.testing.assert_close(gpu[1], cpu[1], **tol)
    assert torch.equal(gpu[2], cpu[2])
    for g, c in zip(gpu[3:], cpu[3:], strict=True):
        torch.testing.assert_close(g, c, atol=1e-3 if dtype == torch.float32 else 1e-9, rtol=1e-4)


@pytest.mark.parametrize("D", [1, 3, 32, 64, 192, 513, 1536])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tile_size", [16, 5])
def test_rasterize_matches_the_cpu(D, dtype, tile_size):
    args = raster_inputs(N=200, C=2, width=45, height=33, D=D, tile_size=tile_size, dtype=dtype, background=D % 2 == 1,
                         max_opacity=1.0, generator=torch.Generator().manual_seed(D))  # fmt: skip
    assert_compositing_matches_the_cpu(splat.rasterize, args, dtype)


def test_rasterize_bfloat16_within_twice_the_eager_error():
    args = raster_inputs(N=300, C=1, width=64, height=48, D=16, tile_size=16, dtype=torch.float64)
    want = ref.rasterize(*args)[0]
    low = tuple(a.to(torch.bfloat16) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
    eager = ref.rasterize(*cuda(low))[0].cpu()
    got = splat.rasterize(*cuda(low))[0].cpu()
    assert (got.double() - want).abs().max() <= 2 * (eager.double() - want).abs().max() + 1e-6


def test_rasterize_skips_non_finite_gaussians_on_cuda():
    args = list(raster_inputs(N=30, C=1, width=32, height=32, D=3, tile_size=16, dtype=torch.float32))
    means2d, opacities = args[0].clone(), args[3].clone()
    means2d[0, 0, 0] = float("nan")
    opacities[1] = float("inf")
    args[0], args[3] = means2d, opacities
    cpu = splat.rasterize(*args)
    gpu = splat.rasterize(*cuda(args))
    torch.testing.assert_close(gpu[0].cpu(), cpu[0], atol=1e-4, rtol=1e-4)
    assert torch.equal(gpu[2].cpu(), cpu[2])


def test_rasterize_refuses_tiles_wider_than_16_on_cuda():
    args = cuda(raster_inputs(N=20, C=1, width=64, height=64, D=3, tile_size=32, dtype=torch.float32))
    with pytest.raises(ValueError, match="prismkit::rasterize: .*tile_size"):
        splat.rasterize(*args)


def test_full_pipeline_on_cuda_matches_the_cpu():
    from prismkit import splat as method

    s = method.scenes.synthetic_scene(20_000)
    viewmats, Ks = method.stack_cameras(s.cameras(2, 320, 240))
    tensors = (s.means, s.quats, s.scales, s.opacities, s.colors, viewmats, Ks)
    cpu = method.rasterization(*tensors, 320, 240)[0]
    gpu = method.rasterization(*cuda(tensors), 320, 240)[0].cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_gradients_on_cuda(dtype):
    """As on the CPU: the float16/bfloat16 backward walks back from an alpha recomputed in float32, so
    its gradients are the float32 gradients of the same rounded inputs, rounded once."""
    args = raster_inputs(N=300, C=1, width=24, height=20, D=5, tile_size=8, dtype=torch.float32, background=True,
                         max_opacity=1.0, spread=0.5, scale=0.5)  # fmt: skip
    low = cuda([a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args])
    results = []
    for inputs in (low, [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in low]):
        leaves = [a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                  for a in inputs]  # fmt: skip
        render, alpha, _ = splat.rasterize(*leaves)
        wrt = [a for a in leaves if isinstance(a, torch.Tensor) and a.requires_grad]
        results.append(torch.autograd.grad((render, alpha), wrt, (torch.ones_like(render), torch.ones_like(alpha))))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got.cpu(), want.to(dtype).cpu(), atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("num_coefs", [12, 192, 1000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tile_size", [16, 5, 12])
def test_sparse_coef_matches_the_cpu(num_coefs, dtype, tile_size):
    """192 float32 channels take the shared-memory accumulator; 1000 (and float64 at 192) the
    per-pixel rows of the output; tiles of 5 and 12 leave threads of the last warp without a pixel."""
    from splat_sparse_cases import sparse_inputs

    args = sparse_inputs(N=300, C=2, width=45, height=33, P=12, num_coefs=num_coefs, tile_size=tile_size,
                         dtype=dtype, max_opacity=1.0)  # fmt: skip
    assert_compositing_matches_the_cpu(splat.rasterize_sparse_coef, args, dtype)


@pytest.mark.parametrize("levels, L, D", [(3, 64, 512), (1, 8, 3), (2, 4, 33)])
@pytest.mark.parametrize("normalize", [False, True])
def test_sparse_features_and_relevancy_match_the_cpu(levels, L, D, normalize):
    from splat_sparse_cases import sparse_inputs

    args = sparse_inputs(N=400, C=1, width=50, height=40, P=4 * levels, num_coefs=levels * L, tile_size=16,
                         dtype=torch.float32)  # fmt: skip
    means2d, conics, opacities, idx, w, _, offsets, ids, W, H, ts = args
    codebook = torch.randn(levels, L, D, generator=torch.Generator().manual_seed(D))
    rest = (codebook, offsets, ids, W, H, ts)
    cpu = splat.rasterize_sparse_features(means2d, conics, opacities, idx, w, *rest, normalize=normalize)
    gpu = splat.rasterize_sparse_features(*cuda((means2d, conics, opacities, idx, w, *rest)), normalize=normalize)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4 * codebook.abs().max().item(), rtol=1e-4)
    q = torch.nn.functional.normalize(torch.randn(5, D, generator=torch.Generator().manual_seed(1)), dim=-1)
    rel_args = (means2d, conics, opacities, idx, w, codebook, q[:1], q[1:], offsets, ids, W, H, ts)
    torch.testing.assert_close(splat.language_relevancy(*cuda(rel_args)).cpu(), splat.language_relevancy(*rel_args),
                               atol=2e-4, rtol=0)  # fmt: skip


def test_sparse_index_out_of_range_is_an_error_on_cuda():
    from splat_sparse_cases import sparse_inputs

    args = list(sparse_inputs(N=20, C=1, width=32, height=32, P=4, num_coefs=8, tile_size=16, dtype=torch.float32))
    args[3] = args[3].clone()
    args[3][3, 2] = 8
    with pytest.raises(IndexError, match=r"'coef_indices' must lie in \[0, num_coefs = 8\), got values in \[0, 8\]"):
        splat.rasterize_sparse_coef(*cuda(args))


def test_sparse_ops_with_nothing_to_render_on_cuda():
    from splat_sparse_cases import sparse_inputs

    args = list(sparse_inputs(N=3, C=2, width=10, height=7, P=2, num_coefs=4, tile_size=4, dtype=torch.float32))
    no_pairs = list(args)
    no_pairs[3], no_pairs[4] = args[3][:, :0], args[4][:, :0]
    none = list(args)
    none[0], none[1], none[2] = args[0][:, :0], args[1][:, :0], args[2][:0]
    none[3], none[4] = args[3][:0], args[4][:0]
    none[6], none[7] = torch.zeros_like(args[6]), args[7][:0]
    cameras = list(args)
    cameras[0], cameras[1], cameras[6] = args[0][:0], args[1][:0], args[6][:0]
    for case in (no_pairs, none, cameras):
        cpu = splat.rasterize_sparse_coef(*case)
        gpu = splat.rasterize_sparse_coef(*cuda(case))
        for g, c in zip(gpu, cpu, strict=True):
            assert torch.equal(g.cpu(), c)
        codebook = torch.randn(2, 2, 5)
        q = torch.randn(1, 5)
        rest = (*case[:5], codebook, *case[6:])
        torch.testing.assert_close(splat.rasterize_sparse_features(*cuda(rest), normalize=True).cpu(),
                                   splat.rasterize_sparse_features(*rest, normalize=True))  # fmt: skip
        rel = (*case[:5], codebook, q, q, *case[6:])
        torch.testing.assert_close(splat.language_relevancy(*cuda(rel)).cpu(), splat.language_relevancy(*rel))
