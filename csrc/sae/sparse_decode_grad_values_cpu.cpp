// prismkit::sparse_decode_grad_values on the CPU: grad_values[p] = grad_out[row(p)] .
// W_dec[indices[p]], the gradient of sparse_decode with respect to its values (a sampled
// dense-dense product: only the B*k selected entries of grad_out @ W_dec.T are computed).
#include "common/vector_math.h"
#include "common/float32_compute.h"
#include "sae/sae_checks.h"
#include "sae/sparse_rows_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

namespace prismkit::sae {

at::Tensor sparse_decode_grad_values_cpu(const at::Tensor& grad_out, const at::Tensor& indices,
                                         const std::optional<at::Tensor>& offsets, const at::Tensor& W_dec) {
  const SparseLayout layout = check_sparse_decode_grad_values_args(grad_out, indices, offsets, W_dec);
  if (is_reduced_float(grad_out)) return in_float32(&sparse_decode_grad_values_cpu, grad_out, indices, offsets, W_dec);
  at::Tensor grad_values = at::empty(indices.sizes(), grad_out.options());
  if (layout.nnz == 0) return grad_values;
  const int64_t d = W_dec.size(1);
  const at::Tensor g = grad_out.contiguous(), idx = indices.contiguous(), W = W_dec.contiguous();
  const at::Tensor off = offsets.has_value() ? offsets->contiguous() : at::Tensor();
  const SparseRows rows{off.defined() ? off.const_data_ptr<int64_t>() : nullptr, layout.k};
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "sparse_decode_grad_values_cpu", [&] {
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    const int64_t* ip = idx.const_data_ptr<int64_t>();
    const scalar_t* wp = W.const_data_ptr<scalar_t>();
    scalar_t* out = grad_values.data_ptr<scalar_t>();
    at::parallel_for(0, layout.B, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t end = rows.end(r);
        for (int64_t p = rows.begin(r); p < end; ++p) {
          if (p + 1 < end) __builtin_prefetch(wp + ip[p + 1] * d);
          out[p] = dot(gp + r * d, wp + ip[p] * d, d);
        }
      }
    });
  });
  return grad_values;
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("sparse_decode_grad_values", &sparse_decode_grad_values_cpu); }

}  // namespace prismkit::sae
