// composite_kernels.h for one instruction set (common/isa_config.h): a box row's alphas and the
// forward's transmittance step as vectors of the path's width across pixels (common/vector_exp.h's
// exp for float), the channel loops as vectors across D with scalar tails, two accumulators in the dot
// product so the FMA latency is hidden.
#include <cmath>

#include "common/isa_config.h"
#include "common/vector_exp.h"
#include "splat/composite_kernels.h"

namespace prismkit::splat {
namespace {

using isa::kLanes;
using isa::load;
using isa::store;
using isa::VecF;

using isa::VecI;
typedef int32_t UnalignedVecI __attribute__((vector_size(isa::kVectorBytes), aligned(4), may_alias));

constexpr int64_t kPad = kScratchPad;  // scratch rows are padded so whole vectors can be stored

// One box row: alpha[k] = min(0.99, o exp(power)) and vis[k] = exp(power), or alpha[k] = -1 where
// the Gaussian is skipped (power > 0, or alpha < 1/255). Whole vectors are stored (padded rows).
PRISMKIT_INLINE void row_alphas(const BoxSplat<float>& s, float dy, float* alpha, float* vis) {
  constexpr int64_t L = kLanes<float>;
  VecF iota;
  for (int64_t l = 0; l < L; ++l) iota[l] = static_cast<float>(l);
  const float cyy = s.c * dy * dy;
  for (int64_t k = 0; k < s.n; k += L) {
    const VecF dx = s.mx - (iota + (s.px0 + static_cast<float>(k)));
    const VecF power = -0.5f * (s.a * dx * dx + cyy) - s.b * dx * dy;
    const VecF e = isa::exp_vec(power > 0.0f ? VecF{} : power);  // lanes with power > 0 are skipped
    VecF al = s.opacity * e;
    al = al > 0.99f ? VecF{} + 0.99f : al;
    const VecI skip = (power > 0.0f) | (power < s.min_power) | (al < static_cast<float>(1.0 / 255.0));
    store(alpha + k, skip ? VecF{} - 1.0f : al);
    store(vis + k, e);
  }
}

// float64 (gradchecks, tests): the scalar rule with std::exp.
PRISMKIT_INLINE void row_alphas(const BoxSplat<double>& s, double dy, double* alpha, double* vis) {
  for (int64_t k = 0; k < s.n; ++k) {
    const double dx = s.mx - (s.px0 + static_cast<double>(k));
    const double power = -0.5 * (s.a * dx * dx + s.c * dy * dy) - s.b * dx * dy;
    alpha[k] = -1;
    if (power > 0 || power < s.min_power) continue;
    vis[k] = std::exp(power);
    const double al = s.opacity * vis[k] > 0.99 ? 0.99 : s.opacity * vis[k];  // a NaN stays NaN, and is skipped
    if (al >= 1.0 / 255.0) alpha[k] = al;
  }
}

// The forward's step over one row (see CompositeKernels::forward_box); returns the pixels stopped.
template <typename T>
PRISMKIT_INLINE int64_t row_step(const T* alpha, int64_t n, T* trans, T* done, int32_t* last, int32_t index,
                                 T* weight) {
  using Vec = isa::Vec<T>;
  constexpr int64_t L = kLanes<T>;
  int64_t k = 0, stopped = 0;
  if constexpr (sizeof(T) == sizeof(int32_t)) {  // float: last[] has one int32 per lane
    for (; k + L <= n; k += L) {
      const Vec al = load(alpha + k), t = load(trans + k), d = load(done + k);
      const Vec next = t * (T(1) - al);
      const VecI valid = (al >= T(0)) & (d == T(0));
      const VecI stop = valid & (next <= T(1e-4));
      const VecI contrib = valid & ~stop;
      store(done + k, stop ? Vec{} + T(1) : d);
      store(weight + k, contrib ? al * t : Vec{});
      store(trans + k, contrib ? next : t);
      UnalignedVecI* l = reinterpret_cast<UnalignedVecI*>(last + k);
      *l = contrib ? VecI{} + index : *l;
      for (int64_t j = 0; j < L; ++j) stopped -= stop[j];
    }
  }
  for (; k < n; ++k) {
    const T al = alpha[k], t = trans[k], next = t * (T(1) - al);
    weight[k] = T(0);
    if (!(al >= T(0)) || done[k] != T(0)) continue;
    if (next <= T(1e-4)) {
      done[k] = T(1);
      ++stopped;
      continue;
    }
    weight[k] = al * t;
    trans[k] = next;
    last[k] = index;
  }
  return stopped;
}

// out[0:n] += w * f[0:n]
template <typename T>
PRISMKIT_INLINE void axpy_inline(T w, const T* __restrict f, T* __restrict out, int64_t n) {
  using Vec = isa::Vec<T>;
  constexpr int64_t L = kLanes<T>;
  const Vec wv = Vec{} + w;
  int64_t k = 0;
  for (; k + L <= n; k += L) store(out + k, load(out + k) + wv * load(f + k));
  for (; k < n; ++k) out[k] += w * f[k];
}

template <typename T>
int64_t forward_box(const BoxSplat<T>& s, int32_t index, const ForwardTile<T>& t) {
  const int64_t stride = (s.n + kPad - 1) / kPad * kPad + kPad;
  T* alpha = t.scratch;
  T* vis = t.scratch + stride;  // exp(power), then the row's weights
  const bool planar = !t.channel && t.D <= kPlanarChannels;
  const int64_t bx0 = s.p0 % s.tw, by0 = s.p0 / s.tw;
  int64_t stopped = 0;
  for (int64_t r = 0; r < s.rows; ++r) {
    const T dy = s.my - (s.py0 + static_cast<T>(r));
    row_alphas(s, dy, alpha, vis);
    const int64_t p = s.p0 + r * s.tw;
    T* weight = vis;  // exp(power) is not needed past the alphas
    stopped += row_step(alpha, s.n, t.trans + p, t.done + p, t.last + p, index, weight);
    if (t.channel) {
      T* out = t.out + (by0 + r) * t.image_row + bx0 * t.channels;
      for (int64_t x = 0; x < s.n; ++x)
        if (weight[x] != T(0))
          for (int64_t c = 0; c < t.D; ++c) out[x * t.channels + t.channel[c]] += weight[x] * t.feature[c];
    } else if (planar) {
      for (int64_t c = 0; c < t.D; ++c) axpy_inline(t.feature[c], weight, t.planar + c * t.P + p, s.n);
    } else {
      T* out = t.out + (by0 + r) * t.image_row + bx0 * t.D;
      for (int64_t x = 0; x < s.n; ++x)
        if (weight[x] != T(0)) axpy_inline(weight[x], t.feature, out + x * t.D, t.D);
    }
  }
  return stopped;
}

// One step of the back-to-front walk for pixel state acc and dL/dC = g: returns (f - acc) . g, then
// grad_f += w g and acc = alpha f + (1 - alpha) acc (acc before the update is the normalized
// feature sum of the Gaussians behind this one).
template <typename T>
PRISMKIT_INLINE T backward_step(const T* __restrict f, const T* __restrict g, T* __restrict acc, T* __restrict grad_f,
                                T w, T alpha, int64_t D) {
  using Vec = isa::Vec<T>;
  constexpr int64_t L = kLanes<T>;
  T dot = 0;
  int64_t k = 0;
  if (D >= L) {
    const Vec wv = Vec{} + w, av = Vec{} + alpha, bv = Vec{} + (T(1) - alpha);
    Vec dot0{}, dot1{};
    for (; k + 2 * L <= D; k += 2 * L) {
      const Vec f0 = load(f + k), f1 = load(f + k + L), g0 = load(g + k), g1 = load(g + k + L);
      const Vec a0 = load(acc + k), a1 = load(acc + k + L);
      dot0 += (f0 - a0) * g0;
      dot1 += (f1 - a1) * g1;
      store(grad_f + k, load(grad_f + k) + wv * g0);
      store(grad_f + k + L, load(grad_f + k + L) + wv * g1);
      store(acc + k, av * f0 + bv * a0);
      store(acc + k + L, av * f1 + bv * a1);
    }
    for (; k + L <= D; k += L) {
      const Vec f0 = load(f + k), g0 = load(g + k), a0 = load(acc + k);
      dot0 += (f0 - a0) * g0;
      store(grad_f + k, load(grad_f + k) + wv * g0);
      store(acc + k, av * f0 + bv * a0);
    }
    dot0 += dot1;
    for (int64_t l = 0; l < L; ++l) dot += dot0[l];
  }
  for (; k < D; ++k) {
    dot += (f[k] - acc[k]) * g[k];
    grad_f[k] += w * g[k];
    acc[k] = alpha * f[k] + (T(1) - alpha) * acc[k];
  }
  return dot;
}

// backward_step for sparse coefficients (BackwardTile::channel): f . g gathered over the D pairs,
// then the same step with acc = the scalar (acc . g).
template <typename T>
PRISMKIT_INLINE T sparse_backward_step(const int32_t* __restrict channel, const T* __restrict f, const T* __restrict g,
                                       T* __restrict acc, T* __restrict grad_f, T w, T alpha, int64_t D) {
  T fg = 0;
  for (int64_t k = 0; k < D; ++k) {
    const T gk = g[channel[k]];
    fg += f[k] * gk;
    grad_f[k] += w * gk;
  }
  const T dot = fg - *acc;
  *acc = alpha * fg + (T(1) - alpha) * *acc;
  return dot;
}

template <typename T>
void backward_box(const BoxSplat<T>& s, int32_t index, BackwardTile<T>& t) {
  const int64_t stride = (s.n + kPad - 1) / kPad * kPad + kPad;
  T* alpha = t.scratch;
  T* vis = t.scratch + stride;
  const int64_t bx0 = s.p0 % s.tw, by0 = s.p0 / s.tw;
  T dmx = 0, dmy = 0, da = 0, db = 0, dc = 0, dop = 0;
  for (int64_t r = 0; r < s.rows; ++r) {
    const T dy = s.my - (s.py0 + static_cast<T>(r));
    row_alphas(s, dy, alpha, vis);
    const int64_t gs = t.channel ? t.channels : t.D;  // dL/dC values per pixel
    const T* g_row = t.grad_render + (by0 + r) * t.image_row + bx0 * gs;
    for (int64_t x = 0; x < s.n; ++x) {
      const int64_t pix = s.p0 + r * s.tw + x;
      const T alpha_i = alpha[x];
      if (!(alpha_i >= 0) || index > t.last[pix]) continue;
      const T ra = T(1) / (T(1) - alpha_i);
      const T t_i = t.trans[pix] * ra;
      t.trans[pix] = t_i;
      const T sdot = t.channel ? sparse_backward_step(t.channel, t.feature, g_row + x * gs, t.acc + pix, t.grad_feature,
                                                      alpha_i * t_i, alpha_i, t.D)
                               : backward_step(t.feature, g_row + x * gs, t.acc + pix * t.D, t.grad_feature,
                                               alpha_i * t_i, alpha_i, t.D);
      const T d_alpha = t_i * sdot + t.final_trans[pix] * ra * t.extra[pix];
      t.touched = true;
      if (s.opacity * vis[x] > T(0.99)) continue;  // clamped: no gradient to opacity or power
      const T dx = s.mx - (s.px0 + static_cast<T>(x));
      dop += vis[x] * d_alpha;
      const T d_power = alpha_i * d_alpha;
      dmx -= d_power * (s.a * dx + s.b * dy);
      dmy -= d_power * (s.b * dx + s.c * dy);
      da -= T(0.5) * d_power * dx * dx;
      db -= d_power * dx * dy;
      dc -= T(0.5) * d_power * dy * dy;
    }
  }
  t.grad[0] += dmx;
  t.grad[1] += dmy;
  t.grad[2] += da;
  t.grad[3] += db;
  t.grad[4] += dc;
  t.grad[5] += dop;
}

template <typename T>
void axpy(T w, const T* f, T* out, int64_t D) {
  axpy_inline(w, f, out, D);
}

// decode for RX pixels (x0 .. x0 + RX - 1): RX x 2 vector accumulators across d (8 of the 16 or 32
// registers at RX = 4), one broadcast weight per pixel and two codebook loads per l.
template <typename T, int RX>
PRISMKIT_INLINE void decode_pixels(const T* __restrict w, int64_t ls, int64_t xs, const T* __restrict S, int64_t L,
                                   int64_t D, T* __restrict out, int64_t os) {
  using Vec = isa::Vec<T>;
  constexpr int64_t V = kLanes<T>;
  int64_t d = 0;
  for (; d + 2 * V <= D; d += 2 * V) {
    Vec a0[RX], a1[RX];
    for (int i = 0; i < RX; ++i) a0[i] = a1[i] = Vec{};
    for (int64_t l = 0; l < L; ++l) {
      const Vec s0 = load(S + l * D + d), s1 = load(S + l * D + d + V);
      for (int i = 0; i < RX; ++i) {
        const T wi = w[l * ls + i * xs];
        a0[i] += wi * s0;
        a1[i] += wi * s1;
      }
    }
    for (int i = 0; i < RX; ++i) {
      store(out + i * os + d, a0[i]);
      store(out + i * os + d + V, a1[i]);
    }
  }
  for (; d + V <= D; d += V) {
    Vec a0[RX];
    for (int i = 0; i < RX; ++i) a0[i] = Vec{};
    for (int64_t l = 0; l < L; ++l) {
      const Vec s0 = load(S + l * D + d);
      for (int i = 0; i < RX; ++i) a0[i] += w[l * ls + i * xs] * s0;
    }
    for (int i = 0; i < RX; ++i) store(out + i * os + d, a0[i]);
  }
  for (; d < D; ++d)
    for (int i = 0; i < RX; ++i) {
      T acc = 0;
      for (int64_t l = 0; l < L; ++l) acc += w[l * ls + i * xs] * S[l * D + d];
      out[i * os + d] = acc;
    }
}

template <typename T>
void decode(const T* w, int64_t ls, int64_t xs, int64_t n, const T* S, int64_t L, int64_t D, T* out, int64_t os) {
  int64_t x = 0;
  for (; x + 4 <= n; x += 4) decode_pixels<T, 4>(w + x * xs, ls, xs, S, L, D, out + x * os, os);
  for (; x < n; ++x) decode_pixels<T, 1>(w + x * xs, ls, xs, S, L, D, out + x * os, os);
}

const CompositeKernels kTable = {&forward_box<float>, &forward_box<double>, &backward_box<float>, &backward_box<double>,
                                 &axpy<float>,        &axpy<double>,        &decode<float>,       &decode<double>};

}  // namespace

const CompositeKernels& PRISMKIT_ISA_TABLE(composite_kernels)() { return kTable; }

}  // namespace prismkit::splat
