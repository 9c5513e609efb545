// The tiles a projected Gaussian touches (gsplat's isect_tiles rule), shared by the CPU binning
// and the reference's documentation: on each axis [floor(m / t - r / t), ceil(m / t + r / t)),
// computed in the input's precision, clamped to the grid; nothing for radius 0 or a non-finite mean.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace prismkit::splat {

struct TileRange {
  int32_t x0 = 0, x1 = 0, y0 = 0, y1 = 0;  // half-open
};

template <typename T>
TileRange tile_range(T mx, T my, int32_t radius, int64_t tile_size, int64_t tiles_x, int64_t tiles_y) {
  TileRange t;
  if (radius <= 0 || !std::isfinite(mx) || !std::isfinite(my)) return t;
  const T ts = static_cast<T>(tile_size), r = static_cast<T>(radius) / ts;
  const T tx = mx / ts, ty = my / ts;
  auto clamp = [](T v, int64_t hi) { return static_cast<int32_t>(std::min(std::max(v, T(0)), static_cast<T>(hi))); };
  t.x0 = clamp(std::floor(tx - r), tiles_x);
  t.x1 = clamp(std::ceil(tx + r), tiles_x);
  t.y0 = clamp(std::floor(ty - r), tiles_y);
  t.y1 = clamp(std::ceil(ty + r), tiles_y);
  return t;
}

}  // namespace prismkit::splat
