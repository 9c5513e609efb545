// prismkit::rasterize on CUDA: Inria's and gsplat's renderer with the channel count chosen at run
// time. Block (camera, tile) x channel chunk (raster_tile.cuh says how D is split), one thread per
// pixel: the tile's list is staged in shared memory in batches of one Gaussian per thread, each
// thread composites its pixel front to back with its chunk's channels in registers, and the block
// stops when all its pixels are done. The result is written through shared memory so that each
// pixel's chunk lands in contiguous runs. No atomics; bit-deterministic.
#include "cuda/splat/raster_tile.cuh"
#include "cuda/splat/rasterize.h"
#include "cuda/splat/splat_math.cuh"

namespace prismkit::cuda {
namespace {

using namespace splat;

template <typename T, int CH>
__global__ void __launch_bounds__(kRasterThreads, 1)
    rasterize_kernel(const RasterParams<T> p, T* __restrict__ render, T* __restrict__ alpha_out,
                     int32_t* __restrict__ last_ids) {
  using A = typename Acc<T>::type;
  extern __shared__ __align__(16) unsigned char smem[];
  const Stage<A> s = carve<A>(smem, blockDim.x);
  const int tr = threadIdx.x;
  const auto [pix, px, py, camera, c0, nch, begin, end] = block_tile<A, CH>(p, tr);

  A trans = 1;
  A acc[CH];
#pragma unroll
  for (int k = 0; k < CH; ++k) acc[k] = 0;
  int32_t last = -1;
  bool done = pix < 0;
  for (int64_t b0 = begin; b0 < end; b0 += blockDim.x) {
    if (__syncthreads_count(done) == static_cast<int>(blockDim.x)) break;
    const int n = static_cast<int>(end - b0 < blockDim.x ? end - b0 : blockDim.x);
    stage_batch<CH>(p, s, b0, 1, n, c0, nch);
    if (done) continue;
    for (int j = 0; j < n; ++j) {
      const A* geo = s.geom + 6 * j;
      A al, vis;
      if (!splat_alpha(geo[2], geo[3], geo[4], geo[5], geo[0] - px, geo[1] - py, &al, &vis)) continue;
      const A next = trans * (A(1) - al);
      if (next <= A(1e-4)) {  // this Gaussian would take the pixel below 1e-4: stop before it
        done = true;
        break;
      }
      const A w = al * trans;
      const A* f = s.feat + j * CH;
#pragma unroll
      for (int k = 0; k < CH; ++k) acc[k] += w * f[k];
      last = static_cast<int32_t>(b0 + j);
      trans = next;
    }
  }
  if (pix >= 0 && p.backgrounds) {
#pragma unroll
    for (int k = 0; k < CH; ++k)
      if (k < nch) acc[k] += trans * to_acc(p.backgrounds[camera * p.D + c0 + k]);
  }
  // Through shared memory (rows of CH + 1 to spread the banks), then out in channel-contiguous runs.
  __syncthreads();
  A* out = reinterpret_cast<A*>(smem);
#pragma unroll
  for (int k = 0; k < CH; ++k) out[tr * (CH + 1) + k] = acc[k];
  __syncthreads();
  for (int e = tr; e < static_cast<int>(blockDim.x) * CH; e += blockDim.x) {
    const int q = e / CH, k = e % CH;
    const int64_t qpix = pixel_of(p, q);
    if (k < nch && qpix >= 0) render[qpix * p.D + c0 + k] = from_acc<T>(out[q * (CH + 1) + k]);
  }
  if (blockIdx.y == 0 && pix >= 0) {
    alpha_out[pix] = from_acc<T>(A(1) - trans);
    last_ids[pix] = last;
  }
}

template <typename T, int CH>
void launch(const RasterParams<T>& p, T* render, T* alpha, int32_t* last_ids, cudaStream_t stream) {
  using A = typename Acc<T>::type;
  const int threads = raster_threads(p.tile_size);
  const dim3 grid(static_cast<unsigned>(p.C * p.tiles_x * p.tiles_y), static_cast<unsigned>((p.D + CH - 1) / CH));
  rasterize_kernel<T, CH><<<grid, threads, raster_smem_bytes<A>(threads, CH), stream>>>(p, render, alpha, last_ids);
}

}  // namespace

cudaError_t launch_rasterize(DType dtype, const void* means2d, const void* conics, const void* features,
                             bool camera_features, const void* opacities, bool camera_opacities,
                             const void* backgrounds, const int32_t* tile_offsets, const int32_t* flatten_ids,
                             int64_t C, int64_t N, int64_t D, int64_t M, int64_t width, int64_t height,
                             int64_t tile_size, void* render, void* alpha, int32_t* last_ids, cudaStream_t stream) {
  if (C == 0 || D == 0) return cudaSuccess;
  if (tile_size < 1 || tile_size > kRasterMaxTileSize || D > kRasterMaxChannels) return cudaErrorInvalidValue;
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    const RasterParams<T> p =
        raster_params<T>(means2d, conics, features, camera_features, opacities, camera_opacities, backgrounds,
                         tile_offsets, flatten_ids, C, N, D, M, width, height, tile_size);
    T *r = static_cast<T*>(render), *a = static_cast<T*>(alpha);
    switch (chunk_width(D, sizeof(T) == 8)) {
      case 1: launch<T, 1>(p, r, a, last_ids, stream); break;
      case 2: launch<T, 2>(p, r, a, last_ids, stream); break;
      case 4: launch<T, 4>(p, r, a, last_ids, stream); break;
      case 8: launch<T, 8>(p, r, a, last_ids, stream); break;
      case 16: launch<T, 16>(p, r, a, last_ids, stream); break;
      default:
        if constexpr (sizeof(T) < 8) launch<T, 32>(p, r, a, last_ids, stream);
        break;
    }
    return 0;
  });
  return cudaGetLastError();
}

}  // namespace prismkit::cuda
