// CUDA glue of prismkit::sparse_decode: checks, allocation, device guard and stream; the
// kernel is cuda/sae/sparse_decode.cu.
#include "common/cuda_glue.h"
#include "sae/sae_checks.h"
#include "cuda/sae/sparse_decode.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

namespace prismkit::sae {

at::Tensor sparse_decode_cuda(const at::Tensor& values, const at::Tensor& indices,
                              const std::optional<at::Tensor>& offsets, const at::Tensor& W_dec,
                              const std::optional<at::Tensor>& b_dec) {
  const SparseLayout layout = check_sparse_decode_args(values, indices, offsets, W_dec, b_dec);
  check_cuda_feature_size("sparse_decode", W_dec.size(1));
  const c10::cuda::CUDAGuard guard(values.device());
  const int64_t d = W_dec.size(1);
  at::Tensor out = at::empty({layout.B, d}, W_dec.options());
  const at::Tensor v = values.contiguous(), idx = indices.contiguous(), W = W_dec.contiguous();
  const at::Tensor off = offsets.has_value() ? offsets->contiguous() : at::Tensor();
  const at::Tensor b = b_dec.has_value() ? b_dec->contiguous() : at::Tensor();
  C10_CUDA_CHECK(cuda::launch_sparse_decode(cuda_dtype(values.scalar_type()), v.const_data_ptr(),
                                            idx.const_data_ptr<int64_t>(), optional_long_ptr(off), layout.k,
                                            W.const_data_ptr(), b.defined() ? b.const_data_ptr() : nullptr,
                                            out.data_ptr(), layout.B, d, c10::cuda::getCurrentCUDAStream()));
  return out;
}

TORCH_LIBRARY_IMPL(prismkit, CUDA, m) { m.impl("sparse_decode", &sparse_decode_cuda); }

}  // namespace prismkit::sae
