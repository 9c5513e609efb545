"""Reduced precision on the CPU and autocast, for every op (the valid calls of op_contracts.py),
the models built on them, and the wrappers' own type errors for Python arguments."""

import subprocess
import sys

import pytest
import torch
from op_contracts import VALID
from sae_cases import HAS_CUDA

from prismkit import cswin
from prismkit.ops import cswin as cswin_ops
from prismkit.ops import registry
from prismkit.ops import sae as sae_ops


def floating_tensors(args):
    return [a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]


def outputs(result):
    return list(result) if isinstance(result, tuple | list) else [result]


def as_dtype(args, dtype):
    return tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


# Ops whose floating output is float32 by definition, whatever their inputs' storage: quant_dequantize
# computes W_hat = q * s + z in float32 (its bit-exact contract); float16 scales are only storage.
FLOAT32_OUTPUT = {"quant_dequantize"}


@pytest.mark.parametrize("name", sorted(VALID))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_on_cpu_runs_in_float32(name, dtype):
    """float16/bfloat16 inputs give outputs of that dtype, equal to the float32 computation of the
    same (rounded) inputs rounded once at the end (FLOAT32_OUTPUT ops: float32 outputs)."""
    op = getattr(torch.ops.prismkit, name)
    low = as_dtype(VALID[name](), dtype)
    got = outputs(op(*low))
    want = outputs(op(*as_dtype(low, torch.float32)))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if w.is_floating_point():
            if name in FLOAT32_OUTPUT:
                assert g.dtype == torch.float32 and torch.equal(g, w)
                continue
            assert g.dtype == dtype
            torch.testing.assert_close(g, w.to(dtype), equal_nan=True)
        else:
            assert torch.equal(g, w)


@pytest.mark.parametrize("name", sorted(VALID))
def test_cpu_autocast_runs_every_op_in_float32(name):
    """Under CPU autocast the ops take bfloat16 and float32 inputs alike, run in float32 and return
    float32 (the op's best CPU precision), as autocast does for its float32 ops."""
    op = getattr(torch.ops.prismkit, name)
    args = VALID[name]()
    mixed = tuple(
        a.bfloat16() if i == 0 and isinstance(a, torch.Tensor) and a.is_floating_point() else a
        for i, a in enumerate(args)
    )  # fmt: skip  (the first input in bfloat16, the rest float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = outputs(op(*mixed))
    want = outputs(op(*as_dtype(mixed, torch.float32)))
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype
        torch.testing.assert_close(g, w, equal_nan=True)


def test_autocast_keeps_float64_and_reaches_autograd():
    x, W, b = (torch.randn(6, 5, dtype=torch.float64), torch.randn(9, 5, dtype=torch.float64),
               torch.randn(9, dtype=torch.float64))  # fmt: skip
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert sae_ops.topk_encode(x, W, b, 3).values.dtype == torch.float64
    W32 = W.float().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        code = sae_ops.topk_encode(x.bfloat16(), W32, b.float(), 3)
        code.decode(W32, None).sum().backward()
    assert W32.grad is not None and W32.grad.dtype == torch.float32


@pytest.mark.gpu
def test_cuda_autocast_runs_in_the_autocast_dtype():
    for name, op in registry.all_ops().items():
        args = tuple(a.cuda() if isinstance(a, torch.Tensor) else a for a in VALID[name]())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            result = outputs(getattr(torch.ops.prismkit, name)(*args))
        for r in result:
            if r.is_floating_point():
                assert r.dtype == (torch.float32 if name in FLOAT32_OUTPUT else torch.bfloat16), (name, op)


def test_cswin_backbone_in_bfloat16_and_under_autocast():
    torch.manual_seed(0)
    model = cswin.CSWinTransformer(embed_dim=32, depth=(1, 1, 1, 1), split_size=(1, 2, 7, 7),
                                   num_heads=(2, 4, 8, 16)).eval()  # fmt: skip
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = model(images)
        low = model.to(torch.bfloat16)(images.bfloat16())
    for got in (auto, low):
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got.float(), want, atol=0.1, rtol=0.1)


def test_sae_module_in_bfloat16_trains():
    from prismkit.sae import TopKSAE

    sae = TopKSAE(16, 64, k=4).to(torch.bfloat16)
    x = torch.randn(32, 16, dtype=torch.bfloat16)
    out = sae(x)
    assert out.x_hat.dtype == torch.bfloat16
    out.x_hat.float().pow(2).mean().backward()
    assert sae.W_enc.grad is not None and sae.W_enc.grad.dtype == torch.bfloat16


def test_python_argument_types_get_prismkit_messages():
    x, W, b = torch.randn(4, 3), torch.randn(6, 3), torch.randn(6)
    cases = [
        (lambda: sae_ops.topk_encode(x, W, b, 2.5), "prismkit::topk_encode: 'k' must be an int, got float 2.5"),
        (lambda: sae_ops.batch_topk_encode(x, W, b, True), "prismkit::batch_topk_encode: 'k' must be an int, got bool"),
        (lambda: sae_ops.feature_choice_encode(x, W, b, [1] * 6), "'capacity' must be a tensor, got list [1, 1"),
        (lambda: sae_ops.threshold_encode(x, W, b, 0.5), "prismkit::threshold_encode: 'threshold' must be a tensor"),
        (lambda: sae_ops.latent_stats(x, W, b, 0.5), "'threshold' must be a tensor or None, got float 0.5"),
        (lambda: sae_ops.sparse_decode(x, [[0]], None, W), "prismkit::sparse_decode: 'indices' must be a tensor"),
        (lambda: sae_ops.sparse_decode_grad_weight(x, x, x.long(), None, 6.0), "'num_latents' must be an int"),
        (
            lambda: cswin_ops.cswin_attention(
                torch.randn(1, 4, 48), 2.0, 2, 1, 2, torch.randn(16, 1, 3, 3), torch.randn(16)
            ),
            "prismkit::cswin_attention: 'H' must be an int",
        ),  # fmt: skip
        (
            lambda: cswin_ops.cswin_attention(
                torch.randn(1, 4, 48), 2, 2, 1, 2, torch.randn(16, 1, 3, 3), torch.randn(16), mode=1
            ),
            "'mode' must be a str, got int 1",
        ),  # fmt: skip
    ]
    for call, message in cases:
        with pytest.raises(TypeError) as info:
            call()
        assert message in str(info.value), str(info.value)
    import numpy as np

    assert sae_ops.topk_encode(x, W, b, np.int64(2)).values.shape == (4, 2)  # NumPy integers are ints


@pytest.mark.skipif(HAS_CUDA, reason="checks the message for a machine without a GPU")
def test_demo_arguments_are_validated():
    def run(*args):
        return subprocess.run([sys.executable, "-m", "prismkit", "demo", *args], capture_output=True, text=True)

    result = run("--repeat", "0")
    assert result.returncode == 2 and "--repeat must be >= 1, got 0" in result.stderr
    result = run("--device", "cuda")
    assert result.returncode == 2 and "torch sees no CUDA device" in result.stderr
    result = run("--device", "tpu")
    assert result.returncode == 2 and "invalid choice" in result.stderr
