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
  TORCH_CHECK_VALUE(largest < (int64_t{1} << bits),
                    "prismkit::quant_pack: 'values' must be below 2^bits = ", int64_t{1} << bits, ", got a value of ",
                    largest);
}

void check_quant_unpack_args(const at::Tensor& packed, int64_t bits, int64_t n) {
  check_rank("quant_unpack", "packed", packed, 2, "[N, ceil(n * bits / 8)]");
  check_dtype("quant_unpack", "packed", packed, {at::kByte});
  check_bits("quant_unpack", bits);
  TORCH_CHECK_VALUE(n >= 0, "prismkit::quant_unpack: 'n' must be >= 0, got ", n);
  check_size("quant_unpack", "packed", packed, 1, packed_row_bytes(n, bits),
             "ceil(n * bits / 8), the bytes of n values");
}

QuantWeightShape check_quant_weight_args(const char* op, const at::Tensor& codes, const at::Tensor& cluster_ids,
                                         const at::Tensor& scales, const at::Tensor& zeros, int64_t bits,
                                         int64_t group_size, int64_t out_features, int64_t in_features) {
  check_bits(op, bits);
  TORCH_CHECK_VALUE(out_features >= 1 && in_features >= 1, "prismkit::", op,
                    ": 'out_features' and 'in_features' must be >= 1, got ", out_features, " and ", in_features);
  TORCH_CHECK_VALUE(group_size >= 1 && in_features % group_size == 0, "prismkit::", op,
                    ": 'group_size' must divide in_features = ", in_features, ", got ", group_size);
  const int64_t N = out_features, K = in_features, G = K / group_size;
  check_rank(op, "codes", codes, 2, "[out_features, ceil(in_features * bits / 8)]");
  check_dtype(op, "codes", codes, {at::kByte});
  check_size(op, "codes", codes, 0, N, "out_features");
  check_size(op, "codes", codes, 1, packed_row_bytes(K, bits), "ceil(in_features * bits / 8)");
  const bool clustered = cluster_ids.numel() > 0;
  if (clustered) {
    check_rank(op, "cluster_ids", cluster_ids, 2, "[out_features, ceil(in_features / 4)], or empty for one cluster");
    check_dtype(op, "cluster_ids", cluster_ids, {at::kByte});
    check_same_device(op, "cluster_ids", cluster_ids, "codes", codes);
    check_size(op, "cluster_ids", cluster_ids, 0, N, "out_features");
    check_size(op, "cluster_ids", cluster_ids, 1, packed_row_bytes(K, 2), "ceil(in_features / 4)");
  }
  check_rank(op, "scales", scales, 3, "[out_features, in_features / group_size, clusters]");
  check_dtype(op, "scales", scales, {at::kHalf, at::kBFloat16, at::kFloat});
  check_same_device(op, "scales", scales, "codes", codes);
  check_size(op, "scales", scales, 0, N, "out_features");
  check_size(op, "scales", scales, 1, G, "in_features / group_size");
  const int64_t C = scales.size(2);
  if (clustered) {
    TORCH_CHECK_VALUE(C >= 1 && C <= 4, "prismkit::", op, ": 'scales' must have 1 to 4 clusters in dim 2, got ", C);
  } else {
    check_size(op, "scales", scales, 2, 1, "1: one cluster, since cluster_ids is empty");
  }
  check_same_dtype(op, "zeros", zeros, "scales", scales);
  check_same_device(op, "zeros", zeros, "codes", codes);
  TORCH_CHECK_VALUE(zeros.sizes() == scales.sizes(), "prismkit::", op, ": 'zeros' must have the shape of scales ",
                    scales.sizes(), ", got ", describe(zeros));
  return {N, K, G, C};
}

QuantWeightShape check_quant_linear_args(const at::Tensor& x, const at::Tensor& codes, const at::Tensor& cluster_ids,
                                         const at::Tensor& scales, const at::Tensor& zeros,
                                         const std::optional<at::Tensor>& bias, int64_t bits, int64_t group_size,
                                         int64_t out_features, int64_t in_features) {
  const char* op = "quant_linear";
  TORCH_CHECK_VALUE(x.dim() >= 1,
                    "prismkit::quant_linear: 'x' must have at least one dimension [..., in_features], got ",
                    describe(x));
  check_float_dtype(op, "x", x, /*cuda_float64=*/false);
  const QuantWeightShape shape =
      check_quant_weight_args(op, codes, cluster_ids, scales, zeros, bits, group_size, out_features, in_features);
  check_same_device(op, "codes", codes, "x", x);
  check_size(op, "x", x, x.dim() - 1, in_features, "in_features");
  if (bias.has_value()) {
    check_rank(op, "bias", *bias, 1, "[out_features]");
    check_same_dtype(op, "bias", *bias, "x", x);
    check_same_device(op, "bias", *bias, "x", x);
    check_size(op, "bias", *bias, 0, out_features, "out_features");
  }
  return shape;
}

}  // namespace prismkit::quant
