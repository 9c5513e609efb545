// What the CPU sparse coefficient ops share (rasterize_sparse_coef, rasterize_sparse_features,
// language_relevancy): compositing one (camera, tile) list of Gaussians, each carrying P
// (index, weight) pairs, into pixel-major weight maps ([pixels][num_coefs] rows, the output's own
// layout), the same front-to-back walk as rasterize_cpu.cpp's. Per Gaussian and box row, the
// transmittance step gives each pixel's alpha T once, and a contributing pixel adds its P weights
// into its row: P scalar multiply-adds, whatever num_coefs is. (Channel-major rows of the tile,
// one vector multiply-add per pair and box row, measured slower: boxes are mostly narrower than a
// vector, and the tile then has to be transposed to the output.)
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "splat/composite_kernels.h"
#include "splat/raster_tile.h"
#include "splat/sparse_checks.h"

namespace prismkit::splat {

template <typename T>
struct SparseInputs {
  const T *means2d, *conics, *opacities, *weights;
  const int32_t *indices, *tile_offsets, *flatten_ids;
  int64_t N, P, M, tiles;  // tiles: C * tiles_y * tiles_x
  bool camera_opacities;
};

// The inputs as the CPU sparse ops read them: contiguous, indices int32, after the value checks.
struct SparseTensors {
  at::Tensor means2d, conics, opacities, weights, indices, tile_offsets, flatten_ids;
  SparseArgs a;

  template <typename T>
  SparseInputs<T> view() const {
    return {means2d.const_data_ptr<T>(),
            conics.const_data_ptr<T>(),
            opacities.const_data_ptr<T>(),
            weights.const_data_ptr<T>(),
            indices.const_data_ptr<int32_t>(),
            tile_offsets.const_data_ptr<int32_t>(),
            flatten_ids.const_data_ptr<int32_t>(),
            a.raster.N,
            a.P,
            a.raster.M,
            a.raster.C * a.raster.tiles_x * a.raster.tiles_y,
            a.raster.camera_opacities};
  }
};

// check_sparse_values_cpu (tile lists, last_ids when given, index range), then the inputs.
inline SparseTensors sparse_tensors(const char* op, const SparseArgs& a, const at::Tensor& means2d,
                                    const at::Tensor& conics, const at::Tensor& opacities,
                                    const at::Tensor& coef_indices, const at::Tensor& coef_weights,
                                    const at::Tensor& tile_offsets, const at::Tensor& flatten_ids,
                                    const at::Tensor& last_ids = at::Tensor()) {
  at::Tensor indices = check_sparse_values_cpu(op, a, coef_indices, tile_offsets, flatten_ids, last_ids);
  return {means2d.contiguous(), conics.contiguous(),       opacities.contiguous(),   coef_weights.contiguous(),
          std::move(indices),   tile_offsets.contiguous(), flatten_ids.contiguous(), a};
}

// One thread's tile state: a tile is at most min(tile_size, width) x min(tile_size, height) pixels;
// with weights, also a [pixels][num_coefs] weight map (the fused ops; rasterize_sparse_coef
// composites into its output).
template <typename T>
struct SparseWorkspace {
  int64_t pixels;
  std::vector<T> trans, done, weights, scratch;
  std::vector<int32_t> last;
  SparseWorkspace(int64_t num_coefs, int64_t tile_w, int64_t tile_h, bool with_weights)
      : pixels(tile_w * tile_h),
        trans(pixels),
        done(pixels),
        weights(with_weights ? pixels * num_coefs : 0),
        scratch(scratch_elements(tile_w)),
        last(pixels) {}
};

// Composites the list of flat tile k: tile pixel (x, y)'s weight map is out[y * row + x * nc]
// (zeroed here first); trans and last per pixel in w (tile-local y * tile.w + x), as rasterize's.
template <typename T>
void composite_sparse_tile(const SparseInputs<T>& in, const Tile& tile, int64_t k, SparseWorkspace<T>& w, T* out,
                           int64_t row, int64_t nc) {
  for (int64_t y = 0; y < tile.h; ++y) std::fill(out + y * row, out + y * row + tile.w * nc, T(0));
  std::fill(w.trans.begin(), w.trans.end(), T(1));
  std::fill(w.done.begin(), w.done.end(), T(0));
  std::fill(w.last.begin(), w.last.end(), -1);
  ForwardTile<T> state{w.trans.data(), w.done.data(), w.last.data(), nullptr, 0,
                       in.P,           nullptr,       out,           row,     w.scratch.data()};
  state.channels = nc;
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
