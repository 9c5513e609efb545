"""kmeans1d (exact 1-D k-means) against the O(k n^2) reference, brute force over every partition,
Lloyd's heuristic, and its documented edge cases; SplitQuant's cluster assignment."""

import itertools

import pytest
import torch

from prismkit.ops import quant as Q
from prismkit.quant import assign_clusters
from prismkit.reference import quant as ref

SHAPES = [(1, 1, 1), (2, 5, 3), (3, 17, 3), (4, 40, 4), (2, 100, 2), (1, 9, 9), (5, 64, 1), (1, 300, 3), (7, 33, 5)]


def sse(values: torch.Tensor, clusters: torch.Tensor, k: int) -> float:
    """Within-cluster sum of squares of one row under an assignment (float64)."""
    v = values.double()
    return sum(
        float((v[clusters == c] - v[clusters == c].mean()).pow(2).sum()) for c in range(k) if (clusters == c).any()
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_the_reference(dtype):
    gen = torch.Generator().manual_seed(0)
    for R, n, k in SHAPES:
        values = torch.randn(R, n, generator=gen, dtype=torch.float64).to(dtype)
        centers, boundaries = Q.kmeans1d(values, k)
        want_c, want_b = ref.kmeans1d(values, k)
        assert centers.dtype == boundaries.dtype == dtype
        assert centers.shape == (R, k) and boundaries.shape == (R, k - 1)
        tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(centers, want_c, **tol)
        torch.testing.assert_close(boundaries, want_b, **tol)
        assert (centers.diff(dim=1) >= 0).all()


def test_float32_rows_sorted_by_radix_give_the_float64_result():
    """float32 rows take a radix sort of their bit patterns, float64 rows std::sort: the sorted
    values, so the whole program and its result, are the same (signs, zeros of both signs,
    subnormals, a wide range of exponents, duplicates, more values than one radix digit)."""
    g = torch.Generator().manual_seed(3)
    row = torch.randn(5000, generator=g) * torch.logspace(-30, 30, 5000).index_select(
        0, torch.randperm(5000, generator=g)
    )
    special = torch.tensor([0.0, -0.0, 1e-45, -1e-45, 1e-40, -3e38, 3e38, 1.0, 1.0, -1.0])
    rows = torch.stack([torch.cat([row[:4990], special]), torch.randn(5000, generator=g).round(decimals=1)])
    for k in (2, 3, 5):
        c32, b32 = Q.kmeans1d(rows, k)
        c64, b64 = Q.kmeans1d(rows.double(), k)
        assert torch.equal(c32, c64.float()) and torch.equal(b32, b64.float())


def test_exact_against_every_assignment():
    """For small rows, the partition kmeans1d's boundaries give has the least SSE over all k^n
    assignments (not only the contiguous ones the dynamic program searches)."""
    gen = torch.Generator().manual_seed(1)
    for n, k in ((6, 3), (7, 3), (7, 2), (6, 4)):
        for _ in range(5):
            row = torch.randn(n, generator=gen, dtype=torch.float64) ** 3  # heavy-tailed
            _, boundaries = Q.kmeans1d(row[None], k)
            got = sse(row, assign_clusters(row[None], boundaries)[0], k)
            best = min(sse(row, torch.tensor(a), k) for a in itertools.product(range(k), repeat=n))
            assert got == pytest.approx(best, rel=1e-9, abs=1e-12), (n, k, got, best)


def lloyd(row: torch.Tensor, k: int, iterations: int = 100) -> float:
    """Lloyd's k-means from quantile centers (what scikit-learn's KMeans refines): a local optimum."""
    centers = torch.quantile(row, torch.linspace(0.1, 0.9, k, dtype=row.dtype))
    for _ in range(iterations):
        clusters = (row[:, None] - centers[None]).abs().argmin(1)
        centers = torch.stack([row[clusters == c].mean() if (clusters == c).any() else centers[c] for c in range(k)])
    return sse(row, clusters, k)


def test_large_rows_are_lloyd_fixed_points_at_least_as_good_as_lloyd():
    gen = torch.Generator().manual_seed(2)
    mixture = torch.cat([torch.randn(30_000, generator=gen) * 0.1, torch.randn(3000, generator=gen) * 2 + 4,
                         torch.randn(17, generator=gen) * 20])  # fmt: skip
    for row in (torch.randn(100_000, generator=gen, dtype=torch.float64), mixture.double()):
        for k in (3, 5):
            centers, boundaries = Q.kmeans1d(row[None], k)
            clusters = assign_clusters(row[None], boundaries)[0]
            means = torch.stack([row[clusters == c].mean() for c in range(k)])
            torch.testing.assert_close(centers[0], means, rtol=1e-9, atol=1e-9)  # every center its cluster's mean
            assert sse(row, clusters, k) <= lloyd(row, k) * (1 + 1e-12)
    # Gaussian weights: 3-means is the Lloyd-Max quantizer, thresholds at +-0.612 sigma
    _, boundaries = Q.kmeans1d(torch.randn(1, 200_000, generator=gen, dtype=torch.float64), 3)
    torch.testing.assert_close(boundaries[0], torch.tensor([-0.6120, 0.6120], dtype=torch.float64), atol=0.01, rtol=0)


def test_repeated_values_and_fewer_distinct_values_than_clusters():
    constant = torch.full((2, 9), 1.5)
    centers, boundaries = Q.kmeans1d(constant, 3)
    assert (centers == 1.5).all() and (boundaries == 1.5).all()
    assert (assign_clusters(constant, boundaries) == 0).all()  # coinciding boundaries: the lower cluster wins
    two = torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0]])
    centers, boundaries = Q.kmeans1d(two, 3)
    clusters = assign_clusters(two, boundaries)[0]
    assert sse(two[0], clusters, 3) == 0 and set(centers[0].tolist()) == {0.0, 1.0}
    assert torch.equal(centers[0][clusters], two[0])  # each value in a cluster whose center is that value
    ties = torch.tensor([[-1.0, 0.0, 1.0]])  # k = n: one value per cluster
    assert torch.equal(Q.kmeans1d(ties, 3)[0], ties)


def test_assignment_rule_of_the_paper():
    boundaries = torch.tensor([[-1.0, 1.0]])
    w = torch.tensor([[-2.0, -1.0, -0.5, 0.0, 1.0, 3.0]])
    assert assign_clusters(w, boundaries).tolist() == [[0, 0, 1, 1, 2, 2]]  # w <= b0, b0 < w < b1, w >= b1
    assert assign_clusters(w, torch.tensor([[-1.0, 0.0, 1.0]])).tolist() == [[0, 0, 1, 1, 3, 3]]  # k = 4
    assert assign_clusters(w, torch.zeros(1, 0)).tolist() == [[0] * 6]


def test_deterministic_rows_independent_and_dtypes():
    gen = torch.Generator().manual_seed(3)
    values = torch.randn(6, 257, generator=gen)
    a, b = Q.kmeans1d(values, 3), Q.kmeans1d(values, 3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    for r in (0, 5):
        assert torch.equal(Q.kmeans1d(values[r : r + 1], 3)[0], a[0][r : r + 1])
    assert Q.kmeans1d(values[:0], 3)[0].shape == (0, 3)
    for dtype in (torch.float16, torch.bfloat16):
        centers, boundaries = Q.kmeans1d(values.to(dtype), 3)
        assert centers.dtype == dtype
        torch.testing.assert_close(centers, Q.kmeans1d(values.to(dtype).double(), 3)[0].to(dtype))
    torch.library.opcheck(torch.ops.prismkit.kmeans1d, (values, 3))
    assert not any(t.requires_grad for t in Q.kmeans1d(values.requires_grad_(), 3))


@pytest.mark.gpu
def test_cuda_matches_the_cpu():
    gen = torch.Generator().manual_seed(4)
    for R, n, k in SHAPES + [(1, 2_000_000, 3), (300, 576, 3), (2, 5000, 6)]:
        values = torch.randn(R, n, generator=gen, dtype=torch.float64) ** 3
        want = Q.kmeans1d(values, k)
        for dtype in (torch.float64, torch.float32):
            got = Q.kmeans1d(values.to(dtype).cuda(), k)
            cpu = Q.kmeans1d(values.to(dtype), k)
            tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(got[0].cpu(), cpu[0], **tol)
            torch.testing.assert_close(got[1].cpu(), cpu[1], **tol)
        torch.testing.assert_close(Q.kmeans1d(values.cuda(), k)[0].cpu(), want[0], rtol=1e-9, atol=1e-9)
