// The per-window kernels of cswin_window_kernels.h for one instruction set (common/isa_config.h):
// vectors of the path's width (16 floats with AVX-512, 8 with AVX2, 4 with SSE2 or NEON) and
// register tiles sized so that the accumulators and the vectors they read fit its register file
// (32 registers with AVX-512 and NEON, 16 with AVX2 and SSE2).
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "common/isa_config.h"
#include "common/vector_exp.h"
#include "cswin/cswin_window_kernels.h"

namespace prismkit::cswin {
namespace {

using isa::kLanes;
using isa::kVectorBytes;
using isa::kVectorRegisters;
using isa::load;
using isa::store;
using isa::VecF;

template <typename T>
PRISMKIT_INLINE int64_t round_up(int64_t n) {
  return (n + kLanes<T> - 1) / kLanes<T> * kLanes<T>;
}

template <typename T>
PRISMKIT_INLINE T min_of(T a, T b) {
  return b < a ? b : a;
}

// Accumulator rows of a register tile NV vectors wide: R x NV accumulators, the NV vectors of
// the row they read and the broadcast multiplier must fit the register file (at most 8 rows).
template <int NV>
constexpr int kTileRows = (kVectorRegisters - 1 - NV) / NV < 8 ? (kVectorRegisters - 1 - NV) / NV : 8;
// Widest GEMM column block in vectors: 4 (64 floats) with 32 registers, 2 (16 floats) with 16, so
// that the tile keeps at least 6 rows.
constexpr int kMaxGemmVectors = kVectorRegisters >= 32 ? 4 : 2;

// The one matrix kernel everything here uses, a register-blocked GEMM tile:
//   C[r][0:NV vectors] (+)= sum over k < K of A(r, k) * B[k][0:NV vectors],   r < R
// with A(r, k) = A[r * a_row + k * a_k] (so A can be read transposed) and rows of B and C
// ldb / ldc elements apart. The R x NV accumulators stay in registers.
template <typename T, int R, int NV>
PRISMKIT_INLINE void gemm_tile(const T* __restrict A, int64_t a_row, int64_t a_k, const T* __restrict B, int64_t ldb,
                               int64_t K, T* __restrict C, int64_t ldc, bool accumulate) {
  using Vec = isa::Vec<T>;
  constexpr int64_t L = kLanes<T>;
  Vec acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) {
      if (accumulate)
        acc[r][v] = load(C + r * ldc + v * L);
      else
        acc[r][v] = Vec{};
    }
  for (int64_t k = 0; k < K; ++k) {
    Vec bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load(B + k * ldb + v * L);
    for (int r = 0; r < R; ++r) {
      const T a = A[r * a_row + k * a_k];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * bv[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) store(C + r * ldc + v * L, acc[r][v]);
}

// Rows in tiles as tall as the register file allows, then pairs, then single rows.
template <typename T, int NV>
PRISMKIT_INLINE void gemm_columns(const T* A, int64_t a_row, int64_t a_k, const T* B, int64_t ldb, int64_t M, int64_t K,
                                  T* C, int64_t ldc, bool accumulate) {
  constexpr int R = kTileRows<NV>;
  int64_t m = 0;
  for (; m + R <= M; m += R) gemm_tile<T, R, NV>(A + m * a_row, a_row, a_k, B, ldb, K, C + m * ldc, ldc, accumulate);
  for (; m + 2 <= M; m += 2) gemm_tile<T, 2, NV>(A + m * a_row, a_row, a_k, B, ldb, K, C + m * ldc, ldc, accumulate);
  for (; m < M; ++m) gemm_tile<T, 1, NV>(A + m * a_row, a_row, a_k, B, ldb, K, C + m * ldc, ldc, accumulate);
}

// C [M][N] (+)= A [M][K] * B [K][N], N a multiple of the vector width, in column blocks of at most
// kMaxGemmVectors vectors.
template <typename T>
PRISMKIT_INLINE void gemm(const T* A, int64_t a_row, int64_t a_k, const T* B, int64_t ldb, int64_t M, int64_t N,
                          int64_t K, T* C, int64_t ldc, bool accumulate) {
  constexpr int64_t L = kLanes<T>;
  for (int64_t n0 = 0; n0 < N; n0 += kMaxGemmVectors * L) {
    switch (min_of<int64_t>(kMaxGemmVectors, (N - n0) / L)) {
      case 4: gemm_columns<T, 4>(A, a_row, a_k, B + n0, ldb, M, K, C + n0, ldc, accumulate); break;
      case 3: gemm_columns<T, 3>(A, a_row, a_k, B + n0, ldb, M, K, C + n0, ldc, accumulate); break;
      case 2: gemm_columns<T, 2>(A, a_row, a_k, B + n0, ldb, M, K, C + n0, ldc, accumulate); break;
      default: gemm_columns<T, 1>(A, a_row, a_k, B + n0, ldb, M, K, C + n0, ldc, accumulate); break;
    }
  }
}

// Vectors of floats (isa::VecF), and of 32-bit ints, at the path's width; exp_vec:
// common/vector_exp.h.
constexpr int kFloatLanes = static_cast<int>(kLanes<float>);
using isa::exp_vec;
using isa::VecI;

// Horizontal max and sum of a vector: halves folded onto each other (the upper half of a zmm or
// ymm extracted, then shuffles within 4 lanes); these run once per row.
typedef float Vec4F __attribute__((vector_size(16)));
typedef float Vec8F __attribute__((vector_size(32)));

template <bool kMax>
PRISMKIT_INLINE Vec4F fold(Vec4F a, Vec4F b) {
  if constexpr (kMax)
    return a > b ? a : b;
  else
    return a + b;
}

// V is a template parameter so that only the branch of this path's width is instantiated.
template <bool kMax, typename V>
PRISMKIT_INLINE float reduce(V v) {
  constexpr int N = sizeof(V) / sizeof(float);
  Vec4F q;
  if constexpr (N == 16) {
    const Vec8F lo = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7);
    const Vec8F hi = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    const Vec8F h = kMax ? (lo > hi ? lo : hi) : lo + hi;
    q = fold<kMax>(__builtin_shufflevector(h, h, 0, 1, 2, 3), __builtin_shufflevector(h, h, 4, 5, 6, 7));
  } else if constexpr (N == 8) {
    q = fold<kMax>(__builtin_shufflevector(v, v, 0, 1, 2, 3), __builtin_shufflevector(v, v, 4, 5, 6, 7));
  } else {
    q = v;
  }
  q = fold<kMax>(q, __builtin_shufflevector(q, q, 2, 3, 0, 1));
  q = fold<kMax>(q, __builtin_shufflevector(q, q, 1, 0, 3, 2));
  return q[0];
}

PRISMKIT_INLINE float hmax(VecF v) { return reduce<true>(v); }
PRISMKIT_INLINE float hsum(VecF v) { return reduce<false>(v); }

PRISMKIT_INLINE float exp_scalar(float x) { return exp_vec(VecF{} + x)[0]; }

// Each row p[0:L] of scores ([M][Lp]) becomes its softmax, and p[L:Lp] = 0. Phantom keys (zero
// padding) have score 0 and stay in the denominator. With inv given, rows are left unnormalized
// (exp(s - max)) and inv[i] gets 1 / row sum, for the caller to fold into a smaller output.
PRISMKIT_INLINE void softmax_rows(float* __restrict S, int64_t M, int64_t L, int64_t Lp, int64_t phantoms,
                                  float* inv_sum = nullptr) {
  for (int64_t i = 0; i < M; ++i) {
    float* __restrict p = S + i * Lp;
    for (int64_t j = L; j < Lp; ++j) p[j] = -std::numeric_limits<float>::infinity();
    VecF mv = VecF{} + (phantoms > 0 ? 0.0f : -std::numeric_limits<float>::infinity());
    for (int64_t j = 0; j < Lp; j += kFloatLanes) {
      const VecF x = load(p + j);
      mv = x > mv ? x : mv;
    }
    const float m = hmax(mv);
    VecF sv{};
    for (int64_t j = 0; j < Lp; j += kFloatLanes) {
      const VecF x = exp_vec(load(p + j) - m);
      sv += x;
      store(p + j, x);
    }
    const float sum = hsum(sv) + (phantoms > 0 ? static_cast<float>(phantoms) * exp_scalar(-m) : 0.0f);
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

template <typename T>
PRISMKIT_INLINE void copy(const T* __restrict from, T* __restrict to, int64_t n) {
  for (int64_t i = 0; i < n; ++i) to[i] = from[i];  // inlined: these rows are too short for memcpy calls
}

template <typename T>
PRISMKIT_INLINE void copy_padded(const T* __restrict from, T* __restrict to, int64_t n, int64_t n_padded) {
  for (int64_t i = 0; i < n; ++i) to[i] = from[i];
  for (int64_t i = n; i < n_padded; ++i) to[i] = 0;
}

// In-register transpose of an N x N float block (N = kFloatLanes): log2(N) rounds of two-source
// shuffles, each swapping the off-diagonal blocks of size S between rows i and i + S.
template <int S>
constexpr int lower_row_lane(int e) {
  return (e & S) ? kFloatLanes + e - S : e;
}
template <int S>
constexpr int upper_row_lane(int e) {
  return (e & S) ? kFloatLanes + e : e + S;
}

template <int S, int... E>
PRISMKIT_INLINE void swap_blocks(VecF* r, std::integer_sequence<int, E...>) {
  for (int i = 0; i < kFloatLanes; ++i) {
    if (i & S) continue;
    const VecF a = r[i], b = r[i + S];
    r[i] = __builtin_shufflevector(a, b, lower_row_lane<S>(E)...);
    r[i + S] = __builtin_shufflevector(a, b, upper_row_lane<S>(E)...);
  }
}

template <int S>
PRISMKIT_INLINE void swap_rounds(VecF* r) {
  if constexpr (S < kFloatLanes) {
    swap_blocks<S>(r, std::make_integer_sequence<int, kFloatLanes>{});
    swap_rounds<2 * S>(r);
  }
}

// to[c][i] = from[i][c] for i < rows, c < cols (both multiples of N; from rows ld_from apart).
PRISMKIT_INLINE void transpose(const float* from, int64_t ld_from, float* to, int64_t ld_to, int64_t rows,
                               int64_t cols) {
  for (int64_t i0 = 0; i0 < rows; i0 += kFloatLanes) {
    for (int64_t c0 = 0; c0 < cols; c0 += kFloatLanes) {
      VecF r[kFloatLanes];
      for (int i = 0; i < kFloatLanes; ++i) r[i] = load(from + (i0 + i) * ld_from + c0);
      swap_rounds<1>(r);
      for (int c = 0; c < kFloatLanes; ++c) store(to + (c0 + c) * ld_to + i0, r[c]);
    }
  }
}

// rows_t[c][i] = rows[i][c]: by N x N blocks for float, element by element for double.
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

// Scores and softmax of R query rows in registers, for windows whose Lp = NV vectors of keys fit
// one tile: the exp(s - max) rows go to S, 1 / row sum to inv_sum.
template <int R, int NV>
PRISMKIT_INLINE void scores_softmax_tile(const float* __restrict qs, int64_t hdp, const float* __restrict kt,
                                         int64_t Lp, int64_t hd, int64_t L, int64_t phantoms, float* __restrict S,
                                         float* __restrict inv_sum) {
  VecF acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = VecF{};
  for (int64_t c = 0; c < hd; ++c) {
    VecF kv[NV];
    for (int v = 0; v < NV; ++v) kv[v] = load(kt + c * Lp + v * kFloatLanes);
    for (int r = 0; r < R; ++r) {
      const float a = qs[r * hdp + c];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * kv[v];
    }
  }
  // lanes past the last real key leave the softmax
  VecI lane;
  for (int l = 0; l < kFloatLanes; ++l) lane[l] = l;
  const VecI real_last = lane < static_cast<int32_t>(L - kFloatLanes * (NV - 1));
  const VecF minus_inf = VecF{} - std::numeric_limits<float>::infinity();
  for (int r = 0; r < R; ++r) {
    acc[r][NV - 1] = real_last ? acc[r][NV - 1] : minus_inf;
    VecF mv = acc[r][0];
    for (int v = 1; v < NV; ++v) mv = acc[r][v] > mv ? acc[r][v] : mv;
    float m = hmax(mv);
    if (phantoms > 0 && m < 0.0f) m = 0.0f;
    VecF sv{};
    for (int v = 0; v < NV; ++v) {
      const VecF e = exp_vec(acc[r][v] - m);
      sv += e;
      store(S + r * Lp + v * kFloatLanes, e);
    }
    inv_sum[r] = 1.0f / (hsum(sv) + (phantoms > 0 ? static_cast<float>(phantoms) * exp_scalar(-m) : 0.0f));
  }
}

template <int NV>
PRISMKIT_INLINE void scores_softmax_rows(const Buffers<float>& b, int64_t L, int64_t phantoms, float* inv_sum) {
  constexpr int R = kTileRows<NV>;
  int64_t i = 0;
  for (; i + R <= L; i += R)
    scores_softmax_tile<R, NV>(b.qs + i * b.hdp, b.hdp, b.kt, b.Lp, b.hd, L, phantoms, b.s + i * b.Lp, inv_sum + i);
  for (; i < L; ++i)
    scores_softmax_tile<1, NV>(b.qs + i * b.hdp, b.hdp, b.kt, b.Lp, b.hd, L, phantoms, b.s + i * b.Lp, inv_sum + i);
}

// Key rows (in vectors) short enough for the fused register tiles: at most 8 vectors (128 floats
// with AVX-512), and enough accumulator rows left to reuse each loaded key vector: 2 with 32
// registers, 4 with 16 (with AVX2 a 56-key window would get one row per tile, slower than the GEMM
// and a separate softmax pass).
template <int NV>
constexpr bool kFusedFits = NV <= 8 && kTileRows<NV> >= (kVectorRegisters >= 32 ? 2 : 4);

template <int NV>
PRISMKIT_INLINE bool fused_scores_softmax(const Buffers<float>& b, int64_t L, int64_t phantoms, float* inv_sum) {
  if constexpr (kFusedFits<NV>) {
    if (b.Lp == NV * kFloatLanes) {
      scores_softmax_rows<NV>(b, L, phantoms, inv_sum);
      return true;
    }
    return fused_scores_softmax<NV + 1>(b, L, phantoms, inv_sum);
  }
  return false;
}

// S = softmax(Qs K^T) over the window ([L][Lp]): unnormalized with 1 / row sums in inv_sum, or
// normalized in place without. Windows whose keys fit the fused register tiles (kFusedFits: every
// CSWin stage at 224 with AVX-512) take them; larger ones a GEMM and a separate softmax pass.
template <typename T>
PRISMKIT_INLINE void attention_probabilities(const WindowTask<T>& t, Buffers<T>& b, T* inv_sum) {
  if constexpr (std::is_same_v<T, float>) {
    if (fused_scores_softmax<1>(b, t.L, t.phantoms, inv_sum)) return;
  }
  gemm(b.qs, b.hdp, int64_t(1), b.kt, b.Lp, t.L, b.Lp, t.head_dim, b.s, b.Lp, false);
  softmax_rows(b.s, t.L, t.L, b.Lp, t.phantoms, inv_sum);
}

// out_i = o_i / sum_i + bias + sum over taps of w[tap] * v[neighbour(i, tap)], accumulated in
// registers (NV vectors per row); o holds the unnormalized exp(S) V.
template <typename T, int NV>
PRISMKIT_INLINE void lepe_and_store(const WindowTask<T>& t, const Buffers<T>& b) {
  using Vec = isa::Vec<T>;
  constexpr int64_t L = kLanes<T>;
  const int64_t hd = t.head_dim, hdp = b.hdp;
  Vec bias[NV];
  for (int v = 0; v < NV; ++v) bias[v] = load(b.bias + v * L);
  for (int64_t i = 0; i < t.L; ++i) {
    Vec acc[NV];
    const T inv = b.inv[i];
    for (int v = 0; v < NV; ++v) acc[v] = load(b.o + i * hdp + v * L) * inv + bias[v];
    for (int tap = 0; tap < 9; ++tap) {
      const int32_t n = t.neighbour[i * 9 + tap];
      if (n < 0) continue;
      for (int v = 0; v < NV; ++v) acc[v] += load(b.w + tap * hdp + v * L) * load(b.v + n * hdp + v * L);
    }
    T* out = t.out + t.tokens[i] * t.C + t.channel;
    if (hd == hdp) {
      for (int v = 0; v < NV; ++v) store(out + v * L, acc[v]);
    } else {
      T row[NV * L];
      for (int v = 0; v < NV; ++v) store(row + v * L, acc[v]);
      copy(row, out, hd);
    }
  }
}

template <typename T>
void forward_impl(const WindowTask<T>& t, T* scratch) {
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
    default:  // wide heads (over 4 vectors): the same sums, through memory
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
void backward_impl(const WindowTask<T>& t, T* scratch) {
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

int64_t scratch_size(int64_t L, int64_t head_dim, bool is_double) {
  return is_double ? Buffers<double>::size(L, head_dim) : Buffers<float>::size(L, head_dim);
}

const WindowKernels kTable = {scratch_size, forward_impl<float>, forward_impl<double>, backward_impl<float>,
                              backward_impl<double>};

}  // namespace

const WindowKernels& PRISMKIT_ISA_TABLE(window_kernels)() { return kTable; }

}  // namespace prismkit::cswin
