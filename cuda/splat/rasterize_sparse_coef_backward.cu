// prismkit::rasterize_sparse_coef_backward on CUDA (rasterize_sparse.h): rasterize_backward.cu's
// back-to-front walk, one thread per pixel, with sparse coefficients. dL/dW is fixed per pixel, so
// a pixel keeps one number for the Gaussians behind ((their weights) . dL/dW, weighted by alpha T)
// instead of a num_coefs-wide buffer, and a Gaussian costs it P reads of dL/dW (staged channel-
// major in shared memory when it fits, else read from the pixel's row). Per Gaussian, the warp's
// P weight gradients sum_p T alpha dL/dW(p)[index_k] go through reduce_scatter in chunks of 8 and
// one atomic per chunk entry and warp (the official training path does 64 atomics per
// Gaussian-pixel pair); the 6 geometric ones as in rasterize_backward.
#include "cuda/splat/sparse_tile.cuh"

namespace prismkit::cuda {
namespace {

using namespace splat;

template <typename T>
struct SparseGrads {
  T *means2d, *conics, *opacities, *weights;
};

template <typename T, bool kShared>
__global__ void __launch_bounds__(kRasterThreads)
    rasterize_sparse_coef_backward_kernel(const SparseParams<T> p, const T* __restrict__ alpha,
                                          const int32_t* __restrict__ last_ids, const T* __restrict__ grad_weight_map,
                                          const T* __restrict__ grad_alpha, const SparseGrads<T> out) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ int32_t s_last;
  const int threads = blockDim.x, tr = threadIdx.x, lane = tr & 31;
  const Stage<T> s = carve<T>(smem, threads);
  const BlockTile<T> b = block_tile<T, 0>(p.raster, tr);
  const int64_t nc = p.num_coefs;
  const T* g;  // this pixel's dL/dW, channel c at g[c * stride]
  int64_t stride;
  if constexpr (kShared) {
    T* staged = shared_weights<T>(smem);
    for (int64_t e = tr; e < int64_t(threads) * nc; e += threads) {  // coalesced reads of the pixels' rows
      const int q = static_cast<int>(e / nc);
      const int64_t c = e % nc, qpix = pixel_of(p.raster, q);
      staged[c * (threads + 1) + q] = qpix >= 0 ? grad_weight_map[qpix * nc + c] : T(0);
    }
    g = staged + tr;
    stride = threads + 1;
  } else {
    g = grad_weight_map + (b.pix >= 0 ? b.pix : 0) * nc;
    stride = 1;
  }
  if (tr == 0) s_last = -1;
  __syncthreads();
  const T T_final = b.pix >= 0 ? T(1) - alpha[b.pix] : T(1);
  const int32_t bin_final = b.pix >= 0 ? last_ids[b.pix] : -1;
  const T extra = b.pix >= 0 ? grad_alpha[b.pix] : T(0);
  if (bin_final >= 0) atomicMax(&s_last, bin_final);
  __syncthreads();
  const int64_t stop = b.end < int64_t(s_last) + 1 ? b.end : int64_t(s_last) + 1;
  int32_t warp_last = bin_final;
#pragma unroll
  for (int o = 16; o > 0; o /= 2) warp_last = max(warp_last, __shfl_xor_sync(0xffffffffu, warp_last, o));

  T trans = T_final;
  T behind = 0;  // sum over the Gaussians behind of (w . dL/dW) alpha T
  for (int64_t batch_end = stop - 1; batch_end >= b.begin; batch_end -= threads) {
    const int n = static_cast<int>(batch_end + 1 - b.begin < threads ? batch_end + 1 - b.begin : threads);
    __syncthreads();  // everyone is done with the previous batch
    stage_batch<0>(p.raster, s, batch_end, -1, n, 0, 0);
    const int64_t skip = batch_end - warp_last;
    for (int j = static_cast<int>(skip <= 0 ? 0 : (skip < n ? skip : n)); j < n; ++j) {
      const int64_t id = batch_end - j;
      const T* geo = s.geom + 6 * j;
      const T dx = geo[0] - b.px, dy = geo[1] - b.py;
      T al = 0, vis = 0;
      const bool valid = id <= bin_final && splat_alpha(geo[2], geo[3], geo[4], geo[5], dx, dy, &al, &vis);
      if (!__any_sync(0xffffffffu, valid)) continue;
      const int64_t gid = s.row[j];
      const int32_t* idx = p.indices + gid * p.P;
      const T* wt = p.weights + gid * p.P;
      T vg[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // means2d (2), conic (3), opacity, 2 unused
      T fac = 0;
      if (valid) {
        const T ra = T(1) / (T(1) - al);
        trans *= ra;
        fac = al * trans;
        T fg = 0;
        for (int64_t k = 0; k < p.P; ++k) fg += wt[k] * g[int64_t(idx[k]) * stride];
        const T v_alpha = fg * trans - behind * ra + T_final * ra * extra;
        behind += fg * fac;
        splat_geometry_grads(geo, dx, dy, al, vis, v_alpha, vg);
      }
      for (int64_t c0 = 0; c0 < p.P; c0 += 8) {
        T v[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = c0 + i < p.P ? fac * g[int64_t(idx[c0 + i]) * stride] : T(0);
        reduce_scatter<8, 16>(v, lane);
        const int64_t k = c0 + lane / 4;
        if ((lane & 3) == 0 && k < p.P) atomicAdd(out.weights + gid * p.P + k, v[0]);
      }
      reduce_scatter<8, 16>(vg, lane);
      if ((lane & 3) == 0 && lane < 24) {
        const int q = lane >> 2;
        const int64_t fid = s.fid[j];
        T* dst = q < 2   ? out.means2d + fid * 2 + q
                 : q < 5 ? out.conics + fid * 3 + (q - 2)
                         : out.opacities + (p.raster.camera_opacities ? fid : fid % p.raster.N);
        atomicAdd(dst, vg[0]);
      }
    }
  }
}

}  // namespace

cudaError_t launch_rasterize_sparse_coef_backward(DType dtype, const SparseRaster& r, const void* alpha,
                                                  const int32_t* last_ids, const void* grad_weight_map,
                                                  const void* grad_alpha, void* grad_means2d, void* grad_conics,
                                                  void* grad_opacities, void* grad_weights, cudaStream_t stream) {
  if (r.C == 0) return cudaSuccess;
  const bool shared = sparse_fits_shared(dtype, r.num_coefs, r.tile_size);
  const int threads = raster_threads(r.tile_size);
  const dim3 grid = sparse_grid(r);
  auto run = [&](auto zero) {
    using T = decltype(zero);
    const SparseParams<T> p = sparse_params<T>(r);
    const SparseGrads<T> out{static_cast<T*>(grad_means2d), static_cast<T*>(grad_conics),
                             static_cast<T*>(grad_opacities), static_cast<T*>(grad_weights)};
    const T *al = static_cast<const T*>(alpha), *gw = static_cast<const T*>(grad_weight_map),
            *ga = static_cast<const T*>(grad_alpha);
    if (shared) {
      const size_t bytes = sparse_shared_bytes(dtype, r.num_coefs, r.tile_size);
      cudaFuncSetAttribute(rasterize_sparse_coef_backward_kernel<T, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(bytes));
      rasterize_sparse_coef_backward_kernel<T, true><<<grid, threads, bytes, stream>>>(p, al, last_ids, gw, ga, out);
    } else {
      rasterize_sparse_coef_backward_kernel<T, false>
          <<<grid, threads, stage_bytes<T>(threads), stream>>>(p, al, last_ids, gw, ga, out);
    }
  };
  if (!dispatch_float_or_double(dtype, run)) return cudaErrorInvalidValue;  // the glue computes float16 in float32
  return cudaGetLastError();
}

}  // namespace prismkit::cuda
