"""Registering Triton kernels as the CUDA implementation of prismkit ops.

The kernels live in ``prismkit.triton_kernels.<core>`` and are imported on the first CUDA call,
so ``import prismkit`` stays fast and works without Triton (CPU-only torch builds lack it)."""

from __future__ import annotations

import importlib

import torch


def register_triton_kernels(core: str, op_names) -> None:
    """For each op name, ``prismkit.triton_kernels.<core>.<name>`` serves ``prismkit::<name>`` on CUDA."""

    def module():
        try:
            return importlib.import_module(f"prismkit.triton_kernels.{core}")
        except ImportError as e:  # pragma: no cover - Triton ships with CUDA builds of torch
            raise NotImplementedError(
                f"prismkit's {core} ops run Triton kernels on CUDA tensors, and Triton failed to import ({e}). "
                "Install triton (it ships with the CUDA builds of torch) or run on the CPU."
            ) from e

    for name in op_names:

        def cuda_kernel(*args, _name=name):
            return getattr(module(), _name)(*args)

        cuda_kernel.__name__ = f"{name}_cuda_triton"
        torch.library.register_kernel(f"prismkit::{name}", "cuda", cuda_kernel)
