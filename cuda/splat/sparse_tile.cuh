// What the CUDA sparse coefficient kernels share (rasterize_sparse_coef*.cu,
// rasterize_sparse_features.cu, language_relevancy.cu): their parameters, the block's shared
// memory (the staged batch of Gaussians, then the [num_coefs][threads + 1] weights), and the
// front-to-back compositing of a tile's list into each pixel's weight map, with rasterize.cu's
// staging, alpha and stopping rule (raster_tile.cuh, splat_math.cuh): the same pixels stop at the
// same Gaussian as in rasterize.
#pragma once

#include <cstdint>

#include "cuda/splat/raster_tile.cuh"
#include "cuda/splat/rasterize_sparse.h"
#include "cuda/splat/splat_math.cuh"

namespace prismkit::cuda::splat {

template <typename T>
struct SparseParams {
  RasterParams<T> raster;  // no features: each Gaussian's row s.row[j] is its index g
  const int32_t* indices;
  const T* weights;
  int64_t P, num_coefs;
};

template <typename T>
SparseParams<T> sparse_params(const SparseRaster& r) {
  return {raster_params<T>(r.means2d, r.conics, nullptr, false, r.opacities, r.camera_opacities, nullptr,
                           r.tile_offsets, r.flatten_ids, r.C, r.N, 0, r.M, r.width, r.height, r.tile_size),
          r.indices, static_cast<const T*>(r.weights), r.P, r.num_coefs};
}

// One block per (camera, tile).
inline dim3 sparse_grid(const SparseRaster& r) {
  const int64_t tiles = ((r.width + r.tile_size - 1) / r.tile_size) * ((r.height + r.tile_size - 1) / r.tile_size);
  return dim3(static_cast<unsigned>(r.C * tiles));
}

// fn(T{}) with T float or double; false for float16 and bfloat16, which the glue computes in float32.
template <typename F>
bool dispatch_float_or_double(DType dtype, F&& fn) {
  if (dtype == DType::Float64)
    fn(double{});
  else if (dtype == DType::Float32)
    fn(float{});
  else
    return false;
  return true;
}

// The staged batch's bytes, rounded to 16 so the weights after it are aligned.
template <typename T>
__host__ __device__ inline size_t stage_bytes(int threads) {
  return (raster_smem_bytes<T>(threads, 0) + 15) / 16 * 16;
}

// The block's weights in shared memory: channel c of thread q's pixel at [c * (threads + 1) + q].
template <typename T>
__device__ __forceinline__ T* shared_weights(unsigned char* smem) {
  return reinterpret_cast<T*>(smem + stage_bytes<T>(blockDim.x));
}

// Zeroes the block's shared weights (every thread calls it).
template <typename T>
__device__ __forceinline__ void zero_shared_weights(T* acc, int64_t num_coefs) {
  for (int64_t e = threadIdx.x; e < num_coefs * (blockDim.x + 1); e += blockDim.x) acc[e] = T(0);
  __syncthreads();
}

// Composites the block's list front to back: this thread's pixel adds alpha T w_k to
// acc[index_k * stride] for each pair k of each contributing Gaussian. Every thread of the block
// calls it (done: the thread owns no pixel). Returns the pixel's T_final and last id.
template <typename T>
__device__ void composite_sparse(const SparseParams<T>& p, const Stage<T>& s, const BlockTile<T>& b, bool done, T* acc,
                                 int64_t stride, T* trans_out, int32_t* last_out) {
  T trans = 1;
  int32_t last = -1;
  for (int64_t b0 = b.begin; b0 < b.end; b0 += blockDim.x) {
    if (__syncthreads_count(done) == static_cast<int>(blockDim.x)) break;
    const int n = static_cast<int>(b.end - b0 < blockDim.x ? b.end - b0 : blockDim.x);
    stage_batch<0>(p.raster, s, b0, 1, n, 0, 0);
    if (done) continue;
    for (int j = 0; j < n; ++j) {
      const T* geo = s.geom + 6 * j;
      T al, vis;
      if (!splat_alpha(geo[2], geo[3], geo[4], geo[5], geo[0] - b.px, geo[1] - b.py, &al, &vis)) continue;
      const T next = trans * (T(1) - al);
      if (next <= T(1e-4)) {  // this Gaussian would take the pixel below 1e-4: stop before it
        done = true;
        break;
      }
      const T w = al * trans;
      const int64_t g = s.row[j];
      const int32_t* idx = p.indices + g * p.P;  // the same address in every thread: a broadcast
      const T* wt = p.weights + g * p.P;
      for (int64_t k = 0; k < p.P; ++k) acc[int64_t(idx[k]) * stride] += w * wt[k];
      last = static_cast<int32_t>(b0 + j);
      trans = next;
    }
  }
  *trans_out = trans;
  *last_out = last;
}

}  // namespace prismkit::cuda::splat
