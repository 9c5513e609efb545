// Launches of prismkit::kmeans1d's CUDA kernels (torch-free; glue in csrc/quant/kmeans1d_cuda.cpp,
// which sorts the rows, centers them and forms the float64 prefix sums P1, P2 [R, n+1] with ATen).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace prismkit::cuda {

// One layer of the dynamic program, D_m(i) for i in [m, n] of every row, by the divide and conquer
// of the CPU kernel run level by level: level l computes the 2^l middles of its recursion tree, one
// block per middle reducing over its split range, which the earlier levels' optimal splits bound.
// prev: D_{m-1} [R, n+1] (nullptr for m = 2: D_1 comes from the prefix sums). cur: D_m [R, n+1];
// split_at [R, n+1]: scratch, the optimal split of every computed i.
cudaError_t launch_kmeans1d_layer(const double* P1, const double* P2, const double* prev, int64_t R, int64_t n,
                                  int64_t m, double* cur, int64_t* split_at, cudaStream_t stream);

// The splits of the optimal partition into k clusters (one block per row, a reduction per layer,
// from the stored layers: layers[m] = D_m for m in [2, k-1], a device array of k pointers) and the
// clusters' centers [R, k] (the means, ascending, plus the row mean) and boundaries [R, k-1].
// splits: scratch [R, k+1].
cudaError_t launch_kmeans1d_finish(const double* P1, const double* P2, const double* const* layers, const double* mean,
                                   int64_t R, int64_t n, int64_t k, int64_t* splits, double* centers,
                                   double* boundaries, cudaStream_t stream);

}  // namespace prismkit::cuda
