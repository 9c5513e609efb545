"""prismkit.quant's quantized layers and model transforms: QuantLinear / QuantConv2d against float
layers holding the dequantized weights, quantize / dequantize / bits_per_weight, save and load."""

import copy

import pytest
import torch
from torch import nn

from prismkit.quant import (
    QuantConv2d,
    QuantLinear,
    bits_per_weight,
    dequantize,
    load_quantized,
    quantize,
    save_quantized,
)


def cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=2), nn.ReLU(),
        nn.Conv2d(8, 6, (1, 3), padding="same", padding_mode="reflect", bias=False), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 10),
    ).eval()  # fmt: skip


@pytest.mark.parametrize("bits,kw", [(2, dict(ranges="paper")), (4, dict(ranges="tight")), (8, dict(method="minmax"))])
def test_quantized_layers_compute_with_their_dequantized_weights(bits, kw):
    model = cnn()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        reference = model(x)
    quantize(model, bits=bits, group_size=32, **kw)
    assert sum(isinstance(m, QuantConv2d) for m in model.modules()) == 3
    assert sum(isinstance(m, QuantLinear) for m in model.modules()) == 1
    floats = dequantize(copy.deepcopy(model))
    assert not any(isinstance(m, (QuantLinear, QuantConv2d)) for m in floats.modules())
    with torch.no_grad():
        got = model(x)
        torch.testing.assert_close(got, floats(x), rtol=1e-4, atol=1e-5)
    error = float((got - reference).norm() / reference.norm())
    assert error < {2: 0.8, 4: 0.2, 8: 0.02}[bits], error


def test_splitquant_int2_output_error_below_minmax_int2():
    g = torch.Generator().manual_seed(1)
    mlp = nn.Sequential(nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 64))
    with torch.no_grad():
        for layer in (mlp[0], mlp[2]):
            w = torch.randn(layer.weight.shape, generator=g) * 0.05
            layer.weight.copy_(w * (1 + 5 * (torch.rand(w.shape, generator=g) < 0.02)))  # heavy tails
    x = torch.randn(32, 256, generator=g)
    reference = mlp(x)
    error = {}
    for name, kw in {
        "minmax": dict(method="minmax"),
        "paper": dict(ranges="paper"),
        "tight": dict(ranges="tight"),
    }.items():
        q = quantize(copy.deepcopy(mlp), bits=2, **kw)
        error[name] = float((q(x) - reference).norm() / reference.norm())
    assert error["tight"] < error["paper"] < error["minmax"], error


def test_bits_per_weight_save_load_and_state_dict(tmp_path):
    pytest.importorskip("safetensors")  # a bare GPU-check machine may lack it
    model = quantize(cnn(), bits=2, group_size=32)
    bpw = bits_per_weight(model)
    assert 4 < bpw < 8  # small layers: per-row groups, so the metadata weighs more than at 4096 inputs
    x = torch.randn(2, 3, 8, 8)
    path = str(tmp_path / "model.safetensors")
    save_quantized(model, path)
    loaded = load_quantized(cnn(), path)
    assert torch.equal(loaded(x), model(x))
    for name, t in model.state_dict().items():
        assert torch.equal(t, loaded.state_dict()[name]), name
    assert all(isinstance(t, torch.Tensor) and type(t) is torch.Tensor for t in model.state_dict().values())
    other = quantize(cnn(), bits=2, group_size=32)
    other.load_state_dict(model.state_dict())
    assert torch.equal(other(x), model(x))
    with pytest.raises(ValueError, match="no quantized layer"):
        bits_per_weight(nn.Linear(4, 4))


def test_filter_attention_gradients_and_bad_settings():
    attention = nn.MultiheadAttention(16, 2)
    model = nn.ModuleDict({"attn": attention, "head": nn.Linear(16, 4), "skip": nn.Linear(16, 4)})
    quantize(model, bits=4, filter=lambda name, m: name != "skip")
    assert isinstance(model["head"], QuantLinear) and isinstance(model["skip"], nn.Linear)
    assert isinstance(attention.out_proj, nn.Linear) and not isinstance(attention.out_proj, QuantLinear)
    x = torch.randn(5, 16, requires_grad=True)
    model["head"](x).sum().backward()  # differentiable in the input and the float bias
    assert x.grad is not None and model["head"].bias.grad is not None
    with pytest.raises(ValueError, match="bits must be one of"):
        quantize(nn.Sequential(nn.Linear(8, 8)), bits=3)
    tiny = quantize(nn.Sequential(nn.Linear(1, 2)), bits=4)  # 2 weights: too few to cluster, min-max
    assert tiny[0].clusters == 1
    with pytest.raises(ValueError, match="SplitQuant needs 2 to 4 clusters"):
        quantize(nn.Sequential(nn.Linear(8, 8)), bits=4, k=1)


def test_half_precision_models_and_unbatched_convolution():
    half = nn.Sequential(nn.Linear(32, 16)).half()
    quantize(half, bits=4)
    x = torch.randn(3, 32).half()
    y = half(x)
    assert y.dtype == torch.float16
    floats = dequantize(copy.deepcopy(half))
    assert floats[0].weight.dtype == torch.float16
    torch.testing.assert_close(floats(x), y, rtol=1e-2, atol=1e-2)
    conv = quantize(nn.Sequential(nn.Conv2d(3, 4, 3)), bits=4)[0]
    image = torch.randn(3, 7, 7)
    torch.testing.assert_close(conv(image), conv(image[None])[0])
