#include "common/vector_math.h"

#include <algorithm>

#include "common/clones.h"

namespace prismkit {
namespace {

// The *_impl templates are force-inlined into each clone below, so each is compiled for that
// clone's instruction set (a shared out-of-line copy would be baseline x86-64 code).

template <typename T>
PRISMKIT_INLINE void axpy_impl(T a, const T* __restrict x, T* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// Independent partial sums let the compiler vectorize without reassociating one sum.
template <typename T>
PRISMKIT_INLINE T dot_impl(const T* __restrict a, const T* __restrict b, int64_t n) {
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
PRISMKIT_INLINE int64_t first_not_at_most_impl(const T* __restrict p, int64_t n, T w) {
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

// Rows this many entries ahead are prefetched; a gathered row is far from the previous one, so
// the hardware prefetcher cannot guess it.
constexpr int64_t kPrefetchAhead = 16;

// The work is a sequence of (column chunk, entry) items: all entries of chunk 0, then of chunk
// 1, ...; then the caller's next rows. The item kPrefetchAhead steps ahead is requested early.
template <typename T>
PRISMKIT_INLINE void prefetch_ahead(const T* rows, int64_t d, const int64_t* idx, int64_t n, int64_t n_valid,
                                    int64_t c0, int64_t p, int64_t chunk) {
  int64_t q = p + kPrefetchAhead, c = c0;
  if (q >= n) {
    if (c0 + chunk < d) {
      q -= n;  // this row, next chunk
      c += chunk;
    } else {
      c = 0;  // the next row's first chunk
    }
  }
  if (q < n_valid) prefetch_row(rows + idx[q] * d + c, std::min(chunk, d - c));
}

// out[0:d] (+)= sum over p < n of vals[p] * rows[idx[p]], and with kDots also
// dots[p] = rows[idx[p]] . w. Column chunks of 8 vectors of 64 bytes stay in registers (8 zmm
// with AVX-512; the compiler splits them otherwise), so out is written once per chunk and,
// without kAccumulate, never read.
template <typename T, bool kAccumulate, bool kDots>
PRISMKIT_INLINE void gather_impl(const T* __restrict rows, int64_t d, const int64_t* __restrict idx,
                                 const T* __restrict vals, int64_t n, int64_t n_valid, const T* __restrict w,
                                 T* __restrict dots, T* __restrict out) {
  typedef T V __attribute__((vector_size(64)));
  constexpr int64_t kLanes = 64 / sizeof(T), kVecs = 8, kChunk = kLanes * kVecs;
  if constexpr (kDots)
    for (int64_t p = 0; p < n; ++p) dots[p] = 0;
  int64_t c0 = 0;
  for (; c0 + kChunk <= d; c0 += kChunk) {
    V acc[kVecs], wv[kVecs];
    for (int64_t i = 0; i < kVecs; ++i) {
      if constexpr (kAccumulate)
        __builtin_memcpy(&acc[i], out + c0 + i * kLanes, 64);
      else
        acc[i] = V{};
      if constexpr (kDots) __builtin_memcpy(&wv[i], w + c0 + i * kLanes, 64);
    }
    for (int64_t p = 0; p < n; ++p) {
      prefetch_ahead(rows, d, idx, n, n_valid, c0, p, kChunk);
      const T* x = rows + idx[p] * d + c0;
      const T v = vals[p];
      V xv[kVecs];
      for (int64_t i = 0; i < kVecs; ++i) {
        __builtin_memcpy(&xv[i], x + i * kLanes, 64);
        acc[i] += v * xv[i];
      }
      if constexpr (kDots) {
        V s = xv[0] * wv[0];
        for (int64_t i = 1; i < kVecs; ++i) s += xv[i] * wv[i];
        T t = 0;
        for (int64_t l = 0; l < kLanes; ++l) t += s[l];
        dots[p] += t;
      }
    }
    for (int64_t i = 0; i < kVecs; ++i) __builtin_memcpy(out + c0 + i * kLanes, &acc[i], 64);
  }
  if (c0 < d) {  // the last columns (fewer than a chunk)
    if constexpr (!kAccumulate) std::fill(out + c0, out + d, T(0));
    for (int64_t p = 0; p < n; ++p) {
      prefetch_ahead(rows, d, idx, n, n_valid, c0, p, kChunk);
      const T* x = rows + idx[p] * d + c0;
      axpy_impl(vals[p], x, out + c0, d - c0);
      if constexpr (kDots) dots[p] += dot_impl(x, w + c0, d - c0);
    }
  }
}

}  // namespace

PRISMKIT_CLONES void gather_axpy(const float* rows, int64_t d, const int64_t* idx, const float* vals, int64_t n,
                                 int64_t n_valid, float* out) {
  gather_impl<float, true, false>(rows, d, idx, vals, n, n_valid, nullptr, nullptr, out);
}
PRISMKIT_CLONES void gather_axpy(const double* rows, int64_t d, const int64_t* idx, const double* vals, int64_t n,
                                 int64_t n_valid, double* out) {
  gather_impl<double, true, false>(rows, d, idx, vals, n, n_valid, nullptr, nullptr, out);
}
PRISMKIT_CLONES void gather_sum(const float* rows, int64_t d, const int64_t* idx, const float* vals, int64_t n,
                                int64_t n_valid, const float* w, float* dots, float* out) {
  if (w)
    gather_impl<float, false, true>(rows, d, idx, vals, n, n_valid, w, dots, out);
  else
    gather_impl<float, false, false>(rows, d, idx, vals, n, n_valid, nullptr, nullptr, out);
}
PRISMKIT_CLONES void gather_sum(const double* rows, int64_t d, const int64_t* idx, const double* vals, int64_t n,
                                int64_t n_valid, const double* w, double* dots, double* out) {
  if (w)
    gather_impl<double, false, true>(rows, d, idx, vals, n, n_valid, w, dots, out);
  else
    gather_impl<double, false, false>(rows, d, idx, vals, n, n_valid, nullptr, nullptr, out);
}
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
