// prismkit::batch_topk_encode on the CPU (BatchTopK, the same allocation as Mutual
// Choice): the k*B largest post-ReLU entries of the whole [B, F] matrix, positive ones only
// (NaN counts as positive and ranks first), ties to the lower flat index token * F + latent.
//
// Exact without the dense matrix. Each token first keeps its best `cap` entries
// (cap = min(F, 4k) to start) with the fused row routine; the global top k*B is taken among
// these candidates. A token whose `cap` candidates were all selected may have more entries
// that belong to the answer, so it is recomputed with twice the cap and the selection
// repeated. Any other token's share is exact: if one of its entries e outside its candidates
// belonged to the answer, all its candidates (which rank above e) would too, and they would
// all have been selected.
#include "sae/row_topk_cpu.h"
#include "common/float32_compute.h"
#include "sae/sae_checks.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <numeric>

namespace prismkit::sae {
namespace {

// Candidates of every token, best first; token r's live at [offsets[r], offsets[r] + caps[r]).
template <typename T>
struct TokenCandidates {
  std::vector<int64_t> caps, offsets;
  std::vector<T> values;
  std::vector<int64_t> latents;

  void layout(const std::vector<int64_t>& new_caps) {
    caps = new_caps;
    offsets.assign(caps.size() + 1, 0);
    std::partial_sum(caps.begin(), caps.end(), offsets.begin() + 1);
    values.resize(offsets.back());
    latents.resize(offsets.back());
  }
};

// Computes the candidates of the listed tokens (all tokens when `tokens` is empty) with
// the given per-token caps, into `into`.
template <typename T>
void compute_candidates(const at::Tensor& x, const at::Tensor& W_enc, const at::Tensor& b_enc,
                        const std::vector<int64_t>& tokens, const std::vector<int64_t>& caps,
                        TokenCandidates<T>& into) {
  TokenCandidates<T> fresh;
  fresh.layout(caps);
  RowTopKOutput out;
  out.caps = fresh.caps.data();
  out.out_offsets = fresh.offsets.data();
  at::Tensor rows = x;
  if (!tokens.empty()) {
    auto ids = at::from_blob(const_cast<int64_t*>(tokens.data()), {(int64_t)tokens.size()}, at::kLong);
    rows = x.index_select(0, ids);
  }
  row_topk_cpu<T>(rows, W_enc, b_enc, /*bias_per_row=*/false, out, fresh.values.data(), fresh.latents.data());
  if (tokens.empty()) {
    into = std::move(fresh);
    return;
  }
  // Splice the recomputed tokens into the full layout.
  std::vector<int64_t> all_caps = into.caps;
  for (size_t i = 0; i < tokens.size(); ++i) all_caps[tokens[i]] = caps[i];
  TokenCandidates<T> merged;
  merged.layout(all_caps);
  std::vector<int64_t> source(all_caps.size(), -1);
  for (size_t i = 0; i < tokens.size(); ++i) source[tokens[i]] = (int64_t)i;
  for (size_t r = 0; r < all_caps.size(); ++r) {
    const bool recomputed = source[r] >= 0;
    const T* v = recomputed ? fresh.values.data() + fresh.offsets[source[r]] : into.values.data() + into.offsets[r];
    const int64_t* l =
        recomputed ? fresh.latents.data() + fresh.offsets[source[r]] : into.latents.data() + into.offsets[r];
    std::copy(v, v + all_caps[r], merged.values.begin() + merged.offsets[r]);
    std::copy(l, l + all_caps[r], merged.latents.begin() + merged.offsets[r]);
  }
  into = std::move(merged);
}

// How many of each token's candidates (a prefix, since they are sorted) are among the
// `budget` best positive candidates of the batch.
template <typename T>
std::vector<int64_t> select_counts(const TokenCandidates<T>& cand, int64_t F, int64_t budget) {
  const int64_t B = (int64_t)cand.caps.size();
  std::vector<Candidate<T>> pool;
  pool.reserve(cand.values.size());
  std::vector<int64_t> positive(B, 0);
  for (int64_t r = 0; r < B; ++r) {
    for (int64_t i = cand.offsets[r]; i < cand.offsets[r + 1]; ++i) {
      if (cand.values[i] <= T(0)) break;  // sorted: zeros come last
      pool.push_back({cand.values[i], r * F + cand.latents[i]});
      ++positive[r];
    }
  }
  if ((int64_t)pool.size() <= budget) return positive;
  std::nth_element(pool.begin(), pool.begin() + (budget - 1), pool.end(), ranks_above<T>);
  const Candidate<T> last = pool[budget - 1];
  std::vector<int64_t> counts(B, 0);
  for (int64_t r = 0; r < B; ++r) {
    int64_t n = 0;
    for (int64_t i = cand.offsets[r]; i < cand.offsets[r] + positive[r]; ++i, ++n) {
      const Candidate<T> c{cand.values[i], r * F + cand.latents[i]};
      if (ranks_above(last, c)) break;
    }
    counts[r] = n;
  }
  return counts;
}

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> batch_topk(const at::Tensor& x, const at::Tensor& W_enc,
                                                          const at::Tensor& b_enc, int64_t k, int64_t B, int64_t F) {
  TokenCandidates<T> cand;
  compute_candidates<T>(x, W_enc, b_enc, {}, std::vector<int64_t>(B, std::min(F, 4 * k)), cand);
  std::vector<int64_t> counts;
  while (true) {
    counts = select_counts(cand, F, k * B);
    std::vector<int64_t> retry, retry_caps;
    for (int64_t r = 0; r < B; ++r) {
      if (counts[r] == cand.caps[r] && cand.caps[r] < F) {
        retry.push_back(r);
        retry_caps.push_back(std::min(F, 2 * cand.caps[r]));
      }
    }
    if (retry.empty()) break;
    compute_candidates<T>(x, W_enc, b_enc, retry, retry_caps, cand);
  }
  at::Tensor offsets = at::empty({B + 1}, x.options().dtype(at::kLong));
  int64_t* off = offsets.data_ptr<int64_t>();
  off[0] = 0;
  for (int64_t r = 0; r < B; ++r) off[r + 1] = off[r] + counts[r];
  at::Tensor values = at::empty({off[B]}, x.options());
  at::Tensor indices = at::empty({off[B]}, x.options().dtype(at::kLong));
  T* v = values.data_ptr<T>();
  int64_t* idx = indices.data_ptr<int64_t>();
  at::parallel_for(0, B, 64, [&](int64_t r0, int64_t r1) {
    std::vector<int64_t> order;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t src = cand.offsets[r], n = counts[r];
      order.resize(n);
      std::iota(order.begin(), order.end(), src);
      std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cand.latents[a] < cand.latents[b]; });
      for (int64_t i = 0; i < n; ++i) {
        v[off[r] + i] = cand.values[order[i]];
        idx[off[r] + i] = cand.latents[order[i]];
      }
    }
  });
  return {values, indices, offsets};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> batch_topk_encode_cpu(const at::Tensor& x, const at::Tensor& W_enc,
                                                                     const at::Tensor& b_enc, int64_t k) {
  const auto shape = check_encode_args("batch_topk_encode", x, W_enc, b_enc);
  check_k("batch_topk_encode", k, shape.F);
  if (is_reduced_float(x)) return in_float32(&batch_topk_encode_cpu, x, W_enc, b_enc, k);
  if (shape.B == 0)
    return {at::empty({0}, x.options()), at::empty({0}, x.options().dtype(at::kLong)),
            at::zeros({1}, x.options().dtype(at::kLong))};
  std::tuple<at::Tensor, at::Tensor, at::Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "batch_topk_encode_cpu",
                             [&] { result = batch_topk<scalar_t>(x, W_enc, b_enc, k, shape.B, shape.F); });
  return result;
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("batch_topk_encode", &batch_topk_encode_cpu); }

}  // namespace prismkit::sae
