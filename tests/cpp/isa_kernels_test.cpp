// A torch-free unit test of the per-instruction-set kernels (csrc/*/*_isa.cpp) for one path, run by
// `make check-aarch64` on the NEON build under qemu-aarch64 (no ARM machine needed): the vector
// kernels, one CSWin window and one splat box, forward and backward, and merge's similarity kernels,
// against plain loops. Exits non-zero on the first mismatch.
//
//   aarch64-linux-gnu-g++ -std=c++20 -O2 -static -DPRISMKIT_ISA=baseline -Icsrc \
//       tests/cpp/isa_kernels_test.cpp csrc/common/vector_math_isa.cpp csrc/cswin/cswin_window_kernels_isa.cpp \
//       csrc/splat/composite_kernels_isa.cpp csrc/merge/similarity_kernels_isa.cpp
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common/vector_math.h"
#include "cswin/cswin_window_kernels.h"
#include "merge/similarity_kernels.h"
#include "splat/composite_kernels.h"

using prismkit::cswin::WindowKernels;
using prismkit::cswin::WindowTask;

namespace {

int failures = 0;

void expect_close(const char* what, double got, double want, double tol = 1e-4) {
  if (!(std::fabs(got - want) <= tol * (1 + std::fabs(want)))) {
    std::printf("FAIL %s: got %.7g, want %.7g\n", what, got, want);
    ++failures;
  }
}

float uniform(uint32_t& state) {  // deterministic, in [-1, 1)
  state = state * 1664525u + 1013904223u;
  return static_cast<float>(state >> 8) / static_cast<float>(1u << 23) - 1.0f;
}

void test_vector_math(const prismkit::VectorMath& vm) {
  uint32_t s = 1;
  for (int64_t d : {1, 3, 4, 15, 16, 17, 33, 64, 100, 257}) {
    const int64_t F = 11, n = 6;
    std::vector<float> rows(F * d), w(d), vals(n), out(d), want(d), dots(n);
    std::vector<int64_t> idx = {3, 0, 10, 3, 7, 1};
    for (auto& v : rows) v = uniform(s);
    for (auto& v : w) v = uniform(s);
    for (auto& v : vals) v = uniform(s);
    for (int64_t c = 0; c < d; ++c) out[c] = want[c] = uniform(s);
    vm.gather_axpy_f(rows.data(), d, idx.data(), vals.data(), n, n, out.data());
    for (int64_t p = 0; p < n; ++p)
      for (int64_t c = 0; c < d; ++c) want[c] += vals[p] * rows[idx[p] * d + c];
    for (int64_t c = 0; c < d; ++c) expect_close("gather_axpy", out[c], want[c]);
    vm.gather_sum_f(rows.data(), d, idx.data(), vals.data(), n, n, w.data(), dots.data(), out.data());
    for (int64_t p = 0; p < n; ++p) {
      double dot = 0;
      for (int64_t c = 0; c < d; ++c) dot += rows[idx[p] * d + c] * w[c];
      expect_close("gather_sum dots", dots[p], dot);
      expect_close("dot", vm.dot_f(rows.data() + idx[p] * d, w.data(), d), dot);
    }
    for (int64_t c = 0; c < d; ++c) {
      double sum = 0;
      for (int64_t p = 0; p < n; ++p) sum += vals[p] * rows[idx[p] * d + c];
      expect_close("gather_sum", out[c], sum);
    }
    for (int64_t at = 0; at <= d; at += (d > 8 ? d / 5 : 1)) {
      std::vector<float> p(d, -1.0f);
      if (at < d) p[at] = 0.5f;
      expect_close("first_not_at_most", static_cast<double>(vm.first_not_at_most_f(p.data(), d, 0.0f)),
                   static_cast<double>(at));
    }
  }
}

// One window of L tokens (a column strip of a 1-pixel-wide map, so LePE neighbours are the
// tokens above and below), head_dim hd, against a plain softmax(q k^T) v + LePE.
void test_window(const WindowKernels& k, int64_t L, int64_t hd) {
  uint32_t s = 7;
  const int64_t C = hd, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> qkv(L * C3), out(L * C, 0.0f), w(C * 9), b(C);
  for (auto& v : qkv) v = uniform(s);
  for (auto& v : w) v = 0.3f * uniform(s);
  for (auto& v : b) v = 0.1f * uniform(s);
  std::vector<int64_t> tokens(L);
  std::vector<int32_t> neighbour(L * 9, -1);
  for (int64_t i = 0; i < L; ++i) {
    tokens[i] = i;
    for (int tap = 0; tap < 9; ++tap) {
      const int64_t dy = tap / 3 - 1, dx = tap % 3 - 1, j = i + dy;
      if (dx == 0 && j >= 0 && j < L) neighbour[i * 9 + tap] = static_cast<int32_t>(j);
    }
  }
  WindowTask<float> task{};
  task.qkv = qkv.data();
  task.out = out.data();
  task.C = C;
  task.head_dim = hd;
  task.channel = 0;
  task.tokens = tokens.data();
  task.L = L;
  task.neighbour = neighbour.data();
  task.scale = scale;
  task.lepe_weight = w.data();
  task.lepe_bias = b.data();
  std::vector<float> scratch(k.scratch_size(L, hd, false));
  k.forward_f(task, scratch.data());
  for (int64_t i = 0; i < L; ++i) {
    std::vector<double> p(L);
    double m = -1e300, sum = 0;
    for (int64_t j = 0; j < L; ++j) {
      double dot = 0;
      for (int64_t c = 0; c < hd; ++c) dot += qkv[i * C3 + c] * scale * qkv[j * C3 + C + c];
      p[j] = dot;
      m = dot > m ? dot : m;
    }
    for (int64_t j = 0; j < L; ++j) sum += (p[j] = std::exp(p[j] - m));
    for (int64_t c = 0; c < hd; ++c) {
      double o = b[c];
      for (int64_t j = 0; j < L; ++j) o += p[j] / sum * qkv[j * C3 + 2 * C + c];
      for (int tap = 0; tap < 9; ++tap)
        if (neighbour[i * 9 + tap] >= 0) o += w[c * 9 + tap] * qkv[neighbour[i * 9 + tap] * C3 + 2 * C + c];
      expect_close("window_forward", out[i * C + c], o);
    }
  }
  // backward: with grad_out = 0 every gradient is 0; with grad_out = e_(0,0), grad_bias[0] = 1
  std::vector<float> grad_out(L * C, 0.0f), grad_qkv(L * C3, 1.0f), gw(C * 9, 0.0f), gb(C, 0.0f);
  grad_out[0] = 1.0f;
  task.grad_out = grad_out.data();
  task.grad_qkv = grad_qkv.data();
  task.grad_weight = gw.data();
  task.grad_bias = gb.data();
  k.backward_f(task, scratch.data());
  expect_close("window_backward grad_bias", gb[0], 1.0);
  for (int64_t c = 1; c < C; ++c) expect_close("window_backward grad_bias", gb[c], 0.0);
  double dv_sum = 0;  // the value rows' gradients of channel 0 sum to 1 (softmax rows sum to 1), plus LePE
  for (int64_t j = 0; j < L; ++j) dv_sum += grad_qkv[j * C3 + 2 * C];
  double lepe = 0;
  for (int tap = 0; tap < 9; ++tap)
    if (neighbour[tap] >= 0) lepe += w[tap];
  expect_close("window_backward grad_v", dv_sum, 1.0 + lepe);
}

// One Gaussian composited over a 6x7 box of a tile of width 9 with D channels (planar for D <= 8,
// pixel-major above), then walked back: against the scalar rule of the ops' docstrings.
void test_composite(const prismkit::splat::CompositeKernels& k, int64_t D) {
  using namespace prismkit::splat;
  const int64_t tw = 9, P = tw * 8, n = 7, rows = 6;
  const BoxSplat<float> s{3.2f, 2.7f, 0.3f, 0.05f, 0.2f, 0.97f, static_cast<float>(-std::log(255.0 * 0.97) - 1e-4),
                          1.5f, 0.5f, n,    rows,  1,    tw};
  uint32_t st = 7;
  std::vector<float> trans(P), done(P, 0.0f), acc(P * D, 0.0f), feature(D), scratch(scratch_elements(16));
  std::vector<int32_t> last(P, -1);
  for (auto& t : trans) t = 0.5f + 0.5f * std::fabs(uniform(st));
  trans[1] = 1.2e-4f;  // this pixel stops at the Gaussian
  for (auto& f : feature) f = uniform(st);
  const std::vector<float> before = trans;
  const ForwardTile<float> ft{trans.data(),   done.data(), last.data(), acc.data(),    P, D,
                              feature.data(), acc.data(),  tw * D,      scratch.data()};
  const int64_t stopped = k.forward_box_f(s, 5, ft);
  int64_t want_stopped = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t x = 0; x < n; ++x) {
      const int64_t p = 1 + r * tw + x;
      const double dx = s.mx - (s.px0 + x), dy = s.my - (s.py0 + r);
      const double power = -0.5 * (s.a * dx * dx + s.c * dy * dy) - s.b * dx * dy;
      const double alpha = std::fmin(0.99, s.opacity * std::exp(power));
      const bool used = power <= 0 && alpha >= 1.0 / 255.0;
      const bool stop = used && before[p] * (1 - alpha) <= 1e-4;
      want_stopped += stop;
      const double w = used && !stop ? alpha * before[p] : 0.0;
      expect_close("composite transmittance", trans[p], used && !stop ? before[p] * (1 - alpha) : before[p]);
      expect_close("composite last", last[p], used && !stop ? 5 : -1, 0);
      for (int64_t c = 0; c < D; ++c)
        expect_close("composite accumulate", D <= kPlanarChannels ? acc[c * P + p] : acc[p * D + c], w * feature[c]);
    }
  expect_close("composite stopped", static_cast<double>(stopped), static_cast<double>(want_stopped), 0);
  expect_close("composite stops one pixel", static_cast<double>(want_stopped), 1.0, 0);
  // backward of the same Gaussian with dL/dC = 1 everywhere: the feature gradient is the sum of the weights
  std::vector<float> final_trans = trans, extra(P, 0.0f), back_acc(P * D, 0.0f), grad_render(P * D, 1.0f), gf(D, 0.0f);
  std::vector<float> walk = trans;
  BackwardTile<float> bt{
      walk.data(), final_trans.data(), extra.data(), last.data(), back_acc.data(), grad_render.data(), tw * D,
      D,           feature.data(),     gf.data(),    {},          false,           scratch.data()};
  k.backward_box_f(s, 5, bt);
  double weights = 0;
  for (int64_t p = 0; p < P; ++p)
    if (last[p] == 5) weights += before[p] - trans[p];  // alpha T = T_before - T_after
  for (int64_t c = 0; c < D; ++c) expect_close("composite backward grad_feature", gf[c], weights, 1e-3);
  expect_close("composite backward touched", bt.touched, weights > 0, 0);
}

}  // namespace

// merge's similarity kernels: dots of rows against transposed columns, the energy sums, row dots.
void test_similarity(const prismkit::merge::SimilarityKernels& k) {
  using prismkit::merge::EnergyKernel;
  using prismkit::merge::padded_columns;
  uint32_t s = 7;
  for (int64_t rows : {1, 5, 9, 17})
    for (int64_t cols : {1, 7, 33, 70})
      for (int64_t d : {1, 3, 16, 41}) {
        const int64_t ldb = padded_columns(cols);
        std::vector<float> a(rows * d), bT(d * ldb, 0.0f), out(rows * ldb), y(d), rd(rows);
        for (auto& v : a) v = uniform(s);
        for (int64_t c = 0; c < d; ++c)
          for (int64_t j = 0; j < cols; ++j) bT[c * ldb + j] = uniform(s);
        for (auto& v : y) v = uniform(s);
        k.dots(a.data(), d, rows, bT.data(), ldb, cols, d, out.data(), ldb);
        k.row_dots(a.data(), d, rows, y.data(), d, rd.data());
        for (int64_t i = 0; i < rows; ++i) {
          double want_rd = 0;
          for (int64_t c = 0; c < d; ++c) want_rd += double(a[i * d + c]) * y[c];
          expect_close("row_dots", rd[i], want_rd);
          for (int64_t j = 0; j < cols; ++j) {
            double want = 0;
            for (int64_t c = 0; c < d; ++c) want += double(a[i * d + c]) * bT[c * ldb + j];
            expect_close("dots", out[i * ldb + j], want);
          }
        }
        for (int kernel = 0; kernel < 3; ++kernel) {  // the first row's similarities, scaled into [-1, 1]
          std::vector<float> sim(ldb, 0.0f);
          for (int64_t j = 0; j < cols; ++j) sim[j] = out[j] / (1.0f + std::fabs(out[j]));
          const float margin = 0.3f, alpha = 0.7f;
          double want = 0;
          for (int64_t j = 0; j < cols; ++j) {
            const double x = sim[j];
            if (kernel == 0) want += x - margin > 0 ? x - margin : alpha * (std::exp(x - margin) - 1);
            if (kernel == 1) want += std::exp(-0.5 * std::pow((1 - x) / (1 - margin), 2));
            if (kernel == 2) want += x >= margin ? x : alpha * (std::exp(x - margin) - 1);
          }
          expect_close("energy_sum", k.energy_sum(sim.data(), cols, static_cast<EnergyKernel>(kernel), margin, alpha),
                       want);
        }
      }
}

int main() {
  const prismkit::VectorMath& vm = prismkit::vector_math_baseline();
  const WindowKernels& wk = prismkit::cswin::window_kernels_baseline();
  test_vector_math(vm);
  for (int64_t L : {1, 5, 16, 33, 56, 98})
    for (int64_t hd : {8, 32, 48}) test_window(wk, L, hd);
  for (int64_t D : {1, 3, 8, 9, 17, 40}) test_composite(prismkit::splat::composite_kernels_baseline(), D);
  test_similarity(prismkit::merge::similarity_kernels_baseline());
  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "ok", failures);
  return failures ? 1 : 0;
}
