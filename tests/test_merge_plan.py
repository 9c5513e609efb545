"""The plan ops (merge_plan, pitome_energy, divprune_select) on the C++ CPU kernel and on the CUDA
path (Triton energy; compiled on a GPU, interpreted on the CPU otherwise) against the reference
(prismkit/reference/merge.py, itself tested against the official computations in
test_merge_reference.py): the same destination maps and picks exactly on random inputs without
ties, energies to float32 rounding; applied with token_merge, the official merged tokens; every
path of the CPU instruction-set dispatch; dtypes, r = 0, B = 0, NaN, opcheck."""

import pytest
import torch
from conftest import impl_op
from sae_cases import HAS_TRITON

from prismkit import _cpu
from prismkit.ops import merge as M
from prismkit.reference import merge as ref

IMPLS = ["cpu", "triton"] if HAS_TRITON else ["cpu"]
CASES = [  # (B, N, d, ratio, class_token): odd and even N, odd d, ratios 0.5 / 0.9 / 0.975
    (2, 33, 16, 0.9, True),
    (3, 50, 7, 0.5, False),
    (1, 80, 40, 0.975, True),
    (2, 129, 64, 0.9, True),
]


def metric_of(B, N, d, seed=0):
    return torch.randn(B, N, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("method", ["pitome", "pitome_bsm", "pitome_text", "tome"])
@pytest.mark.parametrize("prune", [False, True])
def test_plan_matches_the_reference(impl, method, prune):
    op = impl_op(impl, "merge", "merge_plan")
    for i, (B, N, d, ratio, class_token) in enumerate(CASES):
        metric = metric_of(B, N, d, seed=i)
        r = ref.keep_ratio_to_r(N - int(class_token), ratio)
        dest, energy = op(metric, r, method, 0.5, 1.0, class_token, prune)
        want, want_energy = ref.merge_plan(metric, r, method, 0.5, 1.0, class_token, prune)
        assert torch.equal(dest, want), (method, B, N, d)
        assert energy.shape == want_energy.shape and energy.dtype == metric.dtype
        torch.testing.assert_close(energy, want_energy, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["pitome", "pitome_bsm", "pitome_text"])
def test_plan_with_token_merge_gives_the_official_tokens(method):
    metric = metric_of(2, 65, 24, seed=3)
    x = torch.randn(2, 65, 48)
    size = None
    for _ in range(3):  # a chain of layers with the sizes carried
        N = x.shape[1]
        r = ref.keep_ratio_to_r(N - 1, 0.8)
        dest, _ = M.merge_plan(metric, r, method, margin=0.6)
        got, got_size = M.token_merge(x, size, dest, N - r)
        want, want_size = ref.official_pitome_wavg(x, size, metric, r, 0.6, variant=method)
        assert torch.equal(got_size, want_size)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        x, size = got, got_size
        metric = M.token_merge(metric, None, dest, N - r, "mean")[0]


def test_tome_plan_gives_the_official_tokens_and_clamps_r():
    metric, x = metric_of(2, 31, 16, seed=4), torch.randn(2, 31, 8)
    for r in (5, 40):
        dest, energy = M.merge_plan(metric, r, "tome")
        r_eff = min(r, 15)
        got, size = M.token_merge(x, None, dest, 31 - r_eff)
        want, want_size = ref.official_tome_wavg(x, None, metric, r)
        assert energy.numel() == 0 and torch.equal(size, want_size)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kernel", ["elu", "gaussian", "paper"])
def test_energy_matches_the_reference(impl, kernel):
    op = impl_op(impl, "merge", "pitome_energy")
    for B, N, d in ((2, 33, 16), (1, 70, 37), (3, 5, 1)):
        metric = metric_of(B, N, d, seed=N)
        for margin in (0.5, 0.0):
            torch.testing.assert_close(op(metric, margin, 0.7, kernel), ref.pitome_energy(metric, margin, 0.7, kernel),
                                       rtol=1e-5, atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("impl", IMPLS)
def test_divprune_matches_the_reference_and_the_official_loop(impl):
    op = impl_op(impl, "merge", "divprune_select")
    for B, N, d, k in ((2, 50, 70, 7), (1, 97, 33, 96), (3, 40, 8, 40), (2, 1, 5, 1), (2, 9, 4, 0)):
        metric = metric_of(B, N, d, seed=k)
        got = op(metric, k)
        assert got.shape == (B, k) and got.dtype == torch.int64
        assert torch.equal(got, ref.divprune_select(metric, k)), (B, N, d, k)
        if N > 1 and k > 0:
            for b in range(B):
                assert torch.equal(got[b], ref.official_divprune(metric[b], k))


def test_every_cpu_path_decides_the_same():
    metric = metric_of(2, 100, 33, seed=9)
    r = 30
    want = {m: ref.merge_plan(metric, r, m, margin=0.5)[0] for m in ("pitome", "pitome_bsm", "tome")}
    want_div = ref.divprune_select(metric, 20)
    before = _cpu.capability()["path"]
    try:
        for path in _cpu.supported_paths():
            _cpu.set_path(path)
            for m, dest in want.items():
                assert torch.equal(M.merge_plan(metric, r, m, margin=0.5)[0], dest), (path, m)
            assert torch.equal(M.divprune_select(metric, 20), want_div), path
            torch.testing.assert_close(M.pitome_energy(metric, 0.5), ref.pitome_energy(metric, 0.5))
    finally:
        _cpu.set_path(before)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_dtypes_plan_in_float32(impl, dtype):
    metric = metric_of(2, 40, 16, seed=1).to(dtype)
    dest, energy = impl_op(impl, "merge", "merge_plan")(metric, 10, "pitome", 0.5, 1.0, True, False)
    want, want_energy = ref.merge_plan(metric.float(), 10, "pitome", margin=0.5)
    assert torch.equal(dest, want) and energy.dtype == dtype  # ranked by float32 energies, not rounded ones
    picks = impl_op(impl, "merge", "divprune_select")(metric, 9)
    assert torch.equal(picks, ref.divprune_select(metric.float(), 9))


def test_r_zero_and_empty_batches():
    metric = metric_of(2, 11, 4)
    for method in ("pitome", "pitome_text", "tome"):
        assert torch.equal(M.merge_plan(metric, 0, method)[0], torch.arange(11).expand(2, 11))
    assert torch.equal(M.merge_plan(metric, 0, "pitome_bsm")[0], ref.merge_plan(metric, 0, "pitome_bsm")[0])
    empty = torch.zeros(0, 11, 4)
    dest, energy = M.merge_plan(empty, 3, "pitome")
    assert dest.shape == (0, 11) and energy.shape == (0, 10)
    assert M.divprune_select(empty, 3).shape == (0, 3)
    assert M.pitome_energy(empty, 0.5).shape == (0, 11)


@pytest.mark.parametrize("impl", IMPLS)
def test_nan_metric_gives_a_valid_plan(impl):
    plan = impl_op(impl, "merge", "merge_plan")
    metric = metric_of(2, 21, 8)
    metric[0, 3] = float("nan")
    metric[1] = float("nan")
    for method in ("pitome", "pitome_bsm", "tome"):
        r = 6
        dest, _ = plan(metric, r, method, 0.5, 1.0, True, False)
        for row in dest:  # each slot used, all in range
            assert row.min() >= 0 and (torch.bincount(row, minlength=21 - r) > 0).all()
    picks = impl_op(impl, "merge", "divprune_select")(metric, 5)
    for row in picks:
        assert row.unique().numel() == 5 and row.min() >= 0 and row.max() < 21


def test_largest_r_is_named():
    metric = metric_of(1, 10, 4)
    with pytest.raises(ValueError, match="the largest r is 4"):
        M.merge_plan(metric, 5, "pitome")
    with pytest.raises(ValueError, match="the largest r is 5"):
        M.merge_plan(metric, 6, "pitome_bsm", class_token=False)
    with pytest.raises(ValueError, match="the largest r is 0"):
        M.merge_plan(metric[:, :2], 1, "pitome_bsm")


def test_opcheck():
    metric = metric_of(2, 17, 8)
    torch.library.opcheck(torch.ops.prismkit.pitome_energy.default, (metric, 0.5, 1.0, "elu"))
    torch.library.opcheck(
        torch.ops.prismkit.pitome_energy.default, (metric.double().requires_grad_(), 0.5, 1.0, "paper")
    )
    for method in ("pitome", "pitome_bsm", "pitome_text", "tome"):
        torch.library.opcheck(torch.ops.prismkit.merge_plan.default, (metric, 4, method, 0.5, 1.0, True, False))
    torch.library.opcheck(torch.ops.prismkit.divprune_select.default, (metric, 5))


@pytest.mark.parametrize("kernel", ["elu", "gaussian", "paper"])
def test_energy_gradient(kernel):
    metric = metric_of(2, 9, 5).double().requires_grad_()
    # the forward computes in float32 even for float64 metrics: finite differences over a wider step
    torch.autograd.gradcheck(lambda m: M.pitome_energy(m, 0.3, 0.8, kernel), (metric,), eps=1e-3, atol=2e-3,
                             rtol=1e-2)  # fmt: skip


COMPILE_FOR_HOPPER = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from prismkit.triton_kernels import merge as k

target = GPUTarget("cuda", 90, 32)
for dtype in ("fp32", "bf16", "fp16"):
    energy = {"m_ptr": f"*{dtype}", "inv_ptr": "*fp32", "out_ptr": "*fp32", "T": "i32", "D": "i32", "margin": "fp32",
              "alpha": "fp32", "scale": "fp32", "KERNEL": "constexpr", "BLOCK": "constexpr", "BLOCK_D": "constexpr"}
    for kernel in (0, 1, 2):
        triton.compile(ASTSource(k._energy_kernel, energy, {"KERNEL": kernel, "BLOCK": 32, "BLOCK_D": 32}), target=target)
    merge = {"x_ptr": f"*{dtype}", "size_ptr": f"*{dtype}", "members_ptr": "*i64", "start_ptr": "*i64",
             "out_ptr": f"*{dtype}", "size_out_ptr": f"*{dtype}", "N": "i32", "C": "i32", "num_out": "i32",
             "slot0": "i32", "b0": "i32", "HAS_SIZE": "constexpr", "REDUCE": "constexpr", "BLOCK": "constexpr"}
    for reduce in (0, 1, 2, 3):
        triton.compile(ASTSource(k._token_merge_kernel, merge, {"HAS_SIZE": True, "REDUCE": reduce, "BLOCK": 128}),
                       target=target)
match = {"m_ptr": "*fp32", "a_ptr": "*i64", "b_ptr": "*i64", "best_ptr": "*fp32", "at_ptr": "*i64", "T": "i32",
         "D": "i32", "NA": "i32", "NB": "i32", "BLOCK": "constexpr", "BLOCK_D": "constexpr"}
triton.compile(ASTSource(k._best_match_kernel, match, {"BLOCK": 32, "BLOCK_D": 32}), target=target)
print("compiled")
"""


@pytest.mark.skipif(not HAS_TRITON, reason="needs Triton")
def test_triton_kernels_compile_for_hopper():
    """The merge core's Triton kernels compiled ahead of time for sm_90 (no GPU needed): what the
    interpreter cannot check (types, layouts, tl.dot's shape rules) fails here instead of on a GPU."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compiled, not interpreted
    result = subprocess.run([sys.executable, "-c", COMPILE_FOR_HOPPER], capture_output=True, text=True, env=env,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0 and "compiled" in result.stdout, result.stderr[-3000:]
