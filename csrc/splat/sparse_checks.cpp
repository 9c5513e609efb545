#include "splat/sparse_checks.h"

#include "common/checks.h"

#include <ATen/ops/aminmax.h>

namespace prismkit::splat {

namespace {

const char* index_bound(bool codebook) { return codebook ? "levels * L" : "num_coefs"; }

// What every sparse op takes: geometry, opacities, the (index, weight) pairs and the tile lists.
SparseArgs check_sparse_common(const char* op, const at::Tensor& means2d, const at::Tensor& conics,
                               const at::Tensor& opacities, const at::Tensor& coef_indices,
                               const at::Tensor& coef_weights, const at::Tensor& tile_offsets,
                               const at::Tensor& flatten_ids, int64_t width, int64_t height, int64_t tile_size) {
  const auto [C, N] = check_means_conics(op, means2d, conics);
  const bool camera_opacities = check_opacities(op, opacities, C, N);
  check_rank(op, "coef_indices", coef_indices, 2, "[N, P]");
  check_dtype(op, "coef_indices", coef_indices, {at::kInt, at::kLong});
  const int64_t P = coef_indices.size(1);
  check_shape(op, "coef_indices", coef_indices, {N, P}, "[N, P]");
  check_same_device(op, "coef_indices", coef_indices, "means2d", means2d);
  check_shape(op, "coef_weights", coef_weights, {N, P}, "[N, P] (as coef_indices)");
  check_like(op, "conics", conics, "means2d", means2d);
  check_like(op, "opacities", opacities, "means2d", means2d);
  check_like(op, "coef_weights", coef_weights, "means2d", means2d);
  const auto [tiles_x, tiles_y] = check_tile_grid(op, means2d, tile_offsets, flatten_ids, width, height, tile_size);
  SparseArgs a{};
  a.raster = {C, N, P, flatten_ids.size(0), tiles_x, tiles_y, false, camera_opacities};
  a.P = P;
  return a;
}

void check_codebook(const char* op, const at::Tensor& codebook, const at::Tensor& means2d, SparseArgs* a) {
  check_rank(op, "codebook", codebook, 3, "[levels, L, D]");
  check_like(op, "codebook", codebook, "means2d", means2d);
  a->levels = codebook.size(0);
  a->L = codebook.size(1);
  a->D = codebook.size(2);
  TORCH_CHECK_VALUE(a->levels >= 1 && a->L >= 1 && a->D >= 1, "prismkit::", op,
                    ": 'codebook' [levels, L, D] must have levels, L, D >= 1, got ", describe(codebook));
  TORCH_CHECK_VALUE(a->levels * a->L <= 2147483647, "prismkit::", op,
                    ": 'codebook' must have levels * L <= 2^31 - 1 entries, got ", describe(codebook));
  a->num_coefs = a->levels * a->L;
}

}  // namespace

SparseArgs check_sparse_coef_args(const char* op, const at::Tensor& means2d, const at::Tensor& conics,
                                  const at::Tensor& opacities, const at::Tensor& coef_indices,
                                  const at::Tensor& coef_weights, int64_t num_coefs, const at::Tensor& tile_offsets,
                                  const at::Tensor& flatten_ids, int64_t width, int64_t height, int64_t tile_size) {
  SparseArgs a = check_sparse_common(op, means2d, conics, opacities, coef_indices, coef_weights, tile_offsets,
                                     flatten_ids, width, height, tile_size);
  TORCH_CHECK_VALUE(num_coefs >= 1 && num_coefs <= 2147483647, "prismkit::", op,
                    ": 'num_coefs' must lie in [1, 2^31 - 1], got ", num_coefs);
  a.num_coefs = num_coefs;
  return a;
}

SparseArgs check_sparse_coef_backward_args(const at::Tensor& means2d, const at::Tensor& conics,
                                           const at::Tensor& opacities, const at::Tensor& coef_indices,
                                           const at::Tensor& coef_weights, int64_t num_coefs,
                                           const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width,
                                           int64_t height, int64_t tile_size, const at::Tensor& alpha,
                                           const at::Tensor& last_ids, const at::Tensor& grad_weight_map,
                                           const at::Tensor& grad_alpha) {
  const char* op = "rasterize_sparse_coef_backward";
  const SparseArgs a = check_sparse_coef_args(op, means2d, conics, opacities, coef_indices, coef_weights, num_coefs,
                                              tile_offsets, flatten_ids, width, height, tile_size);
  const int64_t C = a.raster.C;
  check_shape(op, "alpha", alpha, {C, height, width, 1}, "[C, H, W, 1]");
  check_like(op, "alpha", alpha, "means2d", means2d);
  check_shape(op, "last_ids", last_ids, {C, height, width}, "[C, H, W]");
  check_int32_on(op, "last_ids", last_ids, "means2d", means2d);
  check_shape(op, "grad_weight_map", grad_weight_map, {C, height, width, num_coefs}, "[C, H, W, num_coefs]");
  check_like(op, "grad_weight_map", grad_weight_map, "means2d", means2d);
  check_shape(op, "grad_alpha", grad_alpha, {C, height, width, 1}, "[C, H, W, 1]");
  check_like(op, "grad_alpha", grad_alpha, "means2d", means2d);
  return a;
}

SparseArgs check_sparse_features_args(const char* op, const at::Tensor& means2d, const at::Tensor& conics,
                                      const at::Tensor& opacities, const at::Tensor& coef_indices,
                                      const at::Tensor& coef_weights, const at::Tensor& codebook,
                                      const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width,
                                      int64_t height, int64_t tile_size) {
  SparseArgs a = check_sparse_common(op, means2d, conics, opacities, coef_indices, coef_weights, tile_offsets,
                                     flatten_ids, width, height, tile_size);
  check_codebook(op, codebook, means2d, &a);
  return a;
}

SparseArgs check_language_relevancy_args(const at::Tensor& means2d, const at::Tensor& conics,
                                         const at::Tensor& opacities, const at::Tensor& coef_indices,
                                         const at::Tensor& coef_weights, const at::Tensor& codebook,
                                         const at::Tensor& queries, const at::Tensor& negatives,
                                         const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width,
                                         int64_t height, int64_t tile_size) {
  const char* op = "language_relevancy";
  SparseArgs a = check_sparse_features_args(op, means2d, conics, opacities, coef_indices, coef_weights, codebook,
                                            tile_offsets, flatten_ids, width, height, tile_size);
  check_rank(op, "queries", queries, 2, "[Q, D]");
  check_shape(op, "queries", queries, {queries.size(0), a.D}, "[Q, D] (D of the codebook)");
  check_like(op, "queries", queries, "means2d", means2d);
  check_rank(op, "negatives", negatives, 2, "[M, D]");
  check_shape(op, "negatives", negatives, {negatives.size(0), a.D}, "[M, D] (D of the codebook)");
  check_like(op, "negatives", negatives, "means2d", means2d);
  TORCH_CHECK_VALUE(negatives.size(0) >= 1, "prismkit::", op,
                    ": 'negatives' must hold at least one phrase (M >= 1), got ", describe(negatives));
  a.Q = queries.size(0);
  a.negatives = negatives.size(0);
  return a;
}

void check_coef_index_range(const char* op, int64_t low, int64_t high, int64_t num_coefs, const char* what) {
  TORCH_CHECK_INDEX(low >= 0 && high < num_coefs, "prismkit::", op, ": 'coef_indices' must lie in [0, ", what, " = ",
                    num_coefs, "), got values in [", low, ", ", high, "]");
}

at::Tensor check_sparse_values_cpu(const char* op, const SparseArgs& a, const at::Tensor& coef_indices,
                                   const at::Tensor& tile_offsets, const at::Tensor& flatten_ids,
                                   const at::Tensor& last_ids) {
  check_tile_lists_cpu(op, tile_offsets, flatten_ids, a.raster, last_ids);
  if (coef_indices.numel() > 0) {
    const auto [lo, hi] = at::aminmax(coef_indices);
    check_coef_index_range(op, lo.item<int64_t>(), hi.item<int64_t>(), a.num_coefs, index_bound(a.levels > 0));
  }
  return coef_indices.to(at::kInt).contiguous();
}

}  // namespace prismkit::splat
