"""Cross-shaped window attention benchmarks: the fused op per CSWin stage, forward and
forward+backward, against the official LePEAttention computation and window-batched SDPA; and
the whole CSWin-T (forward, and forward+backward) against the official classifier with the same
weights, and the features_only backbone at 512x512 against the official segmentation backbone. Run with
bench/run.py (`make bench`).

Cases are the stages of CSWin-T at 224 and CSWin-B at 384 (research note cswin.md), batch 8 on the
CPU (2 for CSWin-B at 384), 32 on a GPU; CPU float32, GPU bfloat16.
"""

from __future__ import annotations

import functools

import pytest
import torch

from prismkit import cswin
from prismkit.ops import cswin as ops
from prismkit.reference import cswin as ref

# name: (H = W, C, heads, split_size, mode, CPU batch)
STAGES = {
    "cswin-t stage1 56x56 C64 h2 sw1": (56, 64, 2, 1, "cross", 8),
    "cswin-t stage2 28x28 C128 h4 sw2": (28, 128, 4, 2, "cross", 8),
    "cswin-t stage3 14x14 C256 h8 sw7": (14, 256, 8, 7, "cross", 8),
    "cswin-t stage4 7x7 C512 h16 full": (7, 512, 16, 7, "full", 8),
    "cswin-b384 stage1 96x96 C96 h4 sw1": (96, 96, 4, 1, "cross", 2),
    "cswin-b384 stage2 48x48 C192 h8 sw2": (48, 192, 8, 2, "cross", 2),
    "cswin-b384 stage3 24x24 C384 h16 sw12": (24, 384, 16, 12, "cross", 2),
    "cswin-b384 stage4 12x12 C768 h32 full": (12, 768, 32, 12, "full", 2),
}
SMALL = "cswin-small 12x12 C32 h2 sw2"
STAGES[SMALL] = (12, 32, 2, 2, "cross", 2)


@pytest.fixture(params=list(STAGES))
def stage(request, bench_cases):
    if bench_cases == "small" and request.param != SMALL:
        pytest.skip("--bench-cases small")
    return request.param


def impl_for(device):
    return "cpu" if device == "cpu" else "triton"


@functools.lru_cache(maxsize=1)
def stage_inputs(name, device):
    HW, C, heads, sw, mode, batch = STAGES[name]
    B = batch if device == "cpu" else 4 * batch
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    g = torch.Generator().manual_seed(0)
    qkv = torch.randn(B, HW * HW, 3 * C, generator=g).to(device, dtype)
    n = 1 if mode == "full" else 2
    convs = [torch.nn.Conv2d(C // n, C // n, 3, padding=1, groups=C // n).to(device, dtype) for _ in range(n)]
    return qkv, convs


def _attention_fns(name, device, qkv, convs):
    HW, C, heads, sw, mode, _ = STAGES[name]
    scale = (C // heads) ** -0.5
    weight = torch.cat([c.weight for c in convs])
    bias = torch.cat([c.bias for c in convs])
    fused = lambda: ops.cswin_attention(qkv, HW, HW, sw, heads, weight, bias, scale, mode, "zeros")  # noqa: E731
    baselines = {
        "official-pytorch": lambda: ref.official_attention(qkv, HW, HW, sw, heads, convs, scale, mode),
        "sdpa-windows": lambda: ref.sdpa_window_attention(qkv, HW, HW, sw, heads, convs, scale, mode),
    }
    return fused, baselines


def flex_attention_baseline(name, qkv, convs):
    """FlexAttention with the stripes as a mask_mod on raster order (vertical for the first half of
    the heads, horizontal for the rest) and LePE as the official per-window conv: a GPU reference
    row. None where FlexAttention is unavailable."""
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    except ImportError:
        return None
    HW, C, heads, sw, mode, _ = STAGES[name]
    B = qkv.shape[0]
    half = heads // 2

    def stripes(b, h, q, k):
        same_column = (q % HW) // sw == (k % HW) // sw
        same_row = (q // HW) // sw == (k // HW) // sw
        return torch.where(h < half, same_column, same_row)

    block_mask = create_block_mask(stripes, None, heads, HW * HW, HW * HW, device=qkv.device)
    flex = torch.compile(flex_attention)
    scale = (C // heads) ** -0.5

    def run():
        q, k, v = qkv.view(B, HW * HW, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
        out = flex(q, k, v, block_mask=block_mask, scale=scale).transpose(1, 2).reshape(B, HW * HW, C)
        return out + ref.window_lepe(qkv, HW, HW, sw, convs, mode)

    return run


def test_cswin_attention_forward(compare, bench_device, stage):
    qkv, convs = stage_inputs(stage, bench_device)
    fused, baselines = _attention_fns(stage, bench_device, qkv, convs)
    if bench_device == "cuda" and stage.startswith("cswin-t stage1"):  # one shape: flex compiles per shape
        flex = flex_attention_baseline(stage, qkv, convs)
        if flex is not None:
            baselines["flex-attention"] = flex
    with torch.no_grad():
        compare(fused, baselines, core="cswin", op="cswin_attention", mode="forward", case=stage,
                impl=impl_for(bench_device))  # fmt: skip


def test_cswin_attention_forward_backward(compare, bench_device, stage):
    qkv0, convs = stage_inputs(stage, bench_device)
    qkv = qkv0.clone().requires_grad_()
    params = [qkv] + [p for c in convs for p in c.parameters()]
    fused, baselines = _attention_fns(stage, bench_device, qkv, convs)
    grad = torch.randn(qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3, device=bench_device, dtype=qkv.dtype)

    def clear_grads():
        for p in params:
            p.grad = None

    def with_backward(f):
        return lambda: f().backward(grad)

    compare(with_backward(fused), {k: with_backward(f) for k, f in baselines.items()}, core="cswin",
            op="cswin_attention", mode="forward+backward", case=stage, impl=impl_for(bench_device),
            setup=clear_grads)  # fmt: skip


def tiny_models(device, dtype, official_cls, features_only=False):
    """prismkit's CSWin-T and the official code's, with the same random weights."""
    torch.manual_seed(0)
    embed_dim, depth, split_size, num_heads = cswin.CONFIGS["cswin_tiny_224"]
    config = dict(embed_dim=embed_dim, depth=depth, split_size=split_size, num_heads=num_heads)
    official = (official_cls(**config) if features_only else official_cls(224, **config)).to(device, dtype)
    model = cswin.cswin_tiny_224(features_only=features_only).to(device, dtype)
    model.load_state_dict(official.state_dict(), strict=True)
    return model, official


def batch_for(device, batch):
    return batch if device == "cpu" else 4 * batch


def dtype_for(device):
    return torch.float32 if device == "cpu" else torch.bfloat16


# The whole-model forward rows: (official code, features_only, image size, CPU batch, mode, case).
# The backbone row is ADE20K's 512 crop (stage 3's 32x32 map is padded to the stripes of 7) against
# the official segmentation backbone code with the same weights.
MODEL_FORWARD = {
    "classifier": (ref.OfficialCSWinTransformer, False, 224, 8, "end-to-end", "cswin-t 224x224"),
    "backbone": (ref.OfficialCSWinSegmentation, True, 512, 2, "forward", "cswin-t features_only 512x512"),
}


@pytest.mark.parametrize("layout", list(MODEL_FORWARD))
def test_cswin_tiny_forward(compare, bench_device, bench_cases, layout):
    if bench_cases == "small":
        pytest.skip("--bench-cases small")
    official_cls, features_only, size, batch, mode, case = MODEL_FORWARD[layout]
    dtype, batch = dtype_for(bench_device), batch_for(bench_device, batch)
    model, official = tiny_models(bench_device, dtype, official_cls, features_only=features_only)
    images = torch.randn(batch, 3, size, size, device=bench_device, dtype=dtype)
    with torch.no_grad():
        compare(lambda: model.eval()(images), {"official-pytorch": lambda: official.eval()(images)}, core="cswin",
                op="cswin_tiny_224", mode=mode, case=f"{case} B{batch}", impl=impl_for(bench_device))  # fmt: skip


@pytest.mark.parametrize("batch", [8])
def test_cswin_tiny_224_forward_backward(compare, bench_device, bench_cases, batch):
    """A training step's compute (logits, then gradients to every weight) against the official
    classifier with the same weights."""
    if bench_cases == "small":
        pytest.skip("--bench-cases small")
    dtype, batch = dtype_for(bench_device), batch_for(bench_device, batch)
    model, official = tiny_models(bench_device, dtype, ref.OfficialCSWinTransformer)
    images = torch.randn(batch, 3, 224, 224, device=bench_device, dtype=dtype)
    grad = torch.randn(batch, 1000, device=bench_device, dtype=dtype)

    def clear_grads():
        for m in (model, official):
            m.zero_grad(set_to_none=True)

    compare(lambda: model(images).backward(grad), {"official-pytorch": lambda: official(images).backward(grad)},
            core="cswin", op="cswin_tiny_224", mode="forward+backward", case=f"cswin-t 224x224 B{batch}",
            impl=impl_for(bench_device), setup=clear_grads)  # fmt: skip


@pytest.mark.parametrize("batch", [8])
def test_cswin_tiny_224_compiled(compare, bench_device, bench_cases, batch):
    """What torch.compile (inductor, dynamic=True) buys over the eager prismkit model on the CPU.
    The first call compiles (about a minute on 2 cores) and is not in the timed rounds."""
    if bench_cases == "small" or bench_device != "cpu":
        pytest.skip("CPU, all cases only")
    model, _ = tiny_models(bench_device, torch.float32, ref.OfficialCSWinTransformer)
    model.eval()
    compiled = torch.compile(model, dynamic=True)
    images = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        compiled(images)
        compare(lambda: compiled(images), {"prismkit-eager": lambda: model(images)}, core="cswin",
                op="cswin_tiny_224", mode="end-to-end", case=f"cswin-t 224x224 B{batch} torch.compile",
                impl="cpu")  # fmt: skip
