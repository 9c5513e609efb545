// prismkit::jumprelu_encode on the CPU: threshold_encode's entries (z above threshold[j] and 0,
// value z) plus the entries inside the straight-through estimator's window
// -bandwidth/2 < z - threshold[j] < bandwidth/2 (value 0 when not kept), flagged in `in_window`.
// The window entries carry the threshold's gradient (python/prismkit/ops/sae/autograd.py); one
// sweep over the pre-activation tiles finds both kinds (threshold_rows_cpu.h).
#include "sae/threshold_rows_cpu.h"
#include "common/float32_compute.h"
#include "sae/sae_checks.h"

#include <ATen/Dispatch.h>
#include <torch/library.h>

namespace prismkit::sae {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> jumprelu_encode_cpu(const at::Tensor& x,
                                                                               const at::Tensor& W_enc,
                                                                               const at::Tensor& b_enc,
                                                                               const at::Tensor& threshold_,
                                                                               double bandwidth) {
  const auto shape = check_encode_args("jumprelu_encode", x, W_enc, b_enc);
  check_threshold("jumprelu_encode", threshold_, x, shape.F);
  check_bandwidth("jumprelu_encode", bandwidth);
  if (is_reduced_float(x)) return in_float32(&jumprelu_encode_cpu, x, W_enc, b_enc, threshold_, bandwidth);
  const at::Tensor thr = threshold_.contiguous();
  ThresholdRows rows;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "jumprelu_encode_cpu", [&] {
    rows = threshold_rows<scalar_t, /*WINDOW=*/true>(x, W_enc, b_enc, thr, shape.B, scalar_t(bandwidth / 2));
  });
  return {rows.values, rows.indices, rows.offsets, rows.in_window};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("jumprelu_encode", &jumprelu_encode_cpu); }

}  // namespace prismkit::sae
