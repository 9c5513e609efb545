// prismkit::language_relevancy on CUDA (rasterize_sparse.h): the tile's weight maps are composited
// into shared memory (sparse_tile.cuh); then each thread takes its pixel's weights w of each level
// and the level's products B = [S S^T | S q^T | S c^T] (the same row of B in every thread at once:
// a broadcast), |F|^2 = w^T (S S^T) w and F . q = w^T (S q): O(L^2 + (Q + M) L) per pixel and
// level, no D-dimensional feature formed. Not measured on a GPU yet.
#include <cmath>

#include "cuda/splat/sparse_tile.cuh"

namespace prismkit::cuda {
namespace {

using namespace splat;

template <typename T>
__global__ void __launch_bounds__(kRasterThreads)
    language_relevancy_kernel(const SparseParams<T> p, const T* __restrict__ products, int64_t levels, int64_t L,
                              int64_t Q, int64_t negatives, T* __restrict__ relevancy) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int threads = blockDim.x, tr = threadIdx.x;
  const int64_t stride = threads + 1, K = L + Q + negatives;
  const Stage<T> s = carve<T>(smem, threads);
  const BlockTile<T> b = block_tile<T, 0>(p.raster, tr);
  T* acc = shared_weights<T>(smem);
  zero_shared_weights(acc, p.num_coefs);
  T trans;
  int32_t last;
  composite_sparse(p, s, b, b.pix < 0, acc + tr, stride, &trans, &last);
  if (b.pix < 0) return;
  for (int64_t l = 0; l < levels; ++l) {
    const T* w = acc + l * L * stride + tr;
    const T* B = products + l * L * K;
    T norm2 = 0;
    for (int64_t i = 0; i < L; ++i) {
      T t = 0;
      for (int64_t j = 0; j < L; ++j) t += B[i * K + j] * w[j * stride];
      norm2 += w[i * stride] * t;
    }
    const T scale = norm2 > T(0) ? T(1) / fmax(sqrt_(norm2), T(1e-12)) : T(0);
    T negative = -INFINITY;
    for (int64_t m = 0; m < negatives; ++m) {
      T d = 0;
      for (int64_t i = 0; i < L; ++i) d += w[i * stride] * B[i * K + L + Q + m];
      negative = fmax(negative, d);
    }
    for (int64_t q = 0; q < Q; ++q) {
      T d = 0;
      for (int64_t i = 0; i < L; ++i) d += w[i * stride] * B[i * K + L + q];
      relevancy[(b.pix * levels + l) * Q + q] = T(1) / (T(1) + exp_(T(-10) * scale * (d - negative)));
    }
  }
}

}  // namespace

cudaError_t launch_language_relevancy(DType dtype, const SparseRaster& r, const void* products, int64_t levels,
                                      int64_t L, int64_t Q, int64_t negatives, void* relevancy, cudaStream_t stream) {
  if (r.C == 0 || Q == 0) return cudaSuccess;
  const int threads = raster_threads(r.tile_size);
  const dim3 grid = sparse_grid(r);
  auto run = [&](auto zero) {
    using T = decltype(zero);
    const size_t bytes = sparse_shared_bytes(dtype, r.num_coefs, r.tile_size);
    cudaFuncSetAttribute(language_relevancy_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(bytes));
    language_relevancy_kernel<T><<<grid, threads, bytes, stream>>>(sparse_params<T>(r), static_cast<const T*>(products),
                                                                   levels, L, Q, negatives, static_cast<T*>(relevancy));
  };
  if (!dispatch_float_or_double(dtype, run)) return cudaErrorInvalidValue;  // the glue computes float16 in float32
  return cudaGetLastError();
}

}  // namespace prismkit::cuda
