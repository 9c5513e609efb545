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

void check_bits(const char* op, int64_t bits) {
  TORCH_CHECK_VALUE(bits == 2 || bits == 4 || bits == 8, "prismkit::", op, ": 'bits' must be 2, 4 or 8, got ", bits);
}

void check_quant_pack_args(const at::Tensor& values, int64_t bits) {
  check_rank("quant_pack", "values", values, 2, "[N, n] (one packed row per row)");
  check_dtype("quant_pack", "values", values, {at::kByte});
  check_bits("quant_pack", bits);
  if (values.numel() == 0 || bits == 8) return;
  const int64_t largest = values.max().item<int64_t>();  // one device-to-host transfer
  TORCH_CHECK_VALUE(largest < (int64_t{1} << bits), "prismkit::quant_pack: 'values' must be below 2^bits = ",
                    int64_t{1} << bits, ", got a value of ", largest);
}

void check_quant_unpack_args(const at::Tensor& packed, int64_t bits, int64_t n) {
  check_rank("quant_unpack", "packed", packed, 2, "[N, ceil(n * bits / 8)]");
  check_dtype("quant_unpack", "packed", packed, {at::kByte});
  check_bits("quant_unpack", bits);
  TORCH_CHECK_VALUE(n >= 0, "prismkit::quant_unpack: 'n' must be >= 0, got ", n);
  check_size("quant_unpack", "packed", packed, 1, packed_row_bytes(n, bits), "ceil(n * bits / 8), the bytes of n values");
}

}  // namespace prismkit::quant
