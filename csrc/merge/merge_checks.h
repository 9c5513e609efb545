// The merge ops' argument contract on the C++ side, shared by their CPU kernels. The Python side
// (fake implementations, Triton launchers) is python/prismkit/ops/merge/checks.py: same checks, same
// order, same messages.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>

namespace prismkit::merge {

struct MergeShape {
  int64_t B, N, C;
};

enum class Reduce { WeightedMean, Mean, Sum, Max };

// reduce is one of "wavg", "mean", "sum", "amax".
Reduce check_reduce(const std::string& reduce);

// x [B, N, C] floating; size None or [B, N, 1] of x's dtype and device; dest [B, N] int64 on x's
// device; num_out >= 0.
MergeShape check_token_merge_args(const at::Tensor& x, const std::optional<at::Tensor>& size, const at::Tensor& dest,
                                  int64_t num_out, const std::string& reduce);

// Every dest in [-1, num_out) and every size > 0 (reads the data).
void check_token_merge_values(const std::optional<at::Tensor>& size, const at::Tensor& dest, int64_t num_out);

}  // namespace prismkit::merge
