"""cswin_attention (forward and backward) against the official-style reference
(prismkit.reference.cswin), on the C++ CPU kernels and on the Triton kernels (compiled on a GPU,
interpreted on the CPU otherwise)."""

import pytest
import torch
from conftest import TOLERANCES
from cswin_cases import make
from sae_cases import HAS_CUDA, HAS_TRITON

from prismkit.ops import cswin as ops
from prismkit.reference import cswin as ref

P = torch.ops.prismkit
IMPLS = ["cpu", "triton"] if HAS_TRITON else ["cpu"]


def attention(impl):
    """The op for one implementation, taking and returning CPU tensors."""
    if impl == "cpu":
        return P.cswin_attention
    if HAS_CUDA:

        def on_gpu(qkv, *args):
            args = [a.cuda() if isinstance(a, torch.Tensor) else a for a in args]
            return P.cswin_attention(qkv.cuda(), *args).cpu()

        return on_gpu
    from prismkit.triton_kernels import cswin as triton_cswin

    return triton_cswin.cswin_attention


# (B, H, W, C, heads, split_size, mode): stripe widths 1, 2, 7, 12; maps 56, 28, 14, 7 and odd or
# non-square sizes; head_dim 24 and 32 (C / heads); the last stage's "full" mode.
CASES = [
    (2, 8, 8, 64, 2, 1, "cross"),
    (1, 28, 28, 48, 2, 2, "cross"),
    (2, 14, 14, 64, 2, 7, "cross"),
    (1, 24, 24, 48, 2, 12, "cross"),
    (1, 56, 56, 32, 2, 1, "cross"),
    (2, 7, 7, 64, 2, 7, "full"),
    (2, 9, 13, 48, 4, 2, "cross"),
    (1, 5, 11, 48, 2, 7, "cross"),
    (1, 3, 5, 24, 1, 7, "full"),
    (1, 6, 8, 32, 2, 5, "cross"),
    (1, 6, 64, 32, 2, 5, "cross"),  # horizontal windows start with 128 padded positions
]
# (1, 6, 8, 32, 2, 5): the horizontal windows start with 2 padded rows, a whole 16-key block of
# padding in the interpreter's tiles.
INTERPRETED_CASES = [(1, 6, 5, 64, 2, 1, "cross"), (1, 7, 9, 48, 4, 4, "cross"), (1, 5, 6, 48, 2, 7, "full"),
                     (1, 6, 8, 32, 2, 5, "cross")]  # fmt: skip


def cases_for(impl):
    return INTERPRETED_CASES if impl == "triton" and not HAS_CUDA else CASES


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("padding", ["mask", "zeros"])
def test_forward_matches_reference(impl, padding):
    fn = attention(impl)
    for dtype in [torch.float64, torch.float32] if impl == "cpu" else [torch.float32]:
        for B, H, W, C, heads, sw, mode in cases_for(impl):
            qkv, weight, bias = make(B, H, W, C, dtype)
            scale = (C // heads) ** -0.5
            out = fn(qkv, H, W, sw, heads, weight, bias, scale, mode, padding)
            want = ref.cswin_attention(qkv, H, W, sw, heads, weight, bias, scale, mode, padding)
            assert out.shape == (B, H * W, C)
            torch.testing.assert_close(out, want, **TOLERANCES[dtype])


def test_padding_modes_agree_when_stripes_divide_the_map():
    qkv, weight, bias = make(2, 14, 14, 64)
    a = P.cswin_attention(qkv, 14, 14, 7, 2, weight, bias, 0.25, "cross", "mask")
    b = P.cswin_attention(qkv, 14, 14, 7, 2, weight, bias, 0.25, "cross", "zeros")
    assert torch.equal(a, b)
    c = P.cswin_attention(qkv[:, : 13 * 14], 13, 14, 7, 2, weight, bias, 0.25, "cross", "mask")
    d = P.cswin_attention(qkv[:, : 13 * 14], 13, 14, 7, 2, weight, bias, 0.25, "cross", "zeros")
    assert not torch.allclose(c, d)  # padded keys stay in the softmax only with "zeros"


@pytest.mark.parametrize("impl", IMPLS)
def test_backward_matches_reference_autograd(impl):
    fn = attention(impl)
    dtype = torch.float64 if impl == "cpu" else torch.float32
    for B, H, W, C, heads, sw, mode in cases_for(impl)[:6]:
        for padding in ("mask", "zeros") if impl == "cpu" or sw > 1 else ("mask",):
            qkv, weight, bias = (t.requires_grad_() for t in make(B, H, W, C, dtype))
            scale = (C // heads) ** -0.5
            grad = torch.randn(B, H * W, C, dtype=dtype)
            if impl == "cpu" or HAS_CUDA:
                got = torch.autograd.grad(
                    fn(qkv, H, W, sw, heads, weight, bias, scale, mode, padding), (qkv, weight, bias), grad
                )
            else:
                from prismkit.triton_kernels import cswin as triton_cswin

                got = triton_cswin.cswin_attention_backward(grad, qkv.detach(), H, W, sw, heads, weight.detach(),
                                                            bias.detach(), scale, mode, padding)  # fmt: skip
            out = ref.cswin_attention(qkv, H, W, sw, heads, weight, bias, scale, mode, padding)
            want = torch.autograd.grad(out, (qkv, weight, bias), grad)
            for g, w in zip(got, want, strict=True):
                torch.testing.assert_close(g, w, **TOLERANCES[dtype])


@pytest.mark.parametrize("mode, padding", [("cross", "mask"), ("cross", "zeros"), ("full", "mask")])
def test_gradcheck(mode, padding):
    qkv, weight, bias = (t.requires_grad_() for t in make(1, 5, 6, 8))
    sw = 4 if mode == "cross" else 1  # 5 x 6 with stripes of 4: padded both ways
    assert torch.autograd.gradcheck(
        lambda q, w, b: P.cswin_attention(q, 5, 6, sw, 2, w, b, 0.5, mode, padding), (qkv, weight, bias)
    )


def test_opcheck():
    for requires_grad in (False, True):
        qkv, weight, bias = (t.float().requires_grad_(requires_grad) for t in make(2, 6, 7, 16))
        torch.library.opcheck(P.cswin_attention, (qkv, 6, 7, 2, 2, weight, bias, 0.35, "cross", "mask"))
        torch.library.opcheck(P.cswin_attention, (qkv, 6, 7, 7, 4, weight, bias, 0.5, "full", "zeros"))
        grad = torch.randn(2, 42, 16)
        torch.library.opcheck(P.cswin_attention_backward,
                              (grad, qkv.detach(), 6, 7, 2, 2, weight.detach(), bias.detach(), 0.35, "cross", "mask"))  # fmt: skip


def test_backward_is_deterministic():
    qkv, weight, bias = make(2, 14, 14, 64, torch.float32)
    grad = torch.randn(2, 196, 64)
    first = P.cswin_attention_backward(grad, qkv, 14, 14, 7, 2, weight, bias, 0.25, "cross", "zeros")
    for _ in range(2):
        again = P.cswin_attention_backward(grad, qkv, 14, 14, 7, 2, weight, bias, 0.25, "cross", "zeros")
        assert all(torch.equal(a, f) for a, f in zip(again, first, strict=True))


def test_wrapper_default_scale_and_empty_batch():
    qkv, weight, bias = make(2, 6, 6, 16, torch.float32)
    torch.testing.assert_close(ops.cswin_attention(qkv, 6, 6, 2, 2, weight, bias),
                               P.cswin_attention(qkv, 6, 6, 2, 2, weight, bias, 8**-0.5))  # fmt: skip
    assert ops.cswin_attention(qkv[:0], 6, 6, 2, 2, weight, bias).shape == (0, 36, 16)


def test_full_mode_accepts_odd_head_counts():
    """Bad inputs are in the contract table (tests/op_contracts.py); "cross" needs an even head
    count (half per branch), "full" does not."""
    qkv, weight, bias = make(1, 4, 6, 16, torch.float32)
    assert P.cswin_attention(qkv, 4, 6, 2, 1, weight, bias, 0.5, "full", "mask").shape == (1, 24, 16)
