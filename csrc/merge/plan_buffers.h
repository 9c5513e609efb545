// What the plan ops (merge_plan, pitome_energy, divprune_select) share on the CPU: one image's
// metric rows normalized into float32 buffers (row-major, and transposed with padded columns for
// similarity_kernels' dots), the energy of every row, and the orders the plans sort by.
#pragma once

#include "merge/similarity_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

namespace prismkit::merge {

// 1 / max(||row||, 1e-12): F.normalize's scale (eps 1e-12) of a row of d floats.
inline float inverse_norm(const float* row, int64_t d) {
  float sq = 0;
  similarity_kernels().row_dots(row, d, 1, row, d, &sq);
  return 1.0f / std::max(std::sqrt(sq), 1e-12f);
}

// rows[i] = src[i] * inverse_norm(src[i]) for i < n; d floats per row.
inline void normalize_rows(const float* src, int64_t n, int64_t d, float* rows) {
  for (int64_t i = 0; i < n; ++i) {
    const float scale = inverse_norm(src + i * d, d);
    for (int64_t k = 0; k < d; ++k) rows[i * d + k] = src[i * d + k] * scale;
  }
}

// bT[k * ldb + j] = rows[idx[j] * d + k] for j < n (idx null: j), zero for n <= j < ldb.
inline void transpose_rows(const float* rows, const int64_t* idx, int64_t n, int64_t d, float* bT, int64_t ldb) {
  for (int64_t k = 0; k < d; ++k) std::fill(bT + k * ldb + n, bT + (k + 1) * ldb, 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const float* row = rows + (idx ? idx[j] : j) * d;
    for (int64_t k = 0; k < d; ++k) bT[k * ldb + j] = row[k];
  }
}

constexpr int64_t kEnergyRowBlock = 64;  // rows of similarities held at once: 64 x padded T floats

// One image's normalized rows (rows [T, d]; rowsT = transpose_rows of them, ldb = padded_columns(T)):
// energy[i] = the mean over j < T of f(cos(i, j)) (similarity_kernels.h), Gaussian scaled by
// 1 / (sigma sqrt(2 pi)). block: kEnergyRowBlock * ldb floats of scratch.
inline void image_energy(const float* rows, const float* rowsT, int64_t T, int64_t d, EnergyKernel kernel, float margin,
                         float alpha, float* energy, float* block) {
  const SimilarityKernels& k = similarity_kernels();
  const int64_t ldb = padded_columns(T);
  const float scale = kernel == EnergyKernel::Gaussian
                          ? static_cast<float>(1.0 / (T * (1.0 - margin) * std::sqrt(2.0 * M_PI)))
                          : 1.0f / static_cast<float>(T);
  for (int64_t i0 = 0; i0 < T; i0 += kEnergyRowBlock) {
    const int64_t n = std::min(kEnergyRowBlock, T - i0);
    k.dots(rows + i0 * d, d, n, rowsT, ldb, T, d, block, ldb);
    for (int64_t i = 0; i < n; ++i) energy[i0 + i] = k.energy_sum(block + i * ldb, T, kernel, margin, alpha) * scale;
  }
}

// Indices that sort values descending, ties (and NaN among NaN) in ascending index order; NaN
// first, as torch.sort(descending=True, stable=True) orders them.
inline void descending_order(const float* values, int64_t n, int64_t* order) {
  std::iota(order, order + n, int64_t(0));
  std::stable_sort(order, order + n, [values](int64_t a, int64_t b) {
    const float va = values[a], vb = values[b];
    if (std::isnan(va)) return !std::isnan(vb);
    return va > vb;
  });
}

}  // namespace prismkit::merge
