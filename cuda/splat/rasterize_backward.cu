// prismkit::rasterize_backward on CUDA: gsplat's RasterizeToPixels3DGSBwd with the channel count
// chosen at run time. Same blocks as the forward (camera, tile) x channel chunk (raster_tile.cuh),
// one thread per pixel walking its list back to front from T_final = 1 - alpha and its last id.
//
// Per Gaussian, a warp's pixels are summed before the atomics: the CH feature gradients and the 6
// scalar ones go through a warp reduce-scatter (each halving step swaps half of the values with the
// partner lane), which leaves lane l with one channel's sum, so the warp's atomics for a Gaussian
// are one per channel issued by different lanes at once, not CH atomics in a row from lane 0. That
// is CH - 1 + (5 - log2 CH) shuffles against 5 CH for a butterfly per channel; its speed against
// per-channel atomics or a block-wide shared-memory reduction has not been measured.
//
// dL/dalpha of a Gaussian is a sum over all D channels; each chunk's block adds the part from its
// own channels (the grad_alpha term goes with chunk 0), and since the gradients of means2d, conics
// and opacities are linear in dL/dalpha, each chunk adds its part of them too.
#include "cuda/splat/raster_tile.cuh"
#include "cuda/splat/rasterize.h"
#include "cuda/splat/rasterize_backward.h"
#include "cuda/splat/splat_math.cuh"

namespace prismkit::cuda {
namespace {

using namespace splat;

template <typename A>
struct RasterGrads {
  A *means2d, *conics, *features, *opacities, *backgrounds;
};

template <typename T, int CH>
__global__ void __launch_bounds__(kRasterThreads, 1)
    rasterize_backward_kernel(const RasterParams<T> p, const T* __restrict__ alpha,
                              const int32_t* __restrict__ last_ids, const T* __restrict__ grad_render,
                              const T* __restrict__ grad_alpha, const RasterGrads<typename Acc<T>::type> out) {
  using A = typename Acc<T>::type;
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ int32_t s_last;
  const Stage<A> s = carve<A>(smem, blockDim.x);
  const int tr = threadIdx.x, lane = tr & 31;
  const auto [pix, px, py, camera, c0, nch, begin, end] = block_tile<A, CH>(p, tr);

  // dL/dC of the chunk, read in channel-contiguous runs through shared memory
  A* staged = reinterpret_cast<A*>(smem);
  for (int e = tr; e < static_cast<int>(blockDim.x) * CH; e += blockDim.x) {
    const int q = e / CH, k = e % CH;
    const int64_t qpix = pixel_of(p, q);
    staged[q * (CH + 1) + k] = k < nch && qpix >= 0 ? to_acc(grad_render[qpix * p.D + c0 + k]) : A(0);
  }
  if (tr == 0) s_last = -1;
  __syncthreads();
  A gr[CH];
#pragma unroll
  for (int k = 0; k < CH; ++k) gr[k] = staged[tr * (CH + 1) + k];
  const A T_final = pix >= 0 ? A(1) - to_acc(alpha[pix]) : A(1);
  const int32_t bin_final = pix >= 0 ? last_ids[pix] : -1;
  // T_final's own terms, grad_alpha - background . dL/dC (over this chunk's channels)
  A extra = 0;
  if (pix >= 0) {
    if (blockIdx.y == 0) extra = to_acc(grad_alpha[pix]);
    if (p.backgrounds) {
#pragma unroll
      for (int k = 0; k < CH; ++k)
        if (k < nch) extra -= to_acc(p.backgrounds[camera * p.D + c0 + k]) * gr[k];
    }
  }
  if (out.backgrounds) {  // d background = sum over pixels of T_final dL/dC
    A v[CH];
#pragma unroll
    for (int k = 0; k < CH; ++k) v[k] = T_final * gr[k];
    reduce_scatter<CH, 16>(v, lane);
    const int ch = lane / (32 / CH);
    if (lane % (32 / CH) == 0 && ch < nch) atomicAdd(out.backgrounds + camera * p.D + c0 + ch, v[0]);
  }
  if (bin_final >= 0) atomicMax(&s_last, bin_final);
  __syncthreads();
  // Nothing after the block's last contributor matters; within a warp, nothing after the warp's.
  const int64_t stop = end < int64_t(s_last) + 1 ? end : int64_t(s_last) + 1;
  int32_t warp_last = bin_final;
#pragma unroll
  for (int o = 16; o > 0; o /= 2) warp_last = max(warp_last, __shfl_xor_sync(0xffffffffu, warp_last, o));

  A trans = T_final;
  A buffer[CH];  // sum of f alpha T over the Gaussians behind
#pragma unroll
  for (int k = 0; k < CH; ++k) buffer[k] = 0;
  for (int64_t batch_end = stop - 1; batch_end >= begin; batch_end -= blockDim.x) {
    const int n = static_cast<int>(batch_end + 1 - begin < blockDim.x ? batch_end + 1 - begin : blockDim.x);
    __syncthreads();  // everyone is done with the previous batch (or the staged dL/dC)
    stage_batch<CH>(p, s, batch_end, -1, n, c0, nch);
    // j = 0 is the batch's furthest Gaussian
    const int64_t skip = batch_end - warp_last;
    for (int j = static_cast<int>(skip <= 0 ? 0 : (skip < n ? skip : n)); j < n; ++j) {
      const int64_t idx = batch_end - j;
      const A* geo = s.geom + 6 * j;
      const A dx = geo[0] - px, dy = geo[1] - py;
      A al = 0, vis = 0;
      const bool valid = idx <= bin_final && splat_alpha(geo[2], geo[3], geo[4], geo[5], dx, dy, &al, &vis);
      if (!__any_sync(0xffffffffu, valid)) continue;
      A vf[CH], vg[8];  // feature gradient; means2d (2), conic (3), opacity, 2 unused
#pragma unroll
      for (int k = 0; k < CH; ++k) vf[k] = 0;
#pragma unroll
      for (int q = 0; q < 8; ++q) vg[q] = 0;
      if (valid) {
        const A ra = A(1) / (A(1) - al);
        trans *= ra;
        const A fac = al * trans;
        const A* f = s.feat + j * CH;
        A dot = 0;
#pragma unroll
        for (int k = 0; k < CH; ++k) {
          dot += (f[k] * trans - buffer[k] * ra) * gr[k];
          vf[k] = fac * gr[k];
          buffer[k] += f[k] * fac;
        }
        const A v_alpha = dot + T_final * ra * extra;
        splat_geometry_grads(geo, dx, dy, al, vis, v_alpha, vg);
      }
      reduce_scatter<CH, 16>(vf, lane);
      reduce_scatter<8, 16>(vg, lane);
      const int ch = lane / (32 / CH);
      if (lane % (32 / CH) == 0 && ch < nch) atomicAdd(out.features + int64_t(s.row[j]) * p.D + c0 + ch, vf[0]);
      if ((lane & 3) == 0 && lane < 24) {
        const int q = lane >> 2;
        const int64_t fid = s.fid[j];
        A* dst = q < 2   ? out.means2d + fid * 2 + q
                 : q < 5 ? out.conics + fid * 3 + (q - 2)
                         : out.opacities + (p.camera_opacities ? fid : fid % p.N);
        atomicAdd(dst, vg[0]);
      }
    }
  }
}

template <typename T, int CH>
void launch(const RasterParams<T>& p, const T* alpha, const int32_t* last_ids, const T* grad_render,
            const T* grad_alpha, const RasterGrads<typename Acc<T>::type>& out, cudaStream_t stream) {
  using A = typename Acc<T>::type;
  const int threads = raster_threads(p.tile_size);
  const dim3 grid(static_cast<unsigned>(p.C * p.tiles_x * p.tiles_y), static_cast<unsigned>((p.D + CH - 1) / CH));
  rasterize_backward_kernel<T, CH>
      <<<grid, threads, raster_smem_bytes<A>(threads, CH), stream>>>(p, alpha, last_ids, grad_render, grad_alpha, out);
}

}  // namespace

cudaError_t launch_rasterize_backward(DType dtype, const void* means2d, const void* conics, const void* features,
                                      bool camera_features, const void* opacities, bool camera_opacities,
                                      const void* backgrounds, const int32_t* tile_offsets, const int32_t* flatten_ids,
                                      int64_t C, int64_t N, int64_t D, int64_t M, int64_t width, int64_t height,
                                      int64_t tile_size, const void* alpha, const int32_t* last_ids,
                                      const void* grad_render, const void* grad_alpha, void* grad_means2d,
                                      void* grad_conics, void* grad_features, void* grad_opacities,
                                      void* grad_backgrounds, cudaStream_t stream) {
  if (C == 0 || D == 0) return cudaSuccess;
  if (tile_size < 1 || tile_size > kRasterMaxTileSize || D > kRasterMaxChannels) return cudaErrorInvalidValue;
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    using A = typename Acc<T>::type;
    const RasterParams<T> p =
        raster_params<T>(means2d, conics, features, camera_features, opacities, camera_opacities, backgrounds,
                         tile_offsets, flatten_ids, C, N, D, M, width, height, tile_size);
    const RasterGrads<A> out{static_cast<A*>(grad_means2d), static_cast<A*>(grad_conics),
                             static_cast<A*>(grad_features), static_cast<A*>(grad_opacities),
                             static_cast<A*>(grad_backgrounds)};
    const T *al = static_cast<const T*>(alpha), *gr = static_cast<const T*>(grad_render),
            *ga = static_cast<const T*>(grad_alpha);
    switch (chunk_width(D, sizeof(T) == 8)) {
      case 1: launch<T, 1>(p, al, last_ids, gr, ga, out, stream); break;
      case 2: launch<T, 2>(p, al, last_ids, gr, ga, out, stream); break;
      case 4: launch<T, 4>(p, al, last_ids, gr, ga, out, stream); break;
      case 8: launch<T, 8>(p, al, last_ids, gr, ga, out, stream); break;
      case 16: launch<T, 16>(p, al, last_ids, gr, ga, out, stream); break;
      default:
        if constexpr (sizeof(T) < 8) launch<T, 32>(p, al, last_ids, gr, ga, out, stream);
        break;
    }
    return 0;
  });
  return cudaGetLastError();
}

}  // namespace prismkit::cuda
