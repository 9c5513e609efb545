// CUDA glue of prismkit::rasterize_sparse_coef: checks, allocation, device guard and stream; the
// kernel is cuda/splat/rasterize_sparse_coef.cu.
#include "common/float32_compute.h"
#include "splat/sparse_cuda_glue.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <tuple>

namespace prismkit::splat {

std::tuple<at::Tensor, at::Tensor, at::Tensor> rasterize_sparse_coef_cuda(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities, const at::Tensor& coef_indices,
    const at::Tensor& coef_weights, int64_t num_coefs, const at::Tensor& tile_offsets, const at::Tensor& flatten_ids,
    int64_t width, int64_t height, int64_t tile_size) {
  const char* op = "rasterize_sparse_coef";
  const SparseArgs a = check_sparse_coef_args(op, means2d, conics, opacities, coef_indices, coef_weights, num_coefs,
                                              tile_offsets, flatten_ids, width, height, tile_size);
  const c10::cuda::CUDAGuard guard(means2d.device());
  if (is_reduced_float(means2d))
    return in_float32(&rasterize_sparse_coef_cuda, means2d, conics, opacities, coef_indices, coef_weights, num_coefs,
                      tile_offsets, flatten_ids, width, height, tile_size);
  const SparseCudaInputs in = sparse_cuda_inputs(op, a, means2d, conics, opacities, coef_indices, coef_weights,
                                                 tile_offsets, flatten_ids, width, height, tile_size);
  const cuda::DType dtype = cuda_dtype(means2d.scalar_type());
  const int64_t C = a.raster.C;
  // without room in shared memory the kernel adds into the output
  at::Tensor weight_map = cuda::sparse_fits_shared(dtype, num_coefs, tile_size)
                              ? at::empty({C, height, width, num_coefs}, means2d.options())
                              : at::zeros({C, height, width, num_coefs}, means2d.options());
  at::Tensor alpha = at::empty({C, height, width, 1}, means2d.options());
  at::Tensor last_ids = at::empty({C, height, width}, tile_offsets.options());
  C10_CUDA_CHECK(cuda::launch_rasterize_sparse_coef(dtype, in.raster, weight_map.data_ptr(), alpha.data_ptr(),
                                                    last_ids.data_ptr<int32_t>(), c10::cuda::getCurrentCUDAStream()));
  return {weight_map, alpha, last_ids};
}

TORCH_LIBRARY_IMPL(prismkit, CUDA, m) { m.impl("rasterize_sparse_coef", &rasterize_sparse_coef_cuda); }

}  // namespace prismkit::splat
