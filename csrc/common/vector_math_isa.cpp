// The vector kernels of common/vector_math.h for one instruction set (see common/isa_config.h):
// compiled once per path, with the vector width and the register budget of that path.
#include "common/isa_config.h"
#include "common/vector_math.h"

namespace prismkit {
namespace {

using isa::kLanes;
using isa::kVectorRegisters;
using isa::load;
using isa::store;

template <typename T>
PRISMKIT_INLINE T min_of(T a, T b) {
  return b < a ? b : a;
}

template <typename T>
PRISMKIT_INLINE void axpy(T a, const T* __restrict x, T* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// Independent partial sums (two vectors' worth) let the compiler vectorize without
// reassociating one sum.
template <typename T>
PRISMKIT_INLINE T dot_impl(const T* __restrict a, const T* __restrict b, int64_t n) {
  constexpr int64_t L = 2 * kLanes<T>;
  T acc[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int64_t l = 0; l < L; ++l) acc[l] += a[i + l] * b[i + l];
  T s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int64_t l = 0; l < L; ++l) s += acc[l];
  return s;
}

// Checks two vectors' worth of entries at a time with one vectorizable OR of comparisons; only a
// chunk that holds a hit is searched entry by entry.
template <typename T>
PRISMKIT_INLINE int64_t first_not_at_most_impl(const T* __restrict p, int64_t n, T w) {
  constexpr int64_t L = 2 * kLanes<T>;
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    bool hit = false;
    for (int64_t l = 0; l < L; ++l) hit |= !(p[i + l] <= w);
    if (hit) break;
  }
  for (; i < n; ++i)
    if (!(p[i] <= w)) return i;
  return n;
}

// Asks for the n elements at p to be brought into the cache (L2), one request per 64-byte line:
// gathered rows are far apart in memory, so the hardware prefetcher cannot guess them.
template <typename T>
PRISMKIT_INLINE void prefetch_row(const T* p, int64_t n) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t at = 0; at < n * int64_t(sizeof(T)); at += 64) __builtin_prefetch(c + at, 0, 2);
}

// Rows this many entries ahead are prefetched.
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
  if (q < n_valid) prefetch_row(rows + idx[q] * d + c, min_of(chunk, d - c));
}

// out[0:d] (+)= sum over p < n of vals[p] * rows[idx[p]], and with kDots also
// dots[p] = rows[idx[p]] . w. A column chunk of kVecs vectors is accumulated in registers, so out
// is written once per chunk and, without kAccumulate, never read. The chunk is as wide as the
// register file allows, so each gathered row is visited in as few passes as possible: with kDots
// the accumulators, the loaded row and w take 3 * kVecs registers (8 zmm each with AVX-512's 32, 4
// ymm each with AVX2's 16); without, the accumulators take half the registers and the row streams
// through the rest. The dot products are summed per entry as vectors across the chunks (in an L1
// buffer, for blocks of kBlock entries) and reduced to a number once per entry, not once per chunk.
template <typename T, bool kAccumulate, bool kDots>
PRISMKIT_INLINE void gather_impl(const T* __restrict rows, int64_t d, const int64_t* __restrict idx,
                                 const T* __restrict vals, int64_t n, int64_t n_valid, const T* __restrict w,
                                 T* __restrict dots, T* __restrict out) {
  using V = isa::Vec<T>;
  constexpr int64_t kVecs = kDots ? kVectorRegisters / 4 : kVectorRegisters / 2, kChunk = kLanes<T> * kVecs;
  constexpr int64_t kBlock = kDots ? 32 : int64_t(1) << 62;
  for (int64_t p0 = 0; p0 < n || p0 == 0; p0 += kBlock) {
    const int64_t nb = min_of(n - p0, kBlock);
    const int64_t* bidx = idx + p0;
    const T* bvals = vals + p0;
    const bool read_out = kAccumulate || p0 > 0;
    V dotv[kDots ? kBlock : 1];
    if constexpr (kDots)
      for (int64_t p = 0; p < nb; ++p) dotv[p] = V{};
    int64_t c0 = 0;
    for (; c0 + kChunk <= d; c0 += kChunk) {
      V acc[kVecs], wv[kVecs];
      for (int64_t i = 0; i < kVecs; ++i) {
        acc[i] = read_out ? load(out + c0 + i * kLanes<T>) : V{};
        if constexpr (kDots) wv[i] = load(w + c0 + i * kLanes<T>);
      }
      for (int64_t p = 0; p < nb; ++p) {
        prefetch_ahead(rows, d, bidx, nb, n_valid - p0, c0, p, kChunk);
        const T* x = rows + bidx[p] * d + c0;
        const T v = bvals[p];
        V xv[kVecs];
        for (int64_t i = 0; i < kVecs; ++i) {
          xv[i] = load(x + i * kLanes<T>);
          acc[i] += v * xv[i];
        }
        if constexpr (kDots) {
          V s = xv[0] * wv[0];
          for (int64_t i = 1; i < kVecs; ++i) s += xv[i] * wv[i];
          dotv[p] += s;
        }
      }
      for (int64_t i = 0; i < kVecs; ++i) store(out + c0 + i * kLanes<T>, acc[i]);
    }
    if constexpr (kDots)
      for (int64_t p = 0; p < nb; ++p) {
        T t = 0;
        for (int64_t l = 0; l < kLanes<T>; ++l) t += dotv[p][l];
        dots[p0 + p] = t;
      }
    if (c0 < d) {  // the last columns (fewer than a chunk)
      if (!read_out)
        for (int64_t c = c0; c < d; ++c) out[c] = T(0);
      for (int64_t p = 0; p < nb; ++p) {
        prefetch_ahead(rows, d, bidx, nb, n_valid - p0, c0, p, kChunk);
        const T* x = rows + bidx[p] * d + c0;
        axpy(bvals[p], x, out + c0, d - c0);
        if constexpr (kDots) dots[p0 + p] += dot_impl(x, w + c0, d - c0);
      }
    }
  }
}

template <typename T>
void gather_axpy_kernel(const T* rows, int64_t d, const int64_t* idx, const T* vals, int64_t n, int64_t n_valid,
                        T* out) {
  gather_impl<T, true, false>(rows, d, idx, vals, n, n_valid, nullptr, nullptr, out);
}

template <typename T>
void gather_sum_kernel(const T* rows, int64_t d, const int64_t* idx, const T* vals, int64_t n, int64_t n_valid,
                       const T* w, T* dots, T* out) {
  if (w)
    gather_impl<T, false, true>(rows, d, idx, vals, n, n_valid, w, dots, out);
  else
    gather_impl<T, false, false>(rows, d, idx, vals, n, n_valid, nullptr, nullptr, out);
}

template <typename T>
T dot_kernel(const T* a, const T* b, int64_t n) {
  return dot_impl(a, b, n);
}

template <typename T>
int64_t first_not_at_most_kernel(const T* p, int64_t n, T w) {
  return first_not_at_most_impl(p, n, w);
}

const VectorMath kTable = {
    gather_axpy_kernel<float>,
    gather_axpy_kernel<double>,
    gather_sum_kernel<float>,
    gather_sum_kernel<double>,
    dot_kernel<float>,
    dot_kernel<double>,
    first_not_at_most_kernel<float>,
    first_not_at_most_kernel<double>,
};

}  // namespace

const VectorMath& PRISMKIT_ISA_TABLE(vector_math)() { return kTable; }

}  // namespace prismkit
