// prismkit::rasterize_sparse_features on CUDA (rasterize_sparse.h): the tile's weight maps are
// composited into shared memory (sparse_tile.cuh), then the block multiplies them by the codebook
// there: each thread computes one feature channel d of 8 pixels of one level (8 accumulators,
// each codebook value read once for 8 pixels; consecutive threads take consecutive d, so codebook
// reads and feature writes are coalesced and the 8 pixels' weights are a shared-memory broadcast).
// With normalize, each pixel's |F|^2 = w^T (S S^T) w comes from the weights and the level's Gram
// matrix before the product, so every feature is written once, already scaled. The weight map
// never reaches global memory. Not measured on a GPU yet; no tensor cores.
#include <cmath>

#include "cuda/splat/sparse_tile.cuh"

namespace prismkit::cuda {
namespace {

using namespace splat;

constexpr int kPixelsPerThread = 8;

template <typename T>
__global__ void __launch_bounds__(kRasterThreads)
    rasterize_sparse_features_kernel(const SparseParams<T> p, const T* __restrict__ codebook,
                                     const T* __restrict__ gram, int64_t levels, int64_t L, int64_t D, bool normalize,
                                     T* __restrict__ features) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int threads = blockDim.x, tr = threadIdx.x;
  const int64_t stride = threads + 1;
  const Stage<T> s = carve<T>(smem, threads);
  const BlockTile<T> b = block_tile<T, 0>(p.raster, tr);
  T* acc = shared_weights<T>(smem);
  T* scale = acc + p.num_coefs * stride;  // [levels][threads]
  zero_shared_weights(acc, p.num_coefs);
  T trans;
  int32_t last;
  composite_sparse(p, s, b, b.pix < 0, acc + tr, stride, &trans, &last);
  for (int64_t l = 0; l < levels; ++l) {
    T norm2 = 0;
    if (normalize) {
      const T* w = acc + l * L * stride + tr;
      const T* G = gram + l * L * L;
      for (int64_t i = 0; i < L; ++i) {
        T t = 0;
        for (int64_t j = 0; j < L; ++j) t += G[i * L + j] * w[j * stride];
        norm2 += w[i * stride] * t;
      }
    }
    // F / max(|F|, 1e-12), as torch's F.normalize
    scale[l * threads + tr] = normalize ? T(1) / fmax(sqrt_(norm2 > T(0) ? norm2 : T(0)), T(1e-12)) : T(1);
  }
  __syncthreads();
  const int64_t groups = threads / kPixelsPerThread;  // threads is a multiple of 32
  for (int64_t e = tr; e < levels * groups * D; e += threads) {
    const int64_t d = e % D, rest = e / D;
    const int64_t grp = rest % groups, l = rest / groups;
    T a[kPixelsPerThread];
#pragma unroll
    for (int i = 0; i < kPixelsPerThread; ++i) a[i] = 0;
    const T* w = acc + l * L * stride + grp * kPixelsPerThread;
    const T* S = codebook + l * L * D + d;
    for (int64_t k = 0; k < L; ++k) {
      const T sv = S[k * D];
#pragma unroll
      for (int i = 0; i < kPixelsPerThread; ++i) a[i] += w[k * stride + i] * sv;
    }
#pragma unroll
    for (int i = 0; i < kPixelsPerThread; ++i) {
      const int q = static_cast<int>(grp * kPixelsPerThread + i);
      const int64_t qpix = pixel_of(p.raster, q);
      if (qpix >= 0) features[(qpix * levels + l) * D + d] = a[i] * scale[l * threads + q];
    }
  }
}

}  // namespace

cudaError_t launch_rasterize_sparse_features(DType dtype, const SparseRaster& r, const void* codebook, const void* gram,
                                             int64_t levels, int64_t L, int64_t D, bool normalize, void* features,
                                             cudaStream_t stream) {
  if (r.C == 0) return cudaSuccess;
  const int threads = raster_threads(r.tile_size);
  const dim3 grid = sparse_grid(r);
  auto run = [&](auto zero) {
    using T = decltype(zero);
    const size_t bytes = sparse_shared_bytes(dtype, r.num_coefs, r.tile_size) + levels * threads * sizeof(T);
    cudaFuncSetAttribute(rasterize_sparse_features_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(bytes));
    rasterize_sparse_features_kernel<T><<<grid, threads, bytes, stream>>>(
        sparse_params<T>(r), static_cast<const T*>(codebook), static_cast<const T*>(gram), levels, L, D, normalize,
        static_cast<T*>(features));
  };
  if (!dispatch_float_or_double(dtype, run)) return cudaErrorInvalidValue;  // the glue computes float16 in float32
  return cudaGetLastError();
}

}  // namespace prismkit::cuda
