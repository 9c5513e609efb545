// The merge ops' argument contract (merge_checks.h).
#include "merge/merge_checks.h"

#include "common/checks.h"

#include <ATen/ops/amax.h>
#include <ATen/ops/amin.h>

namespace prismkit::merge {

Reduce check_reduce(const std::string& reduce) {
  if (reduce == "wavg") return Reduce::WeightedMean;
  if (reduce == "mean") return Reduce::Mean;
  if (reduce == "sum") return Reduce::Sum;
  if (reduce == "amax") return Reduce::Max;
  TORCH_CHECK_VALUE(false, "prismkit::token_merge: 'reduce' must be one of 'wavg', 'mean', 'sum', 'amax', got '",
                    reduce, "'");
}

MergeShape check_token_merge_args(const at::Tensor& x, const std::optional<at::Tensor>& size, const at::Tensor& dest,
                                  int64_t num_out, const std::string& reduce) {
  check_rank("token_merge", "x", x, 3, "[B, N, C]");
  check_float_dtype("token_merge", "x", x, /*cuda_float64=*/false);
  const MergeShape s{x.size(0), x.size(1), x.size(2)};
  if (size.has_value()) {
    check_rank("token_merge", "size", *size, 3, "[B, N, 1], or None for ones");
    check_same_dtype("token_merge", "size", *size, "x", x);
    check_same_device("token_merge", "size", *size, "x", x);
    check_size("token_merge", "size", *size, 0, s.B, "B, as x");
    check_size("token_merge", "size", *size, 1, s.N, "N, as x");
    check_size("token_merge", "size", *size, 2, 1, "one size per token");
  }
  check_rank("token_merge", "dest", dest, 2, "[B, N] (each token's output slot, -1: dropped)");
  check_dtype("token_merge", "dest", dest, {at::kLong});
  check_same_device("token_merge", "dest", dest, "x", x);
  check_size("token_merge", "dest", dest, 0, s.B, "B, as x");
  check_size("token_merge", "dest", dest, 1, s.N, "N, as x");
  TORCH_CHECK_VALUE(num_out >= 0, "prismkit::token_merge: 'num_out' must be >= 0, got ", num_out);
  check_reduce(reduce);
  return s;
}

void check_token_merge_values(const std::optional<at::Tensor>& size, const at::Tensor& dest, int64_t num_out) {
  if (dest.numel() > 0) {
    const int64_t lo = dest.amin().item<int64_t>(), hi = dest.amax().item<int64_t>();
    TORCH_CHECK_INDEX(lo >= -1 && hi < num_out, "prismkit::token_merge: 'dest' must be in [-1, num_out) = [-1, ",
                      num_out, "), got values in [", lo, ", ", hi, "]");
  }
  if (size.has_value() && size->numel() > 0) {
    const double smallest = size->amin().item<double>();
    TORCH_CHECK_VALUE(smallest > 0, "prismkit::token_merge: 'size' must be positive, got a size of ", smallest);
  }
}

}  // namespace prismkit::merge
