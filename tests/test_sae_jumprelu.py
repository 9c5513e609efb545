"""jumprelu_encode (JumpReLU training's encoder: kept entries plus the straight-through window)
against the dense reference and SAELens' estimator, on the C++ CPU kernel and the Triton kernel
(compiled on a GPU, interpreted on the CPU otherwise); then JumpReLU training with its L0
penalty (prismkit.sae)."""

import pytest
import torch
from conftest import impl_op
from sae_cases import HAS_CUDA, IMPLS, assert_code_equal, continuous, grid, ref

from prismkit.ops import sae as sae_ops

INTERPRETED = not HAS_CUDA
SHAPES = [(1, 4, 8), (5, 3, 7), (37, 24, 70), (64, 33, 257)]
CPU_SHAPES = SHAPES + [(600, 16, 1100), (20, 8, 2053)]


def cases(impl):
    shapes = CPU_SHAPES if impl == "cpu" else SHAPES[: 3 if INTERPRETED else 4]
    dtypes = [torch.float64, torch.float32] if impl == "cpu" else [torch.float32]
    return [(s, dt) for s in shapes for dt in dtypes]


@pytest.mark.parametrize("impl", IMPLS)
def test_jumprelu_encode_matches_reference(impl):
    op = impl_op(impl, "sae", "jumprelu_encode")
    for (B, d, F), dtype in cases(impl):
        x, W, b = continuous(B, d, F, dtype)
        theta = torch.rand(F, dtype=dtype) * 0.6
        theta[::5] = -0.2  # a negative threshold: kept entries stay positive, the window goes below 0
        for bandwidth in (0.05, 0.5):
            got = op(x, W, b, theta, bandwidth)
            assert got[3].dtype == torch.bool
            assert_code_equal(got, ref.jumprelu_encode(x, W, b, theta, bandwidth), dtype)
            # the kept entries are threshold_encode's; window-only entries have value 0
            values, indices, offsets, in_window = got
            kept = values != 0
            assert in_window[~kept].all() and (values >= 0).all()
            plain = impl_op(impl, "sae", "threshold_encode")(x, W, b, theta)  # the same GEMM: bit-equal values
            assert torch.equal(indices[kept], plain[1]) and torch.equal(values[kept], plain[0])


@pytest.mark.parametrize("impl", IMPLS)
def test_window_edges_are_strict_on_grid(impl):
    """Grid inputs give bit-identical pre-activations (multiples of 1/4): with bandwidth 1 the
    window is -1/2 < z - theta < 1/2, so gaps of +-1/4 are in it and gaps of +-1/2 are not."""
    x, W, b = grid(23, 6, 45)
    theta = (torch.randint(0, 3, (45,)) * 0.5).float()
    got, want = impl_op(impl, "sae", "jumprelu_encode")(x, W, b, theta, 1.0), ref.jumprelu_encode(x, W, b, theta, 1.0)
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
    z = torch.nn.functional.linear(x, W, b)
    gap = (z - theta)[torch.repeat_interleave(torch.arange(23), got[2].diff()), got[1]]
    assert torch.equal(got[3], gap.abs() < 0.5) and (gap.abs() == 0.25).any() and (gap.abs() == 0.5).any()


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_batch_and_nan(impl):
    op = impl_op(impl, "sae", "jumprelu_encode")
    x, W, b = continuous(0, 5, 9, torch.float32)
    values, indices, offsets, in_window = op(x, W, b, torch.zeros(9), 0.1)
    assert values.numel() == indices.numel() == in_window.numel() == 0 and offsets.tolist() == [0]
    x, W, b = continuous(6, 5, 11, torch.float32)
    W[4, 0] = float("nan")
    theta = torch.full((11,), 0.1)
    got = op(x, W, b, theta, 0.3)
    assert_code_equal(got, ref.jumprelu_encode(x, W, b, theta, 0.3), torch.float32)
    nan = got[1] == 4
    assert nan.sum() == 6 and torch.isnan(got[0][nan]).all() and not got[3][nan].any()  # kept, never in the window


def _loss_grads(encode_decode, x, W, b, theta, W_dec, target):
    xs, Ws, bs, ts = (t.detach().clone().requires_grad_() for t in (x, W, b, theta))
    x_hat = encode_decode(xs, Ws, bs, ts)
    (x_hat - target).pow(2).sum().backward()
    return xs.grad, Ws.grad, bs.grad, ts.grad


def test_gradients_match_the_dense_reference_and_saelens_estimator():
    torch.manual_seed(0)
    x, W, b = continuous(29, 12, 40, torch.float64)
    theta = torch.rand(40, dtype=torch.float64) * 0.4
    W_dec, target = torch.randn(40, 12, dtype=torch.float64), torch.randn(29, 12, dtype=torch.float64)
    bandwidth = 0.3

    def fused(x, W, b, theta):
        return sae_ops.jumprelu_encode(x, W, b, theta, bandwidth).code.decode(W_dec)

    def dense(x, W, b, theta):
        return ref.sparse_decode(*ref.jumprelu_encode(x, W, b, theta, bandwidth)[:3], W_dec)

    got = _loss_grads(fused, x, W, b, theta, W_dec, target)
    assert got[3].abs().sum() > 0  # the window holds entries: the threshold gradient is exercised
    for g, w in zip(got, _loss_grads(dense, x, W, b, theta, W_dec, target), strict=True):
        torch.testing.assert_close(g, w)
    saelens = pytest.importorskip("sae_lens.saes.jumprelu_sae")

    def peer(x, W, b, theta):  # SAELens' JumpReLU autograd function on the dense pre-activations
        z = torch.nn.functional.linear(x, W, b)
        return saelens.JumpReLU.apply(z, theta, bandwidth, False) @ W_dec

    for g, w in zip(got, _loss_grads(peer, x, W, b, theta, W_dec, target), strict=True):
        torch.testing.assert_close(g, w)


def test_gradcheck_and_opcheck():
    x, W, b = continuous(7, 5, 13, torch.float64)
    theta = torch.rand(13, dtype=torch.float64) * 0.3
    op = torch.ops.prismkit.jumprelu_encode
    # the pre-activations' gradient is exact (the threshold's is an estimate, checked above)
    args = [t.clone().requires_grad_() for t in (x, W, b)]
    assert torch.autograd.gradcheck(lambda x, W, b: op(x, W, b, theta, 0.2)[0], args)
    for requires_grad in (False, True):
        args = [t.detach().float().requires_grad_(requires_grad) for t in (x, W, b, theta)]
        torch.library.opcheck(op, (*args, 0.2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_runs_in_float32(dtype):
    x, W, b = continuous(9, 8, 21, torch.float32)
    theta = torch.rand(21) * 0.3
    got = torch.ops.prismkit.jumprelu_encode(*(t.to(dtype) for t in (x, W, b, theta)), 0.1)
    want = torch.ops.prismkit.jumprelu_encode(*(t.to(dtype).float() for t in (x, W, b, theta)), 0.1)
    assert got[0].dtype == dtype and got[3].dtype == torch.bool
    assert torch.equal(got[1], want[1]) and torch.equal(got[3], want[3])
    torch.testing.assert_close(got[0], want[0].to(dtype))
