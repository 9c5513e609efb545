// The hot loops of the merge plans (merge_plan, pitome_energy, divprune_select), compiled once per
// instruction set (similarity_kernels_isa.cpp) and called through the table of the path in use
// (common/cpu_dispatch.h). Everything is float32: the plan ops normalize their metric into float32
// buffers first. Cosine similarities are computed a block at a time, never as a whole T x T matrix.
#pragma once

#include <cstdint>

#include "common/cpu_dispatch.h"

namespace prismkit::merge {

// Columns of a transposed operand (bT) and of a dots output are padded to a multiple of this, with
// zeros in bT's padding: the kernels compute whole vectors of columns.
constexpr int64_t kColumnPad = 64;
constexpr int64_t padded_columns(int64_t cols) { return (cols + kColumnPad - 1) / kColumnPad * kColumnPad; }

// Energy kernels f(s) of a cosine similarity s (ops/merge/__init__.py, pitome_energy).
enum class EnergyKernel : int { Elu = 0, Gaussian = 1, Paper = 2 };

struct SimilarityKernels {
  // out[i * ldo + j] = sum over k < d of a[i * lda + k] * bT[k * ldb + j], for i < rows and j < cols
  // rounded up to a whole vector pair (ldb, ldo >= that: padded_columns(cols) is enough on every
  // path, and so is any multiple of 32 >= cols; bT zero beyond cols).
  void (*dots)(const float* a, int64_t lda, int64_t rows, const float* bT, int64_t ldb, int64_t cols, int64_t d,
               float* out, int64_t ldo);
  // The sum over j < n of f(s[j]): Elu: elu(s - margin, alpha); Gaussian: exp(-((1 - s) / sigma)^2 / 2)
  // with sigma = 1 - margin (unscaled); Paper: s if s >= margin else alpha (exp(s - margin) - 1).
  // s holds whole vectors up to padded_columns(n); lanes at and beyond n are ignored.
  float (*energy_sum)(const float* s, int64_t n, EnergyKernel kernel, float margin, float alpha);
  // out[j] = sum over k < d of x[j * ldx + k] * y[k], for j < n (row-major rows: DivPrune's
  // distances from one picked token to all).
  void (*row_dots)(const float* x, int64_t ldx, int64_t n, const float* y, int64_t d, float* out);
};

PRISMKIT_ISA_DISPATCH(SimilarityKernels, similarity_kernels)

}  // namespace prismkit::merge
