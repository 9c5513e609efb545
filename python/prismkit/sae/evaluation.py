"""SAE evaluations beyond reconstruction (``trainer.evaluate`` has FVU, explained variance,
cosine, L0, dead and dense fractions): the latent-frequency histogram as a PNG, and the downstream
score of an SAE spliced into its model.

Downstream score: the model runs three ways on the same inputs, with the hooked module's output
(the first element when it returns a tuple) left alone (clean), replaced by the SAE's reconstruction
(spliced) and replaced by zeros (zero ablation), through the same forward hooks as ``HookSource``.
With a loss per run, ``loss_recovered = (L_zero - L_spliced) / (L_zero - L_clean)`` (1: the SAE
costs nothing downstream; 0: as bad as deleting the activation), SAELens' and dictionary_learning's
score. For a language model also ``kl_divergence``, the mean over tokens of KL(p_clean || p_spliced)
of the next-token distributions.

    scores = downstream_scores(model, "transformer.h.6", sae, batches, causal_lm_loss, kl_logits=causal_lm_logits)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Optional

import torch
from torch import Tensor, nn

from .data import _default_call
from .modules import SparseAutoencoder

__all__ = ["causal_lm_logits", "causal_lm_loss", "downstream_scores", "embedding_cosine_loss",
           "latent_frequency_histogram", "splice"]  # fmt: skip


@contextlib.contextmanager
def splice(model: nn.Module, module_path: str, replace: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """While active, ``model``'s submodule at ``module_path`` returns ``replace(h)`` for its output
    h (the first element of a tuple output; the rest is kept)."""
    module = model.get_submodule(module_path)

    def hook(_module, _args, output):
        h = output[0] if isinstance(output, tuple) else output
        new = replace(h).to(h.dtype)
        return (new, *output[1:]) if isinstance(output, tuple) else new

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _reconstruct(sae: SparseAutoencoder) -> Callable[[Tensor], Tensor]:
    def fn(h: Tensor) -> Tensor:
        flat = h.reshape(-1, h.shape[-1]).to(sae.W_enc.dtype)
        return sae(flat).x_hat.reshape(h.shape)

    return fn


def causal_lm_loss(output, batch, clean_output=None) -> tuple[Tensor, int]:
    """Next-token cross-entropy of a causal LM (``output.logits`` [B, T, V]; ``batch["input_ids"]``,
    and ``batch["attention_mask"]`` when present): (sum over the predicted tokens, their count)."""
    logits, ids = output.logits[:, :-1], batch["input_ids"][:, 1:]
    mask = (
        batch["attention_mask"][:, 1:].bool() if "attention_mask" in batch else torch.ones_like(ids, dtype=torch.bool)
    )
    ce = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), ids, reduction="none")
    return ce[mask].double().sum(), int(mask.sum())  # summed in float64: the score divides small differences


def causal_lm_logits(output, batch) -> Tensor:
    """The next-token logits of the predicted tokens [n, V] (as ``causal_lm_loss`` counts them)."""
    logits = output.logits[:, :-1]
    if "attention_mask" not in batch:
        return logits.reshape(-1, logits.shape[-1])
    return logits[batch["attention_mask"][:, 1:].bool()]


def embedding_cosine_loss(embed: Callable) -> Callable:
    """A loss for an embedding model: 1 - cos(embed(output), embed(clean output)) summed over the
    batch's sentences (``embed(output, batch)`` -> [B, d], e.g. masked mean pooling); the clean
    run's loss is 0, so ``loss_recovered`` = 1 - L_spliced / L_zero."""

    def loss(output, batch, clean_output) -> tuple[Tensor, int]:
        a, b = embed(output, batch), embed(clean_output, batch)
        return (1 - torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)).sum(), a.shape[0]

    return loss


def downstream_scores(model: nn.Module, module_path: str, sae: SparseAutoencoder, inputs: Sequence, loss_fn: Callable,
                      kl_logits: Optional[Callable] = None, call: Callable = _default_call) -> dict:  # fmt: skip
    """The downstream score of ``sae`` at ``module_path`` over the input batches (see the module
    docstring). ``loss_fn(output, batch, clean_output)`` -> (loss sum, count); the losses are
    token- (or sentence-) weighted means over all batches. Returns ``loss_clean``,
    ``loss_spliced``, ``loss_zero_ablation``, ``loss_recovered`` and, with ``kl_logits(output,
    batch)`` -> [n, V], ``kl_divergence``. The SAE runs in eval mode."""
    model.get_submodule(module_path)  # fails early on a wrong path
    was_training = sae.training
    sae.eval()
    sums = {"clean": 0.0, "spliced": 0.0, "zero": 0.0}
    count, kl_sum, kl_count = 0, 0.0, 0
    try:
        with torch.no_grad():
            for batch in inputs:
                clean = call(model, batch)
                with splice(model, module_path, _reconstruct(sae)):
                    spliced = call(model, batch)
                with splice(model, module_path, torch.zeros_like):
                    zero = call(model, batch)
                for name, out in (("clean", clean), ("spliced", spliced), ("zero", zero)):
                    total, n = loss_fn(out, batch, clean)
                    sums[name] += float(total)
                count += n
                if kl_logits is not None:
                    log_p = torch.log_softmax(kl_logits(clean, batch).double(), -1)
                    log_q = torch.log_softmax(kl_logits(spliced, batch).double(), -1)
                    p = log_p.exp()  # a token impossible under p (a masked logit) adds 0, not 0 * inf
                    kl_sum += float(torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum())
                    kl_count += log_p.shape[0]
    finally:
        sae.train(was_training)
    if count == 0:
        raise ValueError("downstream_scores: the inputs hold no token or sentence to score")
    clean, spliced, zero = (sums[k] / count for k in ("clean", "spliced", "zero"))
    gap = zero - clean
    result = {"loss_clean": clean, "loss_spliced": spliced, "loss_zero_ablation": zero,
              "loss_recovered": (zero - spliced) / gap if gap != 0 else math.nan, "count": count}  # fmt: skip
    if kl_logits is not None:
        result["kl_divergence"] = kl_sum / max(kl_count, 1)
    return result


def latent_frequency_histogram(frequencies: Tensor, path: str, bins: int = 40, low: float = -6.0,
                               title: str = "latent firing frequency") -> str:  # fmt: skip
    """A PNG histogram of log10 of each latent's firing frequency (``evaluate(...,
    return_frequencies=True)["frequencies"]``) over [low, 0], the dead latents (frequency 0) in a
    separate bar at the left. Drawn with Pillow. Returns the path."""
    from PIL import Image, ImageDraw  # noqa: PLC0415 - only this function needs Pillow

    f = frequencies.double().flatten().cpu()
    dead = int((f <= 0).sum())
    logf = torch.log10(f[f > 0]).clamp(low, 0.0)
    counts = torch.histc(logf, bins=bins, min=low, max=0.0) if logf.numel() else torch.zeros(bins)
    W, H, left, bottom, top = 640, 360, 60, 40, 30
    image = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(image)
    plot_w, plot_h = W - left - 20, H - bottom - top
    bar_w = plot_w / (bins + 2)
    peak = max(float(counts.max()) if counts.numel() else 0.0, float(dead), 1.0)

    def bar(i: int, value: float, color: str) -> None:
        x0 = left + i * bar_w
        y0 = top + plot_h * (1 - value / peak)
        draw.rectangle([x0 + 1, y0, x0 + bar_w - 1, top + plot_h], fill=color)

    bar(0, float(dead), "#c0392b")
    for i, c in enumerate(counts.tolist()):
        bar(i + 2, c, "#2c7fb8")
    draw.line([left, top + plot_h, W - 20, top + plot_h], fill="black")
    draw.line([left, top, left, top + plot_h], fill="black")
    for tick in range(int(low), 1):
        x = left + (2 + (tick - low) / -low * bins) * bar_w
        draw.line([x, top + plot_h, x, top + plot_h + 4], fill="black")
        draw.text((x - 6, top + plot_h + 6), str(tick), fill="black")
    draw.text((left, top + plot_h + 20), "log10 frequency (left bar: dead latents)", fill="black")
    draw.text((left, 8), f"{title}: {f.numel()} latents, {dead} dead, peak bin {int(peak)}", fill="black")
    image.save(path)
    return path
