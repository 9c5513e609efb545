"""prismkit.quant's weight quantizers: SplitQuant's paper numerics against optimum-quanto
quantizing the three split copies, tight ranges, min-max, the error ordering on heavy-tailed
weights, edge cases and bits per weight."""

import pytest
import torch

from prismkit.quant import (
    QuantLinear,
    assign_clusters,
    bits_per_weight,
    dequantize_weight,
    effective_group_size,
    quantize_weight,
    weight_clusters,
)


def heavy_tailed(N, K, seed=0):
    """Gaussian weights with 2% outliers five times wider: the tails SplitQuant's outer clusters take."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, K, generator=g) * 0.02 * (1 + 4 * (torch.rand(N, K, generator=g) < 0.02))


def test_group_size_rule_is_quantos():
    assert effective_group_size(128, 128) == 128 and effective_group_size(100, 128) == 100
    assert effective_group_size(512, 128) == 128 and effective_group_size(384, 128) == 128
    assert effective_group_size(480, 128) == 96  # 128 and ... shrink by 32 until it divides
    assert effective_group_size(1000, 128) == 1000  # nothing from 128 down to 32 divides: one group per row
    assert effective_group_size(3072, 128) == 128


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("shape", [(16, 96), (24, 512), (8, 480)])
def test_paper_ranges_are_quanto_on_the_three_copies(bits, shape):
    quanto = pytest.importorskip("optimum.quanto")
    torch.manual_seed(0)
    w = heavy_tailed(*shape)
    qw = quantize_weight(w, bits=bits, method="splitquant", ranges="paper", scale_dtype=torch.float32)
    ids, _ = weight_clusters(w, 3)
    total = torch.zeros_like(w)
    for c in range(3):
        model = torch.nn.Sequential(torch.nn.Linear(shape[1], shape[0], bias=False))
        with torch.no_grad():
            model[0].weight.copy_(torch.where(ids == c, w, torch.zeros_like(w)))  # the split copy
        qtype = {2: quanto.qint2, 4: quanto.qint4, 8: quanto.qint8}[bits]
        quanto.quantize(model, weights=qtype)
        quanto.freeze(model)
        total += model[0].weight.dequantize()
    got = dequantize_weight(qw)
    scale = qw.scales.float().max()
    # the same codes and values up to the order of the additions (one code step where rounding
    # lands on a .5 tie differently)
    close = (got - total).abs() <= 1e-5 * scale + 1e-7
    assert close.float().mean() > 0.999, (got - total).abs().max()
    torch.testing.assert_close(got, total, atol=float(scale) * 1.01, rtol=0)


def test_tight_ranges_beat_paper_ranges_which_beat_minmax_at_2_bits():
    w = heavy_tailed(64, 512, seed=1)
    error = {}
    for name, kw in {"minmax": dict(method="minmax"), "paper": dict(ranges="paper"),
                     "tight": dict(ranges="tight")}.items():  # fmt: skip
        error[name] = float((dequantize_weight(quantize_weight(w, bits=2, **kw)) - w).pow(2).mean())
    assert error["tight"] < error["paper"] < error["minmax"], error


def test_tight_ranges_stay_inside_each_cluster_and_codes_are_nearest():
    w = heavy_tailed(8, 256, seed=2)
    qw = quantize_weight(w, bits=4, ranges="tight", scale_dtype=torch.float32)
    assert qw.cluster_ids is not None and qw.scales.shape == (8, 2, 3)
    w_hat = dequantize_weight(qw)
    step = qw.scales.float().amax()
    assert (w_hat - w).abs().max() <= step / 2 + 1e-6
    ids, boundaries = weight_clusters(w, 3)
    assert torch.equal(qw.cluster_ids.long(), ids)
    assert torch.equal(assign_clusters(w_hat.reshape(1, -1), boundaries).view(8, 256), ids)  # values stay in cluster


def test_minmax_is_plain_asymmetric_minmax():
    w = heavy_tailed(4, 256, seed=3)
    qw = quantize_weight(w, bits=4, method="minmax", scale_dtype=torch.float32)
    assert qw.cluster_ids is None and qw.scales.shape == (4, 2, 1)
    groups = w.view(4, 2, 128)
    torch.testing.assert_close(qw.zeros[..., 0], groups.amin(-1))
    torch.testing.assert_close(qw.scales[..., 0], (groups.amax(-1) - groups.amin(-1)) / 15)
    assert (dequantize_weight(qw) - w).abs().max() <= qw.scales.max() / 2 + 1e-7


def test_constant_weights_and_absent_clusters_stay_exact_and_bad_input_raises():
    w = torch.full((4, 64), 0.25)
    for kw in (dict(method="minmax"), dict(ranges="paper"), dict(ranges="tight"), dict(ranges="tight", bits=8)):
        qw = quantize_weight(w, **{"bits": 2, **kw})
        assert torch.equal(dequantize_weight(qw), w), kw  # asymmetric ranges: scale 0, the zero is the value
    symmetric = dequantize_weight(quantize_weight(w, bits=8, ranges="paper"))  # absmax / 127: one code step
    torch.testing.assert_close(symmetric, w, atol=0.25 / 127, rtol=0)
    w = torch.zeros(4, 64)
    w[0, :3] = torch.tensor([-1.0, 0.5, 2.0])  # most groups hold one cluster only
    for ranges in ("paper", "tight"):
        qw = quantize_weight(w, bits=2, ranges=ranges, scale_dtype=torch.float32)
        w_hat = dequantize_weight(qw)
        assert torch.isfinite(w_hat).all() and torch.equal(w_hat[1:], w[1:])
        if ranges == "tight":  # a cluster without members in a group stores scale 0 and zero 0
            members = torch.nn.functional.one_hot(qw.cluster_ids.long().view(4, -1, qw.group_size), 3).sum(2)
            assert (members == 0).any() and (qw.scales[members == 0] == 0).all() and (qw.zeros[members == 0] == 0).all()
    bad = torch.randn(4, 8)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        quantize_weight(bad)
    with pytest.raises(ValueError, match="bits must be one of"):
        quantize_weight(torch.randn(4, 8), bits=3)
    with pytest.raises(ValueError, match="ranges must be one of"):
        quantize_weight(torch.randn(4, 8), ranges="loose")


def test_bits_per_weight():
    w = heavy_tailed(64, 4096, seed=4)
    layer = torch.nn.Sequential(torch.nn.Linear(4096, 64))
    with torch.no_grad():
        layer[0].weight.copy_(w)

    def bpw(**kw):
        return bits_per_weight(torch.nn.Sequential(QuantLinear.from_linear(layer[0], **kw)))

    assert bpw(bits=2) == pytest.approx(2 + 2 + 2 * 3 * 16 / 128)  # 4.75: codes, ids, fp16 scales and zeros
    assert bpw(bits=4, method="minmax") == pytest.approx(4 + 2 * 16 / 128)
    assert bpw(bits=8, method="minmax") == pytest.approx(8 + 2 * 16 / 4096)  # symmetric per row
