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
* ``quant_dequantize(codes, cluster_ids, scales, zeros, bits, group_size, out_features,
  in_features) -> W_hat [N, K]`` float32, and ``quant_linear(x, ..., bias, ...) -> x W_hat^T + bias``
  without forming W_hat.

The packed weight of an [N, K] layer (``prismkit.quant.quantize_weight`` makes it unpacked):

* ``codes`` [N, ceil(K b / 8)] uint8: the b-bit code of every weight (b = 2, 4, 8), packed along
  the row by ``quant_pack``: for b = 2 byte j of a row is ``q[4j] | q[4j+1] << 2 | q[4j+2] << 4 |
  q[4j+3] << 6``;
* ``cluster_ids`` [N, ceil(K / 4)] uint8: every weight's cluster, 2 bits, packed the same way;
  empty (``numel() == 0``) for one cluster (min-max);
* ``scales``, ``zeros`` [N, K / group_size, C] float16, bfloat16 or float32: per row, group of
  ``group_size`` inputs and cluster, the step and the value of code 0;
* the weight: ``W_hat[n, k] = q * scales[n, k // group_size, c] + zeros[n, k // group_size, c]``.
  A cluster id at or above C reads as the last cluster.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import registry
from .._checks import check_int_args, check_tensor_args
from . import autograd, fake  # noqa: F401  (register the fake implementations and autograd)

__all__ = ["kmeans1d", "quant_pack", "quant_unpack", "quant_dequantize", "quant_linear"]

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
    float32/float64 (float16/bfloat16 read as float32, exactly); CUDA: float32, float64, float16,
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


def quant_dequantize(codes: Tensor, cluster_ids: Tensor, scales: Tensor, zeros: Tensor, bits: int, group_size: int,
                     out_features: int, in_features: int) -> Tensor:  # fmt: skip
    """The packed weight (module docstring) as float32 [out_features, in_features]: q * s rounded to
    float32, then + z rounded, so it equals ``codes.float() * s.float() + z.float()`` computed in
    PyTorch bit for bit (no fused multiply-add). For inspection, tests and the backward of
    ``quant_linear``; not differentiable."""
    check_tensor_args("quant_dequantize", codes=codes, cluster_ids=cluster_ids, scales=scales, zeros=zeros)
    check_int_args("quant_dequantize", bits=bits, group_size=group_size, out_features=out_features,
                   in_features=in_features)  # fmt: skip
    return _ops.quant_dequantize(codes, cluster_ids, scales, zeros, int(bits), int(group_size), int(out_features),
                                 int(in_features))  # fmt: skip


def quant_linear(x: Tensor, codes: Tensor, cluster_ids: Tensor, scales: Tensor, zeros: Tensor,
                 bias: Optional[Tensor], bits: int, group_size: int, out_features: int,
                 in_features: int) -> Tensor:  # fmt: skip
    """``x W_hat^T + bias`` for x [..., in_features] and a packed weight (module docstring), without
    forming the float weight. CPU (per instruction set): batch 1 forms each row's dot product as its
    packed bytes are decoded; batches up to 15 dequantize four rows at a time into a small float32
    buffer and multiply them with every input row while they are in cache; from 16 rows on, tiles of
    64 dequantized rows go through ATen's GEMM; the packed bytes are read once per call. CUDA: a
    Triton kernel dequantizes tiles of the weight in registers and multiplies them with ``tl.dot``,
    or for batches up to 16 with broadcast products and sums (float16 / bfloat16 inputs: the
    dequantized tile is rounded to x's dtype for the product, float32 accumulation; float32 inputs
    follow ``torch.backends.cuda.matmul.allow_tf32`` in the tiled kernel, exact float32 products in the
    small-batch one). Output
    [..., out_features] in x's dtype (float16 / bfloat16 computed in float32 on the CPU; float64 on
    the CPU only). Differentiable in x and bias (grad_x = grad_out W_hat, with ``quant_dequantize``),
    not in the packed weight. On the CPU in float32 it differs from ``x @ quant_dequantize(...).T``
    by rounding only (the order of the sums)."""
    check_tensor_args("quant_linear", x=x, codes=codes, cluster_ids=cluster_ids, scales=scales, zeros=zeros)
    check_tensor_args("quant_linear", optional=True, bias=bias)
    check_int_args("quant_linear", bits=bits, group_size=group_size, out_features=out_features,
                   in_features=in_features)  # fmt: skip
    return _ops.quant_linear(x, codes, cluster_ids, scales, zeros, bias, int(bits), int(group_size),
                             int(out_features), int(in_features))  # fmt: skip


# The registry entry (prismkit/ops/registry.py): every op of this core and its CUDA kernel's kind.
CORE = registry.register_core(
    "quant",
    {"kmeans1d": "cuda", "quant_pack": "triton", "quant_unpack": "triton", "quant_dequantize": "triton",
     "quant_linear": "triton"},
)  # fmt: skip
