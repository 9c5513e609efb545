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

int check_energy_kernel(const char* op, const std::string& kernel, double margin) {
  int code = -1;
  if (kernel == "elu") code = 0;
  if (kernel == "gaussian") code = 1;
  if (kernel == "paper") code = 2;
  TORCH_CHECK_VALUE(code >= 0, "prismkit::", op, ": 'kernel' must be one of 'elu', 'gaussian', 'paper', got '", kernel,
                    "'");
  TORCH_CHECK_VALUE(code != 1 || margin < 1, "prismkit::", op,
                    ": 'margin' must be < 1 for the gaussian kernel (sigma = 1 - margin), got ", margin);
  return code;
}

void check_pitome_energy_args(const at::Tensor& metric, double margin, double alpha, const std::string& kernel) {
  check_rank("pitome_energy", "metric", metric, 3, "[B, T, d]");
  check_float_dtype("pitome_energy", "metric", metric, /*cuda_float64=*/true);
  check_energy_kernel("pitome_energy", kernel, margin);
}

PlanMethod check_merge_plan_args(const at::Tensor& metric, int64_t r, const std::string& method, double margin,
                                 double alpha, bool class_token, bool prune) {
  check_rank("merge_plan", "metric", metric, 3, "[B, N, d]");
  check_float_dtype("merge_plan", "metric", metric, /*cuda_float64=*/true);
  PlanMethod m = PlanMethod::PiToMe;
  if (method == "pitome") {
    m = PlanMethod::PiToMe;
  } else if (method == "pitome_bsm") {
    m = PlanMethod::PiToMeBsm;
  } else if (method == "pitome_text") {
    m = PlanMethod::PiToMeText;
  } else if (method == "tome") {
    m = PlanMethod::ToMe;
  } else {
    TORCH_CHECK_VALUE(false,
                      "prismkit::merge_plan: 'method' must be one of 'pitome', 'pitome_bsm', 'pitome_text', "
                      "'tome', got '",
                      method, "'");
  }
  const int64_t N = metric.size(1);
  TORCH_CHECK_VALUE(!class_token || N >= 1,
                    "prismkit::merge_plan: 'metric' must hold the class token "
                    "(class_token=True) and so at least 1 token, got N = ",
                    N);
  TORCH_CHECK_VALUE(r >= 0, "prismkit::merge_plan: 'r' must be >= 0, got ", r);
  if (m != PlanMethod::ToMe) {
    const int64_t T = N - (class_token ? 1 : 0), largest = largest_r(m, T);
    TORCH_CHECK_VALUE(r <= largest, "prismkit::merge_plan: 'r' = ", r, " merges more than half of the ", T,
                      " tokens (method '", method, "'); the largest r is ", largest);
  }
  if (m == PlanMethod::PiToMeText) check_energy_kernel("merge_plan", "gaussian", margin);
  return m;
}

void check_divprune_select_args(const at::Tensor& metric, int64_t k) {
  check_rank("divprune_select", "metric", metric, 3, "[B, N, d]");
  check_float_dtype("divprune_select", "metric", metric, /*cuda_float64=*/true);
  const int64_t N = metric.size(1);
  TORCH_CHECK_VALUE(k >= 0 && k <= N, "prismkit::divprune_select: 'k' must be in [0, N] = [0, ", N, "], got ", k);
}

}  // namespace prismkit::merge
