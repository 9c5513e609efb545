"""token_merge (the destination map's segmented reduction) on the C++ CPU kernel and the Triton
kernel (compiled on a GPU, interpreted on the CPU otherwise) against the reference, with merge
plans from the reference's merge_plan, dropped tokens and empty slots; determinism, gradients,
opcheck."""

import pytest
import torch
from conftest import impl_op
from sae_cases import HAS_TRITON

from prismkit.ops import merge as M
from prismkit.reference import merge as ref

IMPLS = ["cpu", "triton"] if HAS_TRITON else ["cpu"]


def plans():
    """(x, size, dest, num_out) cases: PiToMe and ToMe plans, pruning, hand-made maps with empty
    slots, odd channel counts, one token, an empty batch."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for method, N, r, C, prune in (("pitome", 33, 8, 24, False), ("tome", 20, 9, 130, False),
                                   ("pitome_bsm", 17, 5, 1, False), ("pitome", 26, 6, 7, True)):  # fmt: skip
        metric = torch.randn(3, N, 8, generator=g)
        dest, _ = ref.merge_plan(metric, r, method, margin=0.5, prune=prune)
        cases.append((torch.randn(3, N, C, generator=g), torch.rand(3, N, 1, generator=g) + 0.5, dest, N - r))
    dest = torch.tensor([[2, 2, -1, 0, 2], [4, 4, 4, 4, 4]])  # slots 1 and 3 of image 0 are empty
    cases.append((torch.randn(2, 5, 3, generator=g), None, dest, 5))
    cases.append((torch.randn(1, 1, 4, generator=g), None, torch.zeros(1, 1, dtype=torch.int64), 1))
    cases.append((torch.randn(0, 4, 3), None, torch.zeros(0, 4, dtype=torch.int64), 2))
    return cases


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("reduce", ["wavg", "mean", "sum", "amax"])
def test_matches_the_reference(impl, reduce):
    op = impl_op(impl, "merge", "token_merge")
    for x, size, dest, num_out in plans():
        got, got_size = op(x, size, dest, num_out, reduce)
        want, want_size = ref.token_merge(x, size, dest, num_out, reduce)
        assert got.shape == want.shape and got_size.shape == want_size.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got_size, want_size)
        if impl == "cpu":
            double = M.token_merge(x.double(), None if size is None else size.double(), dest, num_out, reduce)
            want64 = ref.token_merge(x.double(), None if size is None else size.double(), dest, num_out, reduce)
            torch.testing.assert_close(double[0], want64[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_bit_deterministic_and_equal_to_the_official_merge_wavg(impl):
    op = impl_op(impl, "merge", "token_merge")
    g = torch.Generator().manual_seed(1)
    metric, x = torch.randn(2, 50, 16, generator=g), torch.randn(2, 50, 40, generator=g)
    dest, _ = ref.merge_plan(metric, 20, "pitome", margin=0.6)
    first = op(x, None, dest, 30)
    assert all(torch.equal(a, b) for a, b in zip(first, op(x, None, dest, 30), strict=True))
    official = ref.official_pitome_wavg(x, None, metric, 20, 0.6)
    torch.testing.assert_close(first[0], official[0], rtol=1e-5, atol=1e-6)
    assert torch.equal(first[1], official[1])


@pytest.mark.parametrize("reduce", ["wavg", "mean", "sum", "amax"])
def test_gradients(reduce):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 9, 3, generator=g, dtype=torch.float64, requires_grad=True)
    size = torch.rand(2, 9, 1, generator=g, dtype=torch.float64) + 0.5
    dest = torch.tensor([[0, 0, 1, 2, 2, 2, -1, 3, 1], [3, 2, 1, 4, 4, 1, 2, 3, -1]])  # image 1: slot 0 empty
    for s in (size, None):
        torch.autograd.gradcheck(lambda t, s=s: M.token_merge(t, s, dest, 5, reduce)[0], (x,))
    if reduce == "amax":  # tied maxima share the gradient equally
        tied = torch.tensor([[[1.0], [1.0], [0.0]]], requires_grad=True)
        M.token_merge(tied, None, torch.zeros(1, 3, dtype=torch.int64), 1, "amax")[0].sum().backward()
        assert tied.grad.flatten().tolist() == [0.5, 0.5, 0.0]


@pytest.mark.skipif(not HAS_TRITON, reason="needs Triton")
def test_triton_launches_in_grid_chunks_and_takes_half_precision(monkeypatch):
    from prismkit.triton_kernels import merge as kernels

    if not torch.cuda.is_available():
        monkeypatch.setattr(kernels, "MAX_GRID_Y", 2)  # 3 images and 5 slots: several launches each
    g = torch.Generator().manual_seed(4)
    x, dest = torch.randn(3, 8, 5, generator=g), torch.tensor([0, 1, 1, 2, 3, 4, 4, -1]).expand(3, 8).contiguous()
    for dtype in (torch.float32, torch.float16):
        got = impl_op("triton", "merge", "token_merge")(x.to(dtype), None, dest, 5, "wavg")
        want = ref.token_merge(x.to(dtype), None, dest, 5, "wavg")
        torch.testing.assert_close(got[0], want[0], rtol=1e-3, atol=1e-3)
        assert got[0].dtype == dtype


def test_opcheck_and_edge_values():
    x = torch.randn(2, 6, 4)
    dest = torch.tensor([[0, 1, 1, -1, 2, 0], [2, 2, 2, 2, 0, 1]])
    for reduce in ("wavg", "amax"):
        torch.library.opcheck(torch.ops.prismkit.token_merge, (x, torch.ones(2, 6, 1), dest, 3, reduce))
    out, size = M.token_merge(x, None, torch.full((2, 6), -1), 2)  # everything dropped
    assert torch.equal(out, torch.zeros(2, 2, 4)) and torch.equal(size, torch.zeros(2, 2, 1))
    x[0, 1, 0] = float("nan")  # a NaN token poisons its own slot only, whatever the reduce
    for impl in IMPLS:
        for reduce in ("wavg", "mean", "sum", "amax"):
            out, _ = impl_op(impl, "merge", "token_merge")(x, None, dest, 3, reduce)
            assert out[0, 1, 0].isnan() and not out[0, 0].isnan().any() and not out[1].isnan().any(), (impl, reduce)
    with pytest.raises(IndexError, match="'dest' must be in"):
        M.token_merge(x, None, dest, 2)
