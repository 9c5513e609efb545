"""The SAE ops on CUDA tensors: the CUDA C++ decode kernels and the compiled Triton encoders
(skipped without a GPU). Low-precision results follow the "twice the eager error" rule: the
error against a float64 reference may be at most twice that of the plain-PyTorch computation in
the same low precision."""

import pytest
import torch
from conftest import TOLERANCES
from sae_cases import continuous, equal_capacity, fixed_k_code, grid, ref, row_compressed_code, zipf_capacity

pytestmark = pytest.mark.gpu
P = torch.ops.prismkit
LOW = [torch.bfloat16, torch.float16]


def max_err(a, b):
    return (a.double() - b.double()).abs().max().item()


def codes(B, F, k, dtype):
    for values, indices, offsets in (fixed_k_code(B, k, F, dtype), row_compressed_code(B, F, k, dtype)):
        yield values.cuda(), indices.cuda(), None if offsets is None else offsets.cuda()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_decode_ops_match_reference(dtype):
    for B, F, d, k in [(1, 5, 3, 2), (33, 64, 48, 8), (50, 300, 129, 17), (257, 1000, 768, 32)]:
        W = torch.randn(F, d, dtype=dtype, device="cuda")
        b = torch.randn(d, dtype=dtype, device="cuda")
        grad_out = torch.randn(B, d, dtype=dtype, device="cuda")
        for values, indices, offsets in codes(B, F, k, dtype):
            torch.testing.assert_close(P.sparse_decode(values, indices, offsets, W, b),
                                       ref.sparse_decode(values, indices, offsets, W, b), **TOLERANCES[dtype])  # fmt: skip
            torch.testing.assert_close(P.sparse_decode_grad_values(grad_out, indices, offsets, W),
                                       ref.sparse_decode_grad_values(grad_out, indices, offsets, W), **TOLERANCES[dtype])  # fmt: skip
            for got, want in zip(P.sparse_decode_grad_weight(grad_out, values, indices, offsets, F),
                                 ref.sparse_decode_grad_weight(grad_out, values, indices, offsets, F), strict=True):  # fmt: skip
                torch.testing.assert_close(got, want, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", LOW)
def test_decode_low_precision_within_twice_eager_error(dtype):
    B, F, d, k = 128, 2048, 768, 32
    values, indices, _ = fixed_k_code(B, k, F, torch.float64)
    W = torch.randn(F, d, dtype=torch.float64)
    exact = ref.sparse_decode(values, indices, None, W, None)
    v, i, Wl = values.to("cuda", dtype), indices.cuda(), W.to("cuda", dtype)
    eager = ref.sparse_decode(v, i, None, Wl, None)
    got = P.sparse_decode(v, i, None, Wl, None)
    assert max_err(got.cpu(), exact) <= 2 * max_err(eager.cpu(), exact) + 1e-6


def test_weight_gradient_is_deterministic_on_gpu():
    values, indices, offsets = (t.cuda() for t in row_compressed_code(500, 64, 40, torch.float32))
    grad_out = torch.randn(500, 96, device="cuda")
    first = P.sparse_decode_grad_weight(grad_out, values, indices, offsets, 64)
    for _ in range(3):
        assert all(
            torch.equal(a, b)
            for a, b in zip(P.sparse_decode_grad_weight(grad_out, values, indices, offsets, 64), first, strict=True)
        )


@pytest.mark.parametrize("dtype", [torch.float32, *LOW])
def test_encoders_select_the_largest_entries(dtype, monkeypatch):
    """Compiled Triton encoders in every GPU dtype: the selected entries carry the pre-activation
    values (computed in float32 from the same low-precision inputs) and no unselected entry of a
    row beats the row's smallest selected one by more than the rounding tolerance."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    B, d, F, k = 300, 96, 1500, 16
    x, W, b = (t.to("cuda", dtype) for t in continuous(B, d, F, torch.float32))
    acts = ref.pre_activations(x.float(), W.float(), b.float())
    tol = TOLERANCES[dtype]["atol"] * 4
    values, indices = P.topk_encode(x, W, b, k)
    assert values.dtype == dtype and indices.shape == (B, k)
    torch.testing.assert_close(values.float(), acts.gather(1, indices), atol=tol, rtol=tol)
    kth = values.float()[:, -1:]
    assert (acts.scatter(1, indices, -1.0) <= kth + tol).all()
    cap = zipf_capacity(F, k, B).cuda()
    for op, arg in [(P.batch_topk_encode, k), (P.feature_choice_encode, cap)]:
        vals, idx, offs = op(x, W, b, arg)
        rows = torch.repeat_interleave(torch.arange(B, device="cuda"), offs.diff())
        torch.testing.assert_close(vals.float(), acts[rows, idx], atol=tol, rtol=tol)
        assert (vals.float() > 0).all()
        selected = torch.zeros_like(acts, dtype=torch.bool)
        selected[rows, idx] = True
        assert int(selected.sum()) == idx.numel()  # no entry twice
        unselected = acts.masked_fill(selected, float("-inf"))
        if op is P.batch_topk_encode:  # the k*B largest of the whole batch
            assert idx.numel() <= k * B
            assert (unselected <= vals.float().min() + tol).all()
        else:  # per latent, its capacity's largest tokens; below capacity only when it ran out of positives
            counts = torch.bincount(idx, minlength=F)
            assert (counts <= cap).all()
            col_min = torch.full((F,), float("inf"), device="cuda").scatter_reduce(0, idx, vals.float(), "amin")
            best_unselected, full = unselected.max(0).values, counts == cap.clamp(max=B)
            assert (best_unselected[full] <= col_min[full] + tol).all()
            assert (best_unselected[~full] <= tol).all()


def test_encoders_match_cpu_on_exact_inputs():
    """On grid inputs every dot product is exact, so GPU and CPU must select the same entries."""
    x, W, b = grid(70, 8, 333)
    cap = zipf_capacity(333, 5, 70)
    for op, arg in [(P.topk_encode, 5), (P.batch_topk_encode, 5), (P.feature_choice_encode, cap)]:
        cpu = op(x, W, b, arg)
        gpu = op(x.cuda(), W.cuda(), b.cuda(), arg.cuda() if isinstance(arg, torch.Tensor) else arg)
        assert all(torch.equal(c, g.cpu()) for c, g in zip(cpu, gpu, strict=True)), op


def test_opcheck_on_gpu():
    x, W, b = (t.cuda() for t in continuous(20, 16, 64, torch.float32))
    for op, arg in [
        (P.topk_encode, 4),
        (P.batch_topk_encode, 4),
        (P.feature_choice_encode, equal_capacity(64, 4, 20).cuda()),
    ]:
        torch.library.opcheck(op, (x, W, b, arg))
    values, indices, offsets = (
        t.cuda() if t is not None else None for t in row_compressed_code(10, 64, 5, torch.float32)
    )
    Wd = torch.randn(64, 16, device="cuda", requires_grad=True)
    torch.library.opcheck(P.sparse_decode, (values.requires_grad_(), indices, offsets, Wd, None))
    torch.library.opcheck(P.sparse_decode_grad_values, (torch.randn(10, 16, device="cuda"), indices, offsets, Wd))
    torch.library.opcheck(
        P.sparse_decode_grad_weight, (torch.randn(10, 16, device="cuda"), values, indices, offsets, 64)
    )


def test_bad_inputs_on_gpu_raise_without_crashing():
    values, indices, _ = (t.cuda() if t is not None else None for t in fixed_k_code(4, 2, 6, torch.float32))
    W = torch.randn(6, 3, device="cuda")
    with pytest.raises(IndexError, match=r"'indices' must lie in \[0, F\) = \[0, 6\)"):
        P.sparse_decode(values, indices + 6, None, W, None)
    with pytest.raises(ValueError, match=r"'W_dec' must be on the device of 'values'"):
        P.sparse_decode(values, indices, None, W.cpu(), None)
    x, We, b = (t.cuda() for t in continuous(4, 3, 6, torch.float64))
    with pytest.raises(TypeError, match=r"prismkit::topk_encode: 'x' must have dtype float32 or float16 or bfloat16"):
        P.topk_encode(x, We, b, 2)
    with pytest.raises(ValueError, match=r"'capacity' must be >= 0 everywhere"):
        P.feature_choice_encode(x.float(), We.float(), b.float(), torch.tensor([1, -2, 0, 0, 0, 0], device="cuda"))
    torch.cuda.synchronize()  # the context is still healthy
    assert P.sparse_decode(values, indices, None, W, None).isfinite().all()


def test_decode_checks_synchronize_once_per_call():
    """The layout's data checks (offsets, index range) read back their numbers in one transfer: one
    device synchronization per call, whatever the layout."""
    import warnings

    W = torch.randn(64, 16, device="cuda")
    codes = [tuple(t.cuda() if t is not None else None for t in code)
             for code in (fixed_k_code(10, 4, 64, torch.float32), row_compressed_code(10, 64, 5, torch.float32))]  # fmt: skip
    for values, indices, offsets in codes:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                P.sparse_decode(values, indices, offsets, W, None)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        syncs = [w for w in caught if "synchroniz" in str(w.message)]
        assert len(syncs) == 1, [str(w.message) for w in caught]
