// composite_kernels.h for one instruction set (common/isa_config.h): vectors of the path's width
// over the feature channels, two independent accumulators in the dot product so the FMA latency
// is hidden, and a scalar tail for any D.
#include "common/isa_config.h"
#include "splat/composite_kernels.h"

namespace prismkit::splat {
namespace {

using isa::kLanes;
using isa::load;
using isa::store;

template <typename T>
void axpy(T w, const T* __restrict f, T* __restrict out, int64_t D) {
  using Vec = isa::Vec<T>;
  constexpr int64_t L = kLanes<T>;
  const Vec wv = Vec{} + w;
  int64_t k = 0;
  for (; k + L <= D; k += L) store(out + k, load(out + k) + wv * load(f + k));
  for (; k < D; ++k) out[k] += w * f[k];
}

template <typename T>
T backward_step(const T* __restrict f, const T* __restrict g, T* __restrict acc, T* __restrict grad_f, T w, T alpha,
                int64_t D) {
  using Vec = isa::Vec<T>;
  constexpr int64_t L = kLanes<T>;
  const Vec wv = Vec{} + w, av = Vec{} + alpha, bv = Vec{} + (T(1) - alpha);
  Vec dot0{}, dot1{};
  int64_t k = 0;
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
  T dot = 0;
  for (int64_t l = 0; l < L; ++l) dot += dot0[l];
  for (; k < D; ++k) {
    dot += (f[k] - acc[k]) * g[k];
    grad_f[k] += w * g[k];
    acc[k] = alpha * f[k] + (T(1) - alpha) * acc[k];
  }
  return dot;
}

const CompositeKernels kTable = {&axpy<float>, &axpy<double>, &backward_step<float>, &backward_step<double>};

}  // namespace

const CompositeKernels& PRISMKIT_ISA_TABLE(composite_kernels)() { return kTable; }

}  // namespace prismkit::splat
