// prismkit::rasterize_sparse_coef on CUDA (rasterize_sparse.h): block (camera, tile), one thread per
// pixel, each pixel's num_coefs weights in shared memory when they fit, written out channel-
// contiguous at the end; otherwise added straight into the thread's own row of the zeroed output.
// Each contributing Gaussian costs a pixel P multiply-adds (K x levels), never num_coefs: the
// official kernel's 12 scatter-adds, with K, L and the levels chosen at run time and the
// accumulator out of local memory. No atomics; bit-deterministic.
#include "cuda/splat/sparse_tile.cuh"

namespace prismkit::cuda {
namespace {

using namespace splat;

template <typename T, bool kShared>
__global__ void __launch_bounds__(kRasterThreads)
    rasterize_sparse_coef_kernel(const SparseParams<T> p, T* __restrict__ weight_map, T* __restrict__ alpha,
                                 int32_t* __restrict__ last_ids) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int threads = blockDim.x, tr = threadIdx.x;
  const Stage<T> s = carve<T>(smem, threads);
  const BlockTile<T> b = block_tile<T, 0>(p.raster, tr);
  T* acc = shared_weights<T>(smem);
  if constexpr (kShared) zero_shared_weights(acc, p.num_coefs);
  T trans;
  int32_t last;
  if constexpr (kShared)
    composite_sparse(p, s, b, b.pix < 0, acc + tr, threads + 1, &trans, &last);
  else
    composite_sparse(p, s, b, b.pix < 0, weight_map + (b.pix >= 0 ? b.pix : 0) * p.num_coefs, 1, &trans, &last);
  if (b.pix >= 0) {
    alpha[b.pix] = T(1) - trans;
    last_ids[b.pix] = last;
  }
  if constexpr (kShared) {
    __syncthreads();
    for (int64_t e = tr; e < int64_t(threads) * p.num_coefs; e += threads) {
      const int q = static_cast<int>(e / p.num_coefs);
      const int64_t c = e % p.num_coefs, qpix = pixel_of(p.raster, q);
      if (qpix >= 0) weight_map[qpix * p.num_coefs + c] = acc[c * (threads + 1) + q];
    }
  }
}

}  // namespace

size_t sparse_shared_bytes(DType dtype, int64_t num_coefs, int64_t tile_size) {
  const int threads = raster_threads(tile_size);
  const size_t elem = dtype == DType::Float64 ? sizeof(double) : sizeof(float);
  const size_t stage = dtype == DType::Float64 ? stage_bytes<double>(threads) : stage_bytes<float>(threads);
  return stage + static_cast<size_t>(num_coefs) * (threads + 1) * elem;
}

bool sparse_fits_shared(DType dtype, int64_t num_coefs, int64_t tile_size) {
  int device = 0, limit = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) return false;
  // + the backward kernel's static s_last (dynamic and static shared memory share the limit)
  return sparse_shared_bytes(dtype, num_coefs, tile_size) + 16 <= static_cast<size_t>(limit);
}

cudaError_t launch_rasterize_sparse_coef(DType dtype, const SparseRaster& r, void* weight_map, void* alpha,
                                         int32_t* last_ids, cudaStream_t stream) {
  if (r.C == 0) return cudaSuccess;
  const bool shared = sparse_fits_shared(dtype, r.num_coefs, r.tile_size);
  const int threads = raster_threads(r.tile_size);
  const dim3 grid = sparse_grid(r);
  auto run = [&](auto zero) {
    using T = decltype(zero);
    const SparseParams<T> p = sparse_params<T>(r);
    T *wm = static_cast<T*>(weight_map), *al = static_cast<T*>(alpha);
    if (shared) {
      const size_t bytes = sparse_shared_bytes(dtype, r.num_coefs, r.tile_size);
      cudaFuncSetAttribute(rasterize_sparse_coef_kernel<T, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(bytes));
      rasterize_sparse_coef_kernel<T, true><<<grid, threads, bytes, stream>>>(p, wm, al, last_ids);
    } else {
      rasterize_sparse_coef_kernel<T, false><<<grid, threads, stage_bytes<T>(threads), stream>>>(p, wm, al, last_ids);
    }
  };
  if (!dispatch_float_or_double(dtype, run)) return cudaErrorInvalidValue;  // the glue computes float16 in float32
  return cudaGetLastError();
}

}  // namespace prismkit::cuda
