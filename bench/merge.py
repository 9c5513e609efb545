"""Token-merging benchmarks: one merging layer of PiToMe and of ToMe (the plan op and token_merge)
against the official computations op for op, and DivPrune's selection against its official loop.
Run with bench/run.py (`make bench`).

Cases (research note pitome.md): the keys (d = 64, averaged over heads) and hidden states of
ViT-B/16 at 224 (T = 197, C = 768) and ViT-L/16 at 384 (T = 577, C = 1024), batch 64, keep ratio
0.9 (r = 19 and 57), margin 0.75 (the official DeiT patch's first layer); LLaVA-1.5's 576 visual
tokens of width 4096 pruned to 56, batch 8. Baselines (prismkit/reference/merge.py):

* ``official-pytorch``: PiToMe's ``pitome_vision`` + ``merge_wavg`` (the full T x T similarity, the
  energy, the gathers, two ``scatter_reduce`` merges), or DivPrune's loop over the images (the N x N
  distance matrix, the minimum over all picks recomputed per pick);
* ``official-tome``: ToMe's ``bipartite_soft_matching`` + ``merge_wavg``.

``vit_b16``: a timm ViT-B/16 at 224 (random weights: none can be downloaded), batch 16 on the CPU
(256 in bfloat16 on a GPU), forward under ``torch.inference_mode``, patched with
``prismkit.merge.patch(model, "pitome", 0.9)`` (the DeiT defaults: 197 tokens down to 60), against
the unpatched model (``no-merge``) and the official timm patch re-created op for op
(``official-pytorch``, prismkit/reference/merge_patch.py: explicit attention, the official merge).

CPU float32; GPU (``--bench-device cuda``) bfloat16 activations and metrics, the same on both sides.
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch

from prismkit.ops import merge as ops
from prismkit.reference import merge as ref

# name: (T, C, d, B); keep ratio 0.9
LAYERS = {
    "vit-b T197 C768 d64 B64 keep0.9": (197, 768, 64, 64),
    "vit-l384 T577 C1024 d64 B64 keep0.9": (577, 1024, 64, 64),
}
SMALL = "small T65 C64 d16 B4 keep0.9"
LAYERS[SMALL] = (65, 64, 16, 4)
MARGIN = 0.75
# name: (N, d, k, B)
SELECTIONS = {"llava N576 d4096 k56 B8": (576, 4096, 56, 8)}
SMALL_SELECTION = "small N64 d128 k8 B2"
SELECTIONS[SMALL_SELECTION] = (64, 128, 8, 2)


def impl_for(device):
    return "cpu" if device == "cpu" else "triton"


@pytest.fixture(params=list(LAYERS))
def layer(request, bench_cases):
    if bench_cases == "small" and request.param != SMALL:
        pytest.skip("--bench-cases small")
    return request.param


@pytest.fixture(params=list(SELECTIONS))
def selection(request, bench_cases):
    if bench_cases == "small" and request.param != SMALL_SELECTION:
        pytest.skip("--bench-cases small")
    return request.param


@functools.lru_cache(maxsize=1)
def layer_inputs(name, device):
    T, C, d, B = LAYERS[name]
    g = torch.Generator().manual_seed(0)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    # keys of real layers are correlated: a shared direction plus noise, so energies spread out
    metric = (torch.randn(B, 1, d, generator=g) + torch.randn(B, T, d, generator=g)).to(device, dtype)
    x = torch.randn(B, T, C, generator=g).to(device, dtype)
    return metric, x, ref.keep_ratio_to_r(T - 1, 0.9)


def test_pitome_merge(compare, bench_device, layer):
    metric, x, r = layer_inputs(layer, bench_device)
    N = x.shape[1]

    def fused():
        dest, _ = ops.merge_plan(metric, r, "pitome", MARGIN)
        return ops.token_merge(x, None, dest, N - r)

    official = lambda: ref.official_pitome_wavg(x, None, metric, r, MARGIN)  # noqa: E731
    if bench_device == "cpu":  # the same merges, but for near-tied energies (float32 sums in another order)
        assert (fused()[1] != official()[1]).float().mean() < 0.01  # (bf16 on a GPU: the official ties more)
    compare(fused, {"official-pytorch": official}, core="merge", op="pitome_merge", mode="forward", case=layer,
            impl=impl_for(bench_device))  # fmt: skip


def test_tome_merge(compare, bench_device, layer):
    metric, x, r = layer_inputs(layer, bench_device)
    N = x.shape[1]

    def fused():
        dest, _ = ops.merge_plan(metric, r, "tome")
        return ops.token_merge(x, None, dest, N - r)

    official = lambda: ref.official_tome_wavg(x, None, metric, r)  # noqa: E731
    if bench_device == "cpu":
        assert (fused()[1] != official()[1]).float().mean() < 0.01
    compare(fused, {"official-tome": official}, core="merge", op="tome_merge", mode="forward", case=layer,
            impl=impl_for(bench_device))  # fmt: skip


def test_divprune_select(compare, bench_device, selection):
    N, d, k, B = SELECTIONS[selection]
    g = torch.Generator().manual_seed(0)
    metric = torch.randn(B, N, d, generator=g).to(bench_device)
    fused = lambda: ops.divprune_select(metric, k)  # noqa: E731
    official = lambda: torch.stack([ref.official_divprune(metric[b], k) for b in range(B)])  # noqa: E731
    assert torch.equal(fused(), official())
    compare(fused, {"official-pytorch": official}, core="merge", op="divprune_select", mode="forward",
            case=selection, impl=impl_for(bench_device))  # fmt: skip


VIT_CASE = "timm vit-b/16 224 B16 pitome keep0.9"


def test_vit_b16(compare, bench_device, bench_cases):
    if bench_cases == "small":
        pytest.skip("--bench-cases small")
    vision_transformer = pytest.importorskip("timm.models.vision_transformer")
    import prismkit.merge as pm
    from prismkit.reference.merge_patch import official_patch

    cuda = bench_device == "cuda"
    B, dtype = (256, torch.bfloat16) if cuda else (16, torch.float32)
    torch.manual_seed(0)
    plain = vision_transformer.VisionTransformer(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12)
    plain = plain.eval().to(bench_device, dtype)
    merged, official = copy.deepcopy(plain), copy.deepcopy(plain)
    pm.patch(merged, "pitome", 0.9)
    official_patch(official, "pitome", 0.9)
    images = torch.randn(B, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(bench_device, dtype)

    def forward(model):
        def run():
            with torch.inference_mode():
                return model(images)

        return run

    # the official patch's decisions: the same logits to rounding, except for images where a near-tie
    # of float32 energies (random weights give many) decided one merge differently
    got, want = forward(merged)().float(), forward(official)().float()
    tol = 2e-2 if cuda else 1e-3
    same = ((got - want).abs() <= tol * (1 + want.abs())).all(-1).float().mean().item()
    assert same >= 0.75, f"only {same:.0%} of the images match the official patch's logits"
    case = VIT_CASE.replace("B16", f"B{B}") + (" bf16" if cuda else "")
    compare(forward(merged), {"no-merge": forward(plain), "official-pytorch": forward(official)}, core="merge",
            op="vit_b16", mode="end-to-end", case=case, impl=impl_for(bench_device),
            extra={"images_per_call": B, "tokens_per_layer": list(pm.state(merged).tokens),
                   "images_matching_official": round(same, 4)})  # fmt: skip
