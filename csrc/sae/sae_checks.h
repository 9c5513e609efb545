// The SAE ops' argument contract on the C++ side, shared by their CPU kernels and CUDA glue.
// The Python side (fake implementations, Triton launchers) is python/prismkit/ops/sae/checks.py:
// same checks, same order, same messages.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace prismkit::sae {

struct EncodeShape {
  int64_t B, d, F;
};

// x [B, d], W_enc [F, d], b_enc [F]: one floating dtype, one device.
EncodeShape check_encode_args(const char* op, const at::Tensor& x, const at::Tensor& W_enc, const at::Tensor& b_enc);

// 1 <= k <= F.
void check_k(const char* op, int64_t k, int64_t F);

// capacity [F] int64 on x's device with no negative entry (this reads the data). Returns
// the capacities clamped to B, as int64 on the CPU.
at::Tensor check_capacity(const char* op, const at::Tensor& capacity, const at::Tensor& x, int64_t F, int64_t B);

// threshold [F]: x's dtype and device.
void check_threshold(const char* op, const at::Tensor& threshold, const at::Tensor& x, int64_t F);

// bandwidth: finite and > 0 (jumprelu_encode's straight-through window).
void check_bandwidth(const char* op, double bandwidth);

// Where a sparse code's entries live: the fixed-k layout ([B, k] indices, no offsets) or
// the row-compressed one ([nnz] indices, offsets [B+1]).
struct SparseLayout {
  int64_t B;
  int64_t nnz;
  int64_t k;  // entries per row in the fixed-k layout, -1 for the row-compressed one
  bool has_offsets() const { return k < 0; }
};

// indices int64 ([B, k], or [nnz] with offsets), every entry in [0, num_latents);
// offsets int64 [B+1], offsets[0] == 0, non-decreasing, offsets[B] == nnz. Reads the data:
// on CUDA one device-to-host transfer of five numbers (one synchronization per call).
SparseLayout check_sparse_layout(const char* op, const at::Tensor& indices, const std::optional<at::Tensor>& offsets,
                                 int64_t num_latents, const at::Tensor& device_ref, const char* device_ref_name);

// The full argument checks of the decode ops (shared by their CPU and CUDA kernels).
SparseLayout check_sparse_decode_args(const at::Tensor& values, const at::Tensor& indices,
                                      const std::optional<at::Tensor>& offsets, const at::Tensor& W_dec,
                                      const std::optional<at::Tensor>& b_dec);
SparseLayout check_sparse_decode_grad_values_args(const at::Tensor& grad_out, const at::Tensor& indices,
                                                  const std::optional<at::Tensor>& offsets, const at::Tensor& W_dec);
SparseLayout check_sparse_decode_grad_weight_args(const at::Tensor& grad_out, const at::Tensor& values,
                                                  const at::Tensor& indices, const std::optional<at::Tensor>& offsets,
                                                  int64_t num_latents);
SparseLayout check_sparse_decode_backward_args(const at::Tensor& grad_out, const at::Tensor& values,
                                               const at::Tensor& indices, const std::optional<at::Tensor>& offsets,
                                               const at::Tensor& W_dec);

// values has the shape of indices and a floating dtype.
void check_values(const char* op, const char* name, const at::Tensor& values, const at::Tensor& indices);

// rows [B, d]: floating, on ref's device, B rows.
void check_rows(const char* op, const char* name, const at::Tensor& rows, int64_t B, const char* what_B);

// weight [F, d]: 2-D, floating.
void check_weight(const char* op, const char* name, const at::Tensor& weight);

}  // namespace prismkit::sae
