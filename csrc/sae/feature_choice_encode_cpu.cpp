// prismkit::feature_choice_encode on the CPU: latent j keeps its capacity[j] highest
// activating tokens of the batch (positive entries only, NaN counted as positive and ranked
// first, ties to the lower token index). The fused row routine runs on the transposed
// problem: rows are latents (A = W_enc, bias per row), columns are tokens (Bm = x). The
// per-latent lists are then regrouped by token into the row-compressed layout.
#include "sae/row_topk_cpu.h"
#include "common/float32_compute.h"
#include "sae/sae_checks.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <numeric>

namespace prismkit::sae {
namespace {

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> feature_choice(const at::Tensor& x, const at::Tensor& W_enc,
                                                              const at::Tensor& b_enc, const at::Tensor& caps,
                                                              int64_t B, int64_t F) {
  const int64_t* cap = caps.const_data_ptr<int64_t>();
  std::vector<int64_t> cand_offsets(F + 1, 0);
  std::partial_sum(cap, cap + F, cand_offsets.begin() + 1);
  std::vector<T> cand_values(cand_offsets[F]);
  std::vector<int64_t> cand_tokens(cand_offsets[F]);
  RowTopKOutput out;
  out.caps = cap;
  out.out_offsets = cand_offsets.data();
  row_topk_cpu<T>(W_enc, x, b_enc, /*bias_per_row=*/true, out, cand_values.data(), cand_tokens.data());

  // Each latent keeps the positive prefix of its best-first list. Regroup by token with a
  // counting sort; visiting latents in increasing order keeps latent ids ascending per token.
  std::vector<int64_t> kept(F, 0);
  at::Tensor offsets = at::zeros({B + 1}, x.options().dtype(at::kLong));
  int64_t* off = offsets.data_ptr<int64_t>();
  for (int64_t j = 0; j < F; ++j) {
    for (int64_t i = cand_offsets[j]; i < cand_offsets[j + 1] && !(cand_values[i] <= T(0)); ++i) {
      ++off[cand_tokens[i] + 1];
      ++kept[j];
    }
  }
  for (int64_t t = 0; t < B; ++t) off[t + 1] += off[t];
  at::Tensor values = at::empty({off[B]}, x.options());
  at::Tensor indices = at::empty({off[B]}, x.options().dtype(at::kLong));
  T* v = values.data_ptr<T>();
  int64_t* idx = indices.data_ptr<int64_t>();
  std::vector<int64_t> cursor(off, off + B);
  for (int64_t j = 0; j < F; ++j) {
    for (int64_t i = cand_offsets[j]; i < cand_offsets[j] + kept[j]; ++i) {
      const int64_t at_ = cursor[cand_tokens[i]]++;
      v[at_] = cand_values[i];
      idx[at_] = j;
    }
  }
  return {values, indices, offsets};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> feature_choice_encode_cpu(const at::Tensor& x, const at::Tensor& W_enc,
                                                                         const at::Tensor& b_enc,
                                                                         const at::Tensor& capacity) {
  const auto shape = check_encode_args("feature_choice_encode", x, W_enc, b_enc);
  const at::Tensor caps = check_capacity("feature_choice_encode", capacity, x, shape.F, shape.B);
  if (is_reduced_float(x)) return in_float32(&feature_choice_encode_cpu, x, W_enc, b_enc, capacity);
  std::tuple<at::Tensor, at::Tensor, at::Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "feature_choice_encode_cpu",
                             [&] { result = feature_choice<scalar_t>(x, W_enc, b_enc, caps, shape.B, shape.F); });
  return result;
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("feature_choice_encode", &feature_choice_encode_cpu); }

}  // namespace prismkit::sae
