// CUDA glue of prismkit::rasterize_sparse_coef_backward: checks, zeroed gradient buffers (the
// kernel adds into them), device guard and stream; the kernel is
// cuda/splat/rasterize_sparse_coef_backward.cu.
#include "common/float32_compute.h"
#include "splat/sparse_cuda_glue.h"

#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <tuple>

namespace prismkit::splat {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_sparse_coef_backward_cuda(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities, const at::Tensor& coef_indices,
    const at::Tensor& coef_weights, int64_t num_coefs, const at::Tensor& tile_offsets, const at::Tensor& flatten_ids,
    int64_t width, int64_t height, int64_t tile_size, const at::Tensor& alpha, const at::Tensor& last_ids,
    const at::Tensor& grad_weight_map, const at::Tensor& grad_alpha) {
  const char* op = "rasterize_sparse_coef_backward";
  const SparseArgs a = check_sparse_coef_backward_args(means2d, conics, opacities, coef_indices, coef_weights,
                                                       num_coefs, tile_offsets, flatten_ids, width, height, tile_size,
                                                       alpha, last_ids, grad_weight_map, grad_alpha);
  const c10::cuda::CUDAGuard guard(means2d.device());
  if (is_reduced_float(means2d))
    return in_float32(&rasterize_sparse_coef_backward_cuda, means2d, conics, opacities, coef_indices, coef_weights,
                      num_coefs, tile_offsets, flatten_ids, width, height, tile_size, alpha, last_ids, grad_weight_map,
                      grad_alpha);
  const SparseCudaInputs in = sparse_cuda_inputs(op, a, means2d, conics, opacities, coef_indices, coef_weights,
                                                 tile_offsets, flatten_ids, width, height, tile_size, last_ids);
  at::Tensor grad_means2d = at::zeros_like(means2d, at::MemoryFormat::Contiguous);
  at::Tensor grad_conics = at::zeros_like(conics, at::MemoryFormat::Contiguous);
  at::Tensor grad_opacities = at::zeros_like(opacities, at::MemoryFormat::Contiguous);
  at::Tensor grad_weights = at::zeros_like(coef_weights, at::MemoryFormat::Contiguous);
  const at::Tensor al = alpha.contiguous(), li = last_ids.contiguous();
  const at::Tensor gw = grad_weight_map.contiguous(), ga = grad_alpha.contiguous();
  C10_CUDA_CHECK(cuda::launch_rasterize_sparse_coef_backward(
      cuda_dtype(means2d.scalar_type()), in.raster, al.const_data_ptr(), li.const_data_ptr<int32_t>(),
      gw.const_data_ptr(), ga.const_data_ptr(), grad_means2d.data_ptr(), grad_conics.data_ptr(),
      grad_opacities.data_ptr(), grad_weights.data_ptr(), c10::cuda::getCurrentCUDAStream()));
  return {grad_means2d, grad_conics, grad_opacities, grad_weights};
}

TORCH_LIBRARY_IMPL(prismkit, CUDA, m) {
  m.impl("rasterize_sparse_coef_backward", &rasterize_sparse_coef_backward_cuda);
}

}  // namespace prismkit::splat
