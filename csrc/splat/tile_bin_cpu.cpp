// prismkit::tile_bin on the CPU: a counting sort of the (camera, Gaussian) pairs into their tiles,
// visiting pairs in index order so each tile's bucket starts in Gaussian order, then a sort of each
// tile by depth in parallel over tiles. The sort key is the depth's float32 bit pattern with the
// Gaussian's position as tie-break: the order CUDA's radix sort on (tile << 32 | depth bits) gives,
// so both devices return the same flatten_ids.
#include "common/float32_compute.h"
#include "splat/splat_checks.h"
#include "splat/tile_range.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <utility>
#include <vector>

namespace prismkit::splat {

namespace {

uint32_t depth_key(float depth) {
  uint32_t bits;
  std::memcpy(&bits, &depth, sizeof bits);
  return bits;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> tile_bin_cpu(const at::Tensor& means2d, const at::Tensor& radii,
                                                const at::Tensor& depths, int64_t tile_size, int64_t tiles_x,
                                                int64_t tiles_y) {
  const ProjectArgs a = check_tile_bin_args(means2d, radii, depths, tile_size, tiles_x, tiles_y);
  // float16 and bfloat16 means are binned in float32 (common/float32_compute.h).
  const at::Tensor m = (is_reduced_float(means2d) ? means2d.to(at::kFloat) : means2d).contiguous();
  const at::Tensor d = depths.contiguous().to(at::kFloat), r = radii.contiguous();
  const int64_t tiles = tiles_x * tiles_y, pairs = a.C * a.N;
  std::vector<TileRange> ranges(static_cast<size_t>(pairs));
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "tile_bin_cpu", [&] {
    const scalar_t* mp = m.const_data_ptr<scalar_t>();
    const int32_t* rp = r.const_data_ptr<int32_t>();
    at::parallel_for(0, pairs, 4096, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        ranges[i] = tile_range(mp[i * 2], mp[i * 2 + 1], rp[i], tile_size, tiles_x, tiles_y);
    });
  });
  // Counting sort by (camera, tile): counts, exclusive scan, then a fill in pair order.
  std::vector<int64_t> start(static_cast<size_t>(a.C * tiles + 1), 0);
  for (int64_t i = 0; i < pairs; ++i) {
    const TileRange& t = ranges[i];
    const int64_t base = (i / a.N) * tiles;
    for (int64_t y = t.y0; y < t.y1; ++y)
      for (int64_t x = t.x0; x < t.x1; ++x) ++start[base + y * tiles_x + x + 1];
  }
  for (int64_t k = 0; k < a.C * tiles; ++k) start[k + 1] += start[k];
  const int64_t M = start[a.C * tiles];
  TORCH_CHECK_VALUE(M <= 2147483647, "prismkit::tile_bin: ", M,
                    " tile-Gaussian intersections exceed the int32 flatten_ids (at most 2^31 - 1)");
  at::Tensor tile_offsets = at::empty({a.C, tiles_y, tiles_x}, radii.options());
  at::Tensor flatten_ids = at::empty({M}, radii.options());
  int32_t* off = tile_offsets.data_ptr<int32_t>();
  int32_t* ids = flatten_ids.data_ptr<int32_t>();
  std::vector<int64_t> cursor(start.begin(), start.end() - 1);
  for (int64_t i = 0; i < pairs; ++i) {
    const TileRange& t = ranges[i];
    const int64_t base = (i / a.N) * tiles;
    for (int64_t y = t.y0; y < t.y1; ++y)
      for (int64_t x = t.x0; x < t.x1; ++x) ids[cursor[base + y * tiles_x + x]++] = static_cast<int32_t>(i);
  }
  const float* dp = d.const_data_ptr<float>();
  at::parallel_for(0, a.C * tiles, 16, [&](int64_t k0, int64_t k1) {
    std::vector<std::pair<uint64_t, int32_t>> keyed;
    for (int64_t k = k0; k < k1; ++k) {
      off[k] = static_cast<int32_t>(start[k]);
      const int64_t b = start[k], e = start[k + 1];
      if (e - b < 2) continue;
      keyed.clear();
      for (int64_t j = b; j < e; ++j)  // depth bits, then the position (already in Gaussian order)
        keyed.emplace_back((uint64_t(depth_key(dp[ids[j]])) << 32) | uint64_t(j - b), ids[j]);
      std::sort(keyed.begin(), keyed.end());
      for (int64_t j = b; j < e; ++j) ids[j] = keyed[j - b].second;
    }
  });
  return {tile_offsets, flatten_ids};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("tile_bin", &tile_bin_cpu); }

}  // namespace prismkit::splat
