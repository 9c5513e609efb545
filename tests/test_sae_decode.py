"""sparse_decode and its two gradient ops (C++ CPU kernels) against the dense references, plus
SparseCode. The CUDA kernels of the same ops are tested in test_sae_cuda.py."""

import pytest
import torch
from sae_cases import continuous, fixed_k_code, ops, ref, row_compressed_code

from conftest import TOLERANCES

P = torch.ops.prismkit


# (B, F, d, k): tiny, d odd, d not a multiple of any vector width, B = 1, k = F.
SHAPES = [(1, 5, 3, 2), (7, 19, 13, 5), (33, 64, 48, 8), (4, 6, 1, 6), (50, 300, 129, 17)]


def codes(B, F, k, dtype):
    yield fixed_k_code(B, k, F, dtype)
    yield row_compressed_code(B, F, k, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sparse_decode_matches_reference(dtype):
    for B, F, d, k in SHAPES:
        W = torch.randn(F, d, dtype=dtype)
        b = torch.randn(d, dtype=dtype)
        for values, indices, offsets in codes(B, F, k, dtype):
            for bias in (b, None):
                got = P.sparse_decode(values, indices, offsets, W, bias)
                want = ref.sparse_decode(values, indices, offsets, W, bias)
                assert got.shape == (B, d)
                torch.testing.assert_close(got, want, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradient_ops_match_reference(dtype):
    for B, F, d, k in SHAPES:
        W = torch.randn(F, d, dtype=dtype)
        grad_out = torch.randn(B, d, dtype=dtype)
        for values, indices, offsets in codes(B, F, k, dtype):
            torch.testing.assert_close(
                P.sparse_decode_grad_values(grad_out, indices, offsets, W),
                ref.sparse_decode_grad_values(grad_out, indices, offsets, W),
                **TOLERANCES[dtype],
            )
            for got, want in zip(
                P.sparse_decode_grad_weight(grad_out, values, indices, offsets, F)
                + P.sparse_decode_backward(grad_out, values, indices, offsets, W),
                ref.sparse_decode_grad_weight(grad_out, values, indices, offsets, F)
                + ref.sparse_decode_backward(grad_out, values, indices, offsets, W),
            ):
                torch.testing.assert_close(got, want, **TOLERANCES[dtype])


def test_empty_cases():
    W = torch.randn(6, 4)
    # B = 0, both layouts
    out = P.sparse_decode(torch.empty(0, 3), torch.empty(0, 3, dtype=torch.long), None, W, None)
    assert out.shape == (0, 4)
    out = P.sparse_decode(torch.empty(0), torch.empty(0, dtype=torch.long), torch.zeros(1, dtype=torch.long), W, None)
    assert out.shape == (0, 4)
    # rows with no entries decode to the bias; no entries at all give a zero weight gradient
    b = torch.randn(4)
    out = P.sparse_decode(torch.empty(0), torch.empty(0, dtype=torch.long), torch.zeros(3, dtype=torch.long), W, b)
    assert torch.equal(out, b.expand(2, 4))
    grad_W, value_sum = P.sparse_decode_grad_weight(
        torch.randn(2, 4), torch.empty(0), torch.empty(0, dtype=torch.long), torch.zeros(3, dtype=torch.long), 6
    )
    assert torch.equal(grad_W, torch.zeros(6, 4)) and torch.equal(value_sum, torch.zeros(6))
    # k = 0
    out = P.sparse_decode(torch.empty(2, 0), torch.empty(2, 0, dtype=torch.long), None, W, b)
    assert torch.equal(out, b.expand(2, 4))


def test_strided_inputs():
    values, indices, _ = fixed_k_code(8, 4, 20, torch.float64)
    W = torch.randn(20, 9, dtype=torch.float64)
    want = P.sparse_decode(values, indices, None, W, None)
    W_t = W.t().contiguous().t()
    values_s = torch.stack([values, values], 2)[..., 0]
    indices_s = torch.stack([indices, indices], 2)[..., 1]
    assert torch.equal(P.sparse_decode(values_s, indices_s, None, W_t, None), want)


def test_weight_gradient_is_deterministic():
    values, indices, offsets = row_compressed_code(200, 50, 30, torch.float32)
    grad_out = torch.randn(200, 64)
    first = P.sparse_decode_grad_weight(grad_out, values, indices, offsets, 50)
    W = torch.randn(50, 64)
    first_fused = P.sparse_decode_backward(grad_out, values, indices, offsets, W)
    for _ in range(3):
        again = P.sparse_decode_grad_weight(grad_out, values, indices, offsets, 50)
        assert all(torch.equal(a, f) for a, f in zip(again, first))
        again = P.sparse_decode_backward(grad_out, values, indices, offsets, W)
        assert all(torch.equal(a, f) for a, f in zip(again, first_fused))


# ---- autograd, opcheck -------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["fixed_k", "row_compressed"])
def test_decode_gradcheck_and_gradgradcheck(layout):
    values, indices, offsets = fixed_k_code(5, 3, 8) if layout == "fixed_k" else row_compressed_code(5, 8, 4)
    W = torch.randn(8, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    values.requires_grad_()

    def fn(v, W, b):
        return P.sparse_decode(v, indices, offsets, W, b)

    assert torch.autograd.gradcheck(fn, (values, W, b))
    assert torch.autograd.gradgradcheck(fn, (values, W, b))
    grad_out = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g, W: P.sparse_decode_grad_values(g, indices, offsets, W), (grad_out, W))
    assert torch.autograd.gradcheck(
        lambda g, v: P.sparse_decode_grad_weight(g, v, indices, offsets, 8), (grad_out, values)
    )
    assert torch.autograd.gradcheck(
        lambda g, v, W: P.sparse_decode_backward(g, v, indices, offsets, W), (grad_out, values, W)
    )


@pytest.mark.parametrize("layout", ["fixed_k", "row_compressed"])
def test_decode_opcheck(layout):
    for requires_grad in (False, True):
        values, indices, offsets = fixed_k_code(6, 3, 10, torch.float32) if layout == "fixed_k" else row_compressed_code(6, 10, 4, torch.float32)
        W = torch.randn(10, 7, requires_grad=requires_grad)
        b = torch.randn(7, requires_grad=requires_grad)
        values.requires_grad_(requires_grad)
        grad_out = torch.randn(6, 7, requires_grad=requires_grad)
        torch.library.opcheck(P.sparse_decode, (values, indices, offsets, W, b))
        torch.library.opcheck(P.sparse_decode, (values, indices, offsets, W, None))
        torch.library.opcheck(P.sparse_decode_grad_values, (grad_out, indices, offsets, W))
        torch.library.opcheck(P.sparse_decode_grad_weight, (grad_out, values, indices, offsets, 10))
        torch.library.opcheck(P.sparse_decode_backward, (grad_out, values, indices, offsets, W))


# ---- bad input ---------------------------------------------------------------------------


def test_decode_bad_inputs():
    values, indices, _ = fixed_k_code(4, 2, 6, torch.float32)
    csr_values, csr_indices, offsets = torch.randn(5), torch.tensor([0, 3, 1, 2, 5]), torch.tensor([0, 2, 2, 5])
    W, b = torch.randn(6, 3), torch.randn(3)
    decode = "prismkit::sparse_decode: "
    cases = [
        ((values, indices.clone().fill_(6), None, W, b), IndexError, "'indices' must lie in [0, F) = [0, 6), got entries from 6 to 6"),
        ((values, indices - 1, None, W, b), IndexError, "'indices' must lie in [0, F) = [0, 6), got entries from -1"),
        ((values, indices.int(), None, W, b), TypeError, "'indices' must have dtype int64 on cpu, got a 2-D int32"),
        ((values[:, :1], indices, None, W, b), ValueError, "'values' must have the shape of indices [4, 2], got a 2-D float32 tensor of shape [4, 1]"),
        ((values, indices, None, W.double(), b), TypeError, "'W_dec' must have the dtype of 'values' (float32)"),
        ((values, indices, None, W, b[:2]), ValueError, "'b_dec' must have size 3 in dim 0 (d, the feature size of W_dec)"),
        ((values, indices, None, W[0], b), ValueError, "'W_dec' must be a 2-D tensor [F, d]"),
        ((values.long(), indices, None, W, b), TypeError, "'values' must have dtype float32 or float64 on cpu"),
        ((values, indices, None, W.to("meta"), b), ValueError, "'W_dec' must be on the device of 'values' (cpu)"),
        ((csr_values, csr_indices, offsets[:-1], W, b), ValueError, "'offsets' must start at 0 and end at nnz = 5 (the length of indices), got 0 and 2"),
        ((csr_values, csr_indices, offsets + 1, W, b), ValueError, "'offsets' must start at 0 and end at nnz = 5"),
        ((csr_values, csr_indices, torch.tensor([0, 3, 2, 5]), W, b), ValueError, "'offsets' must be non-decreasing"),
        ((csr_values, csr_indices, offsets.int(), W, b), TypeError, "'offsets' must have dtype int64"),
        ((csr_values, csr_indices, offsets[None], W, b), ValueError, "'offsets' must be a 1-D tensor [B + 1]"),
        ((csr_values[None], csr_indices[None], offsets, W, b), ValueError, "'indices' must be a 1-D tensor [nnz] (row-compressed layout, offsets given)"),
        ((values[0], indices[0], None, W, b), ValueError, "'indices' must be a 2-D tensor [B, k] (fixed-k layout, offsets None)"),
    ]  # fmt: skip
    for args, error, message in cases:
        with pytest.raises(error) as info:
            P.sparse_decode(*args)
        assert decode + message in str(info.value), str(info.value)
    grad = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"sparse_decode_grad_values: 'grad_out' must have size 3 in dim 1"):
        P.sparse_decode_grad_values(torch.randn(4, 2), indices, None, W)
    with pytest.raises(ValueError, match=r"sparse_decode_grad_values: 'grad_out' must have size 4 in dim 0 \(B"):
        P.sparse_decode_grad_values(torch.randn(5, 3), indices, None, W)
    with pytest.raises(IndexError, match=r"sparse_decode_grad_weight: 'indices' must lie in \[0, F\) = \[0, 5\)"):
        P.sparse_decode_grad_weight(grad, values, indices.clone().fill_(5), None, 5)
    with pytest.raises(ValueError, match=r"sparse_decode_grad_weight: 'num_latents' must be >= 0, got -1"):
        P.sparse_decode_grad_weight(grad, values, indices, None, -1)
    with pytest.raises(ValueError, match=r"sparse_decode_backward: 'grad_out' must have size 3 in dim 1"):
        P.sparse_decode_backward(torch.randn(4, 2), values, indices, None, W)
    with pytest.raises(IndexError, match=r"sparse_decode_backward: 'indices' must lie in \[0, F\) = \[0, 6\)"):
        P.sparse_decode_backward(grad, values, indices + 6, None, W)


def test_nan_values_propagate():
    values, indices, _ = fixed_k_code(3, 2, 5, torch.float32)
    values[1, 0] = float("nan")
    out = P.sparse_decode(values, indices, None, torch.randn(5, 4), None)
    assert torch.isnan(out[1]).all() and not torch.isnan(out[[0, 2]]).any()


# ---- SparseCode ----------------------------------------------------------------------------


def test_sparse_code_round_trip():
    x, W, b = continuous(6, 5, 12, torch.float64)
    W_dec = torch.randn(12, 5, dtype=torch.float64)
    for code, dense_want in [
        (ops.topk_encode(x, W, b, 3), None),
        (ops.batch_topk_encode(x, W, b, 3), None),
        (ops.feature_choice_encode(x, W, b, ops.equal_capacity(12, 3, 6)), None),
    ]:
        dense = code.to_dense()
        assert dense.shape == (6, 12) and code.batch_size == 6
        assert int((dense != 0).sum()) <= code.indices.numel()
        torch.testing.assert_close(code.decode(W_dec), dense @ W_dec)
        assert int(code.row_counts().sum()) == code.indices.numel()
        assert code.row_ids().shape == code.indices.shape
        # every selected entry holds the pre-activation value it came from
        acts = ref.pre_activations(x, W, b)
        torch.testing.assert_close(code.values, acts[code.row_ids(), code.indices])
