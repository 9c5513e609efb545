"""SAE op benchmarks: the fused encoders, sparse_decode (forward, forward+backward) and one TopK
SAE training step, each against the way users do it today. Run with bench/run.py (`make bench`).

Cases use the sizes of the papers' SAEs (research note sae.md): GPT-2 small's residual stream
with 24,576 latents at 4096 tokens, a Gemma-2-2B-like width at 1024 tokens, and a small case.
CPU runs float32; GPU runs bfloat16 (the training step float32).
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from prismkit.ops import sae as ops
from prismkit.reference import sae as ref
from prismkit.sae.capacity import equal_capacity

CASES = {  # name: (d, F, k, B)
    "small d64 F2048 k8 B256": (64, 2048, 8, 256),
    "gpt2-small d768 F24576 k32 B4096": (768, 24576, 32, 4096),
    "gemma2-2b-like d2304 F65536 k64 B1024": (2304, 65536, 64, 1024),
}

# Device peaks for roofline fractions: (HBM bytes/s, dense bf16 FLOP/s), by device-name fragment.
GPU_PEAKS = {"H100 PCIe": (2.0e12, 756e12), "H100": (3.35e12, 989e12), "H200": (4.8e12, 989e12)}


@pytest.fixture(params=list(CASES))
def case(request, bench_cases):
    if bench_cases == "small" and not request.param.startswith("small"):
        pytest.skip("--bench-cases small")
    return request.param


def dtype_for(device):
    return torch.bfloat16 if device == "cuda" else torch.float32


def gpu_peaks():
    name = torch.cuda.get_device_name()
    return next((v for k, v in GPU_PEAKS.items() if k in name), None)


@functools.lru_cache(maxsize=1)
def inputs(case, device, dtype):
    """x, SAE weights (W_dec tied to W_enc at init) and a TopK code of x, made once per case."""
    d, F_, k, B = CASES[case]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, d, generator=g)
    W_enc = torch.randn(F_, d, generator=g) / d**0.5
    b_enc = torch.randn(F_, generator=g) * 0.1
    t = {"x": x, "W_enc": W_enc, "b_enc": b_enc, "W_dec": W_enc.clone(), "b_dec": torch.zeros(d)}
    t = {name: v.to(device=device, dtype=dtype) for name, v in t.items()}
    code = ops.topk_encode(t["x"], t["W_enc"], t["b_enc"], k)
    t["values"], t["indices"] = code.values, code.indices
    t["capacity"] = equal_capacity(F_, k, B, device=device)
    return t


def impl_for(device, triton_op):
    return "cpu" if device == "cpu" else ("triton" if triton_op else "cuda")


ENCODERS = {  # op: (prismkit, dense-pytorch)
    "topk_encode": (lambda t, k: ops.topk_encode(t["x"], t["W_enc"], t["b_enc"], k),
                    lambda t, k: ref.dense_topk(t["x"], t["W_enc"], t["b_enc"], k)),
    "batch_topk_encode": (lambda t, k: ops.batch_topk_encode(t["x"], t["W_enc"], t["b_enc"], k),
                          lambda t, k: ref.dense_batch_topk(t["x"], t["W_enc"], t["b_enc"], k)),
    "feature_choice_encode": (lambda t, k: ops.feature_choice_encode(t["x"], t["W_enc"], t["b_enc"], t["capacity"]),
                              lambda t, k: ref.dense_feature_choice(t["x"], t["W_enc"], t["b_enc"], t["capacity"])),
}  # fmt: skip


@pytest.mark.parametrize("op", list(ENCODERS))
def test_encode(compare, bench_device, case, op):
    d, F_, k, B = CASES[case]
    t = inputs(case, bench_device, dtype_for(bench_device))
    fused, dense = ENCODERS[op]
    baselines = {"dense-pytorch": lambda: dense(t, k)}
    extra = {}
    if bench_device == "cuda":
        if op == "topk_encode":
            baselines["matmul-bf16"] = lambda: t["x"] @ t["W_enc"].T  # the bare GEMM of the same shape
        if gpu_peaks():
            extra["flops"] = 2.0 * B * F_ * d
    with torch.no_grad():
        compare(lambda: fused(t, k), baselines, core="sae", op=op, mode="forward", case=case,
                impl=impl_for(bench_device, True), extra=extra)  # fmt: skip


def test_sparse_decode_forward(compare, bench_device, case):
    d, F_, k, B = CASES[case]
    t = inputs(case, bench_device, dtype_for(bench_device))
    dense = ref.to_dense(t["values"], t["indices"], None, F_)
    baselines = {
        "dense-pytorch": lambda: dense @ t["W_dec"] + t["b_dec"],
        "embedding_bag": lambda: (
            F.embedding_bag(t["indices"], t["W_dec"], per_sample_weights=t["values"], mode="sum") + t["b_dec"]
        ),
    }
    extra = {}
    if bench_device == "cuda":
        elt = t["W_dec"].element_size()
        extra["bytes"] = B * k * (d * elt + elt + 8) + B * d * elt  # gathered rows, values, indices, output
    with torch.no_grad():
        compare(lambda: ops.sparse_decode(t["values"], t["indices"], None, t["W_dec"], t["b_dec"]), baselines,
                core="sae", op="sparse_decode", mode="forward", case=case, impl=impl_for(bench_device, False),
                extra=extra)  # fmt: skip


def test_sparse_decode_forward_backward(compare, bench_device, case):
    d, F_, k, B = CASES[case]
    t = inputs(case, bench_device, dtype_for(bench_device))
    values = t["values"].clone().requires_grad_()
    W_dec = t["W_dec"].clone().requires_grad_()
    b_dec = t["b_dec"].clone().requires_grad_()
    grad = torch.randn(B, d, device=bench_device, dtype=values.dtype)

    def clear_grads():
        for p in (values, W_dec, b_dec):
            p.grad = None

    def fused():
        ops.sparse_decode(values, t["indices"], None, W_dec, b_dec).backward(grad)

    def embedding_bag():
        (F.embedding_bag(t["indices"], W_dec, per_sample_weights=values, mode="sum") + b_dec).backward(grad)

    compare(fused, {"embedding_bag": embedding_bag}, core="sae", op="sparse_decode", mode="forward+backward",
            case=case, impl=impl_for(bench_device, False), setup=clear_grads)  # fmt: skip


def test_train_step(compare, bench_device, case):
    """One TopK SAE step: encode (x - b_dec), decode, MSE, backward (optimizer excluded)."""
    d, F_, k, B = CASES[case]
    t = inputs(case, bench_device, dtype_for(bench_device))
    x = t["x"].float()
    params = [t[n].float().clone().requires_grad_() for n in ("W_enc", "b_enc", "W_dec", "b_dec")]
    W_enc, b_enc, W_dec, b_dec = params

    def clear_grads():
        for p in params:
            p.grad = None

    def fused():
        x_hat = ops.topk_encode(x - b_dec, W_enc, b_enc, k).decode(W_dec, b_dec)
        (x_hat - x).pow(2).sum(-1).mean().backward()

    def dense():
        x_hat = ref.dense_topk(x - b_dec, W_enc, b_enc, k) @ W_dec + b_dec
        (x_hat - x).pow(2).sum(-1).mean().backward()

    compare(fused, {"dense-pytorch": dense}, core="sae", op="train_step", mode="step", case=case,
            impl=impl_for(bench_device, True), setup=clear_grads)  # fmt: skip
