#include "common/vector_math.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PRISMKIT_CLONES __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#else
#define PRISMKIT_CLONES
#endif

namespace prismkit {
namespace {

template <typename T>
inline void axpy_impl(T a, const T* __restrict x, T* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// Independent partial sums let the compiler vectorize without reassociating one sum.
template <typename T>
inline T dot_impl(const T* __restrict a, const T* __restrict b, int64_t n) {
  constexpr int L = 16;
  T acc[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; ++l) acc[l] += a[i + l] * b[i + l];
  T s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int l = 0; l < L; ++l) s += acc[l];
  return s;
}

// Checks 16 entries at a time with one vectorizable OR of comparisons; only a chunk that
// holds a hit is searched entry by entry.
template <typename T>
inline int64_t first_not_at_most_impl(const T* __restrict p, int64_t n, T w) {
  constexpr int L = 16;
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    bool hit = false;
    for (int l = 0; l < L; ++l) hit |= !(p[i + l] <= w);
    if (hit) break;
  }
  for (; i < n; ++i)
    if (!(p[i] <= w)) return i;
  return n;
}

}  // namespace

PRISMKIT_CLONES int64_t first_not_at_most(const float* p, int64_t n, float w) {
  return first_not_at_most_impl(p, n, w);
}
PRISMKIT_CLONES int64_t first_not_at_most(const double* p, int64_t n, double w) {
  return first_not_at_most_impl(p, n, w);
}
PRISMKIT_CLONES void axpy(float a, const float* x, float* y, int64_t n) { axpy_impl(a, x, y, n); }
PRISMKIT_CLONES void axpy(double a, const double* x, double* y, int64_t n) { axpy_impl(a, x, y, n); }
PRISMKIT_CLONES float dot(const float* a, const float* b, int64_t n) { return dot_impl(a, b, n); }
PRISMKIT_CLONES double dot(const double* a, const double* b, int64_t n) { return dot_impl(a, b, n); }

}  // namespace prismkit
