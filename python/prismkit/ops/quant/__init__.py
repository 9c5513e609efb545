"""Split-quantization ops (SplitQuant): the public functional wrappers.

Where each piece lives (the template every core follows, see CONTRIBUTING.md): schemas in
csrc/quant/quant_schemas.cpp; argument checks in checks.py here and csrc/quant/quant_checks.cpp;
fake implementations in fake.py; autograd in autograd.py; C++ CPU kernels in
csrc/quant/<op>_cpu.cpp; CUDA C++ kernels in cuda/quant/<op>.cu with glue in
csrc/quant/<op>_cuda.cpp; the references in prismkit/reference/quant.py. The method (``split``,
the quantizers) is ``prismkit.quant``.

* ``kmeans1d(values, k) -> (centers [R, k], boundaries [R, k-1])``: exact 1-D k-means of each row
  of ``values`` [R, n] (SplitQuant clusters a Linear weight as one row and a Conv2d weight per
  output kernel).
* ``quant_pack(values, bits)`` / ``quant_unpack(packed, bits, n)``: b-bit integers (codes, cluster
  ids) to and from the packed byte layout of the quantized layers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import registry
from .._checks import check_int_args, check_tensor_args
from . import autograd, fake  # noqa: F401  (register the fake implementations and autograd)

__all__ = ["kmeans1d", "quant_pack", "quant_unpack"]

_ops = torch.ops.prismkit


def kmeans1d(values: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Exact 1-D k-means of each row of ``values`` [R, n]: ``(centers [R, k], boundaries [R, k-1])``.

    The minimum of the within-cluster sum of squares, not a local optimum: the values are sorted
    (clusters of 1-D k-means are contiguous in sorted order) and a dynamic program over prefix
    sums (float64) chooses the k - 1 split points, each layer by divide and conquer on the
    monotone optimal split, O(n log n) per layer (Wang and Song's Ckmeans.1d.dp). Every cluster
    is non-empty, so ``k <= n``. ``centers`` are the clusters' means, ascending; ``boundaries``
    the midpoints of consecutive centers, which assign each value to its nearest center
    (``prismkit.quant.assign_clusters``). A row with fewer than k distinct values gets repeated centers.

    Deterministic (the leftmost optimal split wherever several tie); exact up to float64 rounding,
    so two partitions whose costs differ by less than that may be chosen differently than by exact
    arithmetic. Values must be finite (an error names the first row with NaN or inf). CPU:
    float32/float64 (float16/bfloat16 read as float64 too); CUDA: float32, float64, float16,
    bfloat16. Outputs in the input's dtype; not differentiable.
    """
    check_tensor_args("kmeans1d", values=values)
    check_int_args("kmeans1d", k=k)
    return _ops.kmeans1d(values, int(k))


def quant_pack(values: Tensor, bits: int) -> Tensor:
    """Pack b-bit values (``bits`` 2, 4 or 8) along each row of ``values`` [N, n] uint8 into
    [N, ceil(n b / 8)] uint8: byte j of a row holds values j (8/b) ... (j + 1)(8/b) - 1, the first
    in the lowest bits (little-endian fields); the last byte's unused fields are 0. Values of 2^b
    or more are an error. Bit-exact; ``quant_unpack`` inverts it.

    For bits = 2, one byte holds four values: ``v0 | v1 << 2 | v2 << 4 | v3 << 6``."""
    check_tensor_args("quant_pack", values=values)
    check_int_args("quant_pack", bits=bits)
    return _ops.quant_pack(values, int(bits))


def quant_unpack(packed: Tensor, bits: int, n: int) -> Tensor:
    """The n b-bit values of each row of ``packed`` [N, ceil(n b / 8)] uint8, as [N, n] uint8."""
    check_tensor_args("quant_unpack", packed=packed)
    check_int_args("quant_unpack", bits=bits, n=n)
    return _ops.quant_unpack(packed, int(bits), int(n))


# The registry entry (prismkit/ops/registry.py): every op of this core and its CUDA kernel's kind.
CORE = registry.register_core("quant", {"kmeans1d": "cuda", "quant_pack": "triton", "quant_unpack": "triton"})
