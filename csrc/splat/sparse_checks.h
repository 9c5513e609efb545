// The argument contract of the sparse coefficient ops (rasterize_sparse_coef and its backward,
// rasterize_sparse_features, language_relevancy) on the C++ side, CPU kernels and CUDA glue alike.
// The Python side (fake implementations) is python/prismkit/ops/splat/sparse_checks.py: same
// checks, same order, same messages.
#pragma once

#include <ATen/core/Tensor.h>

#include "splat/splat_checks.h"

namespace prismkit::splat {

struct SparseArgs {
  RasterArgs raster;     // raster.D = P, the (index, weight) pairs per Gaussian
  int64_t P, num_coefs;  // pairs per Gaussian; entries of the weight map (levels * L with a codebook)
  int64_t levels, L, D;  // the codebook [levels, L, D] (rasterize_sparse_features, language_relevancy)
  int64_t Q, negatives;  // language_relevancy's queries [Q, D] and negatives [negatives, D]
};

// means2d [C, N, 2], conics [C, N, 3], opacities [N] or [C, N], coef_weights [N, P]: one floating
// dtype and device; coef_indices [N, P] int32 or int64 on that device; num_coefs in [1, 2^31 - 1];
// tile_offsets and flatten_ids as rasterize takes them.
SparseArgs check_sparse_coef_args(const char* op, const at::Tensor& means2d, const at::Tensor& conics,
                                  const at::Tensor& opacities, const at::Tensor& coef_indices,
                                  const at::Tensor& coef_weights, int64_t num_coefs, const at::Tensor& tile_offsets,
                                  const at::Tensor& flatten_ids, int64_t width, int64_t height, int64_t tile_size);

// The forward's arguments, its outputs alpha [C, H, W, 1] and last_ids [C, H, W] int32, and the
// gradients grad_weight_map [C, H, W, num_coefs] and grad_alpha [C, H, W, 1].
SparseArgs check_sparse_coef_backward_args(const at::Tensor& means2d, const at::Tensor& conics,
                                           const at::Tensor& opacities, const at::Tensor& coef_indices,
                                           const at::Tensor& coef_weights, int64_t num_coefs,
                                           const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width,
                                           int64_t height, int64_t tile_size, const at::Tensor& alpha,
                                           const at::Tensor& last_ids, const at::Tensor& grad_weight_map,
                                           const at::Tensor& grad_alpha);

// As check_sparse_coef_args with num_coefs = levels * L of codebook [levels, L, D] (each >= 1, in
// means2d's dtype and device).
SparseArgs check_sparse_features_args(const char* op, const at::Tensor& means2d, const at::Tensor& conics,
                                      const at::Tensor& opacities, const at::Tensor& coef_indices,
                                      const at::Tensor& coef_weights, const at::Tensor& codebook,
                                      const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width,
                                      int64_t height, int64_t tile_size);

// As check_sparse_features_args, with queries [Q, D] and negatives [M, D] (M >= 1) in means2d's
// dtype and device.
SparseArgs check_language_relevancy_args(const at::Tensor& means2d, const at::Tensor& conics,
                                         const at::Tensor& opacities, const at::Tensor& coef_indices,
                                         const at::Tensor& coef_weights, const at::Tensor& codebook,
                                         const at::Tensor& queries, const at::Tensor& negatives,
                                         const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width,
                                         int64_t height, int64_t tile_size);

// coef_indices' values must lie in [0, num_coefs); what names the bound ("num_coefs", "levels * L").
void check_coef_index_range(const char* op, int64_t low, int64_t high, int64_t num_coefs, const char* what);

// The value checks of CPU inputs (tile lists as check_tile_lists_cpu, then the index range), and
// coef_indices as contiguous int32, the kernels' index type.
at::Tensor check_sparse_values_cpu(const char* op, const SparseArgs& a, const at::Tensor& coef_indices,
                                   const at::Tensor& tile_offsets, const at::Tensor& flatten_ids,
                                   const at::Tensor& last_ids = at::Tensor());

// The same on CUDA tensors (sparse_checks_cuda.cpp, built with the CUDA glue).
at::Tensor check_sparse_values_cuda(const char* op, const SparseArgs& a, const at::Tensor& coef_indices,
                                    const at::Tensor& tile_offsets, const at::Tensor& flatten_ids,
                                    const at::Tensor& last_ids = at::Tensor());

}  // namespace prismkit::splat
