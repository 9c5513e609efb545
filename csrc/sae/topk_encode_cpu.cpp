// prismkit::topk_encode on the CPU: per token, the k largest of relu(x @ W_enc.T + b_enc),
// computed tile by tile (see row_topk_cpu.h) without the dense [B, F] matrix.
#include "sae/row_topk_cpu.h"
#include "common/float32_compute.h"
#include "sae/sae_checks.h"

#include <ATen/Dispatch.h>
#include <torch/library.h>

namespace prismkit::sae {

std::tuple<at::Tensor, at::Tensor> topk_encode_cpu(const at::Tensor& x, const at::Tensor& W_enc,
                                                   const at::Tensor& b_enc, int64_t k) {
  const auto shape = check_encode_args("topk_encode", x, W_enc, b_enc);
  check_k("topk_encode", k, shape.F);
  if (is_reduced_float(x)) return in_float32(&topk_encode_cpu, x, W_enc, b_enc, k);
  at::Tensor values = at::empty({shape.B, k}, x.options());
  at::Tensor indices = at::empty({shape.B, k}, x.options().dtype(at::kLong));
  if (shape.B == 0) return {values, indices};
  RowTopKOutput out;
  out.uniform_cap = k;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "topk_encode_cpu", [&] {
    row_topk_cpu<scalar_t>(x, W_enc, b_enc, /*bias_per_row=*/false, out, values.data_ptr<scalar_t>(),
                           indices.data_ptr<int64_t>());
  });
  return {values, indices};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("topk_encode", &topk_encode_cpu); }

}  // namespace prismkit::sae
