"""Token-merging ops (PiToMe, ToMe, DivPrune): the public functional wrappers.

Where each piece lives (the template every core follows, see CONTRIBUTING.md): schemas in
csrc/merge/merge_schemas.cpp; argument checks in checks.py here and csrc/merge/merge_checks.cpp;
fake implementations in fake.py; autograd in autograd.py; C++ CPU kernels in
csrc/merge/<op>_cpu.cpp; Triton kernels in triton_kernels/merge.py; the references (and the
official computations, op for op) in prismkit/reference/merge.py.

One representation for every merge, the destination map: ``dest`` [B, N] int64 gives each input
token's output slot (``0 <= dest < num_out``), or -1 when the token is dropped. The output order is
part of the plan. Merging is then ``token_merge``, a deterministic segmented reduction; unmerging is
a gather by dest (``x_out.gather(1, dest.clamp_min(0)[..., None].expand(-1, -1, C))``, zeros where
dest is -1); chained layers compose (``torch.where(dest1 >= 0, dest2.gather(1, dest1.clamp_min(0)),
-1)``).

* ``token_merge(x, size, dest, num_out, reduce="wavg") -> (x_out [B, num_out, C], size_out [B,
  num_out, 1])``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import registry
from .._checks import check_int_args, check_str_args, check_tensor_args
from . import autograd, fake  # noqa: F401  (register the fake implementations and autograd)

__all__ = ["token_merge"]

_ops = torch.ops.prismkit


def token_merge(x: Tensor, size: Optional[Tensor], dest: Tensor, num_out: int,
                reduce: str = "wavg") -> tuple[Tensor, Tensor]:  # fmt: skip
    """Reduce the tokens of ``x`` [B, N, C] into ``num_out`` slots per image by ``dest`` [B, N]
    int64 (each token's slot, -1: dropped). ``reduce``: ``wavg`` (the official ``merge_wavg``:
    x_out = sum(size x) / sum(size)), ``mean``, ``sum`` or ``amax``; ``size`` [B, N, 1] (x's dtype,
    positive; None: ones). Returns ``(x_out [B, num_out, C], size_out [B, num_out, 1])``, size_out
    the slots' summed sizes. A slot no token maps to gets 0 and size 0.

    Each slot sums its tokens in ascending token order in float32 (float64 for float64 inputs),
    without atomics: bit-identical from run to run. Differentiable in x (the backward is a gather by
    dest, never an N x N matrix), not in size or dest. CPU: float32, float64 (float16 / bfloat16 in
    float32); CUDA (Triton): float32, float16, bfloat16. NaN: a NaN token makes its slot's output NaN
    in that channel (every reduce). ``amax``'s gradient is split equally among a slot's tokens that
    equal its maximum. Errors: dest outside [-1, num_out) (IndexError), a size not positive."""
    check_tensor_args("token_merge", x=x, dest=dest)
    check_tensor_args("token_merge", optional=True, size=size)
    check_int_args("token_merge", num_out=num_out)
    check_str_args("token_merge", reduce=reduce)
    return tuple(_ops.token_merge(x, size, dest, int(num_out), reduce))


CORE = registry.register_core("merge", {"token_merge": "triton"})
