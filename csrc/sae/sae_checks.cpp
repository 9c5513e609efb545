#include "sae/sae_checks.h"

#include "common/checks.h"

#include <ATen/ops/aminmax.h>
#include <ATen/ops/any.h>
#include <ATen/ops/lt.h>
#include <ATen/ops/stack.h>

#include <cmath>
#include <vector>

namespace prismkit::sae {

EncodeShape check_encode_args(const char* op, const at::Tensor& x, const at::Tensor& W_enc, const at::Tensor& b_enc) {
  check_rank(op, "x", x, 2, "[B, d]");
  check_rank(op, "W_enc", W_enc, 2, "[F, d] (an nn.Linear(d, F).weight)");
  check_rank(op, "b_enc", b_enc, 1, "[F]");
  check_float_dtype(op, "x", x, /*cuda_float64=*/false);  // CUDA: Triton kernels
  check_same_device(op, "W_enc", W_enc, "x", x);
  check_same_device(op, "b_enc", b_enc, "x", x);
  check_same_dtype(op, "W_enc", W_enc, "x", x);
  check_same_dtype(op, "b_enc", b_enc, "x", x);
  check_size(op, "W_enc", W_enc, 1, x.size(1), "d, the feature size of x");
  check_size(op, "b_enc", b_enc, 0, W_enc.size(0), "F, the number of latents of W_enc");
  return {x.size(0), x.size(1), W_enc.size(0)};
}

void check_k(const char* op, int64_t k, int64_t F) {
  TORCH_CHECK_VALUE(k >= 1 && k <= F, "prismkit::", op, ": 'k' must be in [1, F] = [1, ", F,
                    "] (F is the number of latents), got ", k);
}

at::Tensor check_capacity(const char* op, const at::Tensor& capacity, const at::Tensor& x, int64_t F, int64_t B) {
  check_rank(op, "capacity", capacity, 1, "[F]");
  check_dtype(op, "capacity", capacity, {at::kLong});
  check_same_device(op, "capacity", capacity, "x", x);
  check_size(op, "capacity", capacity, 0, F, "F, the number of latents of W_enc");
  at::Tensor cap = capacity.to(at::kCPU).contiguous();
  const int64_t* c = cap.data_ptr<int64_t>();
  for (int64_t j = 0; j < F; ++j)
    TORCH_CHECK_VALUE(c[j] >= 0, "prismkit::", op, ": 'capacity' must be >= 0 everywhere, got capacity[", j,
                      "] = ", c[j]);
  return cap.clamp_max(B);
}

void check_threshold(const char* op, const at::Tensor& threshold, const at::Tensor& x, int64_t F) {
  check_rank(op, "threshold", threshold, 1, "[F] (one threshold per latent)");
  check_same_device(op, "threshold", threshold, "x", x);
  check_same_dtype(op, "threshold", threshold, "x", x);
  check_size(op, "threshold", threshold, 0, F, "F, the number of latents of W_enc");
}

void check_bandwidth(const char* op, double bandwidth) {
  TORCH_CHECK_VALUE(bandwidth > 0 && std::isfinite(bandwidth), "prismkit::", op,
                    ": 'bandwidth' must be finite and > 0, got ", bandwidth);
}

namespace {

// The layout's data checks: offsets from 0 to nnz and non-decreasing, indices in [0, num_latents).
// The five numbers they need are reduced on the tensors' device and read back in one transfer,
// so a CUDA call synchronizes once, not once per number, and the error stays synchronous.
void check_layout_data(const char* op, const at::Tensor& indices, const std::optional<at::Tensor>& offsets,
                       const SparseLayout& layout, int64_t num_latents) {
  std::vector<at::Tensor> parts;
  if (offsets.has_value()) {
    const at::Tensor& off = *offsets;
    parts.push_back(off.select(0, 0));
    parts.push_back(off.select(0, layout.B));
    if (layout.B > 1) parts.push_back(at::lt(off.slice(0, 1), off.slice(0, 0, layout.B)).any().to(at::kLong));
  }
  if (layout.nnz > 0) {
    auto [lo, hi] = at::aminmax(indices);
    parts.push_back(lo);
    parts.push_back(hi);
  }
  if (parts.empty()) return;
  const at::Tensor host = at::stack(parts).to(at::kCPU);
  const int64_t* v = host.const_data_ptr<int64_t>();
  if (offsets.has_value()) {
    const int64_t first = v[0], last = v[1];
    TORCH_CHECK_VALUE(first == 0 && last == layout.nnz, "prismkit::", op,
                      ": 'offsets' must start at 0 and end at nnz = ", layout.nnz, " (the length of indices), got ",
                      first, " and ", last);
    v += 2;
    if (layout.B > 1) TORCH_CHECK_VALUE(*v++ == 0, "prismkit::", op, ": 'offsets' must be non-decreasing");
  }
  if (layout.nnz > 0) {
    const int64_t min_index = v[0], max_index = v[1];
    TORCH_CHECK_INDEX(min_index >= 0 && max_index < num_latents, "prismkit::", op,
                      ": 'indices' must lie in [0, F) = [0, ", num_latents, "), got entries from ", min_index, " to ",
                      max_index);
  }
}

}  // namespace

SparseLayout check_sparse_layout(const char* op, const at::Tensor& indices, const std::optional<at::Tensor>& offsets,
                                 int64_t num_latents, const at::Tensor& device_ref, const char* device_ref_name) {
  SparseLayout layout{};
  check_dtype(op, "indices", indices, {at::kLong});
  check_same_device(op, "indices", indices, device_ref_name, device_ref);
  if (offsets.has_value()) {
    const at::Tensor& off = *offsets;
    check_rank(op, "indices", indices, 1, "[nnz] (row-compressed layout, offsets given)");
    check_rank(op, "offsets", off, 1, "[B + 1]");
    check_dtype(op, "offsets", off, {at::kLong});
    check_same_device(op, "offsets", off, device_ref_name, device_ref);
    TORCH_CHECK_VALUE(off.size(0) >= 1, "prismkit::", op, ": 'offsets' must have B + 1 >= 1 entries, got ",
                      describe(off));
    layout.B = off.size(0) - 1;
    layout.nnz = indices.size(0);
    layout.k = -1;
  } else {
    check_rank(op, "indices", indices, 2, "[B, k] (fixed-k layout, offsets None)");
    layout.B = indices.size(0);
    layout.k = indices.size(1);
    layout.nnz = layout.B * layout.k;
  }
  check_layout_data(op, indices, offsets, layout, num_latents);
  return layout;
}

void check_values(const char* op, const char* name, const at::Tensor& values, const at::Tensor& indices) {
  TORCH_CHECK_VALUE(values.defined() && values.sizes() == indices.sizes(), "prismkit::", op, ": '", name,
                    "' must have the shape of indices ", indices.sizes(), ", got ", describe(values));
  check_float_dtype(op, name, values, /*cuda_float64=*/true);
  check_same_device(op, name, values, "indices", indices);
}

void check_rows(const char* op, const char* name, const at::Tensor& rows, int64_t B, const char* what_B) {
  check_rank(op, name, rows, 2, "[B, d]");
  check_float_dtype(op, name, rows, /*cuda_float64=*/true);
  check_size(op, name, rows, 0, B, what_B);
}

void check_weight(const char* op, const char* name, const at::Tensor& weight) {
  check_rank(op, name, weight, 2, "[F, d]");
  check_float_dtype(op, name, weight, /*cuda_float64=*/true);
}

namespace {

// A code (values, indices, offsets) to decode with W_dec [F, d].
SparseLayout check_code_and_weight(const char* op, const at::Tensor& values, const at::Tensor& indices,
                                   const std::optional<at::Tensor>& offsets, const at::Tensor& W_dec) {
  check_weight(op, "W_dec", W_dec);
  check_values(op, "values", values, indices);
  check_same_dtype(op, "W_dec", W_dec, "values", values);
  check_same_device(op, "W_dec", W_dec, "values", values);
  return check_sparse_layout(op, indices, offsets, W_dec.size(0), values, "values");
}

// grad_out [B, d] of a code's B rows, with the dtype and device of its values.
void check_grad_out(const char* op, const at::Tensor& grad_out, const SparseLayout& layout, const at::Tensor& values) {
  check_rows(op, "grad_out", grad_out, layout.B, "B, the number of rows of the sparse code");
  check_same_dtype(op, "grad_out", grad_out, "values", values);
  check_same_device(op, "grad_out", grad_out, "values", values);
}

}  // namespace

SparseLayout check_sparse_decode_args(const at::Tensor& values, const at::Tensor& indices,
                                      const std::optional<at::Tensor>& offsets, const at::Tensor& W_dec,
                                      const std::optional<at::Tensor>& b_dec) {
  const char* op = "sparse_decode";
  const SparseLayout layout = check_code_and_weight(op, values, indices, offsets, W_dec);
  if (b_dec.has_value()) {
    check_rank(op, "b_dec", *b_dec, 1, "[d]");
    check_size(op, "b_dec", *b_dec, 0, W_dec.size(1), "d, the feature size of W_dec");
    check_same_dtype(op, "b_dec", *b_dec, "values", values);
    check_same_device(op, "b_dec", *b_dec, "values", values);
  }
  return layout;
}

SparseLayout check_sparse_decode_grad_values_args(const at::Tensor& grad_out, const at::Tensor& indices,
                                                  const std::optional<at::Tensor>& offsets, const at::Tensor& W_dec) {
  const char* op = "sparse_decode_grad_values";
  check_weight(op, "W_dec", W_dec);
  check_rank(op, "grad_out", grad_out, 2, "[B, d]");
  check_same_device(op, "W_dec", W_dec, "grad_out", grad_out);
  const SparseLayout layout = check_sparse_layout(op, indices, offsets, W_dec.size(0), grad_out, "grad_out");
  check_rows(op, "grad_out", grad_out, layout.B, "B, the number of rows of the sparse code");
  check_same_dtype(op, "W_dec", W_dec, "grad_out", grad_out);
  check_size(op, "grad_out", grad_out, 1, W_dec.size(1), "d, the feature size of W_dec");
  return layout;
}

SparseLayout check_sparse_decode_grad_weight_args(const at::Tensor& grad_out, const at::Tensor& values,
                                                  const at::Tensor& indices, const std::optional<at::Tensor>& offsets,
                                                  int64_t num_latents) {
  const char* op = "sparse_decode_grad_weight";
  TORCH_CHECK_VALUE(num_latents >= 0, "prismkit::", op, ": 'num_latents' must be >= 0, got ", num_latents);
  check_values(op, "values", values, indices);
  const SparseLayout layout = check_sparse_layout(op, indices, offsets, num_latents, values, "values");
  check_grad_out(op, grad_out, layout, values);
  return layout;
}

SparseLayout check_sparse_decode_backward_args(const at::Tensor& grad_out, const at::Tensor& values,
                                               const at::Tensor& indices, const std::optional<at::Tensor>& offsets,
                                               const at::Tensor& W_dec) {
  const char* op = "sparse_decode_backward";
  const SparseLayout layout = check_code_and_weight(op, values, indices, offsets, W_dec);
  check_grad_out(op, grad_out, layout, values);
  check_size(op, "grad_out", grad_out, 1, W_dec.size(1), "d, the feature size of W_dec");
  return layout;
}

}  // namespace prismkit::sae
