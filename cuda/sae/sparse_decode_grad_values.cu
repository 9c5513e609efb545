// prismkit::sparse_decode_grad_values on CUDA: one block per row, one warp per entry of
// the row; lanes stride over d with 16-byte loads and reduce with shuffles.
#include "cuda/common/device_math.cuh"
#include "cuda/sae/sparse_decode_grad_values.h"

namespace prismkit::cuda {
namespace {

constexpr int kWarps = 4;

template <typename T, int VEC>
__global__ void grad_values_kernel(const T* __restrict__ grad_out, const int64_t* __restrict__ indices,
                                   const int64_t* __restrict__ offsets, int64_t k, const T* __restrict__ W,
                                   T* __restrict__ grad_values, int64_t d) {
  using A = typename Acc<T>::type;
  const int64_t row = blockIdx.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t begin = offsets ? offsets[row] : row * k;
  const int64_t end = offsets ? offsets[row + 1] : (row + 1) * k;
  const T* g = grad_out + row * d;
  for (int64_t p = begin + warp; p < end; p += kWarps) {
    const T* w = W + indices[p] * d;
    A acc = 0;
    for (int64_t col = static_cast<int64_t>(lane) * VEC; col < d; col += 32 * VEC) {
      const Pack<T, VEC> a = *reinterpret_cast<const Pack<T, VEC>*>(g + col);
      const Pack<T, VEC> b = *reinterpret_cast<const Pack<T, VEC>*>(w + col);
#pragma unroll
      for (int v = 0; v < VEC; ++v) acc += to_acc(a.v[v]) * to_acc(b.v[v]);
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) acc += __shfl_down_sync(0xffffffffu, acc, offset);
    if (lane == 0) grad_values[p] = from_acc<T>(acc);
  }
}

}  // namespace

cudaError_t launch_sparse_decode_grad_values(DType dtype, const void* grad_out, const int64_t* indices,
                                             const int64_t* offsets, int64_t k, const void* W, void* grad_values,
                                             int64_t B, int64_t d, cudaStream_t stream) {
  if (B == 0) return cudaSuccess;
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    constexpr int kWide = 16 / sizeof(T);
    const auto* g = static_cast<const T*>(grad_out);
    const auto* w = static_cast<const T*>(W);
    auto* out = static_cast<T*>(grad_values);
    if (vector_width<T>(d, grad_out, W) == kWide)
      grad_values_kernel<T, kWide>
          <<<static_cast<unsigned>(B), kWarps * 32, 0, stream>>>(g, indices, offsets, k, w, out, d);
    else
      grad_values_kernel<T, 1><<<static_cast<unsigned>(B), kWarps * 32, 0, stream>>>(g, indices, offsets, k, w, out, d);
    return 0;
  });
  return cudaGetLastError();
}

}  // namespace prismkit::cuda
