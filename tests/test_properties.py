"""Property-based sweeps (hypothesis) of every op against its reference: random shapes (0, 1,
primes, sizes that straddle the CPU kernels' tiles and vector widths), dtypes and arguments.

Examples are derandomized (a fixed seed per test) and bounded by the profile: "ci" (the default,
seconds per test) or "nightly" (``make test-nightly``: many more examples). The profiles are
registered in conftest.py.

Selections (top-k, thresholds) are compared exactly in float64, where a near-tie that a different
summation order could flip has probability ~0; in float32 the selection is checked for what it must
be (the selected values are the pre-activations, nothing unselected beats them beyond rounding),
so the sweep passes on any BLAS and processor.
"""

from __future__ import annotations

import pytest
import torch
from conftest import TOLERANCES
from cswin_cases import assert_forward_and_backward_match, make
from hypothesis import given, settings
from hypothesis import strategies as st
from sae_cases import HAS_TRITON, assert_code_equal

from prismkit.reference import sae as ref

P = torch.ops.prismkit
# batch and feature sizes: empty, one, primes, and both sides of the CPU tiles (512-row blocks,
# 1024-column tiles) and of the 8/16-lane vectors
BATCH = st.sampled_from([0, 1, 2, 3, 5, 7, 13, 17, 31, 37, 64, 511, 513])
LATENTS = st.sampled_from([1, 2, 3, 7, 16, 17, 31, 33, 127, 257, 1023, 1025])
FEATURES = st.sampled_from([1, 2, 3, 7, 8, 15, 16, 17, 33, 64, 65, 129])
DTYPES = st.sampled_from([torch.float64, torch.float32])
SEEDS = st.integers(0, 2**31 - 1)


def inputs(B, d, F, dtype, seed, bias_shift=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, d, generator=g, dtype=torch.float64)
    W = torch.randn(F, d, generator=g, dtype=torch.float64) / d**0.5
    b = torch.randn(F, generator=g, dtype=torch.float64) * 0.3 + bias_shift
    return x.to(dtype), W.to(dtype), b.to(dtype)


def check_selection(values, indices, offsets, acts, dtype, floor_of):
    """values are acts at the selected entries; no unselected entry beats floor_of(...) + tol."""
    tol = TOLERANCES[dtype]["atol"] * 10
    B = acts.shape[0]
    rows = (torch.arange(B)[:, None].expand_as(indices) if offsets is None
            else torch.repeat_interleave(torch.arange(B), offsets.diff()))  # fmt: skip
    torch.testing.assert_close(values, acts[rows, indices], atol=tol, rtol=tol, equal_nan=True)
    selected = torch.zeros_like(acts, dtype=torch.bool)
    selected[rows, indices] = True
    assert int(selected.sum()) == indices.numel()  # each entry once
    unselected = acts.masked_fill(selected, float("-inf"))
    assert (unselected <= floor_of(values, rows) + tol).all()


@given(B=BATCH, d=FEATURES, F=LATENTS, k=st.integers(1, 40), dtype=DTYPES, seed=SEEDS)
def test_topk_encode(B, d, F, k, dtype, seed):
    k = min(k, F)
    x, W, b = inputs(B, d, F, dtype, seed, bias_shift=-0.2)
    got = P.topk_encode(x, W, b, k)
    assert got[0].shape == got[1].shape == (B, k)
    if dtype == torch.float64:
        assert_code_equal(got, ref.topk_encode(x, W, b, k), dtype)
    else:
        acts = ref.pre_activations(x.double(), W.double(), b.double()).float()
        check_selection(*got, None, acts, dtype, lambda v, rows: v[:, -1:].expand(B, F) if B else v)
        assert (got[0][:, :-1] >= got[0][:, 1:]).all()  # descending


@given(B=BATCH, d=FEATURES, F=LATENTS, k=st.integers(1, 40), dtype=DTYPES, seed=SEEDS)
def test_batch_topk_encode(B, d, F, k, dtype, seed):
    k = min(k, F)
    x, W, b = inputs(B, d, F, dtype, seed, bias_shift=-0.2)
    got = P.batch_topk_encode(x, W, b, k)
    assert got[0].numel() <= k * B and got[2].shape == (B + 1,)
    if dtype == torch.float64:
        assert_code_equal(got, ref.batch_topk_encode(x, W, b, k), dtype)
    elif got[0].numel():
        acts = ref.pre_activations(x.double(), W.double(), b.double()).float()
        check_selection(*got, acts, dtype, lambda v, rows: v.min())


@given(B=BATCH, d=FEATURES, F=LATENTS, dtype=DTYPES, seed=SEEDS, cap_seed=SEEDS)
def test_feature_choice_encode(B, d, F, dtype, seed, cap_seed):
    x, W, b = inputs(B, d, F, dtype, seed)
    capacity = torch.randint(0, B + 3, (F,), generator=torch.Generator().manual_seed(cap_seed))  # some above B
    got = P.feature_choice_encode(x, W, b, capacity)
    if dtype == torch.float64:
        assert_code_equal(got, ref.feature_choice_encode(x, W, b, capacity), dtype)
    else:
        acts = ref.pre_activations(x.double(), W.double(), b.double()).float()
        check_feature_choice(got, acts, capacity, dtype)


def check_feature_choice(code, acts, capacity, dtype):
    """Latent j holds at most capacity[j] tokens; at capacity, no other token beats its smallest
    beyond rounding; below it, no other token is positive. Latents ascend within each token."""
    values, indices, offsets = code
    B, F = acts.shape
    tol = TOLERANCES[dtype]["atol"] * 10
    counts = torch.bincount(indices, minlength=F)
    assert (counts <= capacity.clamp(max=B)).all()
    if indices.numel():
        check_selection(values, indices, offsets, acts, dtype, lambda v, rows: float("inf"))
    rows = torch.repeat_interleave(torch.arange(B), offsets.diff())
    selected = torch.zeros_like(acts, dtype=torch.bool)
    selected[rows, indices] = True
    col_min = torch.full((F,), float("inf")).scatter_reduce(0, indices, values.float(), "amin")
    best_unselected = acts.masked_fill(selected, float("-inf")).max(0).values if B else torch.full((F,), -1.0)
    full = counts == capacity.clamp(max=B)
    assert (best_unselected[full] <= col_min[full] + tol).all()
    assert (best_unselected[~full] <= tol).all()
    same_row = rows[1:] == rows[:-1]
    assert (indices[1:][same_row] > indices[:-1][same_row]).all()


@given(B=BATCH, d=FEATURES, F=LATENTS, dtype=DTYPES, seed=SEEDS, bandwidth=st.sampled_from([0.01, 0.2, 1.0]))
def test_jumprelu_encode(B, d, F, dtype, seed, bandwidth):
    x, W, b = inputs(B, d, F, dtype, seed)
    threshold = torch.rand(F, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64).to(dtype) * 0.5
    values, indices, offsets, in_window = P.jumprelu_encode(x, W, b, threshold, bandwidth)
    kept = values != 0
    plain = P.threshold_encode(x, W, b, threshold)  # the same kernel's GEMM: the kept entries bit for bit
    assert torch.equal(indices[kept], plain[1]) and torch.equal(values[kept], plain[0])
    if dtype == torch.float64:
        assert_code_equal((values, indices, offsets, in_window), ref.jumprelu_encode(x, W, b, threshold, bandwidth),
                          dtype)  # fmt: skip


@given(R=st.sampled_from([0, 1, 2, 5]), n=st.sampled_from([1, 2, 3, 7, 16, 31, 64, 200]), k=st.integers(1, 6),
       seed=SEEDS, heavy=st.booleans())  # fmt: skip
def test_kmeans1d(R, n, k, seed, heavy):
    from prismkit.reference import quant as quant_ref

    k = min(k, n)
    values = torch.randn(R, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    values = values**3 if heavy else values.round(decimals=1)  # heavy tails, or many repeated values
    centers, boundaries = P.kmeans1d(values, k)
    want_c, want_b = quant_ref.kmeans1d(values, k)
    if heavy:  # distinct values: one optimum
        torch.testing.assert_close(centers, want_c, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(boundaries, want_b, rtol=1e-10, atol=1e-10)
    else:  # repeated values tie several partitions at the optimum (up to rounding): compare the cost
        from prismkit.quant import assign_clusters

        def cost(b):
            ids = assign_clusters(values, b)
            return sum(float((values[r][ids[r] == c] - values[r][ids[r] == c].mean()).pow(2).sum())
                       for r in range(R) for c in range(k) if (ids[r] == c).any())  # fmt: skip

        assert cost(boundaries) == pytest.approx(cost(want_b), abs=1e-9)


@given(B=BATCH, d=FEATURES, F=LATENTS, dtype=DTYPES, seed=SEEDS, with_threshold=st.booleans())
def test_threshold_encode_and_latent_stats(B, d, F, dtype, seed, with_threshold):
    x, W, b = inputs(B, d, F, dtype, seed)
    threshold = torch.rand(F, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64).to(dtype) * 0.5
    fire, max_pre = P.latent_stats(x, W, b, threshold if with_threshold else None)
    want_fire, want_max = ref.latent_stats(x, W, b, threshold if with_threshold else None)
    torch.testing.assert_close(max_pre, want_max, **TOLERANCES[dtype])
    code = P.threshold_encode(x, W, b, threshold)
    if dtype == torch.float64:
        assert torch.equal(fire, want_fire)
        assert_code_equal(code, ref.threshold_encode(x, W, b, threshold), dtype)
    else:  # counts may differ only by entries within rounding of the threshold
        z = torch.nn.functional.linear(x.double(), W.double(), b.double())
        t = threshold.double() if with_threshold else torch.zeros(F, dtype=torch.float64)
        near = ((z - t).abs() <= 1e-4).sum(0)
        assert ((fire - want_fire).abs() <= near).all()


def decode_code(B, F, k, layout, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    if layout == "fixed_k":
        indices = torch.rand(B, F, generator=g).argsort(1)[:, :k] if B else torch.empty(0, k, dtype=torch.long)
        return torch.randn(B, k, generator=g, dtype=torch.float64).to(dtype), indices, None
    counts = torch.randint(0, k + 1, (B,), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    indices = torch.randint(0, F, (int(offsets[-1]),), generator=g)  # repeats allowed: the ops sum them
    return torch.randn(indices.numel(), generator=g, dtype=torch.float64).to(dtype), indices, offsets


@given(B=BATCH, d=FEATURES, F=LATENTS, k=st.integers(0, 12), layout=st.sampled_from(["fixed_k", "row_compressed"]),
       dtype=DTYPES, seed=SEEDS, with_bias=st.booleans())  # fmt: skip
def test_decode_ops(B, d, F, k, layout, dtype, seed, with_bias):
    k = min(k, F)
    values, indices, offsets = decode_code(B, F, k, layout, dtype, seed)
    g = torch.Generator().manual_seed(seed + 7)
    W = torch.randn(F, d, generator=g, dtype=torch.float64).to(dtype)
    bias = torch.randn(d, generator=g, dtype=torch.float64).to(dtype) if with_bias else None
    grad_out = torch.randn(B, d, generator=g, dtype=torch.float64).to(dtype)
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(P.sparse_decode(values, indices, offsets, W, bias),
                               ref.sparse_decode(values, indices, offsets, W, bias), **tol)  # fmt: skip
    torch.testing.assert_close(P.sparse_decode_grad_values(grad_out, indices, offsets, W),
                               ref.sparse_decode_grad_values(grad_out, indices, offsets, W), **tol)  # fmt: skip
    for got, want in zip(P.sparse_decode_grad_weight(grad_out, values, indices, offsets, F)
                         + P.sparse_decode_backward(grad_out, values, indices, offsets, W),
                         ref.sparse_decode_grad_weight(grad_out, values, indices, offsets, F)
                         + ref.sparse_decode_backward(grad_out, values, indices, offsets, W), strict=True):  # fmt: skip
        torch.testing.assert_close(got, want, **tol)


CSWIN_GEOMETRY = st.tuples(
    st.integers(1, 2),  # B
    st.integers(1, 13),  # H
    st.integers(1, 13),  # W
    st.sampled_from([(16, 2), (24, 2), (32, 4), (48, 2), (8, 1)]),  # (C, heads): head_dim 8, 12, 8, 24, 8
    st.integers(1, 8),  # split_size
    st.sampled_from(["cross", "full"]),
    st.sampled_from(["mask", "zeros"]),
)


@given(geometry=CSWIN_GEOMETRY, dtype=DTYPES, seed=SEEDS)
def test_cswin_attention_and_backward(geometry, dtype, seed):
    B, H, W, (C, heads), split, mode, padding = geometry
    if mode == "cross" and heads % 2:
        heads *= 2
        C *= 2
    g = torch.Generator().manual_seed(seed)
    qkv, w, bias = make(B, H, W, C, dtype, generator=g)
    assert_forward_and_backward_match(qkv, H, W, split, heads, w, bias, mode, padding, generator=g)


SPLAT_GEOMETRY = st.tuples(
    st.sampled_from([0, 1, 2, 7, 40, 150]),  # Gaussians
    st.integers(1, 2),  # cameras
    st.integers(1, 37),  # width
    st.integers(1, 29),  # height
    st.sampled_from([1, 2, 3, 8, 9, 17, 33]),  # feature channels: both sides of the planar limit and the vectors
    st.sampled_from([1, 4, 8, 16]),  # tile size
)


@given(N=st.sampled_from([0, 1, 2, 7, 40, 150]), C=st.integers(0, 3), W=st.integers(1, 70), H=st.integers(1, 50),
       ts=st.sampled_from([1, 3, 8, 16]), dtype=DTYPES, seed=SEEDS, spread=st.sampled_from([0.5, 2.0, 6.0]))  # fmt: skip
def test_splat_projection_and_binning(N, C, W, H, ts, dtype, seed, spread):
    """project_gaussians (and its backward) and tile_bin against the reference: Gaussians in front
    of, around and behind the cameras, off-screen, any image and tile size."""
    from splat_cases import scene

    from prismkit.reference import splat as splat_ref

    means, quats, scales, viewmats, Ks = scene(N, C, W, H, dtype, torch.Generator().manual_seed(seed), spread=spread)
    leaves = [t.clone().requires_grad_() for t in (means, quats, scales)]
    ref_leaves = [t.clone().requires_grad_() for t in (means, quats, scales)]
    got = P.project_gaussians(*leaves, viewmats, Ks, W, H)
    want = splat_ref.project_gaussians(*ref_leaves, viewmats, Ks, W, H)
    assert torch.equal(got[3], want[3])
    for g, w in zip(got[:3], want[:3], strict=True):
        torch.testing.assert_close(g, w, **TOLERANCES[dtype])
    tx, ty = -(-W // ts), -(-H // ts)
    bins = P.tile_bin(got[0].detach(), got[3], got[2].detach(), ts, tx, ty)
    want_bins = splat_ref.tile_bin(got[0].detach(), got[3], got[2].detach(), ts, tx, ty)
    assert torch.equal(bins[0], want_bins[0]) and torch.equal(bins[1], want_bins[1])
    if N and C and bool(got[3].any()):
        weights = [torch.randn(t.shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) for t in got[:3]]
        a = torch.autograd.grad(sum((t * w).sum() for t, w in zip(got[:3], weights, strict=True)), leaves)
        b = torch.autograd.grad(sum((t * w).sum() for t, w in zip(want[:3], weights, strict=True)), ref_leaves)
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, atol=1e-3 if dtype == torch.float32 else 1e-8, rtol=1e-3)


@given(geometry=SPLAT_GEOMETRY, dtype=DTYPES, seed=SEEDS, shared=st.booleans(), background=st.booleans())
def test_splat_pipeline_and_backward(geometry, dtype, seed, shared, background):
    """rasterize (inputs projected and binned by the reference) against the reference, with the
    gradients to means2d, conics, features, opacities (and backgrounds)."""
    from splat_cases import raster_inputs

    from prismkit.reference import splat as splat_ref

    N, C, W, H, D, ts = geometry
    args = raster_inputs(N=max(N, 1), C=C, width=W, height=H, D=D, tile_size=ts, dtype=dtype, background=background,
                         camera_features=not shared, camera_opacities=not shared, max_opacity=1.0,
                         generator=torch.Generator().manual_seed(seed), scale=0.4 * W / 16)  # fmt: skip
    if N == 0:  # no Gaussians: empty tensors and lists
        args = (args[0][:, :0], args[1][:, :0], args[2][..., :0, :], args[3][..., :0], torch.zeros_like(args[4]),
                args[5][:0], *args[6:])  # fmt: skip
    ours = [a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    theirs = [a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    render, alpha, last = P.rasterize(*ours)
    want, want_alpha, want_last = splat_ref.rasterize(*theirs)
    torch.testing.assert_close(render, want, **TOLERANCES[dtype])
    torch.testing.assert_close(alpha, want_alpha, **TOLERANCES[dtype])
    assert torch.equal(last, want_last)
    grad = torch.randn(render.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=dtype)

    def gradients(inputs, out_dtype):
        leaves = [a.detach().to(out_dtype).requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point()
                  else a for a in inputs]  # fmt: skip
        r, al, _ = (P.rasterize if inputs is ours else splat_ref.rasterize)(*leaves)
        wrt = [a for a in leaves if isinstance(a, torch.Tensor) and a.requires_grad]
        pairs = [(o, g) for o, g in ((r, grad.to(out_dtype)), (al, torch.ones_like(al))) if o.requires_grad]
        if not pairs:
            return [None] * len(wrt)
        return torch.autograd.grad([o for o, _ in pairs], wrt, [g for _, g in pairs], allow_unused=True)

    got, expected = gradients(ours, dtype), gradients(theirs, dtype)
    # float32: against float64, within twice the reference's own float32 error plus 1e-3 of the
    # gradient's scale (the kernels recover each transmittance by dividing by 1 - alpha walking
    # back, as gsplat's and Inria's do, which loses more digits under deep stacks than a cumprod)
    exact = gradients(theirs, torch.float64)
    for a, b, e in zip(got, expected, exact, strict=True):
        if b is None:  # the reference never touched it (no Gaussians): ours must be zero
            assert a is None or not a.any()
            continue
        if dtype == torch.float64:
            torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-6)
        else:
            assert (a.double() - e).abs().max() <= 2 * (b.double() - e).abs().max() + 1e-3 * (1 + e.abs().max())


# ---- the Triton kernels (interpreted without a GPU: few, small examples) -----------------------

SMALL_BATCH = st.sampled_from([0, 1, 3, 7, 17])
SMALL_LATENTS = st.sampled_from([1, 5, 16, 33, 70])


@pytest.mark.skipif(not HAS_TRITON, reason="needs Triton")
@settings(max_examples=max(3, settings().max_examples // 4))  # the interpreter is slow
@given(B=SMALL_BATCH, d=st.sampled_from([1, 5, 16, 24]), F=SMALL_LATENTS, k=st.integers(1, 9), seed=SEEDS)
def test_triton_encoders(B, d, F, k, seed):
    from sae_cases import encoders

    k = min(k, F)
    topk, batch_topk, feature_choice = encoders("triton")
    x, W, b = inputs(B, d, F, torch.float32, seed, bias_shift=-0.2)
    acts = ref.pre_activations(x.double(), W.double(), b.double()).float()
    values, indices = topk(x, W, b, k)
    check_selection(values, indices, None, acts, torch.float32, lambda v, rows: v[:, -1:].expand(B, F) if B else v)
    got = batch_topk(x, W, b, k)
    assert got[0].numel() <= k * B
    if got[0].numel():
        check_selection(*got, acts, torch.float32, lambda v, rows: v.min())
    capacity = torch.randint(0, B + 3, (F,), generator=torch.Generator().manual_seed(seed))
    check_feature_choice(feature_choice(x, W, b, capacity), acts, capacity, torch.float32)


# ---- token merging: plans and the segmented reduction ------------------------------------------

TOKENS = st.sampled_from([1, 2, 3, 7, 33, 64, 65, 130])


@given(B=st.sampled_from([0, 1, 3]), N=TOKENS, d=FEATURES, method=st.sampled_from(["pitome", "pitome_bsm",
       "pitome_text", "tome"]), class_token=st.booleans(), prune=st.booleans(), r_frac=st.floats(0, 1), seed=SEEDS)  # fmt: skip
def test_merge_plan_and_token_merge(B, N, d, method, class_token, prune, r_frac, seed):
    from prismkit.ops.merge.checks import largest_r
    from prismkit.reference import merge as merge_ref

    T = N - int(class_token)
    top = T // 2 if method == "tome" else largest_r(method, T)
    r = round(r_frac * top)
    g = torch.Generator().manual_seed(seed)
    metric = torch.randn(B, N, d, generator=g)
    dest, energy = P.merge_plan(metric, r, method, 0.5, 1.0, class_token, prune)
    want, want_energy = merge_ref.merge_plan(metric, r, method, 0.5, 1.0, class_token, prune)
    torch.testing.assert_close(energy, want_energy, rtol=1e-5, atol=1e-6)
    num_out = N - r
    for b in range(B):  # a valid plan: every output slot holds a token, r tokens merged or dropped
        row = dest[b]
        assert row.min() >= -1 and row.max() < num_out
        kept = row[row >= 0]
        assert (torch.bincount(kept, minlength=num_out) > 0).all()
        assert kept.numel() == (N - r if prune else N)
        if class_token:
            assert row[0] == 0
    # the reference's decisions exactly, unless float32 sums in another order could flip a near-tie
    exact = method in ("pitome", "pitome_text")  # (bsm and tome also order by best-match scores)
    if exact and want_energy.numel() and want_energy.shape[-1] > 1:
        exact = bool(want_energy.sort(-1).values.diff(dim=-1).min() > 1e-5)
    if exact:
        assert torch.equal(dest, want)
    x = torch.randn(B, N, 5, generator=g, dtype=torch.float64)
    size = torch.rand(B, N, 1, generator=g, dtype=torch.float64) + 0.5
    for reduce in ("wavg", "amax"):
        got = P.token_merge(x, size, dest, num_out, reduce)
        ref_out = merge_ref.token_merge(x, size, dest, num_out, reduce)
        torch.testing.assert_close(got[0], ref_out[0], atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(got[1], ref_out[1], atol=1e-12, rtol=1e-12)


@given(B=st.sampled_from([0, 1, 3]), N=TOKENS, d=FEATURES, k_frac=st.floats(0, 1), seed=SEEDS)
def test_divprune_select(B, N, d, k_frac, seed):
    k = round(k_frac * N)
    metric = torch.randn(B, N, d, generator=torch.Generator().manual_seed(seed))
    picks = P.divprune_select(metric, k)
    assert picks.shape == (B, k)
    for row in picks:  # k distinct tokens, ascending
        assert row.unique().numel() == k and (row.diff() > 0).all() and (k == 0 or (row.min() >= 0 and row.max() < N))
