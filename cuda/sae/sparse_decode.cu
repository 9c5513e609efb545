// prismkit::sparse_decode on CUDA: a gather. Block (row, column chunk): each thread owns VEC
// consecutive output columns of one row, walks the row's entries and accumulates
// value * W[latent, cols] in registers with 16-byte loads. No atomics; deterministic.
#include "cuda/common/device_math.cuh"
#include "cuda/sae/sparse_decode.h"

namespace prismkit::cuda {
namespace {

constexpr int kThreads = 128;

template <typename T, int VEC>
__global__ void sparse_decode_kernel(const T* __restrict__ values, const int64_t* __restrict__ indices,
                                     const int64_t* __restrict__ offsets, int64_t k, const T* __restrict__ W,
                                     const T* __restrict__ bias, T* __restrict__ out, int64_t d) {
  using A = typename Acc<T>::type;
  const int64_t row = blockIdx.x;
  const int64_t col = (static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x) * VEC;
  if (col >= d) return;
  A acc[VEC];
#pragma unroll
  for (int v = 0; v < VEC; ++v) acc[v] = bias ? to_acc(bias[col + v]) : A(0);
  const int64_t begin = offsets ? offsets[row] : row * k;
  const int64_t end = offsets ? offsets[row + 1] : (row + 1) * k;
  for (int64_t p = begin; p < end; ++p) {
    const A value = to_acc(values[p]);
    const Pack<T, VEC> w = *reinterpret_cast<const Pack<T, VEC>*>(W + indices[p] * d + col);
#pragma unroll
    for (int v = 0; v < VEC; ++v) acc[v] += value * to_acc(w.v[v]);
  }
  Pack<T, VEC> o;
#pragma unroll
  for (int v = 0; v < VEC; ++v) o.v[v] = from_acc<T>(acc[v]);
  *reinterpret_cast<Pack<T, VEC>*>(out + row * d + col) = o;
}

template <typename T, int VEC>
void launch(const void* values, const int64_t* indices, const int64_t* offsets, int64_t k, const void* W,
            const void* bias, void* out, int64_t B, int64_t d, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(B), static_cast<unsigned>((d + kThreads * VEC - 1) / (kThreads * VEC)));
  sparse_decode_kernel<T, VEC><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(values), indices, offsets, k,
                                                              static_cast<const T*>(W), static_cast<const T*>(bias),
                                                              static_cast<T*>(out), d);
}

}  // namespace

cudaError_t launch_sparse_decode(DType dtype, const void* values, const int64_t* indices, const int64_t* offsets,
                                 int64_t k, const void* W, const void* bias, void* out, int64_t B, int64_t d,
                                 cudaStream_t stream) {
  if (B == 0 || d == 0) return cudaSuccess;
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    constexpr int kWide = 16 / sizeof(T);
    if (vector_width<T>(d, W, out) == kWide && (bias == nullptr || vector_width<T>(d, bias, nullptr) == kWide))
      launch<T, kWide>(values, indices, offsets, k, W, bias, out, B, d, stream);
    else
      launch<T, 1>(values, indices, offsets, k, W, bias, out, B, d, stream);
    return 0;
  });
  return cudaGetLastError();
}

}  // namespace prismkit::cuda
