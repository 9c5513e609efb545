// prismkit::rasterize_sparse_coef on the CPU: threads take (camera, tile) pairs from a shared
// counter; each tile's weight maps are composited in place in the [C, H, W, num_coefs] output
// (sparse_tile.h: P multiply-adds per contributing Gaussian and pixel, not num_coefs; a tile's
// rows of the output stay in cache while it is composited).
#include "common/cpu_alloc.h"
#include "common/float32_compute.h"
#include "splat/raster_tile.h"
#include "splat/sparse_checks.h"
#include "splat/sparse_tile.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <tuple>

namespace prismkit::splat {

std::tuple<at::Tensor, at::Tensor, at::Tensor> rasterize_sparse_coef_cpu(
    const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities, const at::Tensor& coef_indices,
    const at::Tensor& coef_weights, int64_t num_coefs, const at::Tensor& tile_offsets, const at::Tensor& flatten_ids,
    int64_t width, int64_t height, int64_t tile_size) {
  const char* op = "rasterize_sparse_coef";
  const SparseArgs a = check_sparse_coef_args(op, means2d, conics, opacities, coef_indices, coef_weights, num_coefs,
                                              tile_offsets, flatten_ids, width, height, tile_size);
  if (is_reduced_float(means2d))
    return in_float32(&rasterize_sparse_coef_cpu, means2d, conics, opacities, coef_indices, coef_weights, num_coefs,
                      tile_offsets, flatten_ids, width, height, tile_size);
  const SparseTensors t =
      sparse_tensors(op, a, means2d, conics, opacities, coef_indices, coef_weights, tile_offsets, flatten_ids);
  const int64_t H = height, W = width, nc = num_coefs, C = a.raster.C;
  at::Tensor weight_map = empty_for_large_output({C, H, W, nc}, means2d.options());
  at::Tensor alpha = at::empty({C, H, W, 1}, means2d.options());
  at::Tensor last_ids = at::empty({C, H, W}, tile_offsets.options());
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_sparse_coef_cpu", [&] {
    using T = scalar_t;
    const SparseInputs<T> in = t.view<T>();
    T *wp = weight_map.data_ptr<T>(), *ap = alpha.data_ptr<T>();
    int32_t* lp = last_ids.data_ptr<int32_t>();
    const int64_t tile_w = std::min(tile_size, W), tile_h = std::min(tile_size, H);
    auto make_workspace = [&] { return SparseWorkspace<T>(nc, tile_w, tile_h, false); };
    for_each_tile(in.tiles, make_workspace, [&](SparseWorkspace<T>& w, int64_t k) {
      const Tile tile = tile_at(k, a.raster.tiles_x, a.raster.tiles_y, tile_size, W, H);
      const int64_t first = (tile.camera * H + tile.y0) * W + tile.x0;  // the tile's first pixel
      composite_sparse_tile(in, tile, k, w, wp + first * nc, W * nc, nc);
      for (int64_t y = 0; y < tile.h; ++y)
        for (int64_t x = 0; x < tile.w; ++x) {
          const int64_t p = y * tile.w + x, pix = first + y * W + x;
          ap[pix] = T(1) - w.trans[p];
          lp[pix] = w.last[p];
        }
    });
  });
  return {weight_map, alpha, last_ids};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("rasterize_sparse_coef", &rasterize_sparse_coef_cpu); }

}  // namespace prismkit::splat
