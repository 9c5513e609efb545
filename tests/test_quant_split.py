"""prismkit.quant.split: SplitQuant's layer splitting (the official SplitQuant.split), its exact
weight identity, float equivalence on Linear, convolutions and small networks, and the official
code's bugs it does not copy."""

import pytest
import torch
from torch import nn

from prismkit.ops import quant as Q
from prismkit.quant import SplitLayer, assign_clusters, split


def seeded(module: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for p in module.parameters():
        p.data.normal_(0, 0.5)
    return module


LAYERS = [
    lambda: nn.Linear(37, 23),
    lambda: nn.Linear(64, 5, bias=False),
    lambda: nn.Conv2d(6, 8, 3, stride=2, padding=1, groups=2),
    lambda: nn.Conv2d(4, 6, (3, 5), dilation=2, padding=(2, 3)),
    lambda: nn.Conv1d(5, 7, 4, stride=3),
    lambda: nn.ConvTranspose2d(4, 6, 3, stride=2),
]
INPUTS = [(9, 37), (3, 64), (2, 6, 11, 13), (2, 4, 12, 15), (2, 5, 29), (2, 4, 7, 6)]


@pytest.mark.parametrize("i", range(len(LAYERS)))
def test_split_layer_is_the_original_layer(i):
    layer = seeded(LAYERS[i](), i)
    x = torch.randn(*INPUTS[i])
    want = layer(x)
    out = split(layer)
    assert isinstance(out, SplitLayer) and len(out.parts) == 3
    weights = torch.stack([p.weight for p in out.parts])
    assert torch.equal(weights.sum(0), layer.weight)  # one nonzero per position: the sum is exact
    assert torch.equal((weights != 0).sum(0) <= 1, torch.ones_like(layer.weight, dtype=torch.bool))
    assert torch.equal(out.weight_ids.unique(), torch.arange(3))  # the masks are disjoint and cover every weight
    for c, part in enumerate(out.parts):
        assert torch.equal(part.weight, torch.where(out.weight_ids == c, layer.weight, 0.0))
    if layer.bias is not None:
        assert torch.equal(sum(p.bias for p in out.parts), layer.bias)
    torch.testing.assert_close(out(x), want, atol=1e-5, rtol=0)


def test_clusters_are_kmeans1d_per_weight_or_per_kernel():
    linear = seeded(nn.Linear(40, 20))
    out = split(linear)
    _, boundaries = Q.kmeans1d(linear.weight.detach().reshape(1, -1), 3)
    assert torch.equal(out.weight_boundaries, boundaries)
    assert torch.equal(out.weight_ids, assign_clusters(linear.weight.detach().reshape(1, -1), boundaries).view(20, 40))
    conv = seeded(nn.Conv2d(3, 5, 3))
    out = split(conv)
    _, boundaries = Q.kmeans1d(conv.weight.detach().reshape(5, -1), 3)  # one clustering per output kernel
    assert torch.equal(out.weight_boundaries, boundaries) and out.bias_boundaries.shape == (1, 2)


def test_networks_keep_their_outputs():
    torch.manual_seed(0)
    vit_block = nn.Sequential(nn.Linear(32, 48), nn.LayerNorm(48), nn.GELU(), nn.Linear(48, 48), nn.GELU(),
                              nn.Linear(48, 10))  # fmt: skip
    resnet_stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=4), nn.BatchNorm2d(16), nn.ReLU(),
                                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()  # fmt: skip
    for model, x in ((vit_block, torch.randn(5, 7, 32)), (resnet_stem, torch.randn(2, 3, 16, 16))):
        want = model(x)
        split(model)
        assert sum(isinstance(m, SplitLayer) for m in model.modules()) == 3
        torch.testing.assert_close(model(x), want, atol=1e-5, rtol=0)


def test_what_is_split_and_what_is_not():
    attention = nn.MultiheadAttention(16, 2)
    model = nn.ModuleDict({"zero_bias": nn.Linear(8, 8), "prelu": nn.PReLU(4), "norm": nn.LayerNorm(8),
                           "embed": nn.Embedding(10, 8), "attn": attention, "depthwise": nn.Conv2d(4, 4, 1, groups=4),
                           "tiny": nn.Linear(1, 2)})  # fmt: skip
    nn.init.zeros_(model["zero_bias"].bias)
    split(model)
    # an all-zero bias does not leave its layer unsplit (the official code's `continue` does)
    assert isinstance(model["zero_bias"], SplitLayer)
    assert torch.equal(model["zero_bias"].bias_ids, torch.zeros(8, dtype=torch.long))
    for name in ("prelu", "norm", "embed", "depthwise", "tiny"):  # nonlinear in the weight, or too few values
        assert not isinstance(model[name], SplitLayer), name
    assert not isinstance(attention.out_proj, SplitLayer)  # MultiheadAttention reads out_proj.weight directly
    only_first = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    split(only_first, filter=lambda name, m: name == "0")
    assert isinstance(only_first[0], SplitLayer) and isinstance(only_first[1], nn.Linear)
    with pytest.raises(ValueError, match="k must be >= 1"):
        split(nn.Linear(4, 4), k=0)


def test_two_clusters_and_five():
    layer = seeded(nn.Linear(30, 30))
    x = torch.randn(4, 30)
    for k in (2, 5):
        out = split(seeded(nn.Linear(30, 30)), k=k)
        assert len(out.parts) == k
        torch.testing.assert_close(out(x), layer(x), atol=1e-5, rtol=0)
