"""Inputs and implementations shared by the SAE op tests."""

from __future__ import annotations

import torch

import prismkit
from prismkit.ops import sae as ops
from prismkit.reference import sae as ref
from prismkit.sae.capacity import equal_capacity, zipf_capacity

HAS_CUDA = torch.cuda.is_available()
try:
    import triton  # noqa: F401

    HAS_TRITON = True
except ImportError:  # CPU-only torch builds do not bring Triton
    HAS_TRITON = False
IMPLS = ["cpu", "triton"] if HAS_TRITON else ["cpu"]


def assert_code_equal(got, want, dtype):
    """Row-compressed (or fixed-k) codes, or any tuple of outputs: int64 tensors equal, floating
    ones within the dtype's tolerance (NaN equal to NaN)."""
    from conftest import TOLERANCES

    assert len(got) == len(want), (len(got), len(want))
    for g, w in zip(got, want, strict=True):
        if w.dtype == torch.long:
            assert torch.equal(g, w)
        else:
            torch.testing.assert_close(g, w.to(g.dtype), equal_nan=True, **TOLERANCES[dtype])


def continuous(B, d, F, dtype=torch.float64, device="cpu", bias_shift=0.0):
    """Gaussian inputs: ties have probability ~0, so indices compare exactly."""
    x = torch.randn(B, d, dtype=dtype, device=device)
    W = torch.randn(F, d, dtype=dtype, device=device) / max(d, 1) ** 0.5
    b = torch.randn(F, dtype=dtype, device=device) * 0.3 + bias_shift
    return x, W, b


def grid(B, d, F, dtype=torch.float32, device="cpu"):
    """Inputs on a coarse grid (multiples of 1/2, |v| <= 1): every dot product is exact in any
    summation order, so all implementations see bit-identical pre-activations, with many ties and
    many rows that have fewer than k positive entries."""
    g = lambda *s: (torch.randint(-2, 3, s, device=device) * 0.5).to(dtype)  # noqa: E731
    return g(B, d), g(F, d), g(F)


def fixed_k_code(B, k, F, dtype=torch.float64, device="cpu"):
    """Distinct latents per row (as the encoders produce), random values."""
    indices = torch.rand(B, F, device=device).argsort(1)[:, :k]
    return torch.randn(B, k, dtype=dtype, device=device), indices, None


def row_compressed_code(B, F, max_per_row, dtype=torch.float64, device="cpu"):
    """Varying counts per row, some rows empty."""
    counts = torch.randint(0, max_per_row + 1, (B,))
    if B > 2:
        counts[1] = 0
    indices = (
        torch.cat([torch.randperm(F)[: int(c)].sort().values for c in counts])
        if B
        else torch.empty(0, dtype=torch.long)
    )
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    return torch.randn(indices.numel(), dtype=dtype, device=device), indices.to(device), offsets.to(device)


def encoders(impl):
    """(topk, batch_topk, feature_choice) callables returning plain tuples, for one implementation:
    'cpu' runs the ops on CPU tensors (C++ kernels); 'triton' runs the Triton kernels, on CUDA
    tensors through the ops when there is a GPU, else on CPU tensors under the interpreter."""
    if impl == "cpu":
        return (torch.ops.prismkit.topk_encode, torch.ops.prismkit.batch_topk_encode,
                torch.ops.prismkit.feature_choice_encode)  # fmt: skip
    if HAS_CUDA:

        def on_gpu(op):
            return lambda *a: tuple(t.cpu() for t in op(*(t.cuda() if isinstance(t, torch.Tensor) else t for t in a)))

        return (on_gpu(torch.ops.prismkit.topk_encode), on_gpu(torch.ops.prismkit.batch_topk_encode),
                on_gpu(torch.ops.prismkit.feature_choice_encode))  # fmt: skip
    from prismkit.triton_kernels import sae as triton_sae

    return triton_sae.topk_encode, triton_sae.batch_topk_encode, triton_sae.feature_choice_encode


__all__ = [
    "equal_capacity",
    "zipf_capacity",
    "assert_code_equal",
    "continuous",
    "grid",
    "encoders",
    "ops",
    "ref",
    "prismkit",
    "HAS_CUDA",
    "HAS_TRITON",
    "IMPLS",
    "fixed_k_code",
    "row_compressed_code",
]
