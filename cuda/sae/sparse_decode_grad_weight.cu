// prismkit::sparse_decode_grad_weight on CUDA, in four steps on one stream:
//   1. keys[p] = indices[p], ids[p] = p (int32), and for the row-compressed layout row[p];
//   2. cub's stable radix sort of (keys, ids) by latent, over just the bits F needs;
//   3. start[f] = first sorted position of latent f (a binary search per latent);
//   4. block (latent f, column chunk) sums values[p] * grad_out[row(p), cols] over f's
//      entries in entry order and writes grad_weight[f, cols] once.
// Hot latents (many entries) serialize in their block; see the bench notes.
#include "cuda/common/device_math.cuh"
#include "cuda/sae/sparse_decode_grad_weight.h"

#include <cub/device/device_radix_sort.cuh>

namespace prismkit::cuda {
namespace {

constexpr int kThreads = 128;

size_t align_up(size_t n) { return (n + 255) & ~size_t(255); }

int bits_for(int64_t F) {
  int bits = 1;
  while ((int64_t(1) << bits) < F) ++bits;
  return bits;
}

size_t sort_temp_bytes(int64_t nnz, int64_t F) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const int*>(nullptr), static_cast<int*>(nullptr),
                                  static_cast<const int*>(nullptr), static_cast<int*>(nullptr), static_cast<int>(nnz),
                                  0, bits_for(F));
  return bytes;
}

__global__ void fill_keys_kernel(const int64_t* __restrict__ indices, int* __restrict__ keys, int* __restrict__ ids,
                                 int64_t nnz) {
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < nnz; p += int64_t(gridDim.x) * blockDim.x) {
    keys[p] = static_cast<int>(indices[p]);
    ids[p] = static_cast<int>(p);
  }
}

__global__ void fill_rows_kernel(const int64_t* __restrict__ offsets, int* __restrict__ rows, int64_t B) {
  for (int64_t r = blockIdx.x; r < B; r += gridDim.x)
    for (int64_t p = offsets[r] + threadIdx.x; p < offsets[r + 1]; p += blockDim.x) rows[p] = static_cast<int>(r);
}

__global__ void latent_start_kernel(const int* __restrict__ sorted_keys, int64_t nnz, int* __restrict__ start,
                                    int64_t F) {
  for (int64_t f = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; f <= F; f += int64_t(gridDim.x) * blockDim.x) {
    int64_t lo = 0, hi = nnz;  // first position with key >= f
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (sorted_keys[mid] < f)
        lo = mid + 1;
      else
        hi = mid;
    }
    start[f] = static_cast<int>(lo);
  }
}

template <typename T, int VEC>
__global__ void accumulate_kernel(const T* __restrict__ grad_out, const T* __restrict__ values,
                                  const int* __restrict__ sorted_ids, const int* __restrict__ start,
                                  const int* __restrict__ rows, int64_t k, int64_t d, T* __restrict__ grad_weight,
                                  T* __restrict__ value_sum) {
  using A = typename Acc<T>::type;
  const int64_t f = blockIdx.x;
  const int64_t col = (static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x) * VEC;
  A acc[VEC] = {};
  A sum = 0;
  for (int q = start[f]; q < start[f + 1]; ++q) {
    const int p = sorted_ids[q];
    const A v = to_acc(values[p]);
    sum += v;
    if (col < d) {
      const int64_t row = rows ? rows[p] : p / k;
      const Pack<T, VEC> g = *reinterpret_cast<const Pack<T, VEC>*>(grad_out + row * d + col);
#pragma unroll
      for (int i = 0; i < VEC; ++i) acc[i] += v * to_acc(g.v[i]);
    }
  }
  if (blockIdx.y == 0 && threadIdx.x == 0) value_sum[f] = from_acc<T>(sum);
  if (col < d) {
    Pack<T, VEC> o;
#pragma unroll
    for (int i = 0; i < VEC; ++i) o.v[i] = from_acc<T>(acc[i]);
    *reinterpret_cast<Pack<T, VEC>*>(grad_weight + f * d + col) = o;
  }
}

struct Workspace {
  int *keys, *sorted_keys, *ids, *sorted_ids, *start, *rows;
  void* sort_temp;
  size_t sort_bytes;
};

Workspace carve(void* base, int64_t nnz, int64_t F, bool has_offsets) {
  char* p = static_cast<char*>(base);
  Workspace w{};
  auto take = [&](size_t bytes) {
    char* at = p;
    p += align_up(bytes);
    return at;
  };
  const size_t n = static_cast<size_t>(nnz) * sizeof(int);
  w.keys = reinterpret_cast<int*>(take(n));
  w.sorted_keys = reinterpret_cast<int*>(take(n));
  w.ids = reinterpret_cast<int*>(take(n));
  w.sorted_ids = reinterpret_cast<int*>(take(n));
  w.start = reinterpret_cast<int*>(take(static_cast<size_t>(F + 1) * sizeof(int)));
  w.rows = has_offsets ? reinterpret_cast<int*>(take(n)) : nullptr;
  w.sort_bytes = sort_temp_bytes(nnz, F);
  w.sort_temp = take(w.sort_bytes);
  return w;
}

}  // namespace

size_t sparse_decode_grad_weight_workspace_bytes(int64_t nnz, int64_t F, bool has_offsets) {
  const size_t n = align_up(static_cast<size_t>(nnz) * sizeof(int));
  return 4 * n + align_up(static_cast<size_t>(F + 1) * sizeof(int)) + (has_offsets ? n : 0) +
         align_up(sort_temp_bytes(nnz, F)) + 256;
}

cudaError_t launch_sparse_decode_grad_weight(DType dtype, const void* grad_out, const void* values,
                                             const int64_t* indices, const int64_t* offsets, int64_t k, int64_t B,
                                             int64_t nnz, int64_t F, int64_t d, void* grad_weight, void* value_sum,
                                             void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (F == 0) return cudaSuccess;
  if (workspace_bytes < sparse_decode_grad_weight_workspace_bytes(nnz, F, offsets != nullptr))
    return cudaErrorInvalidValue;
  Workspace w = carve(workspace, nnz, F, offsets != nullptr);
  if (nnz > 0) {
    const int blocks = static_cast<int>((nnz + 255) / 256 < 65535 ? (nnz + 255) / 256 : 65535);
    fill_keys_kernel<<<blocks, 256, 0, stream>>>(indices, w.keys, w.ids, nnz);
    if (offsets) fill_rows_kernel<<<static_cast<unsigned>(B < 65535 ? B : 65535), 128, 0, stream>>>(offsets, w.rows, B);
    cudaError_t err = cub::DeviceRadixSort::SortPairs(w.sort_temp, w.sort_bytes, w.keys, w.sorted_keys, w.ids,
                                                      w.sorted_ids, static_cast<int>(nnz), 0, bits_for(F), stream);
    if (err != cudaSuccess) return err;
  }
  const int start_blocks = static_cast<int>((F + 1 + 255) / 256 < 65535 ? (F + 1 + 255) / 256 : 65535);
  latent_start_kernel<<<start_blocks, 256, 0, stream>>>(w.sorted_keys, nnz, w.start, F);
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    constexpr int kWide = 16 / sizeof(T);
    const auto* g = static_cast<const T*>(grad_out);
    const auto* v = static_cast<const T*>(values);
    auto* gw = static_cast<T*>(grad_weight);
    auto* vs = static_cast<T*>(value_sum);
    const int64_t chunks_wide = (d + kThreads * kWide - 1) / (kThreads * kWide);
    const int64_t chunks = (d + kThreads - 1) / kThreads;
    if (vector_width<T>(d, grad_out, grad_weight) == kWide)
      accumulate_kernel<T, kWide>
          <<<dim3(static_cast<unsigned>(F), static_cast<unsigned>(chunks_wide > 0 ? chunks_wide : 1)), kThreads, 0,
             stream>>>(g, v, w.sorted_ids, w.start, w.rows, k, d, gw, vs);
    else
      accumulate_kernel<T, 1>
          <<<dim3(static_cast<unsigned>(F), static_cast<unsigned>(chunks > 0 ? chunks : 1)), kThreads, 0, stream>>>(
              g, v, w.sorted_ids, w.start, w.rows, k, d, gw, vs);
    return 0;
  });
  return cudaGetLastError();
}

}  // namespace prismkit::cuda
