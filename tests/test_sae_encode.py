"""topk_encode, batch_topk_encode, feature_choice_encode against the dense references.

Each test runs on the C++ CPU kernels ('cpu') and on the Triton kernels ('triton': compiled on a
GPU, interpreted on the CPU otherwise; interpreted runs use fewer and smaller shapes).
"""

import itertools
import math

import pytest
import torch
from conftest import TOLERANCES
from sae_cases import (
    HAS_CUDA,
    HAS_TRITON,
    IMPLS,
    assert_code_equal,
    continuous,
    encoders,
    equal_capacity,
    grid,
    ref,
    zipf_capacity,
)

INTERPRETED = not HAS_CUDA

# (B, d, F, k): tiny, k = F, B = 1, F not a multiple of 8 or of the tiles, and (CPU only) shapes
# that cross the CPU kernel's 1024-column tiles and 512-row blocks.
SHAPES = [(1, 4, 8, 1), (5, 3, 7, 7), (37, 24, 70, 5), (64, 33, 257, 16)]
CPU_SHAPES = SHAPES + [(600, 16, 1100, 3), (20, 8, 2053, 40)]


def shapes_for(impl):
    return CPU_SHAPES if impl == "cpu" else SHAPES[: 3 if INTERPRETED else 4]


def dtypes_for(impl):
    return [torch.float64, torch.float32] if impl == "cpu" else [torch.float32]


@pytest.mark.parametrize("impl", IMPLS)
def test_topk_matches_reference(impl):
    topk, _, _ = encoders(impl)
    for dtype in dtypes_for(impl):
        for B, d, F, k in shapes_for(impl):
            x, W, b = continuous(B, d, F, dtype)
            values, indices = topk(x, W, b, k)
            assert values.shape == (B, k) and indices.shape == (B, k) and indices.dtype == torch.long
            assert_code_equal((values, indices), ref.topk_encode(x, W, b, k), dtype)


@pytest.mark.parametrize("impl", IMPLS)
def test_batch_topk_matches_reference(impl):
    _, batch_topk, _ = encoders(impl)
    for dtype in dtypes_for(impl):
        for B, d, F, k in shapes_for(impl):
            x, W, b = continuous(B, d, F, dtype)
            got = batch_topk(x, W, b, k)
            assert_code_equal(got, ref.batch_topk_encode(x, W, b, k), dtype)
            assert got[0].numel() <= k * B


@pytest.mark.parametrize("impl", IMPLS)
def test_batch_topk_token_beyond_its_candidates(impl):
    """One token with a huge norm takes far more than 4k entries: the kernels must widen its
    candidate list (the retry path) and still match the global selection."""
    _, batch_topk, _ = encoders(impl)
    x, W, b = continuous(12, 8, 90, torch.float32, bias_shift=-0.5)
    x[3] *= 50
    got = batch_topk(x, W, b, 2)
    counts = got[2].diff()
    assert counts[3] > 8  # more than 4k = 8 candidates
    assert_code_equal(got, ref.batch_topk_encode(x, W, b, 2), torch.float32)


@pytest.mark.skipif(not HAS_TRITON, reason="needs Triton")
def test_batch_topk_triton_dense_row_path(monkeypatch):
    """Past MAX_CANDIDATES the Triton path takes a saturated token's whole row densely."""
    from prismkit.triton_kernels import sae as triton_sae

    monkeypatch.setattr(triton_sae, "MAX_CANDIDATES", 8)
    x, W, b = continuous(12, 8, 90, torch.float32, bias_shift=-0.5)
    x[3] *= 50
    if HAS_CUDA:
        x, W, b = x.cuda(), W.cuda(), b.cuda()
    got = tuple(t.cpu() for t in triton_sae.batch_topk_encode(x, W, b, 2))
    assert got[2].diff()[3] > 8
    assert_code_equal(got, ref.batch_topk_encode(x.cpu(), W.cpu(), b.cpu(), 2), torch.float32)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", ["equal", "zipf", "oversized", "zeros"])
def test_feature_choice_matches_reference(impl, shape):
    _, _, feature_choice = encoders(impl)
    for dtype in dtypes_for(impl):
        for B, d, F, k in shapes_for(impl):
            x, W, b = continuous(B, d, F, dtype)
            capacity = {
                "equal": lambda: equal_capacity(F, k, B),
                "zipf": lambda: zipf_capacity(F, k, B, exponent=1.2),
                "oversized": lambda: torch.randint(0, 3 * B + 2, (F,)),  # above B counts as B
                "zeros": lambda: torch.zeros(F, dtype=torch.long),
            }[shape]()
            got = feature_choice(x, W, b, capacity)
            assert_code_equal(got, ref.feature_choice_encode(x, W, b, capacity), dtype)


@pytest.mark.skipif(not HAS_TRITON, reason="needs Triton")
def test_feature_choice_triton_dense_head_path():
    """Latents whose capacity exceeds the fused kernel's limit take the dense chunked path."""
    if HAS_CUDA:
        pytest.skip("covered through the op on the GPU by the oversized/zipf cases")
    from prismkit.triton_kernels import sae as triton_sae

    x, W, b = continuous(30, 12, 40, torch.float32)
    capacity = zipf_capacity(40, 6, 30, exponent=1.5)
    got = triton_sae.feature_choice_encode(x, W, b, capacity, fused_max_capacity=4)
    assert_code_equal(got, ref.feature_choice_encode(x, W, b, capacity), torch.float32)


@pytest.mark.parametrize("impl", IMPLS)
def test_ties_and_rows_with_few_positives_exactly(impl):
    """On grid inputs (exact pre-activations, many ties, many all-zero rows) every encoder picks
    exactly the reference's entries: ties to the lower latent / flat index / token, remaining
    TopK slots filled with zero-valued, lowest-numbered latents."""
    topk, batch_topk, feature_choice = encoders(impl)
    B, d, F, k = (23, 6, 45, 7)
    x, W, b = grid(B, d, F)
    x[:4], b = 0, -b.abs()  # rows 0-3 have no positive pre-activation at all
    got = topk(x, W, b, k)
    want = ref.topk_encode(x, W, b, k)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert (want[0] == 0).any() and (want[0][:, :-1] == want[0][:, 1:]).any()  # the data has both cases
    for got, want in [
        (batch_topk(x, W, b, k), ref.batch_topk_encode(x, W, b, k)),
        (feature_choice(x, W, b, equal_capacity(F, k, B)),
         ref.feature_choice_encode(x, W, b, equal_capacity(F, k, B))),
    ]:  # fmt: skip
        assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("impl", IMPLS)
def test_indices_always_valid_and_distinct(impl):
    topk, _, _ = encoders(impl)
    x, W, b = grid(9, 4, 20)
    x[2] = 0
    _, indices = topk(x, W, b, 20)  # k = F: every latent exactly once per row
    assert torch.equal(indices.sort(1).values, torch.arange(20).expand(9, 20))


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_batch(impl):
    topk, batch_topk, feature_choice = encoders(impl)
    x, W, b = continuous(0, 5, 9, torch.float32)
    values, indices = topk(x, W, b, 3)
    assert values.shape == (0, 3) and indices.shape == (0, 3)
    for values, indices, offsets in (batch_topk(x, W, b, 3), feature_choice(x, W, b, equal_capacity(9, 3, 4))):
        assert values.numel() == 0 and indices.numel() == 0 and offsets.tolist() == [0]


@pytest.mark.parametrize("impl", IMPLS)
def test_nan_ranks_first_and_propagates(impl):
    """Documented NaN behaviour: a NaN pre-activation ranks above every number and counts as
    positive, so it reaches the output (never a crash, never silently dropped)."""
    topk, batch_topk, feature_choice = encoders(impl)
    x, W, b = continuous(6, 5, 11, torch.float32)
    x[1, 2] = float("nan")  # row 1: every pre-activation is NaN
    W[4, 0] = float("nan")  # latent 4: NaN for every token
    values, indices = topk(x, W, b, 3)
    want = ref.topk_encode(x, W, b, 3)
    torch.testing.assert_close(values, want[0], equal_nan=True)
    assert torch.equal(indices, want[1])
    assert torch.isnan(values[1]).all() and (indices[:, 0] == torch.tensor([4, 0, 4, 4, 4, 4])).all()
    assert_code_equal(batch_topk(x, W, b, 3), ref.batch_topk_encode(x, W, b, 3), torch.float32)
    cap = equal_capacity(11, 3, 6)
    assert_code_equal(feature_choice(x, W, b, cap), ref.feature_choice_encode(x, W, b, cap), torch.float32)


def test_capacity_helpers():
    cap = equal_capacity(7, 3, 5)
    assert cap.tolist() == [3, 2, 2, 2, 2, 2, 2] and int(cap.sum()) == 15
    for F, k, B, s in [(100, 8, 64, 1.0), (1000, 32, 256, 1.5), (10, 9, 3, 3.0), (50, 4, 40, 0.0)]:
        cap = zipf_capacity(F, k, B, exponent=s)
        assert cap.dtype == torch.long and cap.shape == (F,)
        assert int(cap.sum()) == min(k * B, F * B)
        assert int(cap.max()) <= B and (cap.diff() <= 1).all()  # non-increasing up to rounding
    assert zipf_capacity(4, 3, 2, exponent=2.0).tolist() == [2, 2, 1, 1]  # capped at B, excess spread
    for F, k, B, s in itertools.product([1, 7, 100, 2048], [1, 4, 32], [0, 3, 16, 100], [0.0, 1.0, 1.5, 3.0]):
        assert zipf_capacity(F, k, B, exponent=s).tolist() == water_filled_zipf(F, k, B, s), (F, k, B, s)


def water_filled_zipf(F, k, B, s):
    """zipf_capacity by its definition: shares proportional to 1/(j+1)^s, repeatedly fixing the
    latents over B at B and spreading the rest over the others; then floor and largest remainder."""
    budget = min(k * B, F * B)
    weight = [(j + 1) ** -s for j in range(F)]
    full = [False] * F
    while True:
        left = budget - B * sum(full)
        free = sum(w for w, f in zip(weight, full, strict=True) if not f)
        share = [float(B) if f else w * (left / free) for w, f in zip(weight, full, strict=True)]
        over = [sh > B and not f for sh, f in zip(share, full, strict=True)]
        if not any(over):
            break
        full = [f or o for f, o in zip(full, over, strict=True)]
    cap = [math.floor(sh) for sh in share]
    order = sorted(range(F), key=lambda j: -(share[j] - cap[j]) if cap[j] < B else 1.0)
    for j in order[: budget - sum(cap)]:
        cap[j] += 1
    return cap
    with pytest.raises(ValueError, match="num_latents > 0"):
        equal_capacity(0, 3, 4)


# ---- autograd, opcheck -------------------------------------------------------------------

ENCODE_OPS = {
    "topk": (torch.ops.prismkit.topk_encode, ref.topk_encode, lambda F, B: 3),
    "batch_topk": (torch.ops.prismkit.batch_topk_encode, ref.batch_topk_encode, lambda F, B: 3),
    "feature_choice": (
        torch.ops.prismkit.feature_choice_encode,
        ref.feature_choice_encode,
        lambda F, B: zipf_capacity(F, 3, B),
    ),
}


@pytest.mark.parametrize("name", ENCODE_OPS)
def test_encoder_gradients_match_reference_autograd(name):
    """Sparse backward (through sparse_decode / sparse_decode_grad_weight) equals dense autograd,
    including zero gradient for selected slots whose value is 0."""
    op, reference, last = ENCODE_OPS[name]
    B, d, F = 9, 6, 20
    x, W, b = continuous(B, d, F, torch.float64, bias_shift=-0.6)  # many non-positive entries
    arg = last(F, B)
    grads = []
    for fn in (op, reference):
        xs, Ws, bs = (t.clone().requires_grad_() for t in (x, W, b))
        values = fn(xs, Ws, bs, arg)[0]
        weight = torch.randn(values.shape, dtype=values.dtype, generator=torch.Generator().manual_seed(1))
        (values * weight).sum().backward()
        grads.append((xs.grad, Ws.grad, bs.grad))
    for g, want in zip(*grads, strict=True):
        torch.testing.assert_close(g, want, **TOLERANCES[torch.float64])


@pytest.mark.parametrize("name", ENCODE_OPS)
def test_encoder_gradcheck(name):
    op, _, last = ENCODE_OPS[name]
    B, d, F = 5, 4, 11
    x, W, b = (t.requires_grad_() for t in continuous(B, d, F, torch.float64))
    arg = last(F, B)
    assert torch.autograd.gradcheck(lambda x, W, b: op(x, W, b, arg)[0], (x, W, b))


@pytest.mark.parametrize("name", ENCODE_OPS)
def test_encoder_opcheck(name):
    op, _, last = ENCODE_OPS[name]
    B, d, F = 6, 5, 13
    for requires_grad in (False, True):
        x, W, b = (t.requires_grad_(requires_grad) for t in continuous(B, d, F, torch.float32))
        torch.library.opcheck(op, (x, W, b, last(F, B)))


# Bad inputs: the contract table (tests/op_contracts.py, run by tests/test_op_contracts.py).


def test_encoder_accepts_strided_inputs():
    """Transposed or sliced views (no copy by the caller) give the same selection. The values are
    the pre-activations of the GEMM the kernel hands each tile to, and a BLAS may round a
    column-major operand differently from a row-major one (by an ulp: seen with OpenBLAS-style
    kernels on AMD EPYC), so values compare to the dtype's tolerance and indices exactly."""
    x, W, b = continuous(10, 7, 30, torch.float64)
    Wt = W.t().contiguous().t()  # column-major [F, d]
    xs = torch.stack([x, x], 2)[..., 0]  # feature stride 2
    assert torch.equal(xs, x)
    for op, arg in [(torch.ops.prismkit.topk_encode, 4), (torch.ops.prismkit.batch_topk_encode, 4),
                    (torch.ops.prismkit.feature_choice_encode, equal_capacity(30, 4, 10))]:  # fmt: skip
        want = op(x, W, b, arg)
        for got in (op(xs, Wt, b, arg), op(x, W.expand(2, 30, 7)[0], b[None].expand(3, 30)[1], arg)):
            assert len(got) == len(want)
            assert_code_equal(got, want, torch.float64)
