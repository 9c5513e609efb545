// similarity_kernels.h for one instruction set (common/isa_config.h). dots is a register-tiled
// outer product: each step over k broadcasts one element of kRows rows of a and multiplies it
// into two vectors of bT's row k, so a tile of kRows x 2 vectors of accumulators stays in
// registers for the whole k loop (a metric of d = 64 gives 64 multiply-adds per output per load of
// the tile). energy_sum applies the energy kernel a vector at a time (common/vector_exp.h's exp).
#include "common/isa_config.h"
#include "common/vector_exp.h"
#include "merge/similarity_kernels.h"

namespace prismkit::merge {
namespace {

using isa::kLanes;
using isa::load;
using isa::store;
using isa::VecF;

constexpr int64_t L = kLanes<float>;
// kRows x 2 accumulators, two vectors of bT and a broadcast: 19 of 32 registers (AVX-512, NEON),
// 15 of 16 (AVX2, SSE2: 12 accumulators, so the 4-cycle FMA latency of two FMA ports stays hidden;
// with 4 rows AVX2 ran the DivPrune case at half of AVX-512's rate on the same processor).
constexpr int kRows = isa::kVectorRegisters >= 32 ? 8 : 6;
static_assert(kColumnPad % (2 * L) == 0 && 32 % (2 * L) == 0, "pads of 32 and kColumnPad hold whole vector pairs");

template <int R>
PRISMKIT_INLINE void dots_tile(const float* const* ar, const float* bT, int64_t ldb, int64_t d, float* const* outr) {
  VecF acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = VecF{};
  for (int64_t k = 0; k < d; ++k) {
    const VecF b0 = load(bT + k * ldb), b1 = load(bT + k * ldb + L);
    for (int r = 0; r < R; ++r) {
      const VecF av = VecF{} + ar[r][k];
      acc0[r] += av * b0;
      acc1[r] += av * b1;
    }
  }
  for (int r = 0; r < R; ++r) {
    if (outr[r] == nullptr) continue;
    store(outr[r], acc0[r]);
    store(outr[r] + L, acc1[r]);
  }
}

void dots(const float* a, int64_t lda, int64_t rows, const float* bT, int64_t ldb, int64_t cols, int64_t d, float* out,
          int64_t ldo) {
  const int64_t cols_v = (cols + 2 * L - 1) / (2 * L) * (2 * L);
  for (int64_t i0 = 0; i0 < rows; i0 += kRows) {
    const float* ar[kRows];
    float* outr[kRows];
    for (int r = 0; r < kRows; ++r) {
      const bool valid = i0 + r < rows;
      ar[r] = a + (valid ? i0 + r : rows - 1) * lda;  // a missing row repeats the last, unstored
      outr[r] = valid ? out + (i0 + r) * ldo : nullptr;
    }
    for (int64_t j = 0; j < cols_v; j += 2 * L) {
      float* o[kRows];
      for (int r = 0; r < kRows; ++r) o[r] = outr[r] ? outr[r] + j : nullptr;
      dots_tile<kRows>(ar, bT + j, ldb, d, o);
    }
  }
}

PRISMKIT_INLINE VecF energy_vec(VecF s, EnergyKernel kernel, float margin, float alpha) {
  if (kernel == EnergyKernel::Elu) {
    const VecF x = s - margin;
    return x > 0.0f ? x : alpha * (isa::exp_vec(x) - 1.0f);
  }
  if (kernel == EnergyKernel::Gaussian) {
    const VecF z = (1.0f - s) * (1.0f / (1.0f - margin));
    return isa::exp_vec(-0.5f * z * z);
  }
  return s >= margin ? s : alpha * (isa::exp_vec(s - margin) - 1.0f);
}

float energy_sum(const float* s, int64_t n, EnergyKernel kernel, float margin, float alpha) {
  VecF acc = VecF{}, lane;
  for (int64_t l = 0; l < L; ++l) lane[l] = static_cast<float>(l);
  for (int64_t j = 0; j < n; j += L) {
    const VecF f = energy_vec(load(s + j), kernel, margin, alpha);
    acc += lane < static_cast<float>(n - j) ? f : VecF{};
  }
  float total = 0;
  for (int64_t l = 0; l < L; ++l) total += acc[l];
  return total;
}

void row_dots(const float* x, int64_t ldx, int64_t n, const float* y, int64_t d, float* out) {
  constexpr int kR = 4;
  const int64_t dv = d / L * L;
  for (int64_t j0 = 0; j0 < n; j0 += kR) {
    const int64_t rows = n - j0 < kR ? n - j0 : kR;
    VecF acc[kR];
    for (int r = 0; r < kR; ++r) acc[r] = VecF{};
    const float* xr[kR];
    for (int r = 0; r < kR; ++r) xr[r] = x + (j0 + (r < rows ? r : 0)) * ldx;
    for (int64_t k = 0; k < dv; k += L) {
      const VecF yv = load(y + k);
      for (int r = 0; r < kR; ++r) acc[r] += load(xr[r] + k) * yv;
    }
    for (int64_t r = 0; r < rows; ++r) {
      float total = 0;
      for (int64_t l = 0; l < L; ++l) total += acc[r][l];
      for (int64_t k = dv; k < d; ++k) total += xr[r][k] * y[k];
      out[j0 + r] = total;
    }
  }
}

const SimilarityKernels kTable = {&dots, &energy_sum, &row_dots};

}  // namespace

const SimilarityKernels& PRISMKIT_ISA_TABLE(similarity_kernels)() { return kTable; }

}  // namespace prismkit::merge
