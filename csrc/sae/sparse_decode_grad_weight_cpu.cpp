// prismkit::sparse_decode_grad_weight on the CPU:
//   grad_weight[f]    = sum over entries p with indices[p] == f of values[p] * grad_out[row(p)]
//   grad_value_sum[f] = sum over the same entries of values[p]
// (the gradient of sparse_decode with respect to W_dec; with grad_out = x it is the encoder's
// weight and bias gradient). Entries are counting-sorted by latent, then each thread owns
// whole latents and writes their rows once: no atomics, and the summation order is fixed,
// so the result is bit-deterministic.
#include "common/cpu_alloc.h"
#include "common/float32_compute.h"
#include "sae/sae_checks.h"
#include "sae/sparse_rows_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

namespace prismkit::sae {

std::tuple<at::Tensor, at::Tensor> sparse_decode_grad_weight_cpu(const at::Tensor& grad_out, const at::Tensor& values,
                                                                 const at::Tensor& indices,
                                                                 const std::optional<at::Tensor>& offsets,
                                                                 int64_t num_latents) {
  const SparseLayout layout = check_sparse_decode_grad_weight_args(grad_out, values, indices, offsets, num_latents);
  if (is_reduced_float(grad_out))
    return in_float32(&sparse_decode_grad_weight_cpu, grad_out, values, indices, offsets, num_latents);
  const int64_t d = grad_out.size(1), F = num_latents, nnz = layout.nnz;
  at::Tensor grad_weight = empty_for_large_output({F, d}, grad_out.options());
  at::Tensor value_sum = at::empty({F}, grad_out.options());
  const at::Tensor g = grad_out.contiguous(), v = values.contiguous(), idx = indices.contiguous();
  const at::Tensor off = offsets.has_value() ? offsets->contiguous() : at::Tensor();
  const SparseRows rows{off.defined() ? off.const_data_ptr<int64_t>() : nullptr, layout.k};
  const int64_t* ip = idx.const_data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "sparse_decode_grad_weight_cpu", [&] {
    weight_grad_by_latent<scalar_t>(rows, layout.B, nnz, ip, v.const_data_ptr<scalar_t>(), g.const_data_ptr<scalar_t>(),
                                    d, F, grad_weight.data_ptr<scalar_t>(), value_sum.data_ptr<scalar_t>());
  });
  return {grad_weight, value_sum};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("sparse_decode_grad_weight", &sparse_decode_grad_weight_cpu); }

}  // namespace prismkit::sae
