"""The check primitives of the Python side of every op (fake implementations, Triton launchers).

Each core's contract is written once per language from these: ``prismkit/ops/<core>/checks.py``
here, ``csrc/<core>/<core>_checks.cpp`` on the C++ side (from csrc/common/checks.h, whose
primitives have the same names and wording). tests/test_op_contracts.py runs one table of bad
inputs through every implementation and asserts the same exception type and message, e.g.
    prismkit::topk_encode: 'x' must be a 2-D tensor [B, d], got a 3-D float32 tensor of shape [2, 3, 4] on cpu
(TypeError for dtypes, IndexError for index ranges, ValueError for the rest).
"""

from __future__ import annotations

import operator

import torch

# CPU: float16 and bfloat16 are computed in float32 (csrc/common/float32_compute.h).
CPU_FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
# CUDA: the Triton kernels take float32, float16 and bfloat16; the CUDA C++ kernels also float64.
CUDA_FLOATS = (torch.float32, torch.float16, torch.bfloat16)
CUDA_FLOATS_WITH_FLOAT64 = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def describe(t) -> str:
    if not isinstance(t, torch.Tensor):
        r = repr(t)
        return f"{type(t).__name__} {r if len(r) <= 60 else r[:57] + '...'}"
    return f"a {t.dim()}-D {dtype_name(t.dtype)} tensor of shape {list(t.shape)} on {t.device}"


def check_rank(op: str, name: str, t, rank: int, layout: str) -> None:
    if not isinstance(t, torch.Tensor) or t.dim() != rank:
        raise ValueError(f"prismkit::{op}: '{name}' must be a {rank}-D tensor {layout}, got {describe(t)}")


def check_dtype(op: str, name: str, t: torch.Tensor, allowed) -> None:
    if t.dtype not in allowed:
        want = " or ".join(dtype_name(d) for d in allowed)
        raise TypeError(f"prismkit::{op}: '{name}' must have dtype {want} on {t.device.type}, got {describe(t)}")


def check_float_dtype(op: str, name: str, t: torch.Tensor, cuda_float64: bool = False) -> None:
    """The floating dtypes an op takes on t's device; ``cuda_float64`` for ops whose CUDA kernel is
    CUDA C++ (it has a float64 instantiation; the Triton kernels do not)."""
    if t.device.type == "cpu":
        allowed = CPU_FLOATS
    else:
        allowed = CUDA_FLOATS_WITH_FLOAT64 if cuda_float64 else CUDA_FLOATS
    check_dtype(op, name, t, allowed)


def check_same_dtype(op: str, name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if t.dtype != ref.dtype:
        raise TypeError(
            f"prismkit::{op}: '{name}' must have the dtype of '{ref_name}' ({dtype_name(ref.dtype)}), got {describe(t)}"
        )


def check_same_device(op: str, name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if t.device != ref.device:
        raise ValueError(
            f"prismkit::{op}: '{name}' must be on the device of '{ref_name}' ({ref.device}), got {describe(t)}"
        )


def check_size(op: str, name: str, t: torch.Tensor, dim: int, expected, what: str) -> None:
    if t.shape[dim] != expected:
        raise ValueError(f"prismkit::{op}: '{name}' must have size {expected} in dim {dim} ({what}), got {describe(t)}")


# ---- Python argument types, checked by the public wrappers before the dispatcher sees them ----


def check_tensor_args(op: str, *, optional: bool = False, **tensors) -> None:
    """Each argument is a tensor (or None when optional)."""
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) and not (optional and t is None):
            want = "a tensor or None" if optional else "a tensor"
            raise TypeError(f"prismkit::{op}: '{name}' must be {want}, got {describe(t)}")


def check_int_args(op: str, **values) -> None:
    """Each argument is an integer (a Python or NumPy int, not a bool or a float)."""
    for name, v in values.items():
        if isinstance(v, bool) or not _is_integer(v):
            raise TypeError(f"prismkit::{op}: '{name}' must be an int, got {describe(v)}")


def check_float_args(op: str, **values) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, torch.SymFloat, torch.SymInt)):
            raise TypeError(f"prismkit::{op}: '{name}' must be a float, got {describe(v)}")


def check_str_args(op: str, **values) -> None:
    for name, v in values.items():
        if not isinstance(v, str):
            raise TypeError(f"prismkit::{op}: '{name}' must be a str, got {describe(v)}")


def _is_integer(v) -> bool:
    if isinstance(v, (int, torch.SymInt)):
        return True
    try:
        operator.index(v)  # NumPy integers
        return not isinstance(v, torch.Tensor)
    except TypeError:
        return False
