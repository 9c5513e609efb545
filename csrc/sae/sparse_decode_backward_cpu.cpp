// prismkit::sparse_decode_backward on the CPU: both gradients of sparse_decode in one pass,
//   grad_values[p] = grad_out[row(p)] . W_dec[indices[p]]
//   grad_weight[f] = sum over entries p of latent f of values[p] * grad_out[row(p)]
// Entries are regrouped by latent; each latent's W_dec row is read once and held in registers
// while its entries' grad_out rows are gathered once for both sums. Computed separately, the
// two gradients gather a W_dec row per entry and a grad_out row per entry; fused, only the
// grad_out rows (a [B, d] matrix, far smaller than W_dec) are gathered. Bit-deterministic.
#include "common/cpu_alloc.h"
#include "common/float32_compute.h"
#include "sae/sae_checks.h"
#include "sae/sparse_rows_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

namespace prismkit::sae {

std::tuple<at::Tensor, at::Tensor> sparse_decode_backward_cpu(const at::Tensor& grad_out, const at::Tensor& values,
                                                              const at::Tensor& indices,
                                                              const std::optional<at::Tensor>& offsets,
                                                              const at::Tensor& W_dec) {
  const SparseLayout layout = check_sparse_decode_backward_args(grad_out, values, indices, offsets, W_dec);
  if (is_reduced_float(grad_out))
    return in_float32(&sparse_decode_backward_cpu, grad_out, values, indices, offsets, W_dec);
  const int64_t d = W_dec.size(1), F = W_dec.size(0), nnz = layout.nnz;
  at::Tensor grad_values = at::empty(indices.sizes(), grad_out.options());
  at::Tensor grad_weight = empty_for_large_output({F, d}, grad_out.options());
  const at::Tensor g = grad_out.contiguous(), v = values.contiguous(), idx = indices.contiguous(),
                   W = W_dec.contiguous();
  const at::Tensor off = offsets.has_value() ? offsets->contiguous() : at::Tensor();
  const SparseRows rows{off.defined() ? off.const_data_ptr<int64_t>() : nullptr, layout.k};
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "sparse_decode_backward_cpu", [&] {
    weight_grad_by_latent<scalar_t>(rows, layout.B, nnz, idx.const_data_ptr<int64_t>(), v.const_data_ptr<scalar_t>(),
                                    g.const_data_ptr<scalar_t>(), d, F, grad_weight.data_ptr<scalar_t>(),
                                    /*value_sum=*/nullptr, W.const_data_ptr<scalar_t>(),
                                    grad_values.data_ptr<scalar_t>());
  });
  return {grad_values, grad_weight};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("sparse_decode_backward", &sparse_decode_backward_cpu); }

}  // namespace prismkit::sae
