// prismkit::divprune_select on the CPU, one image per task (images in parallel), in float32, from
// the metric rows as they are plus one inverse norm per row (no normalized copy of the metric):
//   1. each token's nearest other token: panels of 32 tokens, normalized and transposed into a
//      buffer, against every row from the panel's first on (similarity_kernels' dots). Each pair
//      below the diagonal is computed once and updates both its tokens (the similarity is
//      symmetric): about N^2 d / 2 multiply-adds, never an N x N matrix;
//   2. the first pick: the token whose nearest other token is farthest (cosine distance 1 - s);
//   3. each later pick: the unpicked token farthest from the picked set, kept as a running minimum
//      of distances updated by one pass over the rows per pick (row_dots): O(k N d).
// Ties go to the lower index; a NaN distance never wins (all NaN: the first unpicked token).
#include "merge/merge_checks.h"
#include "merge/plan_buffers.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace prismkit::merge {
namespace {

// Tokens per transposed panel, and its row stride: 32 x d floats (512 KiB at d = 4096), contiguous, stay in L2.
constexpr int64_t kPanel = 32;

void select_image(const float* x, int64_t N, int64_t d, int64_t k, int64_t* picks) {
  const SimilarityKernels& kern = similarity_kernels();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> inv(N), nearest(N, -inf), bT(d * kPanel), block(N * kPanel), unit(d), sim(N);
  for (int64_t i = 0; i < N; ++i) inv[i] = inverse_norm(x + i * d, d);
  for (int64_t j0 = 0; j0 < N; j0 += kPanel) {  // 1. nearest[i]: the largest similarity to another token
    const int64_t cols = std::min(kPanel, N - j0);
    std::fill(bT.begin(), bT.end(), 0.0f);
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t c = 0; c < d; ++c) bT[c * kPanel + j] = x[(j0 + j) * d + c] * inv[j0 + j];
    const int64_t rows = N - j0;
    kern.dots(x + j0 * d, d, rows, bT.data(), kPanel, cols, d, block.data(), kPanel);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        if (i == j) continue;
        const float s = block[i * kPanel + j] * inv[j0 + i];
        nearest[j0 + i] = std::max(nearest[j0 + i], s);
        nearest[j0 + j] = std::max(nearest[j0 + j], s);
      }
  }
  std::vector<float> running(N);
  std::vector<char> chosen(N, 0);
  auto farthest = [&](const std::vector<float>& dist) {  // the first unpicked maximum; NaN never wins
    int64_t at = -1;
    for (int64_t i = 0; i < N; ++i)
      if (!chosen[i] && (at < 0 || dist[i] > dist[at] || (std::isnan(dist[at]) && !std::isnan(dist[i])))) at = i;
    return at;
  };
  for (int64_t i = 0; i < N; ++i) running[i] = 1.0f - nearest[i];
  for (int64_t step = 0; step < k; ++step) {
    const int64_t p = farthest(running);  // 2. the first pick (running = nearest distances); 3. the later ones
    picks[step] = p;
    chosen[p] = 1;
    if (step == 0) std::fill(running.begin(), running.end(), inf);
    for (int64_t c = 0; c < d; ++c) unit[c] = x[p * d + c] * inv[p];
    kern.row_dots(x, d, N, unit.data(), d, sim.data());
    for (int64_t i = 0; i < N; ++i) running[i] = std::min(running[i], 1.0f - sim[i] * inv[i]);
  }
  std::sort(picks, picks + k);
}

at::Tensor divprune_select_cpu(const at::Tensor& metric, int64_t k) {
  check_divprune_select_args(metric, k);
  const at::Tensor m = metric.to(at::kFloat).contiguous();
  const int64_t B = m.size(0), N = m.size(1), d = m.size(2);
  at::Tensor picks = at::empty({B, k}, m.options().dtype(at::kLong));
  const float* src = m.const_data_ptr<float>();
  int64_t* out = picks.mutable_data_ptr<int64_t>();
  if (k > 0)
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) select_image(src + b * N * d, N, d, k, out + b * k);
    });
  return picks;
}

}  // namespace

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("divprune_select", &divprune_select_cpu); }

}  // namespace prismkit::merge
