"""Fake (meta) implementations of the SAE ops, for torch.compile and opcheck: the same argument
checks as the kernels (checks.py), then outputs of the right shapes. The row-compressed encoders'
entry count depends on the data, so it is a dynamic size."""

from __future__ import annotations

import torch

from . import checks


@torch.library.register_fake("prismkit::topk_encode")
def _topk_encode_fake(x, W_enc, b_enc, k):
    B, _, F = checks.check_encode_args("topk_encode", x, W_enc, b_enc)
    checks.check_k("topk_encode", k, F)
    return x.new_empty(B, k), x.new_empty(B, k, dtype=torch.long)


def _row_compressed_fake(x):
    nnz = torch.library.get_ctx().new_dynamic_size()
    B = x.shape[0]
    return x.new_empty(nnz), x.new_empty(nnz, dtype=torch.long), x.new_empty(B + 1, dtype=torch.long)


@torch.library.register_fake("prismkit::batch_topk_encode")
def _batch_topk_encode_fake(x, W_enc, b_enc, k):
    _, _, F = checks.check_encode_args("batch_topk_encode", x, W_enc, b_enc)
    checks.check_k("batch_topk_encode", k, F)
    return _row_compressed_fake(x)


@torch.library.register_fake("prismkit::feature_choice_encode")
def _feature_choice_encode_fake(x, W_enc, b_enc, capacity):
    _, _, F = checks.check_encode_args("feature_choice_encode", x, W_enc, b_enc)
    checks.check_capacity("feature_choice_encode", capacity, x, F)
    return _row_compressed_fake(x)


@torch.library.register_fake("prismkit::threshold_encode")
def _threshold_encode_fake(x, W_enc, b_enc, threshold):
    _, _, F = checks.check_encode_args("threshold_encode", x, W_enc, b_enc)
    checks.check_threshold("threshold_encode", threshold, x, F)
    return _row_compressed_fake(x)


@torch.library.register_fake("prismkit::jumprelu_encode")
def _jumprelu_encode_fake(x, W_enc, b_enc, threshold, bandwidth):
    _, _, F = checks.check_encode_args("jumprelu_encode", x, W_enc, b_enc)
    checks.check_threshold("jumprelu_encode", threshold, x, F)
    checks.check_bandwidth("jumprelu_encode", bandwidth)
    values, indices, offsets = _row_compressed_fake(x)
    return values, indices, offsets, indices.new_empty(indices.shape, dtype=torch.bool)


@torch.library.register_fake("prismkit::latent_stats")
def _latent_stats_fake(x, W_enc, b_enc, threshold=None):
    _, _, F = checks.check_encode_args("latent_stats", x, W_enc, b_enc)
    if threshold is not None:
        checks.check_threshold("latent_stats", threshold, x, F)
    return x.new_empty(F, dtype=torch.long), x.new_empty(F)


@torch.library.register_fake("prismkit::sparse_decode")
def _sparse_decode_fake(values, indices, offsets, W_dec, b_dec):
    B = checks.check_sparse_decode_args(values, indices, offsets, W_dec, b_dec)
    return W_dec.new_empty(B, W_dec.shape[1])


@torch.library.register_fake("prismkit::sparse_decode_grad_values")
def _sparse_decode_grad_values_fake(grad_out, indices, offsets, W_dec):
    checks.check_sparse_decode_grad_values_args(grad_out, indices, offsets, W_dec)
    return grad_out.new_empty(indices.shape)


@torch.library.register_fake("prismkit::sparse_decode_grad_weight")
def _sparse_decode_grad_weight_fake(grad_out, values, indices, offsets, num_latents):
    checks.check_sparse_decode_grad_weight_args(grad_out, values, indices, offsets, num_latents)
    return grad_out.new_empty(num_latents, grad_out.shape[1]), grad_out.new_empty(num_latents)


@torch.library.register_fake("prismkit::sparse_decode_backward")
def _sparse_decode_backward_fake(grad_out, values, indices, offsets, W_dec):
    checks.check_sparse_decode_backward_args(grad_out, values, indices, offsets, W_dec)
    return grad_out.new_empty(indices.shape), grad_out.new_empty(W_dec.shape)
