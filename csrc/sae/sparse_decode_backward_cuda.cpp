// CUDA glue of prismkit::sparse_decode_backward: on the GPU the two gradients run as the
// kernels of sparse_decode_grad_values and sparse_decode_grad_weight, back to back on one stream.
#include "common/cuda_glue.h"
#include "sae/sae_checks.h"
#include "cuda/sae/sparse_decode_grad_values.h"
#include "cuda/sae/sparse_decode_grad_weight.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <limits>

namespace prismkit::sae {

std::tuple<at::Tensor, at::Tensor> sparse_decode_backward_cuda(const at::Tensor& grad_out, const at::Tensor& values,
                                                               const at::Tensor& indices,
                                                               const std::optional<at::Tensor>& offsets,
                                                               const at::Tensor& W_dec) {
  const SparseLayout layout = check_sparse_decode_backward_args(grad_out, values, indices, offsets, W_dec);
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  const int64_t F = W_dec.size(0), d = W_dec.size(1);
  TORCH_CHECK_VALUE(layout.nnz < kMax && F < kMax, "prismkit::sparse_decode_backward: the CUDA kernel needs fewer ",
                    "than 2^31 entries and latents, got ", layout.nnz, " entries and ", F, " latents");
  check_cuda_feature_size("sparse_decode_backward", W_dec.size(1));
  const c10::cuda::CUDAGuard guard(grad_out.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const cuda::DType dtype = cuda_dtype(grad_out.scalar_type());
  at::Tensor grad_values = at::empty(indices.sizes(), grad_out.options());
  at::Tensor grad_weight = at::empty({F, d}, grad_out.options());
  at::Tensor value_sum = at::empty({F}, grad_out.options());
  const at::Tensor g = grad_out.contiguous(), v = values.contiguous(), idx = indices.contiguous(),
                   W = W_dec.contiguous();
  const at::Tensor off = offsets.has_value() ? offsets->contiguous() : at::Tensor();
  C10_CUDA_CHECK(cuda::launch_sparse_decode_grad_values(dtype, g.const_data_ptr(), idx.const_data_ptr<int64_t>(),
                                                        optional_long_ptr(off), layout.k, W.const_data_ptr(),
                                                        grad_values.data_ptr(), layout.B, d, stream));
  const size_t bytes = cuda::sparse_decode_grad_weight_workspace_bytes(layout.nnz, F, off.defined());
  at::Tensor workspace = at::empty({static_cast<int64_t>(bytes)}, grad_out.options().dtype(at::kByte));
  C10_CUDA_CHECK(cuda::launch_sparse_decode_grad_weight(
      dtype, g.const_data_ptr(), v.const_data_ptr(), idx.const_data_ptr<int64_t>(), optional_long_ptr(off), layout.k,
      layout.B, layout.nnz, F, d, grad_weight.data_ptr(), value_sum.data_ptr(), workspace.data_ptr(), bytes, stream));
  return {grad_values, grad_weight};
}

TORCH_LIBRARY_IMPL(prismkit, CUDA, m) { m.impl("sparse_decode_backward", &sparse_decode_backward_cuda); }

}  // namespace prismkit::sae
