"""Every op's argument contract as one table: a valid call per op (VALID) and the bad calls with
the error each must raise (BAD). tests/test_op_contracts.py runs the table through every
implementation that can run here; a new op adds its rows here, not a new test file.

Only torch and prismkit are imported, so the wheel test can run VALID in a clean environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import splat_cases
import splat_sparse_cases
import torch

from prismkit.sae.capacity import equal_capacity


def _gen():
    return torch.Generator().manual_seed(0)


def encode_inputs(B=4, d=3, F=6, dtype=torch.float32):
    g = _gen()
    return (torch.randn(B, d, generator=g).to(dtype), torch.randn(F, d, generator=g).to(dtype),
            torch.randn(F, generator=g).to(dtype))  # fmt: skip


def fixed_k(B=4, k=2, F=6, d=3):
    g = _gen()
    indices = torch.rand(B, F, generator=g).argsort(1)[:, :k]
    return torch.randn(B, k, generator=g), indices, None, torch.randn(F, d, generator=g)


def row_compressed(F=6, d=3):
    g = _gen()
    offsets = torch.tensor([0, 2, 2, 5])
    return torch.randn(5, generator=g), torch.tensor([0, 3, 1, 2, 5]), offsets, torch.randn(F, d, generator=g)


def cswin_inputs(B=1, H=4, W=6, C=16):
    g = _gen()
    return (torch.randn(B, H * W, 3 * C, generator=g), torch.randn(C, 1, 3, 3, generator=g),
            torch.randn(C, generator=g))  # fmt: skip


def quant_weight(N=3, K=16, group_size=8, clusters=3):
    """A packed 2-bit weight (codes, cluster ids, scales, zeros) of N x K in groups of group_size."""
    g = _gen()
    codes = torch.randint(0, 256, (N, K // 4), generator=g, dtype=torch.uint8)
    ids = torch.randint(0, 256, (N, K // 4), generator=g, dtype=torch.uint8)
    scales = torch.rand(N, K // group_size, clusters, generator=g)
    return codes, ids, scales, torch.randn(N, K // group_size, clusters, generator=g)


def merge_inputs(B=2, N=7, C=5):
    """x, size, dest (tokens 0-1 and 4-5 merge, token 6 dropped), num_out, reduce."""
    x = torch.randn(B, N, C, generator=_gen())
    dest = torch.tensor([0, 0, 1, 2, 3, 3, -1]).expand(B, N).contiguous()
    return x, torch.ones(B, N, 1), dest, 4, "wavg"


def _enc(last):
    x, W, b = encode_inputs()
    return (x, W, b, last)


def _decode():
    v, i, o, W = fixed_k()
    return (v, i, o, W, torch.randn(3))


def _cswin(**change):
    qkv, w, b = cswin_inputs()
    args = dict(qkv=qkv, H=4, W=6, split_size=2, num_heads=2, lepe_weight=w, lepe_bias=b, scale=0.5, mode="cross",
                padding="mask")  # fmt: skip
    args.update(change)
    return tuple(args.values())


def _cswin_backward(grad_out=None, **change):
    args = _cswin(**change)
    return (torch.randn(1, 24, 16) if grad_out is None else grad_out, *args)


# A valid call of every op (the registry's ops, all of them: test_op_contracts checks that).
VALID: dict[str, Callable[[], tuple]] = {
    "topk_encode": lambda: _enc(2),
    "batch_topk_encode": lambda: _enc(2),
    "feature_choice_encode": lambda: _enc(equal_capacity(6, 2, 4)),
    "threshold_encode": lambda: _enc(torch.full((6,), 0.1)),
    "jumprelu_encode": lambda: (*_enc(torch.full((6,), 0.1)), 0.05),
    "latent_stats": lambda: _enc(None),
    "sparse_decode": _decode,
    "sparse_decode_grad_values": lambda: (torch.randn(4, 3), fixed_k()[1], None, fixed_k()[3]),
    "sparse_decode_grad_weight": lambda: (torch.randn(4, 3), fixed_k()[0], fixed_k()[1], None, 6),
    "sparse_decode_backward": lambda: (torch.randn(4, 3), *fixed_k()[:3], fixed_k()[3]),
    "cswin_attention": _cswin,
    "cswin_attention_backward": _cswin_backward,
    "kmeans1d": lambda: (torch.randn(3, 7, generator=_gen()), 3),
    "quant_pack": lambda: (torch.randint(0, 4, (3, 5), generator=_gen(), dtype=torch.uint8), 2),
    "quant_unpack": lambda: (torch.randint(0, 256, (3, 2), generator=_gen(), dtype=torch.uint8), 2, 5),
    "quant_dequantize": lambda: (*quant_weight(), 2, 8, 3, 16),
    "quant_linear": lambda: (
        torch.randn(4, 16, generator=_gen()),
        *quant_weight(),
        torch.randn(3, generator=_gen()),
        2,
        8,
        3,
        16,
    ),  # fmt: skip
    "token_merge": lambda: merge_inputs(),
    "pitome_energy": lambda: (torch.randn(2, 9, 4, generator=_gen()), 0.5, 1.0, "elu"),
    "merge_plan": lambda: (torch.randn(2, 9, 4, generator=_gen()), 3, "pitome", 0.5, 1.0, True, False),
    "divprune_select": lambda: (torch.randn(2, 9, 4, generator=_gen()), 3),
    **splat_cases.VALID,
    **splat_sparse_cases.VALID,
}


@dataclass(frozen=True)
class Bad:
    op: str
    what: str
    args: Callable[[], tuple]
    error: type
    message: str  # what follows "prismkit::<op>: " (a prefix of the rest of the message)
    reads_data: bool = False  # a check of tensor values: no fake-tensor implementation can make it
    device: str = "any"  # "cpu" or "cuda": the call is bad only with its tensors on that device


def _encoder_rows() -> list[Bad]:
    rows = []
    lasts = {"topk_encode": (2,), "batch_topk_encode": (2,), "feature_choice_encode": (equal_capacity(6, 2, 4),),
             "threshold_encode": (torch.full((6,), 0.1),), "jumprelu_encode": (torch.full((6,), 0.1), 0.05),
             "latent_stats": (None,)}  # fmt: skip
    for op, last in lasts.items():

        def call(x, W, b, last=last):
            return lambda: (x, W, b, *last)

        x, W, b = encode_inputs()
        rows += [
            Bad(op, "x rank", call(x[None], W, b), ValueError, "'x' must be a 2-D tensor [B, d], got a 3-D float32"),
            Bad(op, "W rank", call(x, W[0], b), ValueError, "'W_enc' must be a 2-D tensor [F, d]"),
            Bad(op, "b rank", call(x, W, b[None]), ValueError, "'b_enc' must be a 1-D tensor [F]"),
            Bad(op, "d mismatch", call(x, W[:, :2], b), ValueError, "'W_enc' must have size 3 in dim 1 (d, the feature size of x)"),
            Bad(op, "F mismatch", call(x, W, b[:5]), ValueError, "'b_enc' must have size 6 in dim 0 (F, the number of latents"),
            Bad(op, "int dtype", call(x.long(), W.long(), b.long()), TypeError, "'x' must have dtype float32 or float64 or float16 or bfloat16 on cpu, got a 2-D int64"),
            Bad(op, "float64 on cuda", call(x.double(), W.double(), b.double()), TypeError, "'x' must have dtype float32 or float16 or bfloat16 on cuda", device="cuda"),
            Bad(op, "mixed dtype", call(x, W.double(), b), TypeError, "'W_enc' must have the dtype of 'x' (float32), got a 2-D float64"),
            Bad(op, "mixed device", call(x, W.to("meta"), b), ValueError, "'W_enc' must be on the device of 'x' (cpu), got a 2-D float32 tensor of shape [6, 3] on meta"),
        ]  # fmt: skip
    x, W, b = encode_inputs()
    for op in ("topk_encode", "batch_topk_encode"):
        for k in (0, -1, 7):
            rows.append(Bad(op, f"k={k}", lambda k=k: (x, W, b, k), ValueError,
                            f"'k' must be in [1, F] = [1, 6] (F is the number of latents), got {k}"))  # fmt: skip
    op = "feature_choice_encode"
    rows += [
        Bad(op, "negative capacity", lambda: (x, W, b, torch.tensor([1, 2, -1, 0, -3, 0])), ValueError,
            "'capacity' must be >= 0 everywhere, got capacity[2] = -1", reads_data=True),
        Bad(op, "capacity size", lambda: (x, W, b, torch.ones(5, dtype=torch.long)), ValueError, "'capacity' must have size 6 in dim 0"),
        Bad(op, "capacity dtype", lambda: (x, W, b, torch.ones(6, dtype=torch.int32)), TypeError, "'capacity' must have dtype int64"),
        Bad(op, "capacity rank", lambda: (x, W, b, torch.ones(2, 3, dtype=torch.long)), ValueError, "'capacity' must be a 1-D tensor [F]"),
    ]  # fmt: skip
    for op, more in (("threshold_encode", ()), ("jumprelu_encode", (0.05,)), ("latent_stats", ())):
        rows += [
            Bad(op, "threshold size", lambda more=more: (x, W, b, torch.zeros(5), *more), ValueError, "'threshold' must have size 6 in dim 0 (F, the number of latents"),
            Bad(op, "threshold rank", lambda more=more: (x, W, b, torch.zeros(2, 3), *more), ValueError, "'threshold' must be a 1-D tensor [F]"),
            Bad(op, "threshold dtype", lambda more=more: (x, W, b, torch.zeros(6, dtype=torch.float64), *more), TypeError, "'threshold' must have the dtype of 'x' (float32)"),
            Bad(op, "threshold device", lambda more=more: (x, W, b, torch.zeros(6, device="meta"), *more), ValueError, "'threshold' must be on the device of 'x' (cpu)"),
        ]  # fmt: skip
    theta = torch.full((6,), 0.1)
    for bandwidth, shown in ((0.0, "0"), (-0.5, "-0.5"), (float("nan"), "nan"), (float("inf"), "inf")):
        rows.append(Bad("jumprelu_encode", f"bandwidth {shown}", lambda bw=bandwidth: (x, W, b, theta, bw), ValueError,
                        f"'bandwidth' must be finite and > 0, got {shown}"))  # fmt: skip
    return rows


def _decode_rows() -> list[Bad]:
    values, indices, _, W = fixed_k()
    csr_values, csr_indices, offsets, _ = row_compressed()
    b = torch.randn(3)
    op = "sparse_decode"

    rows = [
        Bad(op, "index too large", lambda: (values, indices.clone().fill_(6), None, W, b), IndexError, "'indices' must lie in [0, F) = [0, 6), got entries from 6 to 6", reads_data=True),
        Bad(op, "negative index", lambda: (values, indices - 1, None, W, b), IndexError, "'indices' must lie in [0, F) = [0, 6), got entries from -1", reads_data=True),
        Bad(op, "index dtype", lambda: (values, indices.int(), None, W, b), TypeError, "'indices' must have dtype int64 on cpu, got a 2-D int32"),
        Bad(op, "values shape", lambda: (values[:, :1], indices, None, W, b), ValueError, "'values' must have the shape of indices [4, 2], got a 2-D float32 tensor of shape [4, 1]"),
        Bad(op, "W dtype", lambda: (values, indices, None, W.double(), b), TypeError, "'W_dec' must have the dtype of 'values' (float32)"),
        Bad(op, "b size", lambda: (values, indices, None, W, b[:2]), ValueError, "'b_dec' must have size 3 in dim 0 (d, the feature size of W_dec)"),
        Bad(op, "b rank", lambda: (values, indices, None, W, b[None]), ValueError, "'b_dec' must be a 1-D tensor [d]"),
        Bad(op, "b dtype", lambda: (values, indices, None, W, b.double()), TypeError, "'b_dec' must have the dtype of 'values' (float32)"),
        Bad(op, "W rank", lambda: (values, indices, None, W[0], b), ValueError, "'W_dec' must be a 2-D tensor [F, d]"),
        Bad(op, "values dtype", lambda: (values.long(), indices, None, W, b), TypeError, "'values' must have dtype float32 or float64 or float16 or bfloat16 on cpu"),
        Bad(op, "values int on cuda", lambda: (values.int(), indices, None, W.int(), b.int()), TypeError, "'W_dec' must have dtype float32 or float64 or float16 or bfloat16 on cuda", device="cuda"),
        Bad(op, "W device", lambda: (values, indices, None, W.to("meta"), b), ValueError, "'W_dec' must be on the device of 'values' (cpu)"),
        Bad(op, "offsets end", lambda: (csr_values, csr_indices, offsets[:-1], W, b), ValueError, "'offsets' must start at 0 and end at nnz = 5 (the length of indices), got 0 and 2", reads_data=True),
        Bad(op, "offsets start", lambda: (csr_values, csr_indices, offsets + 1, W, b), ValueError, "'offsets' must start at 0 and end at nnz = 5", reads_data=True),
        Bad(op, "offsets decreasing", lambda: (csr_values, csr_indices, torch.tensor([0, 3, 2, 5]), W, b), ValueError, "'offsets' must be non-decreasing", reads_data=True),
        Bad(op, "offsets dtype", lambda: (csr_values, csr_indices, offsets.int(), W, b), TypeError, "'offsets' must have dtype int64"),
        Bad(op, "offsets rank", lambda: (csr_values, csr_indices, offsets[None], W, b), ValueError, "'offsets' must be a 1-D tensor [B + 1]"),
        Bad(op, "offsets empty", lambda: (csr_values[:0], csr_indices[:0], offsets[:0], W, b), ValueError, "'offsets' must have B + 1 >= 1 entries"),
        Bad(op, "csr indices rank", lambda: (csr_values[None], csr_indices[None], offsets, W, b), ValueError, "'indices' must be a 1-D tensor [nnz] (row-compressed layout, offsets given)"),
        Bad(op, "fixed-k indices rank", lambda: (values[0], indices[0], None, W, b), ValueError, "'indices' must be a 2-D tensor [B, k] (fixed-k layout, offsets None)"),
    ]  # fmt: skip
    grad = torch.randn(4, 3)
    op = "sparse_decode_grad_values"
    rows += [
        Bad(op, "grad_out width", lambda: (torch.randn(4, 2), indices, None, W), ValueError, "'grad_out' must have size 3 in dim 1 (d, the feature size of W_dec)"),
        Bad(op, "grad_out rows", lambda: (torch.randn(5, 3), indices, None, W), ValueError, "'grad_out' must have size 4 in dim 0 (B"),
        Bad(op, "grad_out rank", lambda: (grad[0], indices, None, W), ValueError, "'grad_out' must be a 2-D tensor [B, d]"),
        Bad(op, "W dtype", lambda: (grad, indices, None, W.double()), TypeError, "'W_dec' must have the dtype of 'grad_out' (float32)"),
        Bad(op, "W device", lambda: (grad, indices, None, W.to("meta")), ValueError, "'W_dec' must be on the device of 'grad_out' (cpu)"),
        Bad(op, "index too large", lambda: (grad, indices + 6, None, W), IndexError, "'indices' must lie in [0, F) = [0, 6)", reads_data=True),
        Bad(op, "grad_out dtype", lambda: (grad.long(), indices, None, W.long()), TypeError, "'W_dec' must have dtype float32 or float64 or float16 or bfloat16 on cpu"),
    ]  # fmt: skip
    op = "sparse_decode_grad_weight"
    rows += [
        Bad(op, "index too large", lambda: (grad, values, indices.clone().fill_(5), None, 5), IndexError, "'indices' must lie in [0, F) = [0, 5)", reads_data=True),
        Bad(op, "num_latents", lambda: (grad, values, indices, None, -1), ValueError, "'num_latents' must be >= 0, got -1"),
        Bad(op, "grad_out rows", lambda: (torch.randn(5, 3), values, indices, None, 6), ValueError, "'grad_out' must have size 4 in dim 0 (B"),
        Bad(op, "grad_out dtype", lambda: (grad.double(), values, indices, None, 6), TypeError, "'grad_out' must have the dtype of 'values' (float32)"),
        Bad(op, "values shape", lambda: (grad, values[:, :1], indices, None, 6), ValueError, "'values' must have the shape of indices [4, 2]"),
        Bad(op, "offsets decreasing", lambda: (torch.randn(3, 3), csr_values, csr_indices, torch.tensor([0, 3, 2, 5]), 6), ValueError, "'offsets' must be non-decreasing", reads_data=True),
    ]  # fmt: skip
    op = "sparse_decode_backward"
    rows += [
        Bad(op, "grad_out width", lambda: (torch.randn(4, 2), values, indices, None, W), ValueError, "'grad_out' must have size 3 in dim 1"),
        Bad(op, "index too large", lambda: (grad, values, indices + 6, None, W), IndexError, "'indices' must lie in [0, F) = [0, 6)", reads_data=True),
        Bad(op, "grad_out device", lambda: (grad.to("meta"), values, indices, None, W), ValueError, "'grad_out' must be on the device of 'values' (cpu)"),
        Bad(op, "W rank", lambda: (grad, values, indices, None, W[None]), ValueError, "'W_dec' must be a 2-D tensor [F, d]"),
    ]  # fmt: skip
    return rows


def _cswin_rows() -> list[Bad]:
    qkv, w, b = cswin_inputs()
    rows = []
    for op, build in (("cswin_attention", _cswin), ("cswin_attention_backward", _cswin_backward)):
        rows += [
            Bad(op, "channels", lambda build=build: build(qkv=qkv[..., :47]), ValueError, "'qkv' must have 3C channels in dim 2 (q, k and v)"),
            Bad(op, "tokens", lambda build=build: build(W=5), ValueError, "'qkv' must have H*W = 4*5 tokens in dim 1"),
            Bad(op, "heads divide", lambda build=build: build(num_heads=3), ValueError, "'num_heads' must divide C = 16 and be even"),
            Bad(op, "heads even", lambda build=build: build(num_heads=1), ValueError, "'num_heads' must divide C = 16 and be even (half the heads per branch), got 1"),
            Bad(op, "split size", lambda build=build: build(split_size=0), ValueError, "'split_size' must be >= 1, got 0"),
            Bad(op, "lepe_weight shape", lambda build=build: build(lepe_weight=w[:8]), ValueError, "'lepe_weight' must have shape [16, 1, 3, 3], got a 4-D float32 tensor of shape [8, 1, 3, 3]"),
            Bad(op, "lepe_weight taps", lambda build=build: build(lepe_weight=w[:, :, :2]), ValueError, "'lepe_weight' must have shape [16, 1, 3, 3]"),
            Bad(op, "lepe_weight rank", lambda build=build: build(lepe_weight=w[0]), ValueError, "'lepe_weight' must be a 4-D tensor [C, 1, 3, 3]"),
            Bad(op, "lepe_bias size", lambda build=build: build(lepe_bias=b[:3]), ValueError, "'lepe_bias' must have size 16 in dim 0"),
            Bad(op, "lepe_weight dtype", lambda build=build: build(lepe_weight=w.double()), TypeError, "'lepe_weight' must have the dtype of 'qkv' (float32)"),
            Bad(op, "qkv dtype", lambda build=build: build(qkv=qkv.long()), TypeError, "'qkv' must have dtype float32 or float64 or float16 or bfloat16 on cpu"),
            Bad(op, "qkv float64 on cuda", lambda build=build: build(qkv=qkv.double(), lepe_weight=w.double(), lepe_bias=b.double()), TypeError, "'qkv' must have dtype float32 or float16 or bfloat16 on cuda", device="cuda"),
            Bad(op, "lepe_weight device", lambda build=build: build(lepe_weight=w.to("meta")), ValueError, "'lepe_weight' must be on the device of 'qkv' (cpu)"),
            Bad(op, "qkv rank", lambda build=build: build(qkv=qkv[0]), ValueError, "'qkv' must be a 3-D tensor [B, H*W, 3C]"),
            Bad(op, "mode", lambda build=build: build(mode="diagonal"), ValueError, "'mode' must be \"cross\" (two stripe branches) or \"full\" (the last stage), got \"diagonal\""),
            Bad(op, "padding", lambda build=build: build(padding="reflect"), ValueError, "'padding' must be \"mask\" or \"zeros\", got \"reflect\""),
        ]  # fmt: skip
    op = "cswin_attention_backward"
    rows += [
        Bad(op, "grad_out shape", lambda: _cswin_backward(grad_out=torch.randn(1, 24, 8)), ValueError, "'grad_out' must have shape [1, 24, 16], got a 3-D float32 tensor of shape [1, 24, 8]"),
        Bad(op, "grad_out rank", lambda: _cswin_backward(grad_out=torch.randn(24, 16)), ValueError, "'grad_out' must be a 3-D tensor [B, H*W, C]"),
        Bad(op, "grad_out dtype", lambda: _cswin_backward(grad_out=torch.randn(1, 24, 16).double()), TypeError, "'grad_out' must have the dtype of 'qkv' (float32)"),
        Bad(op, "grad_out device", lambda: _cswin_backward(grad_out=torch.randn(1, 24, 16, device="meta")), ValueError, "'grad_out' must be on the device of 'qkv' (cpu)"),
    ]  # fmt: skip
    return rows


def _quant_rows() -> list[Bad]:
    v = torch.randn(3, 7, generator=_gen())
    nan = v.clone()
    nan[2, 4] = float("nan")
    inf = v.clone()
    inf[1, 0] = float("-inf")
    op = "kmeans1d"
    rows = [
        Bad(op, "values rank", lambda: (v[0], 3), ValueError, "'values' must be a 2-D tensor [R, n] (one row per clustering), got a 1-D float32"),
        Bad(op, "values dtype", lambda: (v.long(), 3), TypeError, "'values' must have dtype float32 or float64 or float16 or bfloat16 on cpu, got a 2-D int64"),
        Bad(op, "k too large", lambda: (v, 8), ValueError, "'k' must be in [1, n] = [1, 7] (n is the number of values per row), got 8"),
        Bad(op, "k zero", lambda: (v, 0), ValueError, "'k' must be in [1, n] = [1, 7] (n is the number of values per row), got 0"),
        Bad(op, "no values", lambda: (v[:, :0], 1), ValueError, "'k' must be in [1, n] = [1, 0] (n is the number of values per row), got 1"),
        Bad(op, "NaN", lambda: (nan, 3), ValueError, "'values' must be finite, got NaN or inf in row 2", reads_data=True),
        Bad(op, "inf", lambda: (inf, 3), ValueError, "'values' must be finite, got NaN or inf in row 1", reads_data=True),
    ]  # fmt: skip
    small = torch.randint(0, 4, (3, 5), generator=_gen(), dtype=torch.uint8)
    packed = torch.zeros(3, 2, dtype=torch.uint8)
    rows += [
        Bad("quant_pack", "values rank", lambda: (small[0], 2), ValueError, "'values' must be a 2-D tensor [N, n] (one packed row per row), got a 1-D uint8"),
        Bad("quant_pack", "values dtype", lambda: (small.long(), 2), TypeError, "'values' must have dtype uint8 on cpu, got a 2-D int64"),
        Bad("quant_pack", "bits", lambda: (small, 3), ValueError, "'bits' must be 2, 4 or 8, got 3"),
        Bad("quant_pack", "value too large", lambda: (small * 2, 2), ValueError, "'values' must be below 2^bits = 4, got a value of 6", reads_data=True),
        Bad("quant_unpack", "packed dtype", lambda: (packed.float(), 2, 5), TypeError, "'packed' must have dtype uint8 on cpu, got a 2-D float32"),
        Bad("quant_unpack", "bits", lambda: (packed, 1, 5), ValueError, "'bits' must be 2, 4 or 8, got 1"),
        Bad("quant_unpack", "negative n", lambda: (packed, 2, -1), ValueError, "'n' must be >= 0, got -1"),
        Bad("quant_unpack", "packed size", lambda: (packed, 2, 9), ValueError, "'packed' must have size 3 in dim 1 (ceil(n * bits / 8), the bytes of n values)"),
    ]  # fmt: skip
    codes, ids, scales, zeros = quant_weight()
    x, bias = torch.randn(4, 16), torch.randn(3)
    for op in ("quant_dequantize", "quant_linear"):

        def call(codes=codes, ids=ids, scales=scales, zeros=zeros, bits=2, group_size=8, N=3, K=16, op=op):
            weight = (codes, ids, scales, zeros)
            if op == "quant_dequantize":
                return lambda: (*weight, bits, group_size, N, K)
            return lambda: (x, *weight, bias, bits, group_size, N, K)

        rows += [
            Bad(op, "bits", call(bits=3), ValueError, "'bits' must be 2, 4 or 8, got 3"),
            Bad(op, "group size", call(group_size=5), ValueError, "'group_size' must divide in_features = 16, got 5"),
            Bad(op, "no inputs", call(K=0), ValueError, "'out_features' and 'in_features' must be >= 1, got 3 and 0"),
            Bad(op, "codes bytes", call(codes=codes[:, :3]), ValueError, "'codes' must have size 4 in dim 1 (ceil(in_features * bits / 8))"),
            Bad(op, "codes dtype", call(codes=codes.int()), TypeError, "'codes' must have dtype uint8 on cpu, got a 2-D int32"),
            Bad(op, "codes rows", call(N=4), ValueError, "'codes' must have size 4 in dim 0 (out_features)"),
            Bad(op, "ids bytes", call(ids=ids[:, :2]), ValueError, "'cluster_ids' must have size 4 in dim 1 (ceil(in_features / 4))"),
            Bad(op, "scales groups", call(scales=scales[:, :1], zeros=zeros[:, :1]), ValueError, "'scales' must have size 2 in dim 1 (in_features / group_size)"),
            Bad(op, "scales dtype", call(scales=scales.double()), TypeError, "'scales' must have dtype float16 or bfloat16 or float32 on cpu, got a 3-D float64"),
            Bad(op, "too many clusters", call(scales=torch.rand(3, 2, 5), zeros=torch.rand(3, 2, 5)), ValueError, "'scales' must have 1 to 4 clusters in dim 2, got 5"),
            Bad(op, "one cluster without ids", call(ids=ids[:0]), ValueError, "'scales' must have size 1 in dim 2 (1: one cluster, since cluster_ids is empty)"),
            Bad(op, "zeros dtype", call(zeros=zeros.half()), TypeError, "'zeros' must have the dtype of 'scales' (float32)"),
            Bad(op, "zeros shape", call(zeros=zeros[..., :2]), ValueError, "'zeros' must have the shape of scales [3, 2, 3], got a 3-D float32"),
        ]  # fmt: skip
    op = "quant_linear"
    rows += [
        Bad(op, "x features", lambda: (x[:, :8], codes, ids, scales, zeros, bias, 2, 8, 3, 16), ValueError, "'x' must have size 16 in dim 1 (in_features)"),
        Bad(op, "x dtype", lambda: (x.long(), codes, ids, scales, zeros, bias, 2, 8, 3, 16), TypeError, "'x' must have dtype float32 or float64 or float16 or bfloat16 on cpu, got a 2-D int64"),
        Bad(op, "x scalar", lambda: (x[0, 0], codes, ids, scales, zeros, bias, 2, 8, 3, 16), ValueError, "'x' must have at least one dimension [..., in_features]"),
        Bad(op, "bias size", lambda: (x, codes, ids, scales, zeros, bias[:2], 2, 8, 3, 16), ValueError, "'bias' must have size 3 in dim 0 (out_features)"),
        Bad(op, "bias dtype", lambda: (x, codes, ids, scales, zeros, bias.double(), 2, 8, 3, 16), TypeError, "'bias' must have the dtype of 'x' (float32)"),
        Bad(op, "weight device", lambda: (x, codes.to("meta"), ids, scales, zeros, bias, 2, 8, 3, 16), ValueError, "'cluster_ids' must be on the device of 'codes' (meta)"),
    ]  # fmt: skip
    return rows


def _merge_rows() -> list[Bad]:
    x, size, dest, n, reduce = merge_inputs()
    op = "token_merge"
    return [
        Bad(op, "x rank", lambda: (x[0], size, dest, n, reduce), ValueError, "'x' must be a 3-D tensor [B, N, C]"),
        Bad(op, "x dtype", lambda: (x.long(), size, dest, n, reduce), TypeError, "'x' must have dtype float32 or float64"),
        Bad(op, "size shape", lambda: (x, size[:, :6], dest, n, reduce), ValueError, "'size' must have size 7 in dim 1 (N, as x)"),
        Bad(op, "size dtype", lambda: (x, size.double(), dest, n, reduce), TypeError, "'size' must have the dtype of 'x' (float32)"),
        Bad(op, "dest dtype", lambda: (x, size, dest.int(), n, reduce), TypeError, "'dest' must have dtype int64"),
        Bad(op, "dest shape", lambda: (x, size, dest[:1], n, reduce), ValueError, "'dest' must have size 2 in dim 0 (B, as x)"),
        Bad(op, "negative num_out", lambda: (x, size, dest, -1, reduce), ValueError, "'num_out' must be >= 0, got -1"),
        Bad(op, "reduce", lambda: (x, size, dest, n, "max"), ValueError, "'reduce' must be one of 'wavg', 'mean', 'sum', 'amax', got 'max'"),
        Bad(op, "dest range", lambda: (x, size, dest, 3, reduce), IndexError, "'dest' must be in [-1, num_out) = [-1, 3), got values in [-1, 3]", reads_data=True),
        Bad(op, "size not positive", lambda: (x, size * 0, dest, n, reduce), ValueError, "'size' must be positive, got a size of 0", reads_data=True),
    ] + _plan_rows()  # fmt: skip


def _plan_rows() -> list[Bad]:
    m = torch.randn(2, 9, 4, generator=_gen())
    return [
        Bad("pitome_energy", "metric rank", lambda: (m[0], 0.5, 1.0, "elu"), ValueError, "'metric' must be a 3-D tensor [B, T, d]"),
        Bad("pitome_energy", "metric dtype", lambda: (m.long(), 0.5, 1.0, "elu"), TypeError, "'metric' must have dtype float32 or float64"),
        Bad("pitome_energy", "kernel", lambda: (m, 0.5, 1.0, "relu"), ValueError, "'kernel' must be one of 'elu', 'gaussian', 'paper', got 'relu'"),
        Bad("pitome_energy", "gaussian margin", lambda: (m, 1.0, 1.0, "gaussian"), ValueError, "'margin' must be < 1 for the gaussian kernel (sigma = 1 - margin), got 1"),
        Bad("merge_plan", "metric rank", lambda: (m[0], 3, "pitome", 0.5, 1.0, True, False), ValueError, "'metric' must be a 3-D tensor [B, N, d]"),
        Bad("merge_plan", "method", lambda: (m, 3, "bsm", 0.5, 1.0, True, False), ValueError, "'method' must be one of 'pitome', 'pitome_bsm', 'pitome_text', 'tome', got 'bsm'"),
        Bad("merge_plan", "negative r", lambda: (m, -1, "pitome", 0.5, 1.0, True, False), ValueError, "'r' must be >= 0, got -1"),
        Bad("merge_plan", "r over half", lambda: (m, 5, "pitome", 0.5, 1.0, True, False), ValueError, "'r' = 5 merges more than half of the 8 tokens (method 'pitome'); the largest r is 4"),
        Bad("merge_plan", "no class token", lambda: (m[:, :0], 0, "tome", 0.5, 1.0, True, False), ValueError, "'metric' must hold the class token (class_token=True) and so at least 1 token, got N = 0"),
        Bad("merge_plan", "text margin", lambda: (m, 2, "pitome_text", 1.5, 1.0, True, False), ValueError, "'margin' must be < 1 for the gaussian kernel (sigma = 1 - margin), got 1.5"),
        Bad("divprune_select", "metric rank", lambda: (m[0], 3), ValueError, "'metric' must be a 3-D tensor [B, N, d]"),
        Bad("divprune_select", "metric dtype", lambda: (m.int(), 3), TypeError, "'metric' must have dtype float32 or float64"),
        Bad("divprune_select", "k over N", lambda: (m, 10), ValueError, "'k' must be in [0, N] = [0, 9], got 10"),
        Bad("divprune_select", "negative k", lambda: (m, -1), ValueError, "'k' must be in [0, N] = [0, 9], got -1"),
    ]  # fmt: skip


BAD: list[Bad] = (
    _encoder_rows()
    + _decode_rows()
    + _cswin_rows()
    + _quant_rows()
    + _merge_rows()
    + splat_cases.contract_rows(Bad)
    + splat_sparse_cases.contract_rows(Bad)
)
