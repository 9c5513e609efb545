// The splat ops' checks that only the CUDA glue needs: the compositing kernels' limits, and the
// tile lists' value checks (check_tile_lists_cpu's conditions and messages) reduced on the device
// and read back in one transfer, so a call synchronizes once and the error stays synchronous.
#include "splat/splat_checks.h"

#include "cuda/splat/rasterize.h"

#include <ATen/ops/aminmax.h>
#include <ATen/ops/any.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/gt.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/logical_or.h>
#include <ATen/ops/lt.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>

#include <vector>

namespace prismkit::splat {

void check_rasterize_cuda_limits(const char* op, const RasterArgs& a, int64_t tile_size) {
  TORCH_CHECK_VALUE(tile_size <= cuda::kRasterMaxTileSize, "prismkit::", op,
                    ": the CUDA kernel takes a tile_size of at most ", cuda::kRasterMaxTileSize,
                    " (one thread per pixel of a tile), got ", tile_size);
  TORCH_CHECK_VALUE(a.D <= cuda::kRasterMaxChannels, "prismkit::", op, ": the CUDA kernel takes at most ",
                    cuda::kRasterMaxChannels, " feature channels D, got ", a.D);
  TORCH_CHECK_VALUE(a.C * a.tiles_x * a.tiles_y <= 2147483647, "prismkit::", op,
                    ": the CUDA kernel takes at most 2^31 - 1 tiles (C * tiles_y * tiles_x), got ",
                    a.C * a.tiles_x * a.tiles_y);
}

void check_tile_lists_cuda(const char* op, const at::Tensor& tile_offsets, const at::Tensor& flatten_ids,
                           const RasterArgs& a, const at::Tensor& last_ids) {
  const int64_t tiles = tile_offsets.numel();
  std::vector<at::Tensor> parts;
  if (tiles > 0) {
    const at::Tensor o = tile_offsets.reshape({-1}).to(at::kLong);
    const at::Tensor previous = at::cat({at::zeros({1}, o.options()), o.slice(0, 0, tiles - 1)});
    const at::Tensor bad = at::logical_or(at::lt(o, previous), at::gt(o, a.M));
    const at::Tensor first = at::argmax(bad.to(at::kInt));  // the first bad flat tile (0 if none)
    parts.push_back(at::any(bad).to(at::kLong));
    parts.push_back(first);
    parts.push_back(at::index_select(o, 0, first.reshape({1})).reshape({}));
  }
  if (a.M > 0) {
    const auto [lo, hi] = at::aminmax(flatten_ids);
    parts.push_back(lo.to(at::kLong));
    parts.push_back(hi.to(at::kLong));
  }
  const bool with_last = last_ids.defined() && last_ids.numel() > 0;
  if (with_last) {
    const auto [lo, hi] = at::aminmax(last_ids);
    parts.push_back(lo.to(at::kLong));
    parts.push_back(hi.to(at::kLong));
  }
  if (parts.empty()) return;
  const at::Tensor host = at::stack(parts).to(at::kCPU);
  const int64_t* v = host.const_data_ptr<int64_t>();
  if (tiles > 0) {
    TORCH_CHECK_INDEX(v[0] == 0, "prismkit::", op, ": 'tile_offsets' must be non-decreasing within [0, M = ", a.M,
                      "] (tile_bin's, for these flatten_ids), got ", v[2], " at flat tile ", v[1]);
    v += 3;
  }
  if (a.M > 0) {
    TORCH_CHECK_INDEX(v[0] >= 0 && v[1] < a.C * a.N, "prismkit::", op,
                      ": 'flatten_ids' must lie in [0, C * N = ", a.C * a.N, "), got values in [", v[0], ", ", v[1],
                      "]");
    v += 2;
  }
  if (with_last) check_last_ids_range(op, v[0], v[1], a.M);
}

}  // namespace prismkit::splat
