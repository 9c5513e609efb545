// CUDA glue of prismkit::sparse_decode_grad_values; the kernel is
// cuda/sae/sparse_decode_grad_values.cu.
#include "common/cuda_glue.h"
#include "sae/sae_checks.h"
#include "cuda/sae/sparse_decode_grad_values.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

namespace prismkit::sae {

at::Tensor sparse_decode_grad_values_cuda(const at::Tensor& grad_out, const at::Tensor& indices,
                                          const std::optional<at::Tensor>& offsets, const at::Tensor& W_dec) {
  const SparseLayout layout = check_sparse_decode_grad_values_args(grad_out, indices, offsets, W_dec);
  const c10::cuda::CUDAGuard guard(grad_out.device());
  at::Tensor grad_values = at::empty(indices.sizes(), grad_out.options());
  const at::Tensor g = grad_out.contiguous(), idx = indices.contiguous(), W = W_dec.contiguous();
  const at::Tensor off = offsets.has_value() ? offsets->contiguous() : at::Tensor();
  C10_CUDA_CHECK(cuda::launch_sparse_decode_grad_values(cuda_dtype(grad_out.scalar_type()), g.const_data_ptr(),
                                                        idx.const_data_ptr<int64_t>(), optional_long_ptr(off), layout.k,
                                                        W.const_data_ptr(), grad_values.data_ptr(), layout.B,
                                                        W_dec.size(1), c10::cuda::getCurrentCUDAStream()));
  return grad_values;
}

TORCH_LIBRARY_IMPL(prismkit, CUDA, m) { m.impl("sparse_decode_grad_values", &sparse_decode_grad_values_cuda); }

}  // namespace prismkit::sae
