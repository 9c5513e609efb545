// The cswin ops' argument contract on the C++ side (CPU kernels and any CUDA glue alike). The
// Python side (fake implementations, Triton launchers) is python/prismkit/ops/cswin/checks.py:
// same checks, same order, same messages.
#pragma once

#include <ATen/core/Tensor.h>

#include <string_view>

namespace prismkit::cswin {

struct CSWinArgs {
  int64_t B, H, W, C, heads, head_dim, split_size;
  bool full;          // mode "full": one window over the whole map (the last stage)
  bool mask_padding;  // padding "mask": padded keys leave the softmax; "zeros": they stay in it
};

// qkv [B, H*W, 3C]; C divisible by num_heads (and num_heads even in "cross" mode); lepe_weight
// [C, 1, 3, 3] and lepe_bias [C] of qkv's dtype and device; split_size >= 1; mode "cross" or
// "full"; padding "mask" or "zeros".
CSWinArgs check_cswin_args(const char* op, const at::Tensor& qkv, int64_t H, int64_t W, int64_t split_size,
                           int64_t num_heads, const at::Tensor& lepe_weight, const at::Tensor& lepe_bias,
                           std::string_view mode, std::string_view padding);

// The forward's arguments, and grad_out [B, H*W, C] of qkv's dtype and device.
CSWinArgs check_cswin_attention_backward_args(const at::Tensor& grad_out, const at::Tensor& qkv, int64_t H, int64_t W,
                                              int64_t split_size, int64_t num_heads, const at::Tensor& lepe_weight,
                                              const at::Tensor& lepe_bias, std::string_view mode,
                                              std::string_view padding);

}  // namespace prismkit::cswin
