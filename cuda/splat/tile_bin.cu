// prismkit::tile_bin on CUDA, gsplat's isect_tiles and isect_offset_encode:
//   1. count the tiles of each (camera, Gaussian) pair, then cub's inclusive sum of the counts;
//   2. (after the caller reads M) each pair writes its keys (camera * tiles + tile) << 32 | depth
//      bits and values (its pair index) at its offset, in pair order;
//   3. cub's stable radix sort over just the bits the keys use;
//   4. each tile's offset is a binary search (lower bound) in the sorted keys.
#include "cuda/common/device_math.cuh"
#include "cuda/splat/splat_math.cuh"
#include "cuda/splat/tile_bin.h"

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

namespace prismkit::cuda {
namespace {

using namespace splat;

constexpr int kThreads = 256;

size_t align_up(size_t n) { return (n + 255) & ~size_t(255); }

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

// Bits of the (camera, tile) part of the keys.
int bits_for(int64_t n) {
  int bits = 1;
  while ((int64_t(1) << bits) < n) ++bits;
  return bits;
}

struct TileRange {
  int32_t x0, x1, y0, y1;  // half-open
};

// gsplat's rule, as csrc/splat/tile_range.h: [floor(m / t - r / t), ceil(m / t + r / t)) on each
// axis in the accumulation type, clamped to the grid; nothing for radius 0 or a non-finite mean.
template <typename A>
__device__ __forceinline__ TileRange tile_range(A mx, A my, int32_t radius, int64_t tile_size, int64_t tiles_x,
                                                int64_t tiles_y) {
  TileRange t{0, 0, 0, 0};
  if (radius <= 0 || !finite_(mx) || !finite_(my)) return t;
  const A ts = static_cast<A>(tile_size), r = static_cast<A>(radius) / ts;
  const A tx = mx / ts, ty = my / ts;
  auto clamp = [](A v, int64_t hi) {
    const A h = static_cast<A>(hi);
    return static_cast<int32_t>(v < A(0) ? A(0) : (h < v ? h : v));
  };
  t.x0 = clamp(floor_(tx - r), tiles_x);
  t.x1 = clamp(ceil_(tx + r), tiles_x);
  t.y0 = clamp(floor_(ty - r), tiles_y);
  t.y1 = clamp(ceil_(ty + r), tiles_y);
  return t;
}

__device__ __forceinline__ int64_t tile_count(const TileRange& t) {
  const int64_t w = t.x1 > t.x0 ? t.x1 - t.x0 : 0, h = t.y1 > t.y0 ? t.y1 - t.y0 : 0;
  return w * h;
}

template <typename T>
__global__ void count_kernel(const T* __restrict__ means2d, const int32_t* __restrict__ radii, int64_t pairs,
                             int64_t tile_size, int64_t tiles_x, int64_t tiles_y, int64_t* __restrict__ counts) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= pairs) return;
  counts[i] =
      tile_count(tile_range(to_acc(means2d[i * 2]), to_acc(means2d[i * 2 + 1]), radii[i], tile_size, tiles_x, tiles_y));
}

template <typename T>
__global__ void emit_kernel(const T* __restrict__ means2d, const int32_t* __restrict__ radii,
                            const T* __restrict__ depths, int64_t N, int64_t pairs, int64_t tile_size, int64_t tiles_x,
                            int64_t tiles_y, const int64_t* __restrict__ cum_counts, uint64_t* __restrict__ keys,
                            int32_t* __restrict__ values) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= pairs) return;
  const TileRange t =
      tile_range(to_acc(means2d[i * 2]), to_acc(means2d[i * 2 + 1]), radii[i], tile_size, tiles_x, tiles_y);
  const int64_t count = tile_count(t);
  if (count == 0) return;
  int64_t at = cum_counts[i] - count;
  // depths of kept pairs are > near_plane > 0, so their float bits sort as the floats do
  const uint64_t depth_bits = __float_as_uint(static_cast<float>(to_acc(depths[i])));
  const uint64_t base = static_cast<uint64_t>(i / N) * static_cast<uint64_t>(tiles_x * tiles_y);
  for (int32_t y = t.y0; y < t.y1; ++y)
    for (int32_t x = t.x0; x < t.x1; ++x, ++at) {
      keys[at] = ((base + static_cast<uint64_t>(y) * tiles_x + x) << 32) | depth_bits;
      values[at] = static_cast<int32_t>(i);
    }
}

__global__ void offsets_kernel(const uint64_t* __restrict__ sorted_keys, int64_t M, int32_t* __restrict__ tile_offsets,
                               int64_t all_tiles) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (k >= all_tiles) return;
  int64_t lo = 0, hi = M;  // first position whose tile is >= k
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (static_cast<int64_t>(sorted_keys[mid] >> 32) < k)
      lo = mid + 1;
    else
      hi = mid;
  }
  tile_offsets[k] = static_cast<int32_t>(lo);
}

size_t scan_temp_bytes(int64_t pairs) {
  size_t bytes = 0;
  cub::DeviceScan::InclusiveSum(nullptr, bytes, static_cast<int64_t*>(nullptr), static_cast<int>(pairs));
  return bytes;
}

size_t sort_temp_bytes(int64_t M, int end_bit) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint64_t*>(nullptr),
                                  static_cast<uint64_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                  static_cast<int32_t*>(nullptr), static_cast<int>(M), 0, end_bit);
  return bytes;
}

}  // namespace

size_t tile_bin_count_workspace_bytes(int64_t pairs) { return pairs > 0 ? align_up(scan_temp_bytes(pairs)) : 0; }

cudaError_t launch_tile_bin_count(DType dtype, const void* means2d, const int32_t* radii, int64_t pairs,
                                  int64_t tile_size, int64_t tiles_x, int64_t tiles_y, int64_t* cum_counts,
                                  void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (pairs == 0) return cudaSuccess;
  if (workspace_bytes < tile_bin_count_workspace_bytes(pairs)) return cudaErrorInvalidValue;
  dispatch_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    count_kernel<T><<<blocks_for(pairs), kThreads, 0, stream>>>(static_cast<const T*>(means2d), radii, pairs, tile_size,
                                                                tiles_x, tiles_y, cum_counts);
    return 0;
  });
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  size_t bytes = workspace_bytes;
  return cub::DeviceScan::InclusiveSum(workspace, bytes, cum_counts, static_cast<int>(pairs), stream);
}

size_t tile_bin_workspace_bytes(int64_t M, int64_t all_tiles) {
  if (M == 0) return 0;
  const size_t keys = align_up(static_cast<size_t>(M) * sizeof(uint64_t));
  const size_t values = align_up(static_cast<size_t>(M) * sizeof(int32_t));
  return 2 * keys + values + align_up(sort_temp_bytes(M, 32 + bits_for(all_tiles)));
}

cudaError_t launch_tile_bin(DType dtype, const void* means2d, const int32_t* radii, const void* depths, int64_t C,
                            int64_t N, int64_t tile_size, int64_t tiles_x, int64_t tiles_y, const int64_t* cum_counts,
                            int64_t M, int32_t* tile_offsets, int32_t* flatten_ids, void* workspace,
                            size_t workspace_bytes, cudaStream_t stream) {
  const int64_t all_tiles = C * tiles_x * tiles_y;
  if (all_tiles == 0) return cudaSuccess;
  if (workspace_bytes < tile_bin_workspace_bytes(M, all_tiles)) return cudaErrorInvalidValue;
  uint64_t* sorted_keys = nullptr;
  if (M > 0) {
    char* p = static_cast<char*>(workspace);
    const size_t key_bytes = align_up(static_cast<size_t>(M) * sizeof(uint64_t));
    uint64_t* keys = reinterpret_cast<uint64_t*>(p);
    sorted_keys = reinterpret_cast<uint64_t*>(p + key_bytes);
    int32_t* values = reinterpret_cast<int32_t*>(p + 2 * key_bytes);
    void* sort_temp = p + 2 * key_bytes + align_up(static_cast<size_t>(M) * sizeof(int32_t));
    const int end_bit = 32 + bits_for(all_tiles);
    size_t sort_bytes = sort_temp_bytes(M, end_bit);
    dispatch_dtype(dtype, [&](auto zero) {
      using T = decltype(zero);
      emit_kernel<T><<<blocks_for(C * N), kThreads, 0, stream>>>(static_cast<const T*>(means2d), radii,
                                                                 static_cast<const T*>(depths), N, C * N, tile_size,
                                                                 tiles_x, tiles_y, cum_counts, keys, values);
      return 0;
    });
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    err = cub::DeviceRadixSort::SortPairs(sort_temp, sort_bytes, keys, sorted_keys, values, flatten_ids,
                                          static_cast<int>(M), 0, end_bit, stream);
    if (err != cudaSuccess) return err;
  }
  offsets_kernel<<<blocks_for(all_tiles), kThreads, 0, stream>>>(sorted_keys, M, tile_offsets, all_tiles);
  return cudaGetLastError();
}

}  // namespace prismkit::cuda
