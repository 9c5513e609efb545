// The per-(Gaussian, tile) work of CPU compositing, compiled once per instruction set
// (composite_kernels_isa.cpp) and called through the table of the path in use
// (common/cpu_dispatch.h): one call covers a Gaussian's whole box of pixels in a tile, so the
// per-row and per-pixel work runs without calls, vectorized across a row's pixels (alphas, the
// forward's transmittance step) and across the D feature channels (any D: full vectors, then a
// scalar tail; no padding).
#pragma once

#include <cstdint>

#include "common/cpu_dispatch.h"

namespace prismkit::splat {

// One Gaussian over its box of a tile's pixels. dx = mx - (px0 + x) and dy = my - (py0 + y) for
// box pixel (x, y) round as the reference's mean - centre does.
template <typename T>
struct BoxSplat {
  T mx, my, a, b, c, opacity;
  T min_power;      // below it, opacity exp(power) < 1/255 for certain (raster_tile.h)
  T px0, py0;       // the centre of the box's first pixel
  int64_t n, rows;  // box width and height in pixels
  int64_t p0, tw;   // tile-local index of the box's first pixel; the tile's width (row stride)
};

// The forward's per-pixel state of a tile ([tile pixels] arrays, tile-local index y * tw + x).
template <typename T>
struct ForwardTile {
  T* trans;       // transmittance
  T* done;        // 1 once the pixel has stopped
  int32_t* last;  // the last contributing position in flatten_ids
  // D <= kPlanarChannels: channel-major accumulators [D][pixels] (stride P) that the kernel adds
  // weight * feature to; wider: pixel-major accumulators, out (the tile's first pixel) with the
  // tile's rows image_row elements apart.
  T* planar;
  int64_t P, D;
  const T* feature;
  T* out;
  int64_t image_row;
  T* scratch;  // scratch_elements(tile_size)
  // Sparse coefficients (rasterize_sparse_coef): when set, feature holds the Gaussian's D weights
  // and each contributing pixel adds weight x feature[c] to its accumulator channel[c] of
  // `channels` (pixel-major, at out as above; duplicates add): D scalar multiply-adds per pixel,
  // whatever the channel count.
  const int32_t* channel = nullptr;
  int64_t channels = 0;
};

constexpr int64_t kPlanarChannels = 8;

// The scratch a box kernel needs for tiles of tile_size: two rows padded to whole vectors (a row
// of n pixels takes n rounded up to 64, plus 64).
constexpr int64_t kScratchPad = 64;
constexpr int64_t scratch_elements(int64_t tile_size) { return 2 * (tile_size + 2 * kScratchPad); }

// The backward's per-pixel state of a tile and one Gaussian's sums over its pixels.
template <typename T>
struct BackwardTile {
  T* trans;              // transmittance, walked back from final_trans
  const T* final_trans;  // 1 - alpha
  const T* extra;        // grad_alpha - background . dL/dC, per pixel
  const int32_t* last;   // the forward's last_ids
  T* acc;                // [pixels][D]: features of the Gaussians behind, normalized
  const T* grad_render;  // dL/dC of the tile's first pixel; rows of the image are image_row apart
  int64_t image_row, D;
  const T* feature;
  T* grad_feature;  // [D] += this Gaussian's sum over the box
  T grad[6];        // += d means2d (x, y), d conic (a, b, c), d opacity
  bool touched;     // any pixel reached
  T* scratch;       // scratch_elements(tile_size)
  // Sparse coefficients: when set, feature holds the Gaussian's D weights for the channels
  // channel[0:D] of dL/dW (grad_render, `channels` per pixel), grad_feature gets the weights'
  // gradients, and acc holds one value per pixel, acc . dL/dW (dL/dW is fixed per pixel, so the
  // back-to-front walk needs only that product).
  const int32_t* channel = nullptr;
  int64_t channels = 0;
};

struct CompositeKernels {
  // Front to back, Gaussian `index` over its box: where alpha >= 0 (min(0.99, o exp(power)),
  // skipped when power > 0 or alpha < 1/255) and the pixel is not done, it either stops
  // (T (1 - alpha) <= 1e-4) or contributes alpha T. Returns how many pixels stopped.
  int64_t (*forward_box_f)(const BoxSplat<float>& s, int32_t index, const ForwardTile<float>& t);
  int64_t (*forward_box_d)(const BoxSplat<double>& s, int32_t index, const ForwardTile<double>& t);
  // Back to front, Gaussian `index` over its box (pixels whose last contributor is at or after it).
  void (*backward_box_f)(const BoxSplat<float>& s, int32_t index, BackwardTile<float>& t);
  void (*backward_box_d)(const BoxSplat<double>& s, int32_t index, BackwardTile<double>& t);
  // out[0:D] += w * f[0:D]
  void (*axpy_f)(float w, const float* f, float* out, int64_t D);
  void (*axpy_d)(double w, const double* f, double* out, int64_t D);
  // A codebook product over n pixels: out[x * out_stride + d] = sum over l < L of
  // w[l * l_stride + x * x_stride] S[l * D + d] (S [L, D] row-major), for x < n, d < D; out is
  // written, not read.
  void (*decode_f)(const float* w, int64_t l_stride, int64_t x_stride, int64_t n, const float* S, int64_t L, int64_t D,
                   float* out, int64_t out_stride);
  void (*decode_d)(const double* w, int64_t l_stride, int64_t x_stride, int64_t n, const double* S, int64_t L,
                   int64_t D, double* out, int64_t out_stride);
};

PRISMKIT_ISA_DISPATCH(CompositeKernels, composite_kernels)

inline int64_t forward_box(const BoxSplat<float>& s, int32_t index, const ForwardTile<float>& t) {
  return composite_kernels().forward_box_f(s, index, t);
}
inline int64_t forward_box(const BoxSplat<double>& s, int32_t index, const ForwardTile<double>& t) {
  return composite_kernels().forward_box_d(s, index, t);
}
inline void backward_box(const BoxSplat<float>& s, int32_t index, BackwardTile<float>& t) {
  composite_kernels().backward_box_f(s, index, t);
}
inline void backward_box(const BoxSplat<double>& s, int32_t index, BackwardTile<double>& t) {
  composite_kernels().backward_box_d(s, index, t);
}
inline void axpy(float w, const float* f, float* out, int64_t D) { composite_kernels().axpy_f(w, f, out, D); }
inline void axpy(double w, const double* f, double* out, int64_t D) { composite_kernels().axpy_d(w, f, out, D); }
inline void decode(const float* w, int64_t l_stride, int64_t x_stride, int64_t n, const float* S, int64_t L, int64_t D,
                   float* out, int64_t out_stride) {
  composite_kernels().decode_f(w, l_stride, x_stride, n, S, L, D, out, out_stride);
}
inline void decode(const double* w, int64_t l_stride, int64_t x_stride, int64_t n, const double* S, int64_t L,
                   int64_t D, double* out, int64_t out_stride) {
  composite_kernels().decode_d(w, l_stride, x_stride, n, S, L, D, out, out_stride);
}

}  // namespace prismkit::splat
