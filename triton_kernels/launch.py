"""What every prismkit Triton launcher decides the same way: the device to launch on, and the
precision of float32 ``tl.dot``."""

from __future__ import annotations

import contextlib

import torch


def on_device(t: torch.Tensor):
    """Context for a launch on t's device: Triton launches on the current CUDA device; CPU tensors
    (the interpreter) need none."""
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def fp32_matmul_uses_tf32() -> bool:
    """torch's own float32 matmul setting (the newer fp32_precision API where it exists)."""
    matmul = torch.backends.cuda.matmul
    precision = getattr(matmul, "fp32_precision", None)
    if precision in ("tf32", "ieee"):
        return precision == "tf32"
    return bool(matmul.allow_tf32)


def input_precision(t: torch.Tensor) -> str:
    """``tl.dot``'s input_precision for operands like t: float32 on a GPU follows torch's TF32
    setting, as torch's own matmul does; everything else is exact ("ieee")."""
    use_tf32 = t.dtype == torch.float32 and t.device.type == "cuda" and fp32_matmul_uses_tf32()
    return "tf32" if use_tf32 else "ieee"
