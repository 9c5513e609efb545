// The per-(Gaussian, pixel) vector work of CPU compositing over the D feature channels, compiled
// once per instruction set (composite_kernels_isa.cpp) and called through the table of the path
// in use (common/cpu_dispatch.h). D is a run-time value: full vectors, then a masked-free scalar
// tail, so any width works without padding.
#pragma once

#include <cstdint>

#include "common/cpu_dispatch.h"

namespace prismkit::splat {

struct CompositeKernels {
  // out[0:D] += w * f[0:D]
  void (*axpy_f)(float w, const float* f, float* out, int64_t D);
  void (*axpy_d)(double w, const double* f, double* out, int64_t D);
  // One step of the back-to-front walk, for Gaussian i at pixel p with dL/dC = g:
  //   returns (f - acc) . g;  then grad_f += w * g;  acc = alpha * f + (1 - alpha) * acc
  // (acc: the features of the Gaussians behind i, normalized by the transmittance after i).
  float (*backward_step_f)(const float* f, const float* g, float* acc, float* grad_f, float w, float alpha,
                           int64_t D);
  double (*backward_step_d)(const double* f, const double* g, double* acc, double* grad_f, double w, double alpha,
                            int64_t D);
};

PRISMKIT_ISA_DISPATCH(CompositeKernels, composite_kernels)

inline void axpy(float w, const float* f, float* out, int64_t D) { composite_kernels().axpy_f(w, f, out, D); }
inline void axpy(double w, const double* f, double* out, int64_t D) { composite_kernels().axpy_d(w, f, out, D); }
inline float backward_step(const float* f, const float* g, float* acc, float* grad_f, float w, float alpha,
                           int64_t D) {
  return composite_kernels().backward_step_f(f, g, acc, grad_f, w, alpha, D);
}
inline double backward_step(const double* f, const double* g, double* acc, double* grad_f, double w, double alpha,
                            int64_t D) {
  return composite_kernels().backward_step_d(f, g, acc, grad_f, w, alpha, D);
}

}  // namespace prismkit::splat
