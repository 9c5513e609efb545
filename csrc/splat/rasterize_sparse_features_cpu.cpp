// prismkit::rasterize_sparse_features on the CPU: rasterize_sparse_coef's tile compositing
// (sparse_tile.h) into a tile workspace, then, still per tile and per row of its pixels, the codebook product
// F = S_level^T W_level for each level (composite_kernels.h's decode: register-blocked over 4
// pixels x 2 vectors of D), optionally L2-normalized, straight into the [C, H, W, levels, D]
// output: the weight map lives only in the tile workspace.
#include "common/cpu_alloc.h"
#include "common/float32_compute.h"
#include "common/vector_math.h"
#include "splat/composite_kernels.h"
#include "splat/raster_tile.h"
#include "splat/sparse_checks.h"
#include "splat/sparse_tile.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cmath>

namespace prismkit::splat {

at::Tensor rasterize_sparse_features_cpu(const at::Tensor& means2d, const at::Tensor& conics,
                                         const at::Tensor& opacities, const at::Tensor& coef_indices,
                                         const at::Tensor& coef_weights, const at::Tensor& codebook,
                                         const at::Tensor& tile_offsets, const at::Tensor& flatten_ids, int64_t width,
                                         int64_t height, int64_t tile_size, bool normalize) {
  const char* op = "rasterize_sparse_features";
  const SparseArgs a = check_sparse_features_args(op, means2d, conics, opacities, coef_indices, coef_weights, codebook,
                                                  tile_offsets, flatten_ids, width, height, tile_size);
  if (is_reduced_float(means2d))
    return in_float32(&rasterize_sparse_features_cpu, means2d, conics, opacities, coef_indices, coef_weights, codebook,
                      tile_offsets, flatten_ids, width, height, tile_size, normalize);
  const SparseTensors t =
      sparse_tensors(op, a, means2d, conics, opacities, coef_indices, coef_weights, tile_offsets, flatten_ids);
  const int64_t H = height, W = width, C = a.raster.C, levels = a.levels, L = a.L, D = a.D;
  at::Tensor features = empty_for_large_output({C, H, W, levels, D}, means2d.options());
  const at::Tensor book = codebook.contiguous();
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_sparse_features_cpu", [&] {
    using T = scalar_t;
    const SparseInputs<T> in = t.view<T>();
    const T* S = book.const_data_ptr<T>();
    T* fp = features.data_ptr<T>();
    const int64_t tile_w = std::min(tile_size, W), tile_h = std::min(tile_size, H);
    const int64_t nc = a.num_coefs;
    auto make_workspace = [&] { return SparseWorkspace<T>(nc, tile_w, tile_h, true); };
    for_each_tile(in.tiles, make_workspace, [&](SparseWorkspace<T>& w, int64_t k) {
      const Tile tile = tile_at(k, a.raster.tiles_x, a.raster.tiles_y, tile_size, W, H);
      composite_sparse_tile(in, tile, k, w, w.weights.data(), tile.w * nc, nc);
      for (int64_t y = 0; y < tile.h; ++y) {
        T* row = fp + ((tile.camera * H + tile.y0 + y) * W + tile.x0) * levels * D;  // [tile.w][levels][D]
        const T* weights = w.weights.data() + y * tile.w * nc;                       // [tile.w][num_coefs]
        for (int64_t l = 0; l < levels; ++l)
          decode(weights + l * L, 1, nc, tile.w, S + l * L * D, L, D, row + l * D, levels * D);
        if (!normalize) continue;
        for (int64_t e = 0; e < tile.w * levels; ++e) {  // F / max(|F|, 1e-12), as torch's F.normalize
          T* f = row + e * D;
          const T scale = T(1) / std::max(std::sqrt(dot(f, f, D)), T(1e-12));
          for (int64_t d = 0; d < D; ++d) f[d] *= scale;
        }
      }
    });
  });
  return features;
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("rasterize_sparse_features", &rasterize_sparse_features_cpu); }

}  // namespace prismkit::splat
