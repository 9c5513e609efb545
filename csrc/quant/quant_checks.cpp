#include "quant/quant_checks.h"

#include "common/checks.h"

#include <ATen/ops/isfinite.h>
#include <ATen/ops/stack.h>

namespace prismkit::quant {

RowsShape check_kmeans1d_args(const at::Tensor& values, int64_t k) {
  check_rank("kmeans1d", "values", values, 2, "[R, n] (one row per clustering)");
  check_float_dtype("kmeans1d", "values", values, /*cuda_float64=*/true);
  const int64_t R = values.size(0), n = values.size(1);
  TORCH_CHECK_VALUE(k >= 1 && k <= n, "prismkit::kmeans1d: 'k' must be in [1, n] = [1, ", n,
                    "] (n is the number of values per row), got ", k);
  return {R, n};
}

void check_kmeans1d_values(const at::Tensor& values) {
  if (values.numel() == 0) return;
  // [any row bad, the first bad row], reduced on the values' device and read back in one transfer
  const at::Tensor bad_rows = at::isfinite(values).all(1).logical_not().to(at::kLong);
  const at::Tensor info = at::stack({bad_rows.max(), bad_rows.argmax()}).cpu();
  const int64_t* v = info.const_data_ptr<int64_t>();
  TORCH_CHECK_VALUE(v[0] == 0, "prismkit::kmeans1d: 'values' must be finite, got NaN or inf in row ", v[1]);
}

}  // namespace prismkit::quant
