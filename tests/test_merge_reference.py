"""The token-merging reference's plan form (merge_plan's destination map, token_merge's segmented
reduction) against the official computations op for op (PiToMe's pitome_vision + merge_wavg, ToMe's
bipartite_soft_matching + merge_wavg, DivPrune's loop): the same tokens, order and sizes exactly,
merged values to float32 rounding."""

import pytest
import torch

from prismkit.reference import merge as ref


def tokens(B, N, d=16, C=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, d, generator=g), torch.randn(B, N, C, generator=g)


@pytest.mark.parametrize("ratio", [0.5, 0.9, 0.975])
@pytest.mark.parametrize("N", [33, 50])
@pytest.mark.parametrize("class_token", [True, False])
@pytest.mark.parametrize("method", ["pitome", "pitome_bsm", "pitome_text"])
def test_pitome_plan_merges_as_the_official_code(ratio, N, class_token, method):
    metric, x = tokens(2, N, seed=N)
    r = ref.keep_ratio_to_r(N - int(class_token), ratio)
    dest, energy = ref.merge_plan(metric, r, method, margin=0.6, class_token=class_token)
    assert energy.shape == (2, N - int(class_token))
    got, size = ref.token_merge(x, None, dest, N - r)
    want, want_size = ref.official_pitome_wavg(x, None, metric, r, 0.6, class_token=class_token,
                                               variant=method)  # fmt: skip
    assert torch.equal(size, want_size)  # integer-valued: exact
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for row in dest:  # every output slot is used
        assert (torch.bincount(row[row >= 0], minlength=N - r) > 0).all() and int(row.max()) == N - r - 1


@pytest.mark.parametrize("N,r", [(33, 8), (50, 30), (17, 0), (2, 1)])
@pytest.mark.parametrize("class_token", [True, False])
def test_tome_plan_merges_as_the_official_code_and_clamps_r(N, r, class_token):
    metric, x = tokens(3, N, seed=r)
    dest, energy = ref.merge_plan(metric, r, "tome", class_token=class_token)
    assert energy.numel() == 0
    r_eff = min(r, (N - int(class_token)) // 2)
    got, size = ref.token_merge(x, None, dest, N - r_eff)
    want, want_size = ref.official_tome_wavg(x, None, metric, r, class_token=class_token)
    assert torch.equal(size, want_size)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    if class_token:
        assert (dest[:, 0] == 0).all()  # the class token stays first


def test_a_chain_of_layers_carries_the_sizes():
    metric, x = tokens(2, 41, seed=5)
    size = None
    want_x, want_size = x, None
    for r in (8, 6, 5):
        N = x.shape[1]
        dest, _ = ref.merge_plan(metric, r, "pitome", margin=0.5)
        x, size = ref.token_merge(x, size, dest, N - r)
        want_x, want_size = ref.official_pitome_wavg(want_x, want_size, metric, r, 0.5)
        metric = ref.token_merge(metric, None, dest, N - r, "mean")[0]  # the next layer's keys, stand-in
        assert torch.equal(size, want_size)
        torch.testing.assert_close(x, want_x, rtol=1e-5, atol=1e-5)
    assert x.shape[1] == 41 - 19 and int(size.sum()) == 2 * 41


def test_prune_drops_the_merged_tokens():
    metric, x = tokens(1, 21, seed=2)
    dest, _ = ref.merge_plan(metric, 5, "pitome", prune=True)
    assert int((dest == -1).sum()) == 5
    out, size = ref.token_merge(x, None, dest, 16)
    assert torch.equal(size, torch.ones(1, 16, 1))  # nothing merged, 5 dropped
    kept = dest[0] >= 0
    torch.testing.assert_close(out[0, dest[0, kept]], x[0, kept])


def test_reduces_against_a_loop():
    x = torch.randn(1, 6, 3)
    size = torch.tensor([1.0, 2, 3, 1, 1, 4]).view(1, 6, 1)
    dest = torch.tensor([[0, 1, 1, 2, -1, 2]])
    groups = {0: [0], 1: [1, 2], 2: [3, 5]}
    for reduce in ref.REDUCES:
        out, size_out = ref.token_merge(x, size, dest, 3, reduce)
        for o, members in groups.items():
            xs, ss = x[0, members], size[0, members]
            want = {"wavg": (xs * ss).sum(0) / ss.sum(), "mean": xs.mean(0), "sum": xs.sum(0),
                    "amax": xs.amax(0)}[reduce]  # fmt: skip
            torch.testing.assert_close(out[0, o], want)
            assert float(size_out[0, o]) == float(ss.sum())


def test_divprune_matches_the_official_loop():
    metric, _ = tokens(3, 60, d=32, seed=7)
    got = ref.divprune_select(metric, 9)
    for b in range(3):
        assert torch.equal(got[b], ref.official_divprune(metric[b], 9))


def test_pitome_refuses_r_over_half_and_names_the_largest():
    metric, _ = tokens(1, 11)
    with pytest.raises(ValueError, match="largest r is 5"):
        ref.merge_plan(metric, 6, "pitome")


def test_energy_kernels():
    metric, _ = tokens(2, 9)
    m = torch.nn.functional.normalize(metric, dim=-1)
    s = m @ m.transpose(-1, -2)
    torch.testing.assert_close(ref.pitome_energy(metric, 0.3), torch.nn.functional.elu(s - 0.3).mean(-1))
    paper = ref.pitome_energy(metric, 0.3, kernel="paper")
    torch.testing.assert_close(paper, torch.where(s >= 0.3, s, torch.exp(s - 0.3) - 1).mean(-1))
    gauss = ref.pitome_energy(metric, 0.3, kernel="gaussian")
    assert gauss.shape == (2, 9) and (gauss > 0).all()
