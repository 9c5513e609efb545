// The hot loops of prismkit::quant_linear on the CPU, compiled once per instruction set
// (quant_linear_isa.cpp; dispatch: common/cpu_dispatch.h). Torch-free.
#pragma once

#include <cstdint>

#include "common/cpu_dispatch.h"

namespace prismkit::quant {

// The storage type of the scales and zeros.
enum class MetaType : int { Float32 = 0, Float16 = 1, BFloat16 = 2 };

struct QuantLinearKernels {
  // w[k] = q_k * scales[(k / group_size) * clusters + c_k] + zeros[same] for one row of K weights:
  // codes packed 8 / bits per byte, cluster ids (nullptr: one cluster) four per byte, the first
  // value in the lowest bits; ids at or above `clusters` read as the last cluster. float32 math
  // (may fuse the multiply-add).
  // scales / zeros: the row's [groups, clusters] values stored as `meta`.
  void (*dequantize_row)(const uint8_t* codes, const uint8_t* ids, const void* scales, const void* zeros, MetaType meta,
                         int64_t K, int bits, int64_t group_size, int clusters, float* w);
  // The dot product of one row's dequantized weights (as dequantize_row) with x [K], without
  // storing them (batch 1).
  float (*dot_row)(const uint8_t* codes, const uint8_t* ids, const void* scales, const void* zeros, MetaType meta,
                   int64_t K, int bits, int64_t group_size, int clusters, const float* x);
  // y[b * ldy + r] = sum_k x[b * ldx + k] * w[r * K + k] for b < B and r < R (R <= 4).
  void (*dot_rows)(const float* x, int64_t ldx, int64_t B, const float* w, int64_t R, int64_t K, float* y, int64_t ldy);
};

PRISMKIT_ISA_DISPATCH(QuantLinearKernels, quant_linear_kernels)

}  // namespace prismkit::quant
