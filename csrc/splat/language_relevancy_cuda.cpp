// CUDA glue of prismkit::language_relevancy: checks, the products B = codebook [S S^T | S q^T |
// S c^T] (ATen, once per call), device guard and stream; the fused kernel
// (cuda/splat/language_relevancy.cu) when the tile's weights fit in shared memory, else the
// normalized features (rasterize_sparse_features) and ATen products.
#include "common/float32_compute.h"
#include "splat/sparse_cuda_glue.h"

#include <ATen/ops/amax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/sub.h>
#include <torch/library.h>

namespace prismkit::splat {

at::Tensor rasterize_sparse_features_cuda(const at::Tensor& means2d, const at::Tensor& conics,
                                          const at::Tensor& opacities, const at::Tensor& coef_indices,
                                          const at::Tensor& coef_weights, const at::Tensor& codebook,
                                          const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width,
                                          int64_t height, int64_t tile_size, bool normalize);

at::Tensor language_relevancy_cuda(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities,
                                   const at::Tensor& coef_indices, const at::Tensor& coef_weights,
                                   const at::Tensor& codebook, const at::Tensor& queries, const at::Tensor& negatives,
                                   const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width,
                                   int64_t height, int64_t tile_size) {
  const char* op = "language_relevancy";
  const SparseArgs a =
      check_language_relevancy_args(means2d, conics, opacities, coef_indices, coef_weights, codebook, queries,
                                    negatives, tile_offsets, flatten_ids, width, height, tile_size);
  const c10::cuda::CUDAGuard guard(means2d.device());
  if (is_reduced_float(means2d))
    return in_float32(&language_relevancy_cuda, means2d, conics, opacities, coef_indices, coef_weights, codebook,
                      queries, negatives, tile_offsets, flatten_ids, width, height, tile_size);
  const cuda::DType dtype = cuda_dtype(means2d.scalar_type());
  if (!cuda::sparse_fits_shared(dtype, a.num_coefs, tile_size)) {
    const at::Tensor f =
        rasterize_sparse_features_cuda(means2d, conics, opacities, coef_indices, coef_weights, codebook, tile_offsets,
                                       flatten_ids, width, height, tile_size, true);
    const at::Tensor negative = at::amax(at::matmul(f, negatives.t()), {-1}, true);
    return at::sigmoid(at::mul(at::sub(at::matmul(f, queries.t()), negative), 10));
  }
  const SparseCudaInputs in = sparse_cuda_inputs(op, a, means2d, conics, opacities, coef_indices, coef_weights,
                                                 tile_offsets, flatten_ids, width, height, tile_size);
  const at::Tensor book = codebook.contiguous();
  const at::Tensor products =
      at::cat({at::matmul(book, book.transpose(1, 2)), at::matmul(book, queries.t()), at::matmul(book, negatives.t())},
              2)
          .contiguous();
  at::Tensor relevancy = at::empty({a.raster.C, height, width, a.levels, a.Q}, means2d.options());
  C10_CUDA_CHECK(cuda::launch_language_relevancy(dtype, in.raster, products.const_data_ptr(), a.levels, a.L, a.Q,
                                                 a.negatives, relevancy.data_ptr(), c10::cuda::getCurrentCUDAStream()));
  return relevancy;
}

TORCH_LIBRARY_IMPL(prismkit, CUDA, m) { m.impl("language_relevancy", &language_relevancy_cuda); }

}  // namespace prismkit::splat
