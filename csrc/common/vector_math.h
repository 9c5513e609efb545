// Small dense vector kernels for the CPU ops (float and double), compiled once per instruction
// set in vector_math_isa.cpp and called through the table of the path in use (common/cpu_dispatch.h).
#pragma once

#include <cstdint>

#include "common/cpu_dispatch.h"

namespace prismkit {

struct VectorMath {
  void (*gather_axpy_f)(const float*, int64_t, const int64_t*, const float*, int64_t, int64_t, float*);
  void (*gather_axpy_d)(const double*, int64_t, const int64_t*, const double*, int64_t, int64_t, double*);
  void (*gather_sum_f)(const float*, int64_t, const int64_t*, const float*, int64_t, int64_t, const float*, float*,
                       float*);
  void (*gather_sum_d)(const double*, int64_t, const int64_t*, const double*, int64_t, int64_t, const double*, double*,
                       double*);
  float (*dot_f)(const float*, const float*, int64_t);
  double (*dot_d)(const double*, const double*, int64_t);
  int64_t (*first_not_at_most_f)(const float*, int64_t, float);
  int64_t (*first_not_at_most_d)(const double*, int64_t, double);
};

PRISMKIT_ISA_DISPATCH(VectorMath, vector_math)

// out[0:d] += sum over p < n of vals[p] * rows[idx[p] * d : idx[p] * d + d]: a weighted sum of
// gathered rows, accumulated in registers over column chunks (one pass over out). Rows a few
// entries ahead are prefetched, reading idx up to n_valid >= n (the caller's next entries, so the
// prefetching runs on across calls).
inline void gather_axpy(const float* rows, int64_t d, const int64_t* idx, const float* vals, int64_t n, int64_t n_valid,
                        float* out) {
  vector_math().gather_axpy_f(rows, d, idx, vals, n, n_valid, out);
}
inline void gather_axpy(const double* rows, int64_t d, const int64_t* idx, const double* vals, int64_t n,
                        int64_t n_valid, double* out) {
  vector_math().gather_axpy_d(rows, d, idx, vals, n, n_valid, out);
}

// out[0:d] = sum over p < n of vals[p] * rows[idx[p] * d : idx[p] * d + d] (written without
// reading out), and, when w is given, dots[p] = rows[idx[p]] . w[0:d] in the same pass.
inline void gather_sum(const float* rows, int64_t d, const int64_t* idx, const float* vals, int64_t n, int64_t n_valid,
                       const float* w, float* dots, float* out) {
  vector_math().gather_sum_f(rows, d, idx, vals, n, n_valid, w, dots, out);
}
inline void gather_sum(const double* rows, int64_t d, const int64_t* idx, const double* vals, int64_t n,
                       int64_t n_valid, const double* w, double* dots, double* out) {
  vector_math().gather_sum_d(rows, d, idx, vals, n, n_valid, w, dots, out);
}

// sum of a[i] * b[i]
inline float dot(const float* a, const float* b, int64_t n) { return vector_math().dot_f(a, b, n); }
inline double dot(const double* a, const double* b, int64_t n) { return vector_math().dot_d(a, b, n); }

// The first i with !(p[i] <= w) (a larger value, or a NaN on either side), or n if none.
inline int64_t first_not_at_most(const float* p, int64_t n, float w) {
  return vector_math().first_not_at_most_f(p, n, w);
}
inline int64_t first_not_at_most(const double* p, int64_t n, double w) {
  return vector_math().first_not_at_most_d(p, n, w);
}

}  // namespace prismkit
