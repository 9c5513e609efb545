"""Fake (meta) implementations of the quant ops, for torch.compile and opcheck: the same argument
checks as the kernels (checks.py), then outputs of the right shapes."""

from __future__ import annotations

import torch

from . import checks


@torch.library.register_fake("prismkit::kmeans1d")
def _kmeans1d_fake(values, k):
    R, _ = checks.check_kmeans1d_args(values, k)
    return values.new_empty(R, k), values.new_empty(R, k - 1)


@torch.library.register_fake("prismkit::quant_pack")
def _quant_pack_fake(values, bits):
    checks.check_quant_pack_args(values, bits)
    return values.new_empty(values.shape[0], checks.packed_row_bytes(values.shape[1], bits))


@torch.library.register_fake("prismkit::quant_unpack")
def _quant_unpack_fake(packed, bits, n):
    checks.check_quant_unpack_args(packed, bits, n)
    return packed.new_empty(packed.shape[0], n)


@torch.library.register_fake("prismkit::quant_dequantize")
def _quant_dequantize_fake(codes, cluster_ids, scales, zeros, bits, group_size, out_features, in_features):
    N, K, _, _ = checks.check_quant_weight_args("quant_dequantize", codes, cluster_ids, scales, zeros, bits,
                                                group_size, out_features, in_features)  # fmt: skip
    return scales.new_empty(N, K, dtype=torch.float32)


@torch.library.register_fake("prismkit::quant_linear")
def _quant_linear_fake(x, codes, cluster_ids, scales, zeros, bias, bits, group_size, out_features, in_features):
    N, _, _, _ = checks.check_quant_linear_args(x, codes, cluster_ids, scales, zeros, bias, bits, group_size,
                                                out_features, in_features)  # fmt: skip
    return x.new_empty(*x.shape[:-1], N)
