// What the CPU sparse coefficient ops share (rasterize_sparse_coef, rasterize_sparse_features,
// language_relevancy): compositing one (camera, tile) list of Gaussians, each carrying P
// (index, weight) pairs, into a weight map held channel-major in a tile workspace
// ([num_coefs][tile pixels]), the same front-to-back walk as rasterize_cpu.cpp's. Per Gaussian and
// box row, the transmittance step gives the row's alpha T once; each pair then adds weight x
// that row to its channel's row: P vector multiply-adds per box row, whatever num_coefs is.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "splat/composite_kernels.h"
#include "splat/raster_tile.h"

namespace prismkit::splat {

template <typename T>
struct SparseInputs {
  const T *means2d, *conics, *opacities, *weights;
  const int32_t *indices, *tile_offsets, *flatten_ids;
  int64_t N, P, M, tiles;  // tiles: C * tiles_y * tiles_x
  bool camera_opacities;
};

// One thread's tile workspace: a tile is at most min(tile_size, width) x min(tile_size, height)
// pixels, held at pixel stride `pixels` per channel.
template <typename T>
struct SparseWorkspace {
  int64_t pixels;
  std::vector<T> trans, done, planar, scratch;
  std::vector<int32_t> last;
  SparseWorkspace(int64_t num_coefs, int64_t tile_w, int64_t tile_h)
      : pixels(tile_w * tile_h),
        trans(pixels),
        done(pixels),
        planar(num_coefs * pixels),
        scratch(scratch_elements(tile_w)),
        last(pixels) {}
};

// Composites the list of flat tile k into w: planar[c * w.pixels + y * tile.w + x] is the weight
// map's channel c at tile pixel (x, y); trans and last per pixel, as rasterize's.
template <typename T>
void composite_sparse_tile(const SparseInputs<T>& in, const Tile& tile, int64_t k, SparseWorkspace<T>& w) {
  std::fill(w.planar.begin(), w.planar.end(), T(0));
  std::fill(w.trans.begin(), w.trans.end(), T(1));
  std::fill(w.done.begin(), w.done.end(), T(0));
  std::fill(w.last.begin(), w.last.end(), -1);
  ForwardTile<T> state{
      w.trans.data(),  w.done.data(), w.last.data(), w.planar.data(), w.pixels, in.P, nullptr, nullptr, 0,
      w.scratch.data()};
  int64_t remaining = tile.w * tile.h;
  const int64_t begin = in.tile_offsets[k], end = k + 1 < in.tiles ? in.tile_offsets[k + 1] : in.M;
  for (int64_t i = begin; i < end && remaining > 0; ++i) {
    const int64_t fid = in.flatten_ids[i], g = fid % in.N;
    const T* m = in.means2d + fid * 2;
    const T* c = in.conics + fid * 3;
    const Splat2D<T> s(m[0], m[1], c[0], c[1], c[2], in.opacities[in.camera_opacities ? fid : g]);
    PixelBox box;
    if (!pixel_box(s, tile, &box)) continue;
    state.feature = in.weights + g * in.P;
    state.channel = in.indices + g * in.P;
    remaining -= forward_box(box_splat(s, tile, box), static_cast<int32_t>(i), state);
  }
}

}  // namespace prismkit::splat
