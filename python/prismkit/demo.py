"""``python -m prismkit demo``: each core's fused ops against the plain-PyTorch way, on built-in
synthetic data: same result (checked), time and peak memory side by side."""

from __future__ import annotations

import torch

from . import _measure
from .ops import sae as sae_ops
from .reference import cswin as cswin_ref
from .reference import sae as sae_ref
from .sae.capacity import equal_capacity


def _table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(
        str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
    )  # noqa: E731
    print(line(header))
    for r in rows:
        print(line(r))


def sae_part(device: str, small: bool, repeat: int) -> bool:
    d, F, k, B = (64, 512, 8, 128) if small else (768, 24576, 32, 2048)
    print(f"\nSAE encode + decode, synthetic activations: d={d}, F={F}, k={k}, B={B}, float32 on {device}"
          f" ({torch.get_num_threads()} threads)")  # fmt: skip
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, d, generator=g).to(device)
    W_enc = (torch.randn(F, d, generator=g) / d**0.5).to(device)
    b_enc = (torch.randn(F, generator=g) * 0.1).to(device)
    W_dec = W_enc.clone()
    b_dec = torch.zeros(d, device=device)
    capacity = equal_capacity(F, k, B, device=device)
    variants = [
        ("TopK", lambda: sae_ops.topk_encode(x, W_enc, b_enc, k), lambda: sae_ref.dense_topk(x, W_enc, b_enc, k)),
        ("BatchTopK / Mutual Choice", lambda: sae_ops.batch_topk_encode(x, W_enc, b_enc, k),
         lambda: sae_ref.dense_batch_topk(x, W_enc, b_enc, k)),
        ("Feature Choice", lambda: sae_ops.feature_choice_encode(x, W_enc, b_enc, capacity),
         lambda: sae_ref.dense_feature_choice(x, W_enc, b_enc, capacity)),
    ]  # fmt: skip
    rows, ok = [], True
    for name, encode, dense_encode in variants:
        fused = lambda: encode().decode(W_dec, b_dec)  # noqa: E731
        plain = lambda: dense_encode() @ W_dec + b_dec  # noqa: E731
        with torch.no_grad():
            diff = (fused() - plain()).abs().max().item()
            ok &= diff <= 1e-3
            t_fused = _measure.median_ms(fused, device, repeat)
            t_plain = _measure.median_ms(plain, device, repeat)
            m_fused = _measure.peak_memory_mb(fused, device)
            m_plain = _measure.peak_memory_mb(plain, device)
        rows.append((name, f"{t_fused:.1f}", f"{t_plain:.1f}", f"{t_plain / t_fused:.2f}x",
                     f"{m_fused:.0f}", f"{m_plain:.0f}", f"{diff:.1e}"))  # fmt: skip
    _table(rows, ("variant", "prismkit ms", "plain ms", "speedup", "prismkit MiB", "plain MiB", "max |diff|"))
    print("results match the plain-PyTorch way" if ok else "MISMATCH against the plain-PyTorch way")
    return ok


def cswin_part(device: str, small: bool, repeat: int) -> bool:
    from . import cswin

    name = "cswin_tiny_224"
    batch, size = (1, 224) if small else (8, 224)
    print(f"\nCSWin-T forward on synthetic images: batch {batch}, {size}x{size}, float32 on {device}; the official "
          "model (re-created op for op) and prismkit's, same random weights")  # fmt: skip
    torch.manual_seed(0)
    embed_dim, depth, split_size, num_heads = cswin.CONFIGS[name]
    if small:  # a smaller network with the same structure, for a quick check
        embed_dim, depth = 32, (1, 1, 2, 1)
    official = cswin_ref.OfficialCSWinTransformer(size, embed_dim=embed_dim, depth=depth, split_size=split_size,
                                                  num_heads=num_heads).eval().to(device)  # fmt: skip
    model = cswin.CSWinTransformer(embed_dim=embed_dim, depth=depth, split_size=split_size,
                                   num_heads=num_heads).eval().to(device)  # fmt: skip
    model.load_state_dict(official.state_dict(), strict=True)
    images = torch.randn(batch, 3, size, size, device=device)
    with torch.no_grad():
        diff = (model(images) - official(images)).abs().max().item()
        t_fused = _measure.median_ms(lambda: model(images), device, repeat)
        t_plain = _measure.median_ms(lambda: official(images), device, repeat)
        m_fused = _measure.peak_memory_mb(lambda: model(images), device)
        m_plain = _measure.peak_memory_mb(lambda: official(images), device)
    ok = diff <= 1e-3
    _table([("CSWin-T forward", f"{t_fused:.1f}", f"{t_plain:.1f}", f"{t_plain / t_fused:.2f}x", f"{m_fused:.0f}",
             f"{m_plain:.0f}", f"{diff:.1e}")],
           ("model", "prismkit ms", "official ms", "speedup", "prismkit MiB", "official MiB", "max |logit diff|"))  # fmt: skip
    print("logits match the official computation" if ok else "MISMATCH against the official computation")
    return ok


def splat_part(device: str, small: bool, repeat: int, out_dir: str | None = None) -> bool:
    import os
    import tempfile

    from . import splat
    from .reference import splat as splat_ref

    n, size = (5_000, 128) if small else (200_000, 512)
    print(f"\nGaussian splatting: the synthetic scene ({n} Gaussians: textured objects on a ground plane), one "
          f"{size}x{size} RGB frame, float32 on {device}; prismkit's pipeline and the plain-PyTorch one")  # fmt: skip
    scene = splat.scenes.synthetic_scene(n)
    viewmats, Ks = splat.stack_cameras(scene.cameras(8, size, size)[1:2])
    tensors = [t.to(device) for t in (scene.means, scene.quats, scene.scales, scene.opacities, scene.colors,
                                      viewmats, Ks)]  # fmt: skip
    fused = lambda: splat.rasterization(*tensors, size, size)[0]  # noqa: E731
    plain = lambda: splat_ref.rasterization(*tensors, size, size)[0]  # noqa: E731
    with torch.no_grad():
        image = fused()
        diff = (image - plain()).abs().max().item()
        t_fused = _measure.median_ms(fused, device, repeat)
        t_plain = _measure.median_ms(plain, device, 1)
    ok = diff <= 1e-3
    _table([("rasterization", f"{t_fused:.1f}", f"{t_plain:.1f}", f"{t_plain / t_fused:.1f}x", f"{diff:.1e}")],
           ("pipeline", "prismkit ms/frame", "plain ms/frame", "speedup", "max |diff|"))  # fmt: skip
    path = splat.save_png(image[0], os.path.join(out_dir or tempfile.gettempdir(), "prismkit-splat-demo.png"))
    print(f"rendered frame written to {path}")
    print("frames match the plain-PyTorch pipeline" if ok else "MISMATCH against the plain-PyTorch pipeline")
    return ok


def language_part(device: str, small: bool, repeat: int, out_dir: str | None = None) -> bool:
    """LangSplatV2's language field on the synthetic language scene: a short training run, a text
    query's relevancy and segmentation on a held-out view, and a PCA picture of the feature field."""
    import os
    import tempfile
    import time

    from . import splat
    from .splat import language_eval as ev

    n, D, size, steps, out_size = (3_000, 64, 48, 40, 96) if small else (20_000, 512, 96, 300, 256)
    print(f"\nLanguage field (LangSplatV2): the synthetic scene's {n} Gaussians with labels at 3 levels and D = {D} "
          f"embeddings; L = 64 codebook entries, top K = 4, {steps} Adam steps on {size}x{size} views, then a "
          f"text query on a held-out {out_size}x{out_size} view")  # fmt: skip
    ls = splat.language_scene.synthetic_language_scene(n, D=D)
    views = ls.views(8, size, size).to(device)
    held_out = ls.views(1, out_size, out_size, offset=0.5)
    field = splat.LanguageGaussianField.from_scene(ls.scene, levels=3, L=64, K=4, D=D).to(device)
    field.init_codebooks([views.features(level) for level in range(3)])
    start = time.perf_counter()
    losses = splat.train_language_field(field, views, steps=steps, log_every=max(steps // 3, 1))
    train_s = time.perf_counter() - start
    query = ls.embedding("cube")[None]
    args = (query.to(device), held_out.viewmats.to(device), held_out.Ks.to(device), out_size, out_size,
            ls.negatives.to(device))  # fmt: skip
    relevancy = field.relevancy(*args)[0, ..., 0]  # [H, W, levels]
    query_ms = _measure.median_ms(lambda: field.relevancy(*args), device, repeat)
    seg = ev.segment(relevancy.cpu())
    truth = held_out.targets[0, ..., 2].cpu() == ls.names.index("cube")
    score = ev.iou(seg.mask, truth)
    features = field.render_features(held_out.viewmats.to(device), held_out.Ks.to(device), out_size, out_size)
    basis = ev.pca_basis(features[0, :, :, 2].detach())
    out = out_dir or tempfile.gettempdir()
    paths = [splat.save_png(ev.heatmap(relevancy[..., seg.level].cpu()), os.path.join(out, "prismkit-relevancy.png")),
             splat.save_png(seg.mask.float()[..., None].expand(-1, -1, 3), os.path.join(out, "prismkit-cube-mask.png")),
             splat.save_png(ev.pca_image(features[0, :, :, 2].detach(), basis).cpu(),
                            os.path.join(out, "prismkit-language-pca.png"))]  # fmt: skip
    _table([("training", f"{train_s:.1f} s", f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"),
            ("query 'cube'", f"{query_ms:.1f} ms", f"IoU {score:.2f} on the held-out view (level {seg.level})")],
           ("step", "time", "result"))  # fmt: skip
    print("relevancy map, mask and PCA picture written to " + ", ".join(paths))
    if small:  # too few steps and pixels for a mask worth scoring
        print("--small: the loss fell" if losses[-1] < losses[0] else "the loss did NOT fall")
        return losses[-1] < losses[0]
    ok = losses[-1] < losses[0] and score >= 0.5
    print("the query segments the cube" if ok else "the query did NOT segment the cube (IoU below 0.5)")
    return ok


def quant_part(device: str, small: bool, repeat: int) -> bool:
    """One Linear layer quantized with each method: weight error, output error, bits per weight
    and time against the float32 layer."""
    from .quant import QuantLinear, bits_per_weight

    K, N = (256, 256) if small else (4096, 4096)
    print(f"\nSplit quantization: one {K} x {N} Linear layer (heavy-tailed weights), batch 1, float32 activations "
          f"on {device}; the packed layers run quant_linear")  # fmt: skip
    g = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(K, N, bias=False)
    with torch.no_grad():
        w = torch.randn(N, K, generator=g) * 0.02
        layer.weight.copy_(w * (1 + 4 * (torch.rand(N, K, generator=g) < 0.02)))
    layer = layer.to(device)
    x = torch.randn(1, K, generator=g).to(device)
    with torch.no_grad():
        exact = layer(x)
        t_float = _measure.median_ms(lambda: layer(x), device, repeat)
    rows, ok = [], True
    for name, kw in (("min-max INT4", dict(bits=4, method="minmax")), ("min-max INT2", dict(bits=2, method="minmax")),
                     ("SplitQuant INT2, paper", dict(bits=2, ranges="paper")),
                     ("SplitQuant INT2, tight", dict(bits=2, ranges="tight"))):  # fmt: skip
        q = QuantLinear.from_linear(layer.cpu(), **kw).to(device)
        layer = layer.to(device)
        with torch.no_grad():
            w_err = float((q.dequantized_weight() - layer.weight).norm() / layer.weight.norm())
            y = q(x)
            ok &= bool(torch.allclose(y, x @ q.dequantized_weight().T, rtol=1e-3, atol=1e-4))
            t = _measure.median_ms(lambda q=q: q(x), device, repeat)
        out_err = float((y - exact).norm() / exact.norm())
        bpw = bits_per_weight(torch.nn.Sequential(q))
        rows.append((name, f"{bpw:.2f}", f"{w_err:.3f}", f"{out_err:.3f}", f"{t:.2f}", f"{t_float:.2f}",
                     f"{t_float / t:.2f}x"))  # fmt: skip
    _table(rows, ("method", "bits/weight", "weight error", "output error", "ms", "float32 ms", "speedup"))
    print("each layer computes with its dequantized weight" if ok else "MISMATCH against the dequantized weight")
    return ok


def run(device: str = "cpu", small: bool = False, repeat: int = 3) -> bool:
    from . import _cpu

    print(
        "prismkit demo: fused ops vs the plain-PyTorch way on synthetic data, results checked against it "
        f"(time: median of {repeat} calls; memory: peak beyond the inputs)."
    )
    if device == "cpu":
        print(f"CPU: {_cpu.processor()}, prismkit kernel path {_cpu.describe()}, {torch.get_num_threads()} threads.")
    if small:
        print(
            "--small: tiny shapes, a check that everything runs. At these sizes each call takes microseconds to a "
            "millisecond, so fixed costs (dispatch, argument checks, thread start-up) dominate and the speedups "
            "below say little; the default sizes show the real ones."
        )
    elif device == "cpu":
        print(
            "Six parts, about two minutes in all on 2 cores (up to a few minutes where torch's GEMM is slow; the "
            "plain-PyTorch side takes most of it)."
        )
    ok = sae_part(device, small, repeat)
    ok = cswin_part(device, small, repeat) and ok
    ok = splat_part(device, small, repeat) and ok
    ok = language_part(device, small, repeat) and ok
    ok = quant_part(device, small, repeat) and ok
    from .merge.demo_part import merge_part

    return merge_part(device, small, repeat) and ok
