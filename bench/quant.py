"""Quant op benchmarks: quant_linear (the fused dequantizing product) against the ways a user runs
a quantized layer today. Run with bench/run.py (`make bench`).

Cases are a layer's in x out features (4096 x 4096: an attention projection of a 7B model;
4096 x 11008: its MLP's up projection) at batch 1 (weight-bandwidth bound), 8 and 64, for
SplitQuant INT2 and INT4 (tight ranges, three clusters) and min-max INT4, groups of 128 and float16
scales and zeros (``sq-int2 g128 4096x4096 B1``: 4.75 bits per weight). Baselines:

* ``fp32-linear``: ``F.linear`` with the float32 weight;
* ``naive-splitquant``: the paper's form, three min-max ``quant_linear`` layers of the same bits,
  one per split copy (each copy holds zeros outside its cluster), summed: what fusing the copies
  into one packed weight saves;
* ``quanto``: optimum-quanto's qint2 / qint4 layers (the quantizer of the paper's experiments), on
  the three copies for SplitQuant and on the weight for min-max.

Batch-1 calls rotate through several weight copies (more bytes than the last-level cache holds),
so each call streams its weight from memory. torchao's int4 weight-only layout is not measured
(torchao is not a dependency; its CPU int4 path needs a packing format of its own). GPU rows
(bfloat16 activations, ``--device cuda``): the same cases against ``F.linear`` in bfloat16, with
the fraction of HBM bandwidth the packed bytes reach.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from prismkit.ops import quant as ops
from prismkit.quant import pack_weight, quantize_weight, weight_clusters

CASES = {  # name fragment: (in_features, out_features, batch)
    "4096x4096 B1": (4096, 4096, 1),
    "4096x11008 B1": (4096, 11008, 1),
    "4096x4096 B8": (4096, 4096, 8),
    "4096x4096 B64": (4096, 4096, 64),
    "small 256x256 B1": (256, 256, 1),
}
FORMATS = {"sq-int2": (2, "splitquant"), "sq-int4": (4, "splitquant"), "mm-int4": (4, "minmax")}
ROTATE_BYTES = 256 << 20  # batch 1: enough copies of the weights to exceed the last-level cache


@pytest.fixture(params=list(CASES))
def case(request, bench_cases):
    small = request.param.startswith("small")
    if (bench_cases == "small") != small:
        pytest.skip("--bench-cases small" if bench_cases == "small" else "small case only with --bench-cases small")
    return request.param


def weights(K, N, copies, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(N, K, generator=g) * 0.02 for _ in range(copies)]  # an LLM layer's scale


def rotating(calls):
    cycle = itertools.cycle(calls)
    return lambda: next(cycle)()


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_quant_linear(compare, bench_device, case, fmt):
    K, N, B = CASES[case]
    bits, method = FORMATS[fmt]
    device = bench_device
    # batch 1 rotates through copies (clones: other memory, the same values) of every side's weights
    copies = max(1, min(8, ROTATE_BYTES // (N * K * 4))) if B == 1 else 1
    (w,) = weights(K, N, 1)
    packed = pack_weight(quantize_weight(w, bits=bits, group_size=128, method=method, ranges="tight"))
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    x = torch.randn(B, K, device=device, dtype=dtype)
    on = [tuple(t.to(device).clone() for t in packed.args()) for _ in range(copies)]
    meta = packed.meta()
    fn = rotating([lambda a=a: ops.quant_linear(x, *a, None, *meta) for a in on])
    dense = [w.to(device, dtype).clone() for _ in range(copies)]
    baselines = {
        ("bf16-linear" if device == "cuda" else "fp32-linear"): rotating([lambda d=d: F.linear(x, d) for d in dense])
    }
    if device == "cpu":
        if method == "splitquant":
            parts = naive_splitquant_parts(w, bits)
            baselines["naive-splitquant"] = rotating(
                [naive_splitquant([tuple(t.clone() for t in p) for p in parts], meta, x) for _ in range(copies)]
            )
        quanto = quanto_layers(w, bits, method, copies)
        if quanto is not None:
            baselines["quanto"] = rotating([lambda m=m: m(x) for m in quanto])
    nbytes = sum(t.numel() * t.element_size() for t in on[0])
    compare(fn, baselines, core="quant", op="quant_linear", mode="forward", case=f"{fmt} g128 {case}",
            impl="cpu" if device == "cpu" else "triton", extra={"bytes": nbytes})  # fmt: skip


def naive_splitquant_parts(w, bits):
    """The paper's three copies, each quantized as a min-max layer of the same bits (packed args)."""
    ids, _ = weight_clusters(w, 3)
    parts = []
    for c in range(3):
        copy_c = torch.where(ids == c, w, torch.zeros_like(w))
        parts.append(pack_weight(quantize_weight(copy_c, bits=bits, group_size=128, method="minmax")).args())
    return parts


def naive_splitquant(parts, meta, x):
    """The three copies' quant_linear products, summed."""

    def run():
        y = ops.quant_linear(x, *parts[0], None, *meta)
        for p in parts[1:]:
            y = y + ops.quant_linear(x, *p, None, *meta)
        return y

    return run


class _Summed(torch.nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)

    def forward(self, x):
        return sum(layer(x) for layer in self.layers)


def quanto_layers(w, bits, method, copies):
    """``copies`` of optimum-quanto's layers (qint2 / qint4, groups of 128): the three split copies,
    summed, for SplitQuant; the weight for min-max. None without the package."""
    try:
        import optimum.quanto as quanto
    except ImportError:
        return None
    qtype = {2: quanto.qint2, 4: quanto.qint4}[bits]
    N, K = w.shape
    parts = [w]
    if method == "splitquant":
        ids, _ = weight_clusters(w, 3)
        parts = [torch.where(ids == c, w, torch.zeros_like(w)) for c in range(3)]
    models = []
    for _ in range(copies):
        layers = []
        for part in parts:
            layer = torch.nn.Sequential(torch.nn.Linear(K, N, bias=False))
            with torch.no_grad():
                layer[0].weight.copy_(part)
            quanto.quantize(layer, weights=qtype)
            quanto.freeze(layer)
            layers.append(layer)
        models.append(_Summed(layers))
    return models
