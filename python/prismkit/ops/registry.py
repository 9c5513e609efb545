"""The one list of prismkit's cores and ops.

Each core's ops package (``prismkit/ops/<core>/__init__.py``) calls ``register_core`` once with
its op names and the kind of kernel that serves each on CUDA tensors. Everything that needs the
list reads it from here: ``python -m prismkit info``, the package and wheel tests, the benchmark
runner and its result checker. The schemas themselves are declared in C++
(``csrc/<core>/<core>_schemas.cpp``); ``tests/test_package.py`` checks that the two agree.

What ``register_core`` does for CUDA tensors, per op:

* ``"triton"``: registers a CUDA kernel that imports ``prismkit.triton_kernels.<core>`` on its first
  call and runs the launcher of the op's name there (so ``import prismkit`` stays fast and works
  without Triton);
* ``"cuda"``: the CUDA C++ kernel registers itself from ``csrc/<core>/<op>_cuda.cpp``. When this
  build has no CUDA kernels (torch has CUDA but no nvcc was found at build time), a kernel that
  raises an error saying so, and how to rebuild, is registered instead of leaving the dispatcher's
  "could not run ... with arguments from the 'CUDA' backend".

And for autocast (``torch.autocast``), every op runs in its best supported precision: on the CPU
in float32 (the CPU kernels compute in float32 whatever comes in), with float32 outputs as for
autocast's float32 ops; on CUDA in autocast's dtype (bfloat16 or float16; the kernels accumulate in
float32), as for autocast's lower-precision ops. float64 tensors and integer tensors are left as
they are.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch

from .. import _build_info

CUDA_KINDS = ("triton", "cuda")


@dataclass(frozen=True)
class Op:
    name: str  # torch.ops.prismkit.<name>
    core: str
    cuda: str  # "triton" or "cuda"


@dataclass(frozen=True)
class Core:
    name: str  # the directory and module name everywhere (csrc/<name>/, bench/<name>.py, ...)
    ops: tuple[Op, ...]


_CORES: dict[str, Core] = {}
_AUTOCAST = torch.library.Library("prismkit", "IMPL")
_AUTOCAST_KEYS = {"cpu": "AutocastCPU", "cuda": "AutocastCUDA"}


def register_core(name: str, cuda_kernels: dict[str, str]) -> Core:
    """Declare a core: ``cuda_kernels`` maps each op name to "triton" or "cuda" (see the module
    docstring). Registers the CUDA-side kernels that Python provides and returns the Core."""
    if name in _CORES:
        raise ValueError(f"prismkit core {name!r} is registered twice")
    for op, kind in cuda_kernels.items():
        if kind not in CUDA_KINDS:
            raise ValueError(f"prismkit op {op!r}: CUDA kernel kind must be one of {CUDA_KINDS}, got {kind!r}")
    core = Core(name, tuple(Op(op, name, kind) for op, kind in cuda_kernels.items()))
    for op in core.ops:
        if op.cuda == "triton":
            torch.library.register_kernel(f"prismkit::{op.name}", "cuda", _triton_kernel(op))
        elif needs_cuda_fallback():
            torch.library.register_kernel(f"prismkit::{op.name}", "cuda", missing_cuda_kernel(op.name))
        for device_type in ("cpu", "cuda"):
            _AUTOCAST.impl(op.name, _autocast_kernel(op.name, device_type), _AUTOCAST_KEYS[device_type])
    _CORES[name] = core
    return core


def cores() -> tuple[Core, ...]:
    return tuple(_CORES.values())


def all_ops() -> dict[str, Op]:
    return {op.name: op for core in _CORES.values() for op in core.ops}


def needs_cuda_fallback(with_cuda: bool = _build_info.WITH_CUDA, torch_cuda=torch.version.cuda) -> bool:
    """True when torch can make CUDA tensors but this build linked no CUDA kernels."""
    return bool(torch_cuda) and not with_cuda


def missing_cuda_kernel(name: str):
    def kernel(*args, **kwargs):
        raise NotImplementedError(
            f"prismkit::{name}: this prismkit was built without its CUDA kernels (no CUDA toolkit was "
            f"found at build time), so it cannot run on CUDA tensors. Install the CUDA toolkit (nvcc) "
            f"matching torch's CUDA {torch.version.cuda} and rebuild with `pip install --no-build-isolation .`, "
            f"or move the inputs to the CPU."
        )

    kernel.__name__ = f"{name}_cuda_missing"
    return kernel


def _triton_kernel(op: Op):
    def kernel(*args):
        try:
            module = importlib.import_module(f"prismkit.triton_kernels.{op.core}")
        except ImportError as e:  # pragma: no cover - Triton ships with CUDA builds of torch
            raise NotImplementedError(
                f"prismkit::{op.name} runs a Triton kernel on CUDA tensors, and Triton failed to import ({e}). "
                "Install triton (it ships with the CUDA builds of torch) or run on the CPU."
            ) from e
        return getattr(module, op.name)(*args)

    kernel.__name__ = f"{op.name}_cuda_triton"
    return kernel


def autocast_dtype(device_type: str) -> torch.dtype:
    """The precision an op runs in under autocast on this device type (see the module docstring)."""
    return torch.float32 if device_type == "cpu" else torch.get_autocast_dtype(device_type)


def _autocast_kernel(name: str, device_type: str):
    key = getattr(torch._C.DispatchKey, _AUTOCAST_KEYS[device_type])

    def cast(a, dtype):
        eligible = isinstance(a, torch.Tensor) and a.is_floating_point() and a.dtype != torch.float64
        return a.to(dtype) if eligible and a.device.type == device_type else a

    def kernel(*args):
        dtype = autocast_dtype(device_type)
        with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(key)):
            return getattr(torch.ops.prismkit, name).default(*(cast(a, dtype) for a in args))

    kernel.__name__ = f"{name}_autocast_{device_type}"
    return kernel
