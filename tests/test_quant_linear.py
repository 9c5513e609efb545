"""quant_dequantize and quant_linear: the packed weight back to float bit for bit, and the fused
dequantizing product against x @ W_hat^T, on the C++ CPU kernel and the Triton kernels (compiled on
a GPU, interpreted on the CPU otherwise)."""

import pytest
import torch
from conftest import HAS_CUDA, impl_op
from sae_cases import HAS_TRITON

from prismkit.ops import quant as Q
from prismkit.quant import dequantize_weight, pack_weight, quantize_weight
from prismkit.reference import quant as ref

IMPLS = ["cpu", "triton"] if HAS_TRITON else ["cpu"]
VARIANTS = [(2, dict(ranges="paper")), (2, dict(ranges="tight")), (4, dict(method="minmax")), (4, dict(ranges="tight")),
            (8, dict(method="minmax")), (8, dict(ranges="tight"))]  # fmt: skip


def packed(N, K, bits, seed=0, scale_dtype=torch.float16, **kw):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(N, K, generator=g) * 0.05 * (1 + 4 * (torch.rand(N, K, generator=g) < 0.03))
    qw = quantize_weight(w, bits=bits, group_size=32, scale_dtype=scale_dtype, **kw)
    return qw, pack_weight(qw)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bits,kw", VARIANTS)
def test_dequantize_is_bit_exact(impl, bits, kw):
    for N, K, dtype in ((5, 96, torch.float16), (3, 64, torch.bfloat16), (7, 33, torch.float32)):
        qw, pw = packed(N, K, bits, scale_dtype=dtype, **kw)
        got = impl_op(impl, "quant", "quant_dequantize")(*pw.args(), *pw.meta())
        assert got.dtype == torch.float32 and got.shape == (N, K)
        assert torch.equal(got, ref.quant_dequantize(*pw.args(), *pw.meta()))
        assert torch.equal(got, dequantize_weight(qw))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bits,kw", VARIANTS)
def test_linear_matches_x_times_the_dequantized_weight(impl, bits, kw):
    # Triton: batches up to 16 take the GEMV kernel, larger ones the tensor-core tiles
    shapes = [(1, 9, 64), (5, 17, 96), (64, 40, 160)] if impl == "cpu" else [(1, 9, 64), (5, 17, 96), (16, 9, 64),
                                                                               (20, 17, 96)]  # fmt: skip
    for B, N, K in shapes:
        qw, pw = packed(N, K, bits, seed=B, **kw)
        x = torch.randn(B, K)
        bias = torch.randn(N)
        want = x @ dequantize_weight(qw).T + bias
        got = impl_op(impl, "quant", "quant_linear")(x, *pw.args(), bias, *pw.meta())
        assert got.shape == (B, N)
        assert float((got - want).abs().mean() / want.abs().mean()) < 1e-5  # float32 rounding only
        if impl == "cpu":
            double = Q.quant_linear(x.double(), *pw.args(), bias.double(), *pw.meta())
            torch.testing.assert_close(double, x.double() @ dequantize_weight(qw).double().T + bias.double())


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_inputs_without_bias(impl, dtype):
    """x in float16 / bfloat16 and no bias, through both Triton paths (batch 3: GEMV, 20: tiles)
    and the C++ kernel: float32 accumulation of x times the dequantized weight (rounded to x's dtype
    on the GPU), against the float32 product."""
    qw, pw = packed(11, 96, 2, ranges="tight")
    # Triton's interpreter gets a bfloat16 tl.dot wrong (a 16x16 product of bfloat16 tiles came out
    # near 1e10), so the tiles' bfloat16 case runs on a GPU only
    interpreted_bf16 = impl == "triton" and not HAS_CUDA and dtype == torch.bfloat16
    for B in (3,) if interpreted_bf16 else (3, 20):
        x = torch.randn(B, 96).to(dtype)
        got = impl_op(impl, "quant", "quant_linear")(x, *pw.args(), None, *pw.meta())
        assert got.dtype == dtype and got.shape == (B, 11)
        want = x.float() @ dequantize_weight(qw).T
        assert float((got.float() - want).abs().mean() / want.abs().mean()) < 1e-2


def test_leading_dims_dtypes_gradients_and_opcheck():
    qw, pw = packed(12, 64, 2)
    x = torch.randn(2, 3, 64)
    y = Q.quant_linear(x, *pw.args(), None, *pw.meta())
    assert y.shape == (2, 3, 12)
    torch.testing.assert_close(y, x @ dequantize_weight(qw).T, rtol=1e-5, atol=1e-5)
    for dtype in (torch.float16, torch.bfloat16):
        low = Q.quant_linear(x.to(dtype), *pw.args(), None, *pw.meta())
        assert low.dtype == dtype
        torch.testing.assert_close(low, Q.quant_linear(x.to(dtype).float(), *pw.args(), None, *pw.meta()).to(dtype))
    xd = torch.randn(4, 64, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, b: Q.quant_linear(x, *pw.args(), b, *pw.meta()), (xd, bias))
    for requires_grad in (False, True):
        xs = torch.randn(3, 64, requires_grad=requires_grad)
        torch.library.opcheck(torch.ops.prismkit.quant_linear, (xs, *pw.args(), None, *pw.meta()))
    torch.library.opcheck(torch.ops.prismkit.quant_dequantize, (*pw.args(), *pw.meta()))
    assert Q.quant_linear(torch.randn(0, 64), *pw.args(), None, *pw.meta()).shape == (0, 12)


def test_heavy_tailed_weights_splitquant_int2_beats_minmax_int2_in_the_product():
    g = torch.Generator().manual_seed(7)
    w = torch.randn(64, 256, generator=g) * 0.02 * (1 + 5 * (torch.rand(64, 256, generator=g) < 0.02))
    x = torch.randn(16, 256, generator=g)
    exact = x @ w.T
    error = {}
    for name, kw in {"minmax": dict(method="minmax"), "splitquant": dict(ranges="tight")}.items():
        pw = pack_weight(quantize_weight(w, bits=2, **kw))
        error[name] = float((Q.quant_linear(x, *pw.args(), None, *pw.meta()) - exact).pow(2).mean())
    assert error["splitquant"] < 0.5 * error["minmax"], error


def test_batches_through_the_gemm_tiles_with_grad_inference_mode_and_threads():
    """From 16 rows on the CPU multiplies tiles of 64 dequantized rows with ATen's GEMM on worker
    threads: an input that requires grad, inference mode and several tiles must all work there."""
    qw, pw = packed(200, 96, 4, ranges="tight")
    w_hat = dequantize_weight(qw)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.randn(32, 96, requires_grad=True)
        y = Q.quant_linear(x, *pw.args(), None, *pw.meta())
        torch.testing.assert_close(y, x @ w_hat.T, rtol=1e-4, atol=1e-5)
        y.square().sum().backward()
        torch.testing.assert_close(x.grad, 2 * (x @ w_hat.T) @ w_hat, rtol=1e-4, atol=1e-4)
        with torch.inference_mode():
            torch.testing.assert_close(Q.quant_linear(x.detach(), *pw.args(), None, *pw.meta()), x.detach() @ w_hat.T,
                                       rtol=1e-4, atol=1e-5)  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def test_out_of_range_cluster_ids_and_bfloat16_scales():
    """Cluster ids at or above the cluster count read as the last cluster everywhere; bfloat16 and
    float32 scales are read by the kernels as stored."""
    qw, pw = packed(9, 64, 2, ranges="tight")
    ids = Q.quant_pack(torch.full((9, 64), 3, dtype=torch.uint8), 2)  # id 3 with 3 clusters
    args = (pw.codes, ids, pw.scales, pw.zeros)
    w_hat = ref.quant_dequantize(*args, *pw.meta())
    assert torch.equal(Q.quant_dequantize(*args, *pw.meta()), w_hat)
    x = torch.randn(5, 64)
    for B in (1, 5, 20):
        xb = torch.randn(B, 64)
        torch.testing.assert_close(Q.quant_linear(xb, *args, None, *pw.meta()), xb @ w_hat.T, rtol=1e-5, atol=1e-5)
    for dtype in (torch.bfloat16, torch.float32):
        qw, pw = packed(9, 64, 2, scale_dtype=dtype, ranges="tight")
        got = Q.quant_linear(x, *pw.args(), None, *pw.meta())
        torch.testing.assert_close(got, x @ dequantize_weight(qw).T, rtol=1e-5, atol=1e-5)


def test_float16_scales_in_the_subnormal_range():
    """Tiny weights give float16 scales below its smallest normal (6.1e-5): the kernels convert them
    exactly, as torch does."""
    w = torch.randn(4, 64, generator=torch.Generator().manual_seed(3)) * 1e-6
    qw = quantize_weight(w, bits=4, group_size=16, method="minmax", scale_dtype=torch.float16)
    assert float(qw.scales.float().max()) < 6.1e-5
    pw = pack_weight(qw)
    for B in (1, 5, 20):
        x = torch.randn(B, 64)
        torch.testing.assert_close(Q.quant_linear(x, *pw.args(), None, *pw.meta()), x @ dequantize_weight(qw).T,
                                   rtol=1e-4, atol=1e-12)  # fmt: skip
