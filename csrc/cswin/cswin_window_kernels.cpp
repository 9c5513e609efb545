#include "cswin/cswin_window_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "common/clones.h"

namespace prismkit::cswin {
namespace {

// Elements in one 64-byte vector: 16 floats or 8 doubles.
template <typename T>
constexpr int64_t kLanes = 64 / sizeof(T);

template <typename T>
PRISMKIT_INLINE int64_t round_up(int64_t n) {
  return (n + kLanes<T> - 1) / kLanes<T> * kLanes<T>;
}

// The one matrix kernel everything here uses, a register-blocked GEMM tile:
//   C[r][0:NV vectors] (+)= sum over k < K of A(r, k) * B[k][0:NV vectors],   r < R
// with A(r, k) = A[r * a_row + k * a_k] (so A can be read transposed) and rows of B and C
// ldb / ldc elements apart. The R x NV accumulators (at most 16) stay in registers.
template <typename T, int R, int NV>
PRISMKIT_INLINE void gemm_tile(const T* __restrict A, int64_t a_row, int64_t a_k, const T* __restrict B, int64_t ldb,
                               int64_t K, T* __restrict C, int64_t ldc, bool accumulate) {
  // One 64-byte vector (a zmm register with AVX-512; split by the compiler on narrower ISAs).
  // Declared here: GCC drops vector_size on a dependent type in an alias template.
  typedef T Vec __attribute__((vector_size(64)));
  constexpr int64_t L = kLanes<T>;
  Vec acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) {
      if (accumulate)
        std::memcpy(&acc[r][v], C + r * ldc + v * L, 64);
      else
        acc[r][v] = Vec{};
    }
  for (int64_t k = 0; k < K; ++k) {
    Vec bv[NV];
    for (int v = 0; v < NV; ++v) std::memcpy(&bv[v], B + k * ldb + v * L, 64);
    for (int r = 0; r < R; ++r) {
      const T a = A[r * a_row + k * a_k];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * bv[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) std::memcpy(C + r * ldc + v * L, &acc[r][v], 64);
}

// Narrow outputs take taller tiles, so each loaded B vector feeds more FMAs; R x NV accumulators
// plus NV loaded vectors stay within the 32 vector registers of AVX-512.
template <typename T, int NV>
PRISMKIT_INLINE void gemm_columns(const T* A, int64_t a_row, int64_t a_k, const T* B, int64_t ldb, int64_t M, int64_t K,
                                  T* C, int64_t ldc, bool accumulate) {
  constexpr int R = NV <= 3 ? 8 : 6;
  int64_t m = 0;
  for (; m + R <= M; m += R) gemm_tile<T, R, NV>(A + m * a_row, a_row, a_k, B, ldb, K, C + m * ldc, ldc, accumulate);
  for (; m + 2 <= M; m += 2) gemm_tile<T, 2, NV>(A + m * a_row, a_row, a_k, B, ldb, K, C + m * ldc, ldc, accumulate);
  for (; m < M; ++m) gemm_tile<T, 1, NV>(A + m * a_row, a_row, a_k, B, ldb, K, C + m * ldc, ldc, accumulate);
}

// C [M][N] (+)= A [M][K] * B [K][N], N a multiple of the vector width, in column blocks of <= 4 vectors.
template <typename T>
PRISMKIT_INLINE void gemm(const T* A, int64_t a_row, int64_t a_k, const T* B, int64_t ldb, int64_t M, int64_t N,
                          int64_t K, T* C, int64_t ldc, bool accumulate) {
  constexpr int64_t L = kLanes<T>;
  for (int64_t n0 = 0; n0 < N; n0 += 4 * L) {
    switch (std::min<int64_t>(4, (N - n0) / L)) {
      case 4: gemm_columns<T, 4>(A, a_row, a_k, B + n0, ldb, M, K, C + n0, ldc, accumulate); break;
      case 3: gemm_columns<T, 3>(A, a_row, a_k, B + n0, ldb, M, K, C + n0, ldc, accumulate); break;
      case 2: gemm_columns<T, 2>(A, a_row, a_k, B + n0, ldb, M, K, C + n0, ldc, accumulate); break;
      default: gemm_columns<T, 1>(A, a_row, a_k, B + n0, ldb, M, K, C + n0, ldc, accumulate); break;
    }
  }
}

// Each row p[0:L] of scores becomes its softmax (p[L:Lp] = 0). Phantom keys (zero padding) have
// score 0 and stay in the denominator.
// exp over a vector of 16 floats, written with GCC vector extensions so every instruction set
// clone gets SIMD code: exp(x) = 2^n * exp(r), n = round(x / ln 2), a degree-6 polynomial for exp(r)
// (Cephes expf, about 1 ulp). Below -87 the result is 0 (true exp is denormal there); NaN stays NaN.
typedef float Vec16 __attribute__((vector_size(64)));
typedef int32_t IVec16 __attribute__((vector_size(64)));

PRISMKIT_INLINE Vec16 exp16(Vec16 x) {
  const Vec16 xc = x < -87.0f ? Vec16{} - 87.0f : x;
  const Vec16 n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const Vec16 r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  Vec16 p = Vec16{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const IVec16 bits = (__builtin_convertvector(n, IVec16) + 127) << 23;
  Vec16 e = p * reinterpret_cast<const Vec16&>(bits);
  e = x < -87.0f ? Vec16{} : e;
  return x != x ? x : e;
}

// Horizontal max and sum of a vector in log2(16) shuffle steps (a lane-by-lane loop compiles to
// a long scalar chain, and these run once per row).
PRISMKIT_INLINE float hmax(Vec16 v) {
  v = v > __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7)
          ? v
          : __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  v = v > __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11)
          ? v
          : __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
  v = v > __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13)
          ? v
          : __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  v = v > __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14)
          ? v
          : __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
  return v[0];
}

PRISMKIT_INLINE float hsum(Vec16 v) {
  v += __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  v += __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
  v += __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  v += __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
  return v[0];
}

// Each row p[0:L] of scores ([M][Lp]) becomes its softmax, and p[L:Lp] = 0. Phantom keys (zero
// padding) have score 0 and stay in the denominator. With inv given, rows are left unnormalized
// (exp(s - max)) and inv[i] gets 1 / row sum, for the caller to fold into a smaller output.
PRISMKIT_INLINE void softmax_rows(float* __restrict S, int64_t M, int64_t L, int64_t Lp, int64_t phantoms,
                                  float* inv_sum = nullptr) {
  for (int64_t i = 0; i < M; ++i) {
    float* __restrict p = S + i * Lp;
    for (int64_t j = L; j < Lp; ++j) p[j] = -std::numeric_limits<float>::infinity();
    Vec16 mv = Vec16{} + (phantoms > 0 ? 0.0f : -std::numeric_limits<float>::infinity());
    for (int64_t j = 0; j < Lp; j += 16) {
      Vec16 x;
      std::memcpy(&x, p + j, 64);
      mv = x > mv ? x : mv;
    }
    const float m = hmax(mv);
    Vec16 sv{};
    for (int64_t j = 0; j < Lp; j += 16) {
      Vec16 x;
      std::memcpy(&x, p + j, 64);
      x = exp16(x - m);
      sv += x;
      std::memcpy(p + j, &x, 64);
    }
    const float sum = hsum(sv) + (phantoms > 0 ? static_cast<float>(phantoms) * exp16(Vec16{} - m)[0] : 0.0f);
    const float inv = 1.0f / sum;
    if (inv_sum)
      inv_sum[i] = inv;
    else
      for (int64_t j = 0; j < Lp; ++j) p[j] *= inv;
  }
}

PRISMKIT_INLINE void softmax_rows(double* S, int64_t M, int64_t L, int64_t Lp, int64_t phantoms,
                                  double* inv_sum = nullptr) {
  for (int64_t i = 0; i < M; ++i) {
    double* p = S + i * Lp;
    double m = phantoms > 0 ? 0.0 : -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < L; ++j) m = p[j] > m ? p[j] : m;
    double sum = phantoms > 0 ? phantoms * std::exp(-m) : 0.0;
    for (int64_t j = 0; j < L; ++j) sum += (p[j] = std::exp(p[j] - m));
    if (inv_sum)
      inv_sum[i] = 1.0 / sum;
    else
      for (int64_t j = 0; j < L; ++j) p[j] /= sum;
    for (int64_t j = L; j < Lp; ++j) p[j] = 0;
  }
}

// The window's buffers. Rows of [L][hdp] matrices and of [hd][Lp] ones are zero-padded to a
// whole number of vectors, so the GEMM tiles never need a tail.
template <typename T>
struct Buffers {
  int64_t L, hd, hdp, Lp;
  T *qs, *k, *v, *dout, *o, *dq, *dk, *dv;  // [Lp][hdp] (rows past L are zero where read)
  T *kt, *vt;                               // [hdp][Lp]
  T *s, *ds;                                // [L][Lp]
  T *w, *gw;                                // LePE weights and their gradient by tap: [9][hdp]
  T* inv;                                   // [L] 1 / softmax row sums (forward)
  T* bias;                                  // [hdp] the head's LePE bias

  Buffers(T* at, int64_t L_, int64_t hd_) : L(L_), hd(hd_), hdp(round_up<T>(hd_)), Lp(round_up<T>(L_)) {
    for (T** b : {&qs, &k, &v, &dout, &o, &dq, &dk, &dv}) *b = at, at += Lp * hdp;
    for (T** b : {&kt, &vt}) *b = at, at += hdp * Lp;
    for (T** b : {&s, &ds}) *b = at, at += L * Lp;
    w = at, at += 9 * hdp;
    gw = at, at += 9 * hdp;
    bias = at, at += hdp;
    inv = at;
  }
  static int64_t size(int64_t L, int64_t hd) {
    const int64_t hdp = round_up<T>(hd), Lp = round_up<T>(L);
    return 10 * Lp * hdp + 2 * L * Lp + 19 * hdp + L;
  }
};

// Gathers the window's q (scaled), k, v (and with grad, dO) and the head's LePE weights by tap.
template <typename T>
PRISMKIT_INLINE void copy(const T* __restrict from, T* __restrict to, int64_t n) {
  for (int64_t i = 0; i < n; ++i) to[i] = from[i];  // inlined: these rows are too short for memcpy calls
}

template <typename T>
PRISMKIT_INLINE void copy_padded(const T* __restrict from, T* __restrict to, int64_t n, int64_t n_padded) {
  for (int64_t i = 0; i < n; ++i) to[i] = from[i];
  for (int64_t i = n; i < n_padded; ++i) to[i] = 0;
}

// In-register transpose of a 16 x 16 float block: four rounds of two-source shuffles, each
// swapping the off-diagonal blocks of size S between rows i and i + S (64 shuffles in all).
template <int S>
constexpr int lower_row_lane(int e) {
  return (e & S) ? 16 + e - S : e;
}
template <int S>
constexpr int upper_row_lane(int e) {
  return (e & S) ? 16 + e : e + S;
}

template <int S, int... E>
PRISMKIT_INLINE void swap_blocks(Vec16* r, std::integer_sequence<int, E...>) {
  for (int i = 0; i < 16; ++i) {
    if (i & S) continue;
    const Vec16 a = r[i], b = r[i + S];
    r[i] = __builtin_shufflevector(a, b, lower_row_lane<S>(E)...);
    r[i + S] = __builtin_shufflevector(a, b, upper_row_lane<S>(E)...);
  }
}

// to[c][i] = from[i][c] for i < rows, c < cols (both multiples of 16; from rows ld_from apart).
PRISMKIT_INLINE void transpose(const float* from, int64_t ld_from, float* to, int64_t ld_to, int64_t rows,
                               int64_t cols) {
  using Lanes = std::make_integer_sequence<int, 16>;
  for (int64_t i0 = 0; i0 < rows; i0 += 16) {
    for (int64_t c0 = 0; c0 < cols; c0 += 16) {
      Vec16 r[16];
      for (int i = 0; i < 16; ++i) std::memcpy(&r[i], from + (i0 + i) * ld_from + c0, 64);
      swap_blocks<1>(r, Lanes{});
      swap_blocks<2>(r, Lanes{});
      swap_blocks<4>(r, Lanes{});
      swap_blocks<8>(r, Lanes{});
      for (int c = 0; c < 16; ++c) std::memcpy(to + (c0 + c) * ld_to + i0, &r[c], 64);
    }
  }
}

// rows_t[c][i] = rows[i][c]: by 16 x 16 blocks for float, element by element for double.
template <typename T>
PRISMKIT_INLINE void transpose_rows(const T* rows, T* rows_t, int64_t Lp, int64_t hdp) {
  if constexpr (std::is_same_v<T, float>) {
    transpose(rows, hdp, rows_t, Lp, Lp, hdp);
  } else {
    for (int64_t c = 0; c < hdp; ++c)
      for (int64_t i = 0; i < Lp; ++i) rows_t[c * Lp + i] = rows[i * hdp + c];
  }
}

// Gathers the window's q (scaled), k, v, their transposes k^T (and, backward, v^T) and dO, and
// the head's LePE weights and bias. Row buffers are zero past column hd and past row L.
template <typename T>
PRISMKIT_INLINE void gather(const WindowTask<T>& t, Buffers<T>& b, bool backward) {
  const int64_t L = t.L, hd = t.head_dim, hdp = b.hdp, Lp = b.Lp, C3 = 3 * t.C;
  const T scale = t.scale;
  for (int64_t i = 0; i < L; ++i) {
    const T* __restrict row = t.qkv + t.tokens[i] * C3 + t.channel;
    T* __restrict qs = b.qs + i * hdp;
    for (int64_t c = 0; c < hd; ++c) qs[c] = row[c] * scale;
    for (int64_t c = hd; c < hdp; ++c) qs[c] = 0;
    copy_padded(row + t.C, b.k + i * hdp, hd, hdp);
    copy_padded(row + 2 * t.C, b.v + i * hdp, hd, hdp);
    if (backward) copy_padded(t.grad_out + t.tokens[i] * t.C + t.channel, b.dout + i * hdp, hd, hdp);
  }
  for (int64_t e = L * hdp; e < Lp * hdp; ++e) b.k[e] = b.v[e] = 0;
  transpose_rows(b.k, b.kt, Lp, hdp);
  if (backward) transpose_rows(b.v, b.vt, Lp, hdp);
  for (int tap = 0; tap < 9; ++tap)
    for (int64_t c = 0; c < hdp; ++c) b.w[tap * hdp + c] = c < hd ? t.lepe_weight[(t.channel + c) * 9 + tap] : T(0);
  copy_padded(t.lepe_bias + t.channel, b.bias, hd, hdp);
}

// Scores and softmax of R query rows in registers, for windows whose Lp = NV * 16 keys fit one
// tile: the exp(s - max) rows go to S, 1 / row sum to inv_sum.
template <int R, int NV>
PRISMKIT_INLINE void scores_softmax_tile(const float* __restrict qs, int64_t hdp, const float* __restrict kt,
                                         int64_t Lp, int64_t hd, int64_t L, int64_t phantoms, float* __restrict S,
                                         float* __restrict inv_sum) {
  Vec16 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = Vec16{};
  for (int64_t c = 0; c < hd; ++c) {
    Vec16 kv[NV];
    for (int v = 0; v < NV; ++v) std::memcpy(&kv[v], kt + c * Lp + v * 16, 64);
    for (int r = 0; r < R; ++r) {
      const float a = qs[r * hdp + c];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * kv[v];
    }
  }
  // lanes past the last real key leave the softmax
  IVec16 lane;
  for (int l = 0; l < 16; ++l) lane[l] = l;
  const IVec16 real_last = lane < static_cast<int32_t>(L - 16 * (NV - 1));
  const Vec16 minus_inf = Vec16{} - std::numeric_limits<float>::infinity();
  for (int r = 0; r < R; ++r) {
    acc[r][NV - 1] = real_last ? acc[r][NV - 1] : minus_inf;
    Vec16 mv = acc[r][0];
    for (int v = 1; v < NV; ++v) mv = acc[r][v] > mv ? acc[r][v] : mv;
    float m = hmax(mv);
    if (phantoms > 0 && m < 0.0f) m = 0.0f;
    Vec16 sv{};
    for (int v = 0; v < NV; ++v) {
      const Vec16 e = exp16(acc[r][v] - m);
      sv += e;
      std::memcpy(S + r * Lp + v * 16, &e, 64);
    }
    inv_sum[r] = 1.0f / (hsum(sv) + (phantoms > 0 ? static_cast<float>(phantoms) * exp16(Vec16{} - m)[0] : 0.0f));
  }
}

template <int NV>
PRISMKIT_INLINE void scores_softmax_rows(const Buffers<float>& b, int64_t L, int64_t phantoms, float* inv_sum) {
  constexpr int R = NV <= 3 ? 8 : (NV == 4 ? 6 : (NV <= 6 ? 4 : (NV == 7 ? 3 : 2)));  // R x NV + NV <= 32
  int64_t i = 0;
  for (; i + R <= L; i += R)
    scores_softmax_tile<R, NV>(b.qs + i * b.hdp, b.hdp, b.kt, b.Lp, b.hd, L, phantoms, b.s + i * b.Lp, inv_sum + i);
  for (; i < L; ++i)
    scores_softmax_tile<1, NV>(b.qs + i * b.hdp, b.hdp, b.kt, b.Lp, b.hd, L, phantoms, b.s + i * b.Lp, inv_sum + i);
}

// S = softmax(Qs K^T) over the window ([L][Lp]): unnormalized with 1 / row sums in inv_sum, or
// normalized in place without. Windows of up to 128 keys (every CSWin stage at 224) take the
// fused register tiles; larger ones a GEMM and a separate softmax pass.
template <typename T>
PRISMKIT_INLINE void attention_probabilities(const WindowTask<T>& t, Buffers<T>& b, T* inv_sum) {
  if constexpr (std::is_same_v<T, float>) {
    if (b.Lp <= 128) {
      switch (b.Lp / 16) {
        case 1: scores_softmax_rows<1>(b, t.L, t.phantoms, inv_sum); break;
        case 2: scores_softmax_rows<2>(b, t.L, t.phantoms, inv_sum); break;
        case 3: scores_softmax_rows<3>(b, t.L, t.phantoms, inv_sum); break;
        case 4: scores_softmax_rows<4>(b, t.L, t.phantoms, inv_sum); break;
        case 5: scores_softmax_rows<5>(b, t.L, t.phantoms, inv_sum); break;
        case 6: scores_softmax_rows<6>(b, t.L, t.phantoms, inv_sum); break;
        case 7: scores_softmax_rows<7>(b, t.L, t.phantoms, inv_sum); break;
        default: scores_softmax_rows<8>(b, t.L, t.phantoms, inv_sum); break;
      }
      return;
    }
  }
  gemm(b.qs, b.hdp, int64_t(1), b.kt, b.Lp, t.L, b.Lp, t.head_dim, b.s, b.Lp, false);
  softmax_rows(b.s, t.L, t.L, b.Lp, t.phantoms, inv_sum);
}

// out_i = o_i / sum_i + bias + sum over taps of w[tap] * v[neighbour(i, tap)], accumulated in
// registers (NV vectors per row); o holds the unnormalized exp(S) V.
template <typename T, int NV>
PRISMKIT_INLINE void lepe_and_store(const WindowTask<T>& t, const Buffers<T>& b) {
  typedef T Vec __attribute__((vector_size(64)));
  constexpr int64_t L = kLanes<T>;
  const int64_t hd = t.head_dim, hdp = b.hdp;
  Vec bias[NV];
  for (int v = 0; v < NV; ++v) std::memcpy(&bias[v], b.bias + v * L, 64);
  for (int64_t i = 0; i < t.L; ++i) {
    Vec acc[NV];
    for (int v = 0; v < NV; ++v) {
      std::memcpy(&acc[v], b.o + i * hdp + v * L, 64);
      acc[v] = acc[v] * b.inv[i] + bias[v];
    }
    for (int tap = 0; tap < 9; ++tap) {
      const int32_t n = t.neighbour[i * 9 + tap];
      if (n < 0) continue;
      for (int v = 0; v < NV; ++v) {
        Vec w, x;
        std::memcpy(&w, b.w + tap * hdp + v * L, 64);
        std::memcpy(&x, b.v + n * hdp + v * L, 64);
        acc[v] += w * x;
      }
    }
    T* out = t.out + t.tokens[i] * t.C + t.channel;
    if (hd == hdp) {
      for (int v = 0; v < NV; ++v) std::memcpy(out + v * L, &acc[v], 64);
    } else {
      T row[NV * L];
      for (int v = 0; v < NV; ++v) std::memcpy(row + v * L, &acc[v], 64);
      copy(row, out, hd);
    }
  }
}

template <typename T>
PRISMKIT_INLINE void forward_impl(const WindowTask<T>& t, T* scratch) {
  Buffers<T> b(scratch, t.L, t.head_dim);
  gather(t, b, false);
  attention_probabilities(t, b, b.inv);
  const int64_t L = t.L, hd = t.head_dim, hdp = b.hdp;
  gemm(b.s, b.Lp, int64_t(1), b.v, hdp, L, hdp, L, b.o, hdp, false);  // o = exp(S - max) V
  switch (hdp / kLanes<T>) {
    case 1: lepe_and_store<T, 1>(t, b); break;
    case 2: lepe_and_store<T, 2>(t, b); break;
    case 3: lepe_and_store<T, 3>(t, b); break;
    case 4: lepe_and_store<T, 4>(t, b); break;
    default:  // wide heads (over 64 floats or 32 doubles): the same sums, through memory
      for (int64_t i = 0; i < L; ++i) {
        T* __restrict o = b.o + i * hdp;
        for (int64_t c = 0; c < hdp; ++c) o[c] = o[c] * b.inv[i] + b.bias[c];
        for (int tap = 0; tap < 9; ++tap) {
          const int32_t n = t.neighbour[i * 9 + tap];
          if (n < 0) continue;
          const T* __restrict w = b.w + tap * hdp;
          const T* __restrict v = b.v + n * hdp;
          for (int64_t c = 0; c < hdp; ++c) o[c] += w[c] * v[c];
        }
        copy(o, t.out + t.tokens[i] * t.C + t.channel, hd);
      }
  }
}

template <typename T>
PRISMKIT_INLINE void backward_impl(const WindowTask<T>& t, T* scratch) {
  Buffers<T> b(scratch, t.L, t.head_dim);
  gather(t, b, true);
  attention_probabilities(t, b, b.inv);
  for (int64_t i = 0; i < t.L; ++i)
    for (int64_t j = 0; j < b.Lp; ++j) b.s[i * b.Lp + j] *= b.inv[i];
  const int64_t L = t.L, hd = t.head_dim, hdp = b.hdp, Lp = b.Lp;
  gemm(b.s, Lp, int64_t(1), b.v, hdp, L, hdp, L, b.o, hdp, false);      // O = P V (attention part)
  gemm(b.dout, hdp, int64_t(1), b.vt, Lp, L, Lp, hd, b.ds, Lp, false);  // dP = dO V^T
  for (int64_t i = 0; i < L; ++i) {                                     // dS = P (dP - rowsum(dO O))
    T D = 0;
    for (int64_t c = 0; c < hd; ++c) D += b.dout[i * hdp + c] * b.o[i * hdp + c];
    T *ds = b.ds + i * Lp, *p = b.s + i * Lp;
    for (int64_t j = 0; j < Lp; ++j) ds[j] = p[j] * (ds[j] - D);
  }
  gemm(b.ds, Lp, int64_t(1), b.k, hdp, L, hdp, L, b.dq, hdp, false);    // dQs = dS K
  gemm(b.ds, int64_t(1), Lp, b.qs, hdp, L, hdp, L, b.dk, hdp, false);   // dK = dS^T Qs
  gemm(b.s, int64_t(1), Lp, b.dout, hdp, L, hdp, L, b.dv, hdp, false);  // dV = P^T dO
  // LePE: out_i += bias + sum over taps of w[tap] * V[neighbour]
  for (int64_t e = 0; e < 9 * hdp; ++e) b.gw[e] = 0;
  for (int64_t i = 0; i < L; ++i) {
    const T* dout = b.dout + i * hdp;
    for (int64_t c = 0; c < hd; ++c) t.grad_bias[t.channel + c] += dout[c];
    for (int tap = 0; tap < 9; ++tap) {
      const int32_t n = t.neighbour[i * 9 + tap];
      if (n < 0) continue;
      const T *w = b.w + tap * hdp, *v = b.v + n * hdp;
      T *dv = b.dv + n * hdp, *gw = b.gw + tap * hdp;
      for (int64_t c = 0; c < hdp; ++c) {
        dv[c] += w[c] * dout[c];
        gw[c] += dout[c] * v[c];
      }
    }
  }
  for (int64_t c = 0; c < hd; ++c)
    for (int tap = 0; tap < 9; ++tap) t.grad_weight[(t.channel + c) * 9 + tap] += b.gw[tap * hdp + c];
  const int64_t C3 = 3 * t.C;
  for (int64_t i = 0; i < L; ++i) {
    T* row = t.grad_qkv + t.tokens[i] * C3 + t.channel;
    for (int64_t c = 0; c < hd; ++c) row[c] = b.dq[i * hdp + c] * t.scale;  // q was scaled before Q K^T
    copy(b.dk + i * hdp, row + t.C, hd);
    copy(b.dv + i * hdp, row + 2 * t.C, hd);
  }
}

}  // namespace

int64_t window_scratch_size(int64_t L, int64_t head_dim, bool is_double) {
  return is_double ? Buffers<double>::size(L, head_dim) : Buffers<float>::size(L, head_dim);
}

PRISMKIT_CLONES void window_forward(const WindowTask<float>& task, float* scratch) { forward_impl(task, scratch); }
PRISMKIT_CLONES void window_forward(const WindowTask<double>& task, double* scratch) { forward_impl(task, scratch); }
PRISMKIT_CLONES void window_backward(const WindowTask<float>& task, float* scratch) { backward_impl(task, scratch); }
PRISMKIT_CLONES void window_backward(const WindowTask<double>& task, double* scratch) { backward_impl(task, scratch); }

}  // namespace prismkit::cswin
