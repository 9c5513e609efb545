// CUDA glue of prismkit::rasterize_sparse_features: checks, device guard and stream; the fused
// kernel (cuda/splat/rasterize_sparse_features.cu) when the tile's weights fit in shared memory,
// else the weight map (rasterize_sparse_coef) times the codebook through ATen.
#include "common/float32_compute.h"
#include "splat/sparse_cuda_glue.h"

#include <ATen/ops/clamp_min.h>
#include <ATen/ops/div.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/matmul.h>
#include <torch/library.h>

#include <tuple>

namespace prismkit::splat {

std::tuple<at::Tensor, at::Tensor, at::Tensor> rasterize_sparse_coef_cuda(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities, const at::Tensor& coef_indices,
    const at::Tensor& coef_weights, int64_t num_coefs, const at::Tensor& tile_offsets, const at::Tensor& flatten_ids,
    int64_t width, int64_t height, int64_t tile_size);

at::Tensor rasterize_sparse_features_cuda(const at::Tensor& means2d, const at::Tensor& conics,
                                          const at::Tensor& opacities, const at::Tensor& coef_indices,
                                          const at::Tensor& coef_weights, const at::Tensor& codebook,
                                          const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width,
                                          int64_t height, int64_t tile_size, bool normalize) {
  const char* op = "rasterize_sparse_features";
  const SparseArgs a = check_sparse_features_args(op, means2d, conics, opacities, coef_indices, coef_weights, codebook,
                                                  tile_offsets, flatten_ids, width, height, tile_size);
  const c10::cuda::CUDAGuard guard(means2d.device());
  if (is_reduced_float(means2d))
    return in_float32(&rasterize_sparse_features_cuda, means2d, conics, opacities, coef_indices, coef_weights, codebook,
                      tile_offsets, flatten_ids, width, height, tile_size, normalize);
  const cuda::DType dtype = cuda_dtype(means2d.scalar_type());
  const int64_t C = a.raster.C, levels = a.levels, L = a.L, D = a.D;
  const at::Tensor book = codebook.contiguous();
  if (!cuda::sparse_fits_shared(dtype, a.num_coefs + levels, tile_size)) {  // + the per-level scales
    const at::Tensor weight_map =
        std::get<0>(rasterize_sparse_coef_cuda(means2d, conics, opacities, coef_indices, coef_weights, a.num_coefs,
                                               tile_offsets, flatten_ids, width, height, tile_size));
    // [C, H, W, levels, 1, L] x [levels, L, D] -> [C, H, W, levels, 1, D]
    at::Tensor features =
        at::matmul(weight_map.view({C, height, width, levels, 1, L}), book).view({C, height, width, levels, D});
    if (normalize) features = at::div(features, at::clamp_min(at::linalg_vector_norm(features, 2, {-1}, true), 1e-12));
    return features;
  }
  const SparseCudaInputs in = sparse_cuda_inputs(op, a, means2d, conics, opacities, coef_indices, coef_weights,
                                                 tile_offsets, flatten_ids, width, height, tile_size);
  const at::Tensor gram = normalize ? at::matmul(book, book.transpose(1, 2)).contiguous() : at::Tensor();
  at::Tensor features = at::empty({C, height, width, levels, D}, means2d.options());
  C10_CUDA_CHECK(cuda::launch_rasterize_sparse_features(
      dtype, in.raster, book.const_data_ptr(), normalize ? gram.const_data_ptr() : nullptr, levels, L, D, normalize,
      features.data_ptr(), c10::cuda::getCurrentCUDAStream()));
  return features;
}

TORCH_LIBRARY_IMPL(prismkit, CUDA, m) { m.impl("rasterize_sparse_features", &rasterize_sparse_features_cuda); }

}  // namespace prismkit::splat
