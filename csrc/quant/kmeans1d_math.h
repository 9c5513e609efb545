// The arithmetic of exact 1-D k-means that the CPU kernel (kmeans1d_cpu.cpp) and the CUDA kernel
// (cuda/quant/kmeans1d.cu) share, torch-free. A row's values are sorted and centered (its mean
// subtracted, which keeps the prefix sums' cancellation small), and P1, P2 are the prefix sums of
// the centered values and their squares in float64 (P[0] = 0, P[i] = sum of the first i).
#pragma once

#include <cstdint>

#include "csrc/common/host_device.h"

namespace prismkit::quant {

// Sum of squared deviations from their mean of sorted values [a, b), a < b.
PRISMKIT_HD double segment_cost(const double* P1, const double* P2, int64_t a, int64_t b) {
  const double s = P1[b] - P1[a];
  const double c = (P2[b] - P2[a]) - s * s / static_cast<double>(b - a);
  return c > 0 ? c : 0;  // rounding can leave a tiny negative for equal values
}

// The dynamic program's layers: D_1(i) = segment_cost(0, i) (the first i values in one cluster),
// D_m(i) = min over j of D_{m-1}(j) + segment_cost(j, i), j in [m-1, i-1] (every cluster non-empty).
// `prev` holds D_{m-1} for m-1 >= 2; null for D_1, which is computed from the prefix sums.
PRISMKIT_HD double previous_layer(const double* prev, const double* P1, const double* P2, int64_t j) {
  return prev ? prev[j] : segment_cost(P1, P2, 0, j);
}

}  // namespace prismkit::quant
