// CUDA glue of prismkit::sparse_decode_grad_weight: checks, the kernels' scratch memory (from
// torch's caching allocator), device guard and stream; kernels in
// cuda/sae/sparse_decode_grad_weight.cu.
#include "common/cuda_glue.h"
#include "sae/sae_checks.h"
#include "cuda/sae/sparse_decode_grad_weight.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <limits>

namespace prismkit::sae {

std::tuple<at::Tensor, at::Tensor> sparse_decode_grad_weight_cuda(const at::Tensor& grad_out, const at::Tensor& values,
                                                                  const at::Tensor& indices,
                                                                  const std::optional<at::Tensor>& offsets,
                                                                  int64_t num_latents) {
  const SparseLayout layout = check_sparse_decode_grad_weight_args(grad_out, values, indices, offsets, num_latents);
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  TORCH_CHECK_VALUE(layout.nnz < kMax && num_latents < kMax, "prismkit::sparse_decode_grad_weight: the CUDA kernel ",
                    "needs fewer than 2^31 entries and latents, got ", layout.nnz, " entries and ", num_latents,
                    " latents");
  check_cuda_feature_size("sparse_decode_grad_weight", grad_out.size(1));
  const c10::cuda::CUDAGuard guard(grad_out.device());
  const int64_t d = grad_out.size(1);
  at::Tensor grad_weight = at::empty({num_latents, d}, grad_out.options());
  at::Tensor value_sum = at::empty({num_latents}, grad_out.options());
  const at::Tensor g = grad_out.contiguous(), v = values.contiguous(), idx = indices.contiguous();
  const at::Tensor off = offsets.has_value() ? offsets->contiguous() : at::Tensor();
  const size_t bytes = cuda::sparse_decode_grad_weight_workspace_bytes(layout.nnz, num_latents, off.defined());
  at::Tensor workspace = at::empty({static_cast<int64_t>(bytes)}, grad_out.options().dtype(at::kByte));
  C10_CUDA_CHECK(cuda::launch_sparse_decode_grad_weight(
      cuda_dtype(grad_out.scalar_type()), g.const_data_ptr(), v.const_data_ptr(), idx.const_data_ptr<int64_t>(),
      optional_long_ptr(off), layout.k, layout.B, layout.nnz, num_latents, d, grad_weight.data_ptr(),
      value_sum.data_ptr(), workspace.data_ptr(), bytes, c10::cuda::getCurrentCUDAStream()));
  return {grad_weight, value_sum};
}

TORCH_LIBRARY_IMPL(prismkit, CUDA, m) { m.impl("sparse_decode_grad_weight", &sparse_decode_grad_weight_cuda); }

}  // namespace prismkit::sae
