// prismkit::latent_stats on the CPU: per latent j, over the batch's pre-activations
// z = x . W_enc[j] + b_enc[j], how many are above threshold[j] (0 without one) and the
// largest z (NaN if any z is NaN; -inf for an empty batch). The sweep runs on the transposed
// problem (rows = latents, columns = tokens), so each latent's counters belong to one thread:
// no atomics, no [B, F] matrix, and the result is bit-deterministic.
#include "sae/preact_tiles_cpu.h"
#include "common/float32_compute.h"
#include "sae/sae_checks.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <cmath>
#include <limits>

namespace prismkit::sae {
namespace {

template <typename T>
void stats(const at::Tensor& x, const at::Tensor& W_enc, const at::Tensor& b_enc, const T* theta, int64_t* count,
           T* maximum) {
  for_each_preact_tile<T>(W_enc, x, b_enc, /*bias_per_row=*/true,
                          [&](int64_t r0, int64_t nr, int64_t c0, int64_t nc, const T* z) {
                            for (int64_t i = 0; i < nr; ++i) {
                              const int64_t j = r0 + i;
                              const T t = theta ? theta[j] : T(0);
                              const T* zr = z + i * nc;
                              int64_t n = 0;
                              T m = maximum[j];
                              for (int64_t c = 0; c < nc; ++c) {
                                n += zr[c] > t;
                                m = (zr[c] > m || std::isnan(zr[c])) && !std::isnan(m) ? zr[c] : m;
                              }
                              count[j] += n;
                              maximum[j] = m;
                            }
                          });
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> latent_stats_cpu(const at::Tensor& x, const at::Tensor& W_enc,
                                                    const at::Tensor& b_enc,
                                                    const std::optional<at::Tensor>& threshold_) {
  const auto shape = check_encode_args("latent_stats", x, W_enc, b_enc);
  at::Tensor thr;
  if (threshold_.has_value()) {
    check_threshold("latent_stats", *threshold_, x, shape.F);
    thr = threshold_->contiguous();
  }
  if (is_reduced_float(x)) return in_float32(&latent_stats_cpu, x, W_enc, b_enc, threshold_);
  at::Tensor count = at::zeros({shape.F}, x.options().dtype(at::kLong));
  at::Tensor maximum = at::full({shape.F}, -std::numeric_limits<double>::infinity(), x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "latent_stats_cpu", [&] {
    stats<scalar_t>(x, W_enc, b_enc, thr.defined() ? thr.const_data_ptr<scalar_t>() : nullptr,
                    count.data_ptr<int64_t>(), maximum.data_ptr<scalar_t>());
  });
  return {count, maximum};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("latent_stats", &latent_stats_cpu); }

}  // namespace prismkit::sae
