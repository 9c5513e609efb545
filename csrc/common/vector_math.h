// Small dense vector kernels for the CPU ops (float and double). They are compiled once
// per instruction set (AVX-512, AVX2+FMA, baseline x86-64) and picked at load time by the
// CPU the library runs on, so the wheel stays portable.
#pragma once

#include <cstdint>

#include "common/clones.h"

namespace prismkit {

// y[0:n] += a * x[0:n]
void axpy(float a, const float* x, float* y, int64_t n);
void axpy(double a, const double* x, double* y, int64_t n);

// out[0:d] += sum over p < n of vals[p] * rows[idx[p] * d : idx[p] * d + d]: a weighted sum of
// gathered rows, accumulated in registers over 128-float column chunks (one pass over out).
// Rows a few entries ahead are prefetched, reading idx up to n_valid >= n (the caller's next
// entries, so the prefetching runs on across calls).
void gather_axpy(const float* rows, int64_t d, const int64_t* idx, const float* vals, int64_t n, int64_t n_valid,
                 float* out);
void gather_axpy(const double* rows, int64_t d, const int64_t* idx, const double* vals, int64_t n, int64_t n_valid,
                 double* out);

// out[0:d] = sum over p < n of vals[p] * rows[idx[p] * d : idx[p] * d + d] (written without
// reading out), and, when w is given, dots[p] = rows[idx[p]] . w[0:d] in the same pass.
void gather_sum(const float* rows, int64_t d, const int64_t* idx, const float* vals, int64_t n, int64_t n_valid,
                const float* w, float* dots, float* out);
void gather_sum(const double* rows, int64_t d, const int64_t* idx, const double* vals, int64_t n, int64_t n_valid,
                const double* w, double* dots, double* out);

// sum of a[i] * b[i]
float dot(const float* a, const float* b, int64_t n);
double dot(const double* a, const double* b, int64_t n);

// The first i with !(p[i] <= w) (a larger value, or a NaN on either side), or n if none.
int64_t first_not_at_most(const float* p, int64_t n, float w);
int64_t first_not_at_most(const double* p, int64_t n, double w);

// Asks for the n elements at p to be brought into the cache (L2), one request per 64-byte line:
// gathered rows are far apart in memory, so the hardware prefetcher cannot guess them.
template <typename T>
PRISMKIT_INLINE void prefetch_row(const T* p, int64_t n) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t at = 0; at < n * int64_t(sizeof(T)); at += 64) __builtin_prefetch(c + at, 0, 2);
}

}  // namespace prismkit
