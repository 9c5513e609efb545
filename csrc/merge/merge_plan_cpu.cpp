// prismkit::merge_plan on the CPU, one image per task (images in parallel), all in float32:
//   1. normalize the metric rows (the class token's excluded for PiToMe) into a buffer;
//   2. PiToMe: the energy of every row, 64 rows of similarities at a time (plan_buffers.h), and
//      the order by descending energy (stable);
//   3. split A / B by the method, and match each A token to its most similar B token from the
//      rows of A against the transposed rows of B (similarity_kernels' dots), first B on ties;
//   4. write dest: [cls, protected | unmerged A, B] slots, merged A tokens to their match's slot
//      (or -1 when pruning).
// The same decisions as the reference's merge_plan (python/prismkit/reference/merge.py), step by
// step; only the floating-point sums differ (so only near-ties can decide differently).
#include "merge/merge_checks.h"
#include "merge/plan_buffers.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <limits>
#include <numeric>
#include <tuple>
#include <vector>

namespace prismkit::merge {
namespace {

struct PlanArgs {
  int64_t N, d, r;
  PlanMethod method;
  float margin, alpha;
  bool class_token, prune;
};

// Per-task scratch, grown once.
struct Scratch {
  std::vector<float> rows, bT, block, a_rows, node_max;
  std::vector<int64_t> order, a_idx, b_idx, node_idx, edge;
};

// For each A token (rows a_idx of `rows`), the largest similarity to a B token and that token's
// position in b_idx (the first on ties; a NaN similarity never wins).
void best_match(const float* rows, int64_t d, const std::vector<int64_t>& a_idx, const std::vector<int64_t>& b_idx,
                Scratch& s) {
  const SimilarityKernels& k = similarity_kernels();
  const int64_t na = static_cast<int64_t>(a_idx.size()), nb = static_cast<int64_t>(b_idx.size());
  const int64_t ldb = padded_columns(nb);
  s.bT.resize(d * ldb);
  transpose_rows(rows, b_idx.data(), nb, d, s.bT.data(), ldb);
  s.block.resize(kEnergyRowBlock * std::max(ldb, padded_columns(1)));
  s.a_rows.resize(kEnergyRowBlock * d);
  float* a = s.a_rows.data();
  s.node_max.assign(na, -std::numeric_limits<float>::infinity());
  s.node_idx.assign(na, 0);
  for (int64_t i0 = 0; i0 < na; i0 += kEnergyRowBlock) {
    const int64_t n = std::min(kEnergyRowBlock, na - i0);
    for (int64_t i = 0; i < n; ++i) std::copy_n(rows + a_idx[i0 + i] * d, d, a + i * d);
    k.dots(a, d, n, s.bT.data(), ldb, nb, d, s.block.data(), ldb);
    for (int64_t i = 0; i < n; ++i) {
      const float* sim = s.block.data() + i * ldb;
      float best = -std::numeric_limits<float>::infinity();
      int64_t at = 0;
      for (int64_t j = 0; j < nb; ++j)
        if (sim[j] > best) best = sim[j], at = j;
      s.node_max[i0 + i] = best;
      s.node_idx[i0 + i] = at;
    }
  }
}

void tome_image(const float* metric, const PlanArgs& p, int64_t* dest, Scratch& s) {
  const int64_t N = p.N, d = p.d, r = std::min(p.r, (N - (p.class_token ? 1 : 0)) / 2);
  if (r <= 0) {  // ToMe's do_nothing
    std::iota(dest, dest + N, int64_t(0));
    return;
  }
  s.rows.resize(N * d);
  normalize_rows(metric, N, d, s.rows.data());
  s.a_idx.clear();
  s.b_idx.clear();
  for (int64_t i = 0; i < N; ++i) (i % 2 ? s.b_idx : s.a_idx).push_back(i);
  best_match(s.rows.data(), d, s.a_idx, s.b_idx, s);
  if (p.class_token) s.node_max[0] = -std::numeric_limits<float>::infinity(), s.node_idx[0] = 0;
  const int64_t na = static_cast<int64_t>(s.a_idx.size()), nb = static_cast<int64_t>(s.b_idx.size());
  s.edge.resize(na);
  descending_order(s.node_max.data(), na, s.edge.data());
  if (p.class_token) std::sort(s.edge.begin() + r, s.edge.end());  // unmerged A by index: cls stays first
  const int64_t n_unm = na - r;
  for (int64_t u = 0; u < n_unm; ++u) dest[s.a_idx[s.edge[r + u]]] = u;
  for (int64_t t = 0; t < nb; ++t) dest[s.b_idx[t]] = n_unm + t;
  for (int64_t e = 0; e < r; ++e) {
    const int64_t a = s.edge[e];
    dest[s.a_idx[a]] = p.prune ? -1 : n_unm + s.node_idx[a];
  }
}

void pitome_image(const float* metric, const PlanArgs& p, int64_t* dest, float* energy, Scratch& s) {
  const int64_t off = p.class_token ? 1 : 0, T = p.N - off, d = p.d, r = p.r, ldb = padded_columns(T);
  const EnergyKernel kernel = p.method == PlanMethod::PiToMeText ? EnergyKernel::Gaussian : EnergyKernel::Elu;
  s.rows.resize(T * d);
  s.bT.resize(d * ldb);
  s.block.resize(kEnergyRowBlock * ldb);
  normalize_rows(metric + off * d, T, d, s.rows.data());
  transpose_rows(s.rows.data(), nullptr, T, d, s.bT.data(), ldb);
  image_energy(s.rows.data(), s.bT.data(), T, d, kernel, p.margin, p.alpha, energy, s.block.data());
  if (p.class_token) dest[0] = 0;
  if (r <= 0 && p.method != PlanMethod::PiToMeBsm) {  // nothing merges: every token keeps its place
    std::iota(dest, dest + p.N, int64_t(0));
    return;
  }
  s.order.resize(T);
  descending_order(energy, T, s.order.data());
  const auto& order = s.order;
  s.a_idx.clear();
  s.b_idx.clear();
  // pitome, pitome_text: the 2r highest-energy tokens pair up, the rest are protected in energy
  // order; pitome_bsm: all ranked tokens alternate A, B and ToMe's top r of A merge
  const bool bsm = p.method == PlanMethod::PiToMeBsm;
  for (int64_t i = 0; i < (bsm ? T : 2 * r); ++i) {
    const bool in_b = p.method == PlanMethod::PiToMeText ? i >= r : i % 2 == 1;
    (in_b ? s.b_idx : s.a_idx).push_back(order[i]);
  }
  best_match(s.rows.data(), d, s.a_idx, s.b_idx, s);
  const int64_t na = static_cast<int64_t>(s.a_idx.size()), nb = static_cast<int64_t>(s.b_idx.size());
  const int64_t n_keep = bsm ? na - r : T - 2 * r;
  s.edge.resize(na);  // A positions, merging ones first: bsm's best-match order (the first r merge)
  if (bsm)
    descending_order(s.node_max.data(), na, s.edge.data());
  else  // every A token merges (na == r)
    std::iota(s.edge.begin(), s.edge.end(), int64_t(0));
  for (int64_t u = 0; u < n_keep; ++u) dest[off + (bsm ? s.a_idx[s.edge[r + u]] : order[2 * r + u])] = off + u;
  for (int64_t t = 0; t < nb; ++t) dest[off + s.b_idx[t]] = off + n_keep + t;
  for (int64_t e = 0; e < r; ++e) {
    const int64_t a = s.edge[e];
    dest[off + s.a_idx[a]] = p.prune ? -1 : off + n_keep + s.node_idx[a];
  }
}

std::tuple<at::Tensor, at::Tensor> merge_plan_cpu(const at::Tensor& metric, int64_t r, const std::string& method,
                                                  double margin, double alpha, bool class_token, bool prune) {
  const PlanMethod pm = check_merge_plan_args(metric, r, method, margin, alpha, class_token, prune);
  const at::Tensor m = metric.to(at::kFloat).contiguous();
  const int64_t B = m.size(0), N = m.size(1), d = m.size(2), T = N - (class_token ? 1 : 0);
  const PlanArgs p{N, d, r, pm, static_cast<float>(margin), static_cast<float>(alpha), class_token, prune};
  at::Tensor dest = at::empty({B, N}, m.options().dtype(at::kLong));
  at::Tensor energy = at::empty(pm == PlanMethod::ToMe ? at::IntArrayRef{0} : at::IntArrayRef{B, T}, m.options());
  const float* src = m.const_data_ptr<float>();
  int64_t* dst = dest.mutable_data_ptr<int64_t>();
  float* en = energy.mutable_data_ptr<float>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    Scratch s;
    for (int64_t b = b0; b < b1; ++b) {
      if (pm == PlanMethod::ToMe)
        tome_image(src + b * N * d, p, dst + b * N, s);
      else
        pitome_image(src + b * N * d, p, dst + b * N, en + b * T, s);
    }
  });
  return {dest, energy.to(metric.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("merge_plan", &merge_plan_cpu); }

}  // namespace prismkit::merge
