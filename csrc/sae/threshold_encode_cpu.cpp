// prismkit::threshold_encode on the CPU: JumpReLU encoding, and BatchTopK's batch-independent
// inference rule. Entry (token, latent) is kept when its pre-activation z = x . W_enc[j] +
// b_enc[j] is above both threshold[j] and 0 (NaN is kept, as in the other encoders); its
// value is z. Tiles of z are swept once (preact_tiles_cpu.h) into per-token lists, which are
// then packed into the row-compressed layout.
#include "sae/preact_tiles_cpu.h"
#include "common/float32_compute.h"
#include "sae/sae_checks.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <vector>

namespace prismkit::sae {
namespace {

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> threshold(const at::Tensor& x, const at::Tensor& W_enc,
                                                         const at::Tensor& b_enc, const at::Tensor& thr, int64_t B) {
  const T* theta = thr.const_data_ptr<T>();
  std::vector<std::vector<T>> row_values(B);
  std::vector<std::vector<int64_t>> row_latents(B);
  for_each_preact_tile<T>(x, W_enc, b_enc, /*bias_per_row=*/false,
                          [&](int64_t r0, int64_t nr, int64_t c0, int64_t nc, const T* z) {
                            for (int64_t i = 0; i < nr; ++i) {
                              auto& vals = row_values[r0 + i];
                              auto& lats = row_latents[r0 + i];
                              const T* zr = z + i * nc;
                              for (int64_t j = 0; j < nc; ++j) {
                                const T v = zr[j];
                                if (!(v <= theta[c0 + j]) && !(v <= T(0))) {
                                  vals.push_back(v);
                                  lats.push_back(c0 + j);
                                }
                              }
                            }
                          });
  at::Tensor offsets = at::zeros({B + 1}, x.options().dtype(at::kLong));
  int64_t* off = offsets.data_ptr<int64_t>();
  for (int64_t r = 0; r < B; ++r) off[r + 1] = off[r] + (int64_t)row_latents[r].size();
  at::Tensor values = at::empty({off[B]}, x.options());
  at::Tensor indices = at::empty({off[B]}, x.options().dtype(at::kLong));
  T* v = values.data_ptr<T>();
  int64_t* idx = indices.data_ptr<int64_t>();
  at::parallel_for(0, B, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      std::copy(row_values[r].begin(), row_values[r].end(), v + off[r]);
      std::copy(row_latents[r].begin(), row_latents[r].end(), idx + off[r]);
    }
  });
  return {values, indices, offsets};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> threshold_encode_cpu(const at::Tensor& x, const at::Tensor& W_enc,
                                                                    const at::Tensor& b_enc,
                                                                    const at::Tensor& threshold_) {
  const auto shape = check_encode_args("threshold_encode", x, W_enc, b_enc);
  check_threshold("threshold_encode", threshold_, x, shape.F);
  if (is_reduced_float(x)) return in_float32(&threshold_encode_cpu, x, W_enc, b_enc, threshold_);
  const at::Tensor thr = threshold_.contiguous();
  std::tuple<at::Tensor, at::Tensor, at::Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "threshold_encode_cpu",
                             [&] { result = threshold<scalar_t>(x, W_enc, b_enc, thr, shape.B); });
  return result;
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("threshold_encode", &threshold_encode_cpu); }

}  // namespace prismkit::sae
