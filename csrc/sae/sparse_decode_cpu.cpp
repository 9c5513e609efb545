// prismkit::sparse_decode on the CPU: out[r] = b_dec + sum over row r's entries p of
// values[p] * W_dec[indices[p]]. Rows are independent, so threads split the batch; each
// row accumulates in its own output row, in the input dtype (float32 or float64).
#include "common/cpu_alloc.h"
#include "common/vector_math.h"
#include "common/float32_compute.h"
#include "sae/sae_checks.h"
#include "sae/sparse_rows_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>

namespace prismkit::sae {

at::Tensor sparse_decode_cpu(const at::Tensor& values, const at::Tensor& indices,
                             const std::optional<at::Tensor>& offsets, const at::Tensor& W_dec,
                             const std::optional<at::Tensor>& b_dec) {
  const SparseLayout layout = check_sparse_decode_args(values, indices, offsets, W_dec, b_dec);
  if (is_reduced_float(values)) return in_float32(&sparse_decode_cpu, values, indices, offsets, W_dec, b_dec);
  const int64_t d = W_dec.size(1);
  at::Tensor out = empty_for_large_output({layout.B, d}, W_dec.options());
  if (layout.B == 0 || d == 0) return out;
  const at::Tensor v = values.contiguous(), idx = indices.contiguous(), W = W_dec.contiguous();
  const at::Tensor off = offsets.has_value() ? offsets->contiguous() : at::Tensor();
  const at::Tensor b = b_dec.has_value() ? b_dec->contiguous() : at::Tensor();
  const SparseRows rows{off.defined() ? off.const_data_ptr<int64_t>() : nullptr, layout.k};
  AT_DISPATCH_FLOATING_TYPES(values.scalar_type(), "sparse_decode_cpu", [&] {
    const scalar_t* vp = v.const_data_ptr<scalar_t>();
    const int64_t* ip = idx.const_data_ptr<int64_t>();
    const scalar_t* wp = W.const_data_ptr<scalar_t>();
    const scalar_t* bp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* op_ = out.data_ptr<scalar_t>();
    at::parallel_for(0, layout.B, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        scalar_t* o = op_ + r * d;
        if (bp)
          std::copy(bp, bp + d, o);
        else
          std::fill(o, o + d, scalar_t(0));
        // Entries of this thread's later rows are valid prefetch targets.
        const int64_t begin = rows.begin(r), range_end = rows.end(r1 - 1);
        gather_axpy(wp, d, ip + begin, vp + begin, rows.end(r) - begin, range_end - begin, o);
      }
    });
  });
  return out;
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("sparse_decode", &sparse_decode_cpu); }

}  // namespace prismkit::sae
