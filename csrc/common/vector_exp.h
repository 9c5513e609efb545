// exp over a vector of floats for the *_isa.cpp kernels (common/isa_config.h: one compilation per
// instruction set), written with GCC vector extensions so every path gets SIMD code: the softmax
// of cswin's windows and the Gaussian falloff of splat's compositing share it.
#pragma once

#include "common/isa_config.h"

namespace prismkit::isa {
namespace {

typedef int32_t VecI __attribute__((vector_size(kVectorBytes)));  // 32-bit ints at the path's width

// exp(x) = 2^n * exp(r), n = round(x / ln 2), a degree-6 polynomial for exp(r) (Cephes expf, about
// 1 ulp). Below -87 the result is 0 (true exp is denormal there); NaN stays NaN. For x <= 88.
PRISMKIT_INLINE VecF exp_vec(VecF x) {
  const VecF xc = x < -87.0f ? VecF{} - 87.0f : x;
  const VecF n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const VecF r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  VecF p = VecF{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const VecI bits = (__builtin_convertvector(n, VecI) + 127) << 23;
  VecF e = p * reinterpret_cast<const VecF&>(bits);
  e = x < -87.0f ? VecF{} : e;
  return x != x ? x : e;
}

}  // namespace
}  // namespace prismkit::isa
