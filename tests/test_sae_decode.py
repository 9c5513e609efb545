"""sparse_decode and its two gradient ops (C++ CPU kernels) against the dense references, plus
SparseCode. The CUDA kernels of the same ops are tested in test_sae_cuda.py."""

import pytest
import torch
from conftest import TOLERANCES
from sae_cases import continuous, equal_capacity, fixed_k_code, ops, ref, row_compressed_code

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
                strict=True,
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
        assert all(torch.equal(a, f) for a, f in zip(again, first, strict=True))
        again = P.sparse_decode_backward(grad_out, values, indices, offsets, W)
        assert all(torch.equal(a, f) for a, f in zip(again, first_fused, strict=True))


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
        values, indices, offsets = (
            fixed_k_code(6, 3, 10, torch.float32)
            if layout == "fixed_k"
            else row_compressed_code(6, 10, 4, torch.float32)
        )
        W = torch.randn(10, 7, requires_grad=requires_grad)
        b = torch.randn(7, requires_grad=requires_grad)
        values.requires_grad_(requires_grad)
        grad_out = torch.randn(6, 7, requires_grad=requires_grad)
        torch.library.opcheck(P.sparse_decode, (values, indices, offsets, W, b))
        torch.library.opcheck(P.sparse_decode, (values, indices, offsets, W, None))
        torch.library.opcheck(P.sparse_decode_grad_values, (grad_out, indices, offsets, W))
        torch.library.opcheck(P.sparse_decode_grad_weight, (grad_out, values, indices, offsets, 10))
        torch.library.opcheck(P.sparse_decode_backward, (grad_out, values, indices, offsets, W))


# Bad inputs: the contract table (tests/op_contracts.py, run by tests/test_op_contracts.py).


def test_nan_values_propagate():
    values, indices, _ = fixed_k_code(3, 2, 5, torch.float32)
    values[1, 0] = float("nan")
    out = P.sparse_decode(values, indices, None, torch.randn(5, 4), None)
    assert torch.isnan(out[1]).all() and not torch.isnan(out[[0, 2]]).any()


# ---- SparseCode ----------------------------------------------------------------------------


def test_sparse_code_round_trip():
    x, W, b = continuous(6, 5, 12, torch.float64)
    W_dec = torch.randn(12, 5, dtype=torch.float64)
    for code in [
        ops.topk_encode(x, W, b, 3),
        ops.batch_topk_encode(x, W, b, 3),
        ops.feature_choice_encode(x, W, b, equal_capacity(12, 3, 6)),
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
