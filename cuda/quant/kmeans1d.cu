// prismkit::kmeans1d's CUDA kernels: the dynamic program of csrc/quant/kmeans1d_cpu.cpp on the
// GPU. The divide and conquer on the monotone optimal split is run breadth-first: the middles of
// recursion level l depend only on levels < l (their split range lies between the optimal splits
// of the nearest computed points on each side), so each level is one launch with a block per
// middle; a block reduces over its range with the leftmost minimum, as the CPU kernel does.
#include "csrc/quant/kmeans1d_math.h"
#include "cuda/quant/kmeans1d.h"

#include <cfloat>

namespace prismkit::cuda {
namespace {

using prismkit::quant::previous_layer;
using prismkit::quant::segment_cost;

constexpr int kThreads = 128;
constexpr int64_t kMaxBlocks = 65535;

struct Best {
  double value;
  int64_t split;
};

__device__ bool better(const Best& a, const Best& b) {
  return a.value < b.value || (a.value == b.value && a.split < b.split);
}

// The block's leftmost minimum of D_{m-1}(j) + cost(j, i) over j in [jlo, jhi]; every thread
// returns it.
__device__ Best block_best(const double* P1, const double* P2, const double* prev, int64_t i, int64_t jlo,
                           int64_t jhi) {
  __shared__ double values[kThreads];
  __shared__ int64_t splits[kThreads];
  Best mine{DBL_MAX, jhi + 1};
  for (int64_t j = jlo + threadIdx.x; j <= jhi; j += blockDim.x) {
    const Best b{previous_layer(prev, P1, P2, j) + segment_cost(P1, P2, j, i), j};
    if (better(b, mine)) mine = b;
  }
  values[threadIdx.x] = mine.value;
  splits[threadIdx.x] = mine.split;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      const Best other{values[threadIdx.x + stride], splits[threadIdx.x + stride]};
      if (better(other, Best{values[threadIdx.x], splits[threadIdx.x]})) {
        values[threadIdx.x] = other.value;
        splits[threadIdx.x] = other.split;
      }
    }
    __syncthreads();
  }
  const Best result{values[0], splits[0]};
  __syncthreads();  // the shared arrays are reused by the caller's next call
  return result;
}

__global__ void layer_level_kernel(const double* P1, const double* P2, const double* prev, int64_t n, int64_t m,
                                   int level, int64_t nodes, double* cur, int64_t* split_at) {
  const int64_t row = blockIdx.y;
  const int64_t stride = n + 1;
  P1 += row * stride;
  P2 += row * stride;
  if (prev) prev += row * stride;
  cur += row * stride;
  split_at += row * stride;
  for (int64_t t = blockIdx.x; t < nodes; t += gridDim.x) {
    // descend from the root [m, n] along t's bits to this node's interval
    int64_t lo = m, hi = n;
    for (int s = level - 1; s >= 0 && lo <= hi; --s) {
      const int64_t mid = lo + (hi - lo) / 2;
      if ((t >> s) & 1)
        lo = mid + 1;
      else
        hi = mid - 1;
    }
    if (lo > hi) continue;  // an empty subtree (block-uniform: t is the block's)
    const int64_t mid = lo + (hi - lo) / 2;
    const int64_t jlo = lo - 1 >= m ? split_at[lo - 1] : m - 1;
    const int64_t jhi_bound = hi + 1 <= n ? split_at[hi + 1] : n - 1;
    const int64_t jhi = jhi_bound < mid - 1 ? jhi_bound : mid - 1;
    const Best b = block_best(P1, P2, prev, mid, jlo, jhi);
    if (threadIdx.x == 0) {
      cur[mid] = b.value;
      split_at[mid] = b.split;
    }
  }
}

__global__ void finish_kernel(const double* P1, const double* P2, const double* const* layers, const double* mean,
                              int64_t n, int64_t k, int64_t* splits, double* centers, double* boundaries) {
  const int64_t row = blockIdx.x;
  const int64_t stride = n + 1;
  P1 += row * stride;
  P2 += row * stride;
  splits += row * (k + 1);
  if (threadIdx.x == 0) {
    splits[0] = 0;
    splits[k] = n;
  }
  __syncthreads();
  for (int64_t m = k; m >= 2; --m) {
    const double* prev = m - 1 >= 2 ? layers[m - 1] + row * stride : nullptr;
    const int64_t end = splits[m];
    const Best b = block_best(P1, P2, prev, end, m - 1, end - 1);
    if (threadIdx.x == 0) splits[m - 1] = b.split;
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    for (int64_t c = 0; c < k; ++c) {
      const int64_t a = splits[c], b = splits[c + 1];
      centers[row * k + c] = (P1[b] - P1[a]) / static_cast<double>(b - a) + mean[row];
    }
    for (int64_t c = 0; c + 1 < k; ++c)
      boundaries[row * (k - 1) + c] = 0.5 * (centers[row * k + c] + centers[row * k + c + 1]);
  }
}

}  // namespace

cudaError_t launch_kmeans1d_layer(const double* P1, const double* P2, const double* prev, int64_t R, int64_t n,
                                  int64_t m, double* cur, int64_t* split_at, cudaStream_t stream) {
  // levels until every i in [m, n] is some level's middle: the tree over n - m + 1 points
  const int64_t points = n - m + 1;
  int levels = 0;
  while ((int64_t{1} << levels) - 1 < points) ++levels;
  for (int64_t r0 = 0; r0 < R; r0 += kMaxBlocks) {
    const int64_t rows = R - r0 < kMaxBlocks ? R - r0 : kMaxBlocks;
    const int64_t off = r0 * (n + 1);
    for (int level = 0; level < levels; ++level) {
      const int64_t nodes = int64_t{1} << level;
      const dim3 grid(static_cast<unsigned>(nodes < kMaxBlocks ? nodes : kMaxBlocks), static_cast<unsigned>(rows));
      layer_level_kernel<<<grid, kThreads, 0, stream>>>(P1 + off, P2 + off, prev ? prev + off : nullptr, n, m, level,
                                                        nodes, cur + off, split_at + off);
      const cudaError_t err = cudaGetLastError();
      if (err != cudaSuccess) return err;
    }
  }
  return cudaSuccess;
}

cudaError_t launch_kmeans1d_finish(const double* P1, const double* P2, const double* const* layers, const double* mean,
                                   int64_t R, int64_t n, int64_t k, int64_t* splits, double* centers,
                                   double* boundaries, cudaStream_t stream) {
  if (R == 0) return cudaSuccess;
  // rows on the grid's x axis (up to 2^31 - 1 blocks)
  finish_kernel<<<static_cast<unsigned>(R), kThreads, 0, stream>>>(P1, P2, layers, mean, n, k, splits, centers,
                                                                   boundaries);
  return cudaGetLastError();
}

}  // namespace prismkit::cuda
