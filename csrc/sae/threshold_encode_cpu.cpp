// prismkit::threshold_encode on the CPU: JumpReLU encoding, and BatchTopK's batch-independent
// inference rule. Entry (token, latent) is kept when its pre-activation z = x . W_enc[j] +
// b_enc[j] is above both threshold[j] and 0 (NaN is kept, as in the other encoders); its
// value is z. The sweep and the packing are threshold_rows_cpu.h's, shared with jumprelu_encode.
#include "sae/threshold_rows_cpu.h"
#include "common/float32_compute.h"
#include "sae/sae_checks.h"

#include <ATen/Dispatch.h>
#include <torch/library.h>

namespace prismkit::sae {

std::tuple<at::Tensor, at::Tensor, at::Tensor> threshold_encode_cpu(const at::Tensor& x, const at::Tensor& W_enc,
                                                                    const at::Tensor& b_enc,
                                                                    const at::Tensor& threshold_) {
  const auto shape = check_encode_args("threshold_encode", x, W_enc, b_enc);
  check_threshold("threshold_encode", threshold_, x, shape.F);
  if (is_reduced_float(x)) return in_float32(&threshold_encode_cpu, x, W_enc, b_enc, threshold_);
  const at::Tensor thr = threshold_.contiguous();
  ThresholdRows rows;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "threshold_encode_cpu", [&] {
    rows = threshold_rows<scalar_t, /*WINDOW=*/false>(x, W_enc, b_enc, thr, shape.B, scalar_t(0));
  });
  return {rows.values, rows.indices, rows.offsets};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("threshold_encode", &threshold_encode_cpu); }

}  // namespace prismkit::sae
