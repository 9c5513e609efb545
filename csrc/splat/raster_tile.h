// What the CPU compositing forward and backward share (rasterize_cpu.cpp,
// rasterize_backward_cpu.cpp): a tile's place in the image, one Gaussian's 2-D parameters, and
// the box of the tile's pixels where that Gaussian can reach alpha >= 1/255, so the per-pixel
// loops visit only those (a pixel outside the box would be skipped by the alpha test anyway).
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>

#include "splat/composite_kernels.h"

namespace prismkit::splat {

struct Tile {
  int64_t camera, x0, y0, w, h;  // pixel origin and size (the last row and column of tiles may be cut)
};

inline Tile tile_at(int64_t k, int64_t tiles_x, int64_t tiles_y, int64_t tile_size, int64_t width, int64_t height) {
  const int64_t tiles = tiles_x * tiles_y, t = k % tiles;
  const int64_t x0 = (t % tiles_x) * tile_size, y0 = (t / tiles_x) * tile_size;
  return {k / tiles, x0, y0, std::min(tile_size, width - x0), std::min(tile_size, height - y0)};
}

template <typename T>
struct Splat2D {
  T mx, my, a, b, c, opacity;
  // Below this power, opacity * exp(power) < 1/255 for certain: ln(1 / (255 opacity)) less a margin
  // of 1e-4 that rounding cannot cross, so most skipped pixels cost no exp.
  T min_power;

  Splat2D(T mx_, T my_, T a_, T b_, T c_, T opacity_) : mx(mx_), my(my_), a(a_), b(b_), c(c_), opacity(opacity_) {
    const double o = static_cast<double>(opacity_);
    min_power = o > 0 ? static_cast<T>(-std::log(255.0 * o) - 1e-4) : T(0);
  }
};

struct PixelBox {
  int64_t x0, x1, y0, y1;  // tile-local, half-open
};

// The tile's pixels where s may reach alpha >= 1/255: o exp(-q/2) >= 1/255 with q = d^T Conic d
// means q <= 2 ln(255 o), an ellipse whose half-extents are sqrt(2 ln(255 o) (Conic^-1)_xx) and
// likewise for y; one pixel of margin covers rounding. A conic that is not positive definite gets
// the whole tile. False when no pixel can reach it (opacity < 1/255, a non-finite parameter, or
// the box misses the tile).
template <typename T>
inline bool pixel_box(const Splat2D<T>& s, const Tile& tile, PixelBox* box) {
  const double mx = s.mx, my = s.my, a = s.a, b = s.b, c = s.c, o = s.opacity;
  if (!(std::isfinite(mx) && std::isfinite(my) && std::isfinite(a) && std::isfinite(b) && std::isfinite(c) &&
        std::isfinite(o)))
    return false;
  if (!(s.opacity >= T(1.0 / 255.0))) return false;
  *box = {0, tile.w, 0, tile.h};
  const double det = a * c - b * b;
  if (!(a > 0 && c > 0 && det > 0)) return true;
  const double t = -2.0 * static_cast<double>(s.min_power);  // 2 ln(255 o), widened by min_power's margin
  const double ex = std::sqrt(std::max(0.0, t * c / det)), ey = std::sqrt(std::max(0.0, t * a / det));
  // pixel x (tile-local) has its centre at tile.x0 + x + 0.5
  const double lx = mx - ex - 0.5 - tile.x0, hx = mx + ex - 0.5 - tile.x0;
  const double ly = my - ey - 0.5 - tile.y0, hy = my + ey - 0.5 - tile.y0;
  if (hx < -1 || lx > tile.w || hy < -1 || ly > tile.h) return false;
  box->x0 = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(std::max(lx, -2.0))) - 1);
  box->x1 = std::min<int64_t>(tile.w, static_cast<int64_t>(std::floor(std::min(hx, tile.w + 1.0))) + 2);
  box->y0 = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(std::max(ly, -2.0))) - 1);
  box->y1 = std::min<int64_t>(tile.h, static_cast<int64_t>(std::floor(std::min(hy, tile.h + 1.0))) + 2);
  return box->x0 < box->x1 && box->y0 < box->y1;
}

// Runs fn(k) for every tile k < tiles on the intra-op threads, each thread taking the next tile
// from a shared counter: a static split would give one thread the empty sky and the other the
// scene. make_state() builds each thread's workspace, passed to fn.
template <typename MakeState, typename Fn>
void for_each_tile(int64_t tiles, MakeState make_state, Fn fn) {
  std::atomic<int64_t> next{0};
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) {
    auto state = make_state();
    for (int64_t k = next.fetch_add(1); k < tiles; k = next.fetch_add(1)) fn(state, k);
  });
}

// The box of s in tile as the composite kernels take it (composite_kernels.h).
template <typename T>
inline BoxSplat<T> box_splat(const Splat2D<T>& s, const Tile& tile, const PixelBox& box) {
  return {s.mx,
          s.my,
          s.a,
          s.b,
          s.c,
          s.opacity,
          s.min_power,
          static_cast<T>(tile.x0 + box.x0) + T(0.5),
          static_cast<T>(tile.y0 + box.y0) + T(0.5),
          box.x1 - box.x0,
          box.y1 - box.y0,
          box.y0 * tile.w + box.x0,
          tile.w};
}

// The backward kernels' start of a tile: for its pixel (x, y) (tile-local p = y * tile.w + x, flat
// index q in [C, H, W]), trans[p] = final_trans[p] = 1 - alpha[q], last[p] = last_ids[q] and
// extra[p] = extra_of(q) (the pixel's T_final terms); returns the tile's latest contributor.
template <typename T, typename Extra>
int32_t load_tile_state(const Tile& tile, int64_t width, int64_t height, const T* alpha, const int32_t* last_ids,
                        T* trans, T* final_trans, int32_t* last, T* extra, Extra extra_of) {
  int32_t latest = -1;
  for (int64_t y = 0; y < tile.h; ++y)
    for (int64_t x = 0; x < tile.w; ++x) {
      const int64_t p = y * tile.w + x, q = (tile.camera * height + tile.y0 + y) * width + tile.x0 + x;
      final_trans[p] = trans[p] = T(1) - alpha[q];
      last[p] = last_ids[q];
      latest = std::max(latest, last[p]);
      extra[p] = extra_of(q);
    }
  return latest;
}

// The backward kernels' walk over one tile's list (rasterize_backward_cpu.cpp,
// rasterize_sparse_coef_backward_cpu.cpp): from the tile's latest contributor back to its first
// Gaussian, for each one that can reach the tile: prepare(fid, g) points the state at its features,
// the state's sums are cleared, backward_box runs over its box, and add(fid, g) adds the sums to
// the outputs when a pixel was reached. means2d [C * N, 2], conics [C * N, 3] and opacities
// ([C * N] or [N]) as the kernels read them.
template <typename T, typename Prepare, typename Add>
void walk_tile_back(const Tile& tile, int64_t begin, int64_t end, int32_t latest, const int32_t* flatten_ids, int64_t N,
                    const T* means2d, const T* conics, const T* opacities, bool camera_opacities,
                    BackwardTile<T>& state, T* grad_feature, int64_t feature_width, Prepare prepare, Add add) {
  for (int64_t i = std::min<int64_t>(latest, end - 1); i >= begin; --i) {
    const int64_t fid = flatten_ids[i], g = fid % N;
    const T* m = means2d + fid * 2;
    const T* c = conics + fid * 3;
    const Splat2D<T> s(m[0], m[1], c[0], c[1], c[2], opacities[camera_opacities ? fid : g]);
    PixelBox box;
    if (!pixel_box(s, tile, &box)) continue;
    std::fill(grad_feature, grad_feature + feature_width, T(0));
    std::fill(std::begin(state.grad), std::end(state.grad), T(0));
    state.touched = false;
    prepare(fid, g);
    backward_box(box_splat(s, tile, box), static_cast<int32_t>(i), state);
    if (state.touched) add(fid, g);
  }
}

// A Gaussian's 6 geometric gradient sums (BackwardTile::grad) added to the outputs.
template <typename T>
inline void add_geometry_grads(const T* grad, int64_t fid, int64_t g, bool camera_opacities, T* grad_means2d,
                               T* grad_conics, T* grad_opacities) {
  grad_means2d[fid * 2] += grad[0];
  grad_means2d[fid * 2 + 1] += grad[1];
  grad_conics[fid * 3] += grad[2];
  grad_conics[fid * 3 + 1] += grad[3];
  grad_conics[fid * 3 + 2] += grad[4];
  grad_opacities[camera_opacities ? fid : g] += grad[5];
}

// Spin locks striped over Gaussians: the backward adds each tile's per-Gaussian sums under one,
// so only threads finishing the same Gaussian at the same moment wait (rarely, on few cores).
class StripedLocks {
 public:
  explicit StripedLocks(int64_t n) : n_(n), locks_(new std::atomic<bool>[n]) {
    for (int64_t i = 0; i < n; ++i) locks_[i].store(false, std::memory_order_relaxed);
  }
  void lock(int64_t key) {
    std::atomic<bool>& l = locks_[key % n_];
    while (l.exchange(true, std::memory_order_acquire))
      while (l.load(std::memory_order_relaxed)) {
      }
  }
  void unlock(int64_t key) { locks_[key % n_].store(false, std::memory_order_release); }

 private:
  int64_t n_;
  std::unique_ptr<std::atomic<bool>[]> locks_;
};

}  // namespace prismkit::splat
