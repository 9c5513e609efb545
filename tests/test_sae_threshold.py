"""threshold_encode and latent_stats against the dense references, on the C++ CPU kernels and
the Triton kernels (compiled on a GPU, interpreted on the CPU otherwise)."""

import pytest
import torch
from conftest import impl_op
from sae_cases import HAS_CUDA, IMPLS, assert_code_equal, continuous, grid, ref

INTERPRETED = not HAS_CUDA
SHAPES = [(1, 4, 8), (5, 3, 7), (37, 24, 70), (64, 33, 257)]
CPU_SHAPES = SHAPES + [(600, 16, 1100), (20, 8, 2053)]


def impl_ops(impl):
    """(threshold_encode, latent_stats) for one implementation, returning CPU tensors."""
    return impl_op(impl, "sae", "threshold_encode"), impl_op(impl, "sae", "latent_stats")


def cases(impl):
    shapes = CPU_SHAPES if impl == "cpu" else SHAPES[: 3 if INTERPRETED else 4]
    dtypes = [torch.float64, torch.float32] if impl == "cpu" else [torch.float32]
    return [(s, dt) for s in shapes for dt in dtypes]


@pytest.mark.parametrize("impl", IMPLS)
def test_threshold_encode_matches_reference(impl):
    threshold_encode, _ = impl_ops(impl)
    for (B, d, F), dtype in cases(impl):
        x, W, b = continuous(B, d, F, dtype)
        theta = torch.rand(F, dtype=dtype) * 0.6
        theta[::5] = -0.2  # a negative threshold acts as 0: the value must stay positive
        got = threshold_encode(x, W, b, theta)
        assert_code_equal(got, ref.threshold_encode(x, W, b, theta), dtype)
        assert (got[0] > 0).all() and (got[2].diff() >= 0).all()


@pytest.mark.parametrize("impl", IMPLS)
def test_latent_stats_matches_reference(impl):
    _, latent_stats = impl_ops(impl)
    for (B, d, F), dtype in cases(impl):
        x, W, b = continuous(B, d, F, dtype)
        for theta in (None, torch.randn(F, dtype=dtype) * 0.3):
            got = latent_stats(x, W, b, theta)
            assert got[0].dtype == torch.long and got[1].dtype == dtype
            assert_code_equal(got, ref.latent_stats(x, W, b, theta), dtype)


@pytest.mark.parametrize("impl", IMPLS)
def test_exact_on_grid_with_ties_at_the_threshold(impl):
    """Grid inputs give bit-identical pre-activations: entries equal to the threshold are dropped
    (strict inequality), counts are exact."""
    threshold_encode, latent_stats = impl_ops(impl)
    x, W, b = grid(23, 6, 45)
    theta = (torch.randint(0, 3, (45,)) * 0.5).float()
    got, want = threshold_encode(x, W, b, theta), ref.threshold_encode(x, W, b, theta)
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
    got, want = latent_stats(x, W, b, theta), ref.latent_stats(x, W, b, theta)
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_batch_and_nan(impl):
    threshold_encode, latent_stats = impl_ops(impl)
    x, W, b = continuous(0, 5, 9, torch.float32)
    values, indices, offsets = threshold_encode(x, W, b, torch.zeros(9))
    assert values.numel() == 0 and indices.numel() == 0 and offsets.tolist() == [0]
    count, maximum = latent_stats(x, W, b)
    assert count.tolist() == [0] * 9 and torch.isinf(maximum).all() and (maximum < 0).all()
    x, W, b = continuous(6, 5, 11, torch.float32)
    W[4, 0] = float("nan")
    got = threshold_encode(x, W, b, torch.full((11,), 0.1))
    assert_code_equal(got, ref.threshold_encode(x, W, b, torch.full((11,), 0.1)), torch.float32)
    count, maximum = latent_stats(x, W, b)
    assert torch.isnan(maximum[4]) and not torch.isnan(maximum[torch.arange(11) != 4]).any()


def test_threshold_encode_gradients_and_opcheck():
    x, W, b = continuous(7, 5, 13, torch.float64)
    theta = torch.rand(13, dtype=torch.float64) * 0.3
    x, W, b = (t.requires_grad_() for t in (x, W, b))
    op = torch.ops.prismkit.threshold_encode
    assert torch.autograd.gradcheck(lambda x, W, b: op(x, W, b, theta)[0], (x, W, b))
    grads = []
    for fn in (op, ref.threshold_encode):
        xs, Ws, bs = (t.detach().clone().requires_grad_() for t in (x, W, b))
        values = fn(xs, Ws, bs, theta)[0]
        (values * torch.linspace(-1, 1, values.numel(), dtype=values.dtype)).sum().backward()
        grads.append((xs.grad, Ws.grad, bs.grad))
    for g, w in zip(*grads, strict=True):
        torch.testing.assert_close(g, w)
    for requires_grad in (False, True):
        args = [t.detach().float().requires_grad_(requires_grad) for t in (x, W, b)]
        torch.library.opcheck(op, (*args, theta.float()))
    args = [t.detach().float() for t in (x, W, b)]  # latent_stats is not differentiable
    torch.library.opcheck(torch.ops.prismkit.latent_stats, (*args, theta.float()))
    torch.library.opcheck(torch.ops.prismkit.latent_stats, (*args, None))
    grads = [t.detach().float().requires_grad_() for t in (x, W, b)]  # the op itself is non-differentiable
    torch.library.opcheck(torch.ops.prismkit.latent_stats, (*grads, None))
    assert not any(t.requires_grad for t in torch.ops.prismkit.latent_stats(*grads, None))
