// prismkit::quant_linear's hot loops for one instruction set (see common/isa_config.h): the
// dequantization of a row into float32 (unpack, then per lane a select among the group's clusters'
// scale and zero and one multiply-add, all vectorized by the compiler at this path's width) and the
// dot products of up to four dequantized rows with each input row (x loaded once for the four).
#include "common/isa_config.h"
#include "quant/quant_linear_kernels.h"

namespace prismkit::quant {
namespace {

using isa::kLanes;

template <int BITS, int CLUSTERS>
PRISMKIT_INLINE void dequantize_groups(const uint8_t* __restrict codes, const uint8_t* __restrict ids,
                                       const float* __restrict scales, const float* __restrict zeros, int64_t K,
                                       int64_t group_size, float* __restrict w) {
  constexpr int per = 8 / BITS;
  constexpr uint32_t mask = (1u << BITS) - 1;
  const int64_t groups = K / group_size;
  for (int64_t gi = 0; gi < groups; ++gi) {
    const float* s = scales + gi * CLUSTERS;
    const float* z = zeros + gi * CLUSTERS;
    const float s0 = s[0], z0 = z[0];
    const float s1 = CLUSTERS > 1 ? s[1] : 0.f, z1 = CLUSTERS > 1 ? z[1] : 0.f;
    const float s2 = CLUSTERS > 2 ? s[2] : 0.f, z2 = CLUSTERS > 2 ? z[2] : 0.f;
    const float s3 = CLUSTERS > 3 ? s[3] : 0.f, z3 = CLUSTERS > 3 ? z[3] : 0.f;
    const int64_t k0 = gi * group_size;
    for (int64_t k = k0; k < k0 + group_size; ++k) {
      const float q = static_cast<float>((codes[k / per] >> ((k % per) * BITS)) & mask);
      if constexpr (CLUSTERS == 1) {
        w[k] = q * s0 + z0;
      } else {
        const uint32_t c = (ids[k >> 2] >> ((k & 3) * 2)) & 3u;
        // ids at or above CLUSTERS read as the last cluster (no table lookup out of range)
        float sc = s0, zc = z0;
        if (c >= 1) sc = s1, zc = z1;
        if (CLUSTERS > 2 && c >= 2) sc = s2, zc = z2;
        if (CLUSTERS > 3 && c >= 3) sc = s3, zc = z3;
        w[k] = q * sc + zc;
      }
    }
  }
}

template <int BITS>
void dequantize_bits(const uint8_t* codes, const uint8_t* ids, const float* scales, const float* zeros, int64_t K,
                     int64_t group_size, int clusters, float* w) {
  switch (ids ? clusters : 1) {
    case 1: return dequantize_groups<BITS, 1>(codes, ids, scales, zeros, K, group_size, w);
    case 2: return dequantize_groups<BITS, 2>(codes, ids, scales, zeros, K, group_size, w);
    case 3: return dequantize_groups<BITS, 3>(codes, ids, scales, zeros, K, group_size, w);
    default: return dequantize_groups<BITS, 4>(codes, ids, scales, zeros, K, group_size, w);
  }
}

void dequantize_row(const uint8_t* codes, const uint8_t* ids, const float* scales, const float* zeros, int64_t K,
                    int bits, int64_t group_size, int clusters, float* w) {
  switch (bits) {
    case 2: return dequantize_bits<2>(codes, ids, scales, zeros, K, group_size, clusters, w);
    case 4: return dequantize_bits<4>(codes, ids, scales, zeros, K, group_size, clusters, w);
    default: return dequantize_bits<8>(codes, ids, scales, zeros, K, group_size, clusters, w);
  }
}

// R rows at once: each x element is loaded once for the R products. Independent partial sums (a
// vector's worth per row) let the compiler vectorize without reassociating one sum.
template <int R>
PRISMKIT_INLINE void dot_block(const float* __restrict x, const float* __restrict w, int64_t K, float* out) {
  constexpr int64_t L = kLanes<float>;
  float acc[R][L] = {};
  int64_t k = 0;
  for (; k + L <= K; k += L)
    for (int r = 0; r < R; ++r)
      for (int64_t l = 0; l < L; ++l) acc[r][l] += x[k + l] * w[r * K + k + l];
  for (int r = 0; r < R; ++r) {
    float s = 0;
    for (int64_t kk = k; kk < K; ++kk) s += x[kk] * w[r * K + kk];
    for (int64_t l = 0; l < L; ++l) s += acc[r][l];
    out[r] = s;
  }
}

void dot_rows(const float* x, int64_t ldx, int64_t B, const float* w, int64_t R, int64_t K, float* y, int64_t ldy) {
  for (int64_t b = 0; b < B; ++b) {
    float out[4];
    const float* xb = x + b * ldx;
    switch (R) {
      case 4: dot_block<4>(xb, w, K, out); break;
      case 3: dot_block<3>(xb, w, K, out); break;
      case 2: dot_block<2>(xb, w, K, out); break;
      default: dot_block<1>(xb, w, K, out); break;
    }
    for (int64_t r = 0; r < R; ++r) y[b * ldy + r] = out[r];
  }
}

constexpr QuantLinearKernels kTable{&dequantize_row, &dot_rows};

}  // namespace

const QuantLinearKernels& PRISMKIT_ISA_TABLE(quant_linear_kernels)() { return kTable; }

}  // namespace prismkit::quant
