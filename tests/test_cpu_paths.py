"""Every CPU instruction-set path this machine supports (baseline SSE2, AVX2+FMA, AVX-512 on x86-64;
NEON on aarch64) against the references, so a path that only some machines take cannot rot: the
vector kernels (csrc/common/vector_math_isa.cpp, used by the SAE ops) and the CSWin window kernels
(csrc/cswin/cswin_window_kernels_isa.cpp), at sizes on both sides of each path's vector width,
register tiles and fused-softmax limit. The other op tests run the best path; this file switches
paths in process, and one test checks that PRISMKIT_CPU_CAPABILITY selects a path at load time.
"""

import os
import subprocess
import sys

import pytest
import torch
from conftest import TOLERANCES
from cswin_cases import assert_forward_and_backward_match, make
from sae_cases import assert_code_equal, continuous, fixed_k_code, row_compressed_code

from prismkit import _cpu
from prismkit.reference import sae as ref

P = torch.ops.prismkit
PATHS = _cpu.supported_paths()


@pytest.fixture(params=PATHS)
def cpu_path(request):
    before = _cpu.capability()["path"]
    _cpu.set_path(request.param)
    assert _cpu.capability()["path"] == request.param
    yield request.param
    _cpu.set_path(before)


# feature sizes across every path's column chunk (16 to 128 floats) and their tails
WIDTHS = [1, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 257]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_decode_kernels(cpu_path, dtype):
    for d in WIDTHS:
        W = torch.randn(40, d, dtype=dtype)
        grad_out = torch.randn(9, d, dtype=dtype)
        for values, indices, offsets in (fixed_k_code(9, 5, 40, dtype), row_compressed_code(9, 40, 7, dtype)):
            torch.testing.assert_close(P.sparse_decode(values, indices, offsets, W, None),
                                       ref.sparse_decode(values, indices, offsets, W, None), **TOLERANCES[dtype])  # fmt: skip
            torch.testing.assert_close(P.sparse_decode_grad_values(grad_out, indices, offsets, W),
                                       ref.sparse_decode_grad_values(grad_out, indices, offsets, W), **TOLERANCES[dtype])  # fmt: skip
            got = P.sparse_decode_grad_weight(grad_out, values, indices, offsets, 40) + P.sparse_decode_backward(
                grad_out, values, indices, offsets, W
            )
            want = ref.sparse_decode_grad_weight(grad_out, values, indices, offsets, 40) + ref.sparse_decode_backward(
                grad_out, values, indices, offsets, W
            )
            for g, w in zip(got, want, strict=True):
                torch.testing.assert_close(g, w, **TOLERANCES[dtype])


def test_encoders(cpu_path):
    """The encoders' tile scan (first_not_at_most) on every path, past its two-vector chunks."""
    for B, d, F, k in [(5, 3, 7, 7), (37, 24, 70, 5), (20, 8, 2053, 40)]:
        x, W, b = continuous(B, d, F, torch.float64)
        assert_code_equal(P.topk_encode(x, W, b, k), ref.topk_encode(x, W, b, k), torch.float64)
        assert_code_equal(P.batch_topk_encode(x, W, b, k), ref.batch_topk_encode(x, W, b, k), torch.float64)


# (B, H, W, C, heads, split, mode): windows of 4 to 98 keys, so both the fused register tiles and
# the GEMM path run on every path; head_dim 8, 12, 32 and 48 (narrow and wide heads).
CSWIN_CASES = [
    (1, 6, 8, 32, 2, 2, "cross"),
    (2, 14, 14, 64, 2, 7, "cross"),
    (1, 16, 16, 32, 2, 1, "cross"),
    (1, 7, 9, 48, 4, 4, "cross"),
    (1, 7, 7, 96, 2, 7, "full"),
    (1, 9, 11, 24, 2, 3, "cross"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("padding", ["mask", "zeros"])
def test_cswin_window_kernels(cpu_path, dtype, padding):
    for B, H, W, C, heads, split, mode in CSWIN_CASES:
        qkv, weight, bias = make(B, H, W, C, dtype)
        assert_forward_and_backward_match(qkv, H, W, split, heads, weight, bias, mode, padding)


def test_reduced_precision_on_every_path(cpu_path):
    """bfloat16 and float16 run the float32 kernels of the path and come back in their dtype."""
    x, W, b = continuous(12, 16, 50, torch.float32)
    for dtype in (torch.bfloat16, torch.float16):
        values, indices = P.topk_encode(x.to(dtype), W.to(dtype), b.to(dtype), 4)
        assert values.dtype == dtype and indices.dtype == torch.long
        want = ref.topk_encode(x.to(dtype).float(), W.to(dtype).float(), b.to(dtype).float(), 4)
        torch.testing.assert_close(values, want[0].to(dtype))


def test_the_environment_variable_selects_the_path():
    code = "import prismkit; print(prismkit._cpu.capability()['path'])"
    for path in PATHS:
        env = {**os.environ, "PRISMKIT_CPU_CAPABILITY": path}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == path
    # a path above the CPU's best falls back to the best; a name that is no path is ignored, with a warning
    env = {**os.environ, "PRISMKIT_CPU_CAPABILITY": "avx512"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == PATHS[-1]
    env = {**os.environ, "PRISMKIT_CPU_CAPABILITY": "sse9"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == PATHS[-1] and "'sse9' is not one of baseline, avx2, avx512: ignored" in out.stderr


def test_switching_to_an_unknown_or_unsupported_path_is_an_error():
    with pytest.raises(ValueError, match="CPU capability must be one of baseline, avx2, avx512, got 'sse9'"):
        _cpu.set_path("sse9")
    if PATHS[-1] != "avx512":
        with pytest.raises(ValueError, match="this CPU cannot run the avx512 path"):
            _cpu.set_path("avx512")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_splat_composite_kernels(cpu_path, dtype):
    """rasterize and its backward (csrc/splat/composite_kernels_isa.cpp) at feature widths on both
    sides of every path's vector width and the backward's two-vector step."""
    from splat_cases import raster_inputs

    from prismkit.reference import splat as splat_ref

    for D in (1, 3, 7, 8, 9, 15, 16, 17, 32, 33, 65):
        args = raster_inputs(N=30, C=1, width=13, height=11, D=D, tile_size=8, dtype=dtype, background=True,
                             generator=torch.Generator().manual_seed(D))  # fmt: skip
        ours = [
            a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args
        ]
        theirs = [
            a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args
        ]
        render, alpha, last = P.rasterize(*ours)
        want, want_alpha, want_last = splat_ref.rasterize(*theirs)
        torch.testing.assert_close(render, want, **TOLERANCES[dtype])
        torch.testing.assert_close(alpha, want_alpha, **TOLERANCES[dtype])
        assert torch.equal(last, want_last)
        grad = torch.randn(render.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
        grad_alpha = torch.randn(alpha.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
        wrt = [a for a in ours if isinstance(a, torch.Tensor) and a.requires_grad]
        wrt_ref = [a for a in theirs if isinstance(a, torch.Tensor) and a.requires_grad]
        got = torch.autograd.grad((render, alpha), wrt, (grad, grad_alpha))
        expected = torch.autograd.grad((want, want_alpha), wrt_ref, (grad, grad_alpha))
        for g, w in zip(got, expected, strict=True):
            torch.testing.assert_close(g, w, atol=1e-3 if dtype == torch.float32 else 1e-9, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_splat_sparse_kernels(cpu_path, dtype):
    """The sparse coefficient ops (forward_box with channel indices, the sparse backward step, and
    the codebook product `decode`) at codebook widths on both sides of every path's vector width
    and the decode's 4-pixel and two-vector blocks."""
    from splat_sparse_cases import sparse_inputs

    from prismkit.reference import splat as splat_ref

    for D, L in ((1, 3), (7, 5), (16, 4), (17, 6), (33, 2), (65, 9)):
        args = sparse_inputs(N=30, C=1, width=13, height=11, P=5, num_coefs=2 * L, dtype=dtype,
                             generator=torch.Generator().manual_seed(D))  # fmt: skip
        means2d, conics, opacities, idx, w, nc, offsets, ids, W, H, ts = args
        codebook = torch.randn(2, L, D, generator=torch.Generator().manual_seed(L), dtype=dtype)
        got = P.rasterize_sparse_features(means2d, conics, opacities, idx, w, codebook, offsets, ids, W, H, ts, True)
        want = splat_ref.rasterize_sparse_features(means2d, conics, opacities, idx, w, codebook, offsets, ids, W, H,
                                                   ts, True)  # fmt: skip
        torch.testing.assert_close(got, want, **TOLERANCES[dtype])
        q = torch.nn.functional.normalize(
            torch.randn(3, D, dtype=dtype, generator=torch.Generator().manual_seed(9)), dim=-1
        )
        rel = P.language_relevancy(means2d, conics, opacities, idx, w, codebook, q[:1], q[1:], offsets, ids, W, H, ts)
        want_rel = splat_ref.language_relevancy(means2d, conics, opacities, idx, w, codebook, q[:1], q[1:], offsets,
                                                ids, W, H, ts)  # fmt: skip
        torch.testing.assert_close(rel, want_rel, atol=1e-4 if dtype == torch.float32 else 1e-9, rtol=0)
        leaves = [a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                  for a in args]  # fmt: skip
        refs = [a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                for a in args]  # fmt: skip
        out, alpha, _ = P.rasterize_sparse_coef(*leaves)
        want_out, want_alpha, _ = splat_ref.rasterize_sparse_coef(*refs)
        torch.testing.assert_close(out, want_out, **TOLERANCES[dtype])
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
        wrt = [a for a in leaves if isinstance(a, torch.Tensor) and a.requires_grad]
        wrt_ref = [a for a in refs if isinstance(a, torch.Tensor) and a.requires_grad]
        got_grads = torch.autograd.grad((out, alpha), wrt, (grad, torch.ones_like(alpha)))
        want_grads = torch.autograd.grad((want_out, want_alpha), wrt_ref, (grad, torch.ones_like(alpha)))
        for g, w_ in zip(got_grads, want_grads, strict=True):
            torch.testing.assert_close(g, w_, atol=1e-3 if dtype == torch.float32 else 1e-9, rtol=1e-4)


def test_quant_linear_kernels(cpu_path):
    """Every code width with and without clusters, group sizes on both sides of each path's chunk
    (16 lanes and whole bytes: the vector loop; 12 and 36: the scalar one), batch 1 (the fused
    dot product), batches of rows (dequantize, then the four-row products) and from 16 rows on
    (dequantized tiles through ATen's GEMM)."""
    from prismkit.quant import dequantize_weight, pack_weight, quantize_weight

    g = torch.Generator().manual_seed(0)
    for K, group_size in ((64, 16), (128, 32), (96, 12), (72, 36), (256, 128)):
        w = torch.randn(13, K, generator=g) * 0.05 * (1 + 4 * (torch.rand(13, K, generator=g) < 0.03))
        for bits in (2, 4, 8):
            for kw in (dict(method="minmax"), dict(ranges="tight"), dict(ranges="paper")):
                qw = quantize_weight(w, bits=bits, group_size=group_size, **kw)
                pw = pack_weight(qw)
                w_hat = dequantize_weight(qw)
                for B in (1, 5, 20):
                    x = torch.randn(B, K, generator=g)
                    got = P.quant_linear(x, *pw.args(), None, *pw.meta())
                    torch.testing.assert_close(got, x @ w_hat.T, rtol=1e-4, atol=1e-5)
