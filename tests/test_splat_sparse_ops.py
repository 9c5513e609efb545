"""The sparse coefficient ops (rasterize_sparse_coef and its backward, rasterize_sparse_features,
language_relevancy) against the oracles of LangSplatV2's math: the sparse splat equals the dense
splat of the scattered coefficients (part 1's rasterize); the fused decode equals a dense
D-channel splat of w S (linearity); the relevancy equals the official formula on explicitly formed
features; gradients against the dense path's and gradcheck; edge cases; opcheck."""

import pytest
import torch
from conftest import TOLERANCES
from splat_sparse_cases import sparse_inputs

from prismkit.ops import splat
from prismkit.reference import splat as ref

P = torch.ops.prismkit


def float_leaves(args):
    return [a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]


def grads_of(outputs, leaves, cotangents):
    wrt = [a for a in leaves if isinstance(a, torch.Tensor) and a.requires_grad]
    return torch.autograd.grad(outputs, wrt, cotangents, allow_unused=True)


def as_raster_args(args):
    """rasterize's arguments for the dense splat of the scattered coefficients."""
    means2d, conics, opacities, idx, w, num_coefs, offsets, ids, W, H, ts = args
    return (means2d, conics, ref.scatter_coefficients(idx, w, num_coefs), opacities, offsets, ids, W, H, ts, None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "N, C, W, H, P_, nc, ts, index_dtype",
    [(30, 2, 19, 13, 4, 12, 8, torch.int64), (1, 1, 5, 3, 1, 1, 16, torch.int32), (80, 1, 33, 17, 12, 192, 16,
     torch.int64), (40, 3, 16, 16, 0, 5, 4, torch.int32), (25, 2, 24, 10, 7, 64, 5, torch.int32)],
)  # fmt: skip
def test_sparse_coef_equals_the_dense_splat_of_the_scattered_coefficients(dtype, N, C, W, H, P_, nc, ts, index_dtype):
    g = torch.Generator().manual_seed(N + nc)
    args = sparse_inputs(N, C, W, H, P_, nc, ts, dtype, g, index_dtype, camera_opacities=C == 3, max_opacity=1.0)
    weight_map, alpha, last = splat.rasterize_sparse_coef(*args)
    want, want_alpha, want_last = P.rasterize(*as_raster_args(args))
    torch.testing.assert_close(weight_map, want, **TOLERANCES[dtype])
    torch.testing.assert_close(alpha, want_alpha, **TOLERANCES[dtype])
    assert torch.equal(last, want_last)  # the same pixels stop at the same Gaussian


def test_duplicate_indices_within_a_gaussian_add_up():
    args = list(sparse_inputs(N=20, C=1, width=16, height=16, P=4, num_coefs=6))
    idx = args[3].clone()
    idx[:, 1] = idx[:, 0]
    args[3] = idx
    merged = list(args)
    merged[3], merged[4] = idx[:, 1:], torch.cat([args[4][:, :1] + args[4][:, 1:2], args[4][:, 2:]], 1)
    torch.testing.assert_close(splat.rasterize_sparse_coef(*args)[0], splat.rasterize_sparse_coef(*merged)[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sparse_coef_gradients_match_the_dense_path(dtype):
    """dL/dweight[i, k] is the dense gradient of coefficient index[i, k] (gathered); means2d, conics
    and opacities get the dense path's gradients."""
    args = sparse_inputs(N=60, C=2, width=21, height=18, P=5, num_coefs=9, dtype=dtype, max_opacity=1.0)
    ours = float_leaves(args)
    weight_map, alpha, _ = splat.rasterize_sparse_coef(*ours)
    g = torch.Generator().manual_seed(5)
    cot = (torch.randn(weight_map.shape, generator=g, dtype=torch.float64).to(dtype),
           torch.randn(alpha.shape, generator=g, dtype=torch.float64).to(dtype))  # fmt: skip
    got = grads_of((weight_map, alpha), ours, cot)
    means2d, conics, opacities, idx, w, nc, offsets, ids, W, H, ts = float_leaves(args)
    # the dense splat of the same coefficients, differentiated at them
    scattered = ref.scatter_coefficients(idx, w.detach(), nc)
    render, want_alpha, _ = P.rasterize(means2d, conics, scattered.requires_grad_(), opacities, offsets, ids, W, H,
                                        ts, None)  # fmt: skip
    gm, gc, go, gd = torch.autograd.grad((render, want_alpha), (means2d, conics, opacities, scattered), cot)
    tol = dict(atol=1e-9, rtol=1e-7) if dtype == torch.float64 else dict(atol=2e-4, rtol=1e-4)
    for a, b in zip(got, (gm, gc, go, gd.gather(1, idx.long())), strict=True):
        torch.testing.assert_close(a, b, **tol)


def test_sparse_coef_gradcheck():
    args = sparse_inputs(N=5, C=2, width=12, height=10, P=3, num_coefs=4, tile_size=4, scale=0.6)
    means2d, conics, opacities, idx, w, nc, offsets, ids, W, H, ts = args
    assert ids.numel() > 5

    def f(m, c, o, wt):
        return splat.rasterize_sparse_coef(m, c, o, idx, wt, nc, offsets, ids, W, H, ts)[:2]

    inputs = [t.clone().requires_grad_() for t in (means2d, conics, opacities * 0.8, w)]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-7, atol=1e-5)


@pytest.mark.parametrize("D", [3, 64, 512])
@pytest.mark.parametrize("normalize", [False, True])
def test_fused_decode_equals_the_dense_splat_of_w_times_the_codebook(D, normalize):
    """Linearity: per level, splatting the weights then multiplying by S equals splatting each
    Gaussian's feature w S directly (the original LangSplat way), all levels in one pass."""
    levels, L = 3, 8
    g = torch.Generator().manual_seed(D)
    args = sparse_inputs(N=50, C=2, width=23, height=17, P=6, num_coefs=levels * L, dtype=torch.float32, generator=g)
    means2d, conics, opacities, idx, w, _, offsets, ids, W, H, ts = args
    codebook = torch.randn(levels, L, D, generator=g)
    features = splat.rasterize_sparse_features(means2d, conics, opacities, idx, w, codebook, offsets, ids, W, H, ts,
                                               normalize=normalize)  # fmt: skip
    dense = ref.scatter_coefficients(idx, w, levels * L).view(-1, levels, L)
    per_gaussian = torch.einsum("nlk,lkd->nld", dense, codebook).reshape(-1, levels * D)
    want = P.rasterize(means2d, conics, per_gaussian, opacities, offsets, ids, W, H, ts, None)[0]
    want = want.view(2, H, W, levels, D)
    if normalize:
        want = torch.nn.functional.normalize(want, dim=-1)
    scale = codebook.abs().max().item()
    torch.testing.assert_close(features, want, atol=2e-5 * scale, rtol=1e-4)


@pytest.mark.parametrize("normalize", [False, True])
def test_sparse_features_gradients(normalize):
    """gradcheck in float64 (codebook included), and float32 gradients against the reference's autograd."""
    args = sparse_inputs(N=5, C=1, width=10, height=9, P=3, num_coefs=6, tile_size=4, scale=0.6)
    means2d, conics, opacities, idx, w, _, offsets, ids, W, H, ts = args
    codebook = torch.randn(2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def f(m, c, o, wt, book):
        return splat.rasterize_sparse_features(m, c, o, idx, wt, book, offsets, ids, W, H, ts, normalize=normalize)

    inputs = [t.clone().requires_grad_() for t in (means2d, conics, opacities * 0.8, w, codebook)]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-7, atol=1e-5)
    big = sparse_inputs(N=60, C=2, width=20, height=18, P=4, num_coefs=8, dtype=torch.float32)
    means2d, conics, opacities, idx, w, _, offsets, ids, W, H, ts = big
    codebook = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(2))
    ours = float_leaves((means2d, conics, opacities, w, codebook))
    theirs = float_leaves((means2d, conics, opacities, w, codebook))
    out = splat.rasterize_sparse_features(*ours[:3], idx, ours[3], ours[4], offsets, ids, W, H, ts, normalize)
    want = ref.rasterize_sparse_features(*theirs[:3], idx, theirs[3], theirs[4], offsets, ids, W, H, ts, normalize)
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    for a, b in zip(torch.autograd.grad(out, ours, cot), torch.autograd.grad(want, theirs, cot), strict=True):
        torch.testing.assert_close(a, b, atol=5e-4, rtol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relevancy_equals_the_official_formula_on_formed_features(dtype):
    levels, L, D = 3, 16, 32
    g = torch.Generator().manual_seed(7)
    args = sparse_inputs(N=70, C=2, width=25, height=19, P=4, num_coefs=levels * L, dtype=dtype, generator=g)
    means2d, conics, opacities, idx, w, _, offsets, ids, W, H, ts = args
    codebook = torch.randn(levels, L, D, generator=g, dtype=torch.float64).to(dtype)
    unit = lambda n: torch.nn.functional.normalize(torch.randn(n, D, generator=g, dtype=torch.float64), dim=-1)  # noqa: E731
    queries, negatives = unit(3).to(dtype), unit(4).to(dtype)
    rel = splat.language_relevancy(means2d, conics, opacities, idx, w, codebook, queries, negatives, offsets, ids, W,
                                   H, ts)  # fmt: skip
    want = ref.language_relevancy(means2d, conics, opacities, idx, w, codebook, queries, negatives, offsets, ids, W, H,
                                  ts)  # fmt: skip
    assert rel.shape == (2, H, W, levels, 3)
    torch.testing.assert_close(rel, want, **(TOLERANCES[dtype] if dtype == torch.float64 else dict(atol=2e-4, rtol=0)))
    # the closed form sigmoid(10 (f.q - max_j f.c_j)) on the explicitly formed normalized features
    f = ref.rasterize_sparse_features(means2d, conics, opacities, idx, w, codebook, offsets, ids, W, H, ts, True)
    closed = torch.sigmoid(10 * (f @ queries.T - (f @ negatives.T).amax(-1, keepdim=True)))
    torch.testing.assert_close(want, closed, **TOLERANCES[dtype])
    # invariant to the features' scale (they are normalized); a pixel no Gaussian reaches is 0.5
    scaled = splat.language_relevancy(means2d, conics, opacities, idx, w, 7.5 * codebook, queries, negatives,
                                      offsets, ids, W, H, ts)  # fmt: skip
    torch.testing.assert_close(scaled, rel, atol=2e-4 if dtype == torch.float32 else 1e-9, rtol=0)
    empty = P.rasterize_sparse_coef(*args)[1][..., 0] == 0
    assert empty.any() and torch.all(rel[empty] == 0.5)


def test_no_gaussians_and_no_pairs():
    args = list(sparse_inputs(N=3, C=2, width=10, height=7, P=2, num_coefs=4, tile_size=4))
    args[0], args[1], args[2] = args[0][:, :0], args[1][:, :0], args[2][:0]
    args[3], args[4] = args[3][:0], args[4][:0]
    args[6], args[7] = torch.zeros_like(args[6]), args[7][:0]
    weight_map, alpha, last = splat.rasterize_sparse_coef(*args)
    assert weight_map.shape == (2, 7, 10, 4) and torch.all(weight_map == 0) and torch.all(alpha == 0)
    assert torch.all(last == -1)
    codebook = torch.randn(2, 2, 5, dtype=torch.float64)
    features = splat.rasterize_sparse_features(*args[:5], codebook, *args[6:], normalize=True)
    assert features.shape == (2, 7, 10, 2, 5) and torch.all(features == 0)
    q = torch.randn(1, 5, dtype=torch.float64)
    rel = splat.language_relevancy(*args[:5], codebook, q, q, *args[6:])
    assert torch.all(rel == 0.5)


def test_nan_weights_reach_the_pixels_of_their_gaussian_and_nothing_crashes():
    args = list(sparse_inputs(N=20, C=1, width=16, height=16, P=3, num_coefs=5))
    w = args[4].clone()
    w[0, 0] = float("nan")
    args[4] = w
    weight_map, alpha, _ = splat.rasterize_sparse_coef(*args)
    assert torch.isfinite(alpha).all()
    assert torch.isnan(weight_map).any()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_is_computed_in_float32(dtype):
    args = sparse_inputs(N=40, C=1, width=20, height=14, P=4, num_coefs=8, dtype=torch.float32)
    low = [a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    up = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in low]
    got = splat.rasterize_sparse_coef(*low)
    want = splat.rasterize_sparse_coef(*up)
    assert got[0].dtype == dtype
    torch.testing.assert_close(got[0], want[0].to(dtype), **TOLERANCES[dtype])
    leaves = float_leaves(low)
    out, alpha, _ = splat.rasterize_sparse_coef(*leaves)
    grads = grads_of((out, alpha), leaves, (torch.ones_like(out), torch.ones_like(alpha)))
    assert all(g.dtype == dtype and torch.isfinite(g.float()).all() for g in grads)


def test_opcheck():
    args = sparse_inputs(N=10, C=2, width=16, height=16, P=3, num_coefs=6, dtype=torch.float32)
    leaves = tuple(float_leaves(args))
    torch.library.opcheck(P.rasterize_sparse_coef, leaves)
    weight_map, alpha, last = P.rasterize_sparse_coef(*args)
    torch.library.opcheck(P.rasterize_sparse_coef_backward,
                          (*args, alpha, last, torch.ones_like(weight_map), torch.ones_like(alpha)))  # fmt: skip
    means2d, conics, opacities, idx, w, _, offsets, ids, W, H, ts = leaves
    codebook = torch.randn(2, 3, 5).requires_grad_()
    for normalize in (False, True):
        torch.library.opcheck(P.rasterize_sparse_features,
                              (means2d, conics, opacities, idx, w, codebook, offsets, ids, W, H, ts, normalize))  # fmt: skip
    q, neg = torch.randn(2, 5), torch.randn(4, 5)
    torch.library.opcheck(P.language_relevancy,
                          tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in
                                (means2d, conics, opacities, idx, w, codebook, q, neg, offsets, ids, W, H, ts)))  # fmt: skip
