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

enum class PlanMethod { PiToMe, PiToMeBsm, PiToMeText, ToMe };

// kernel is one of "elu", "gaussian", "paper" (the EnergyKernel codes of similarity_kernels.h:
// 0, 1, 2); margin < 1 for "gaussian" (sigma = 1 - margin). Returns the code.
int check_energy_kernel(const char* op, const std::string& kernel, double margin);

// metric [B, T, d] floating.
void check_pitome_energy_args(const at::Tensor& metric, double margin, double alpha, const std::string& kernel);

// metric [B, N, d] floating, at least one token with class_token; method one of "pitome",
// "pitome_bsm", "pitome_text", "tome"; r >= 0, and for the PiToMe methods r <= the largest r
// (largest_r below).
PlanMethod check_merge_plan_args(const at::Tensor& metric, int64_t r, const std::string& method, double margin,
                                 double alpha, bool class_token, bool prune);

// The most tokens a PiToMe method can merge out of T ranked tokens: T / 2 (pitome, pitome_text:
// 2r of them pair up), ceil(T / 2) (pitome_bsm: every other ranked token is in A; 0 when T < 2, since
// B is empty then).
inline int64_t largest_r(PlanMethod method, int64_t T) {
  if (method != PlanMethod::PiToMeBsm) return T / 2;
  return T < 2 ? 0 : (T + 1) / 2;
}

// metric [B, N, d] floating; 0 <= k <= N.
void check_divprune_select_args(const at::Tensor& metric, int64_t k);

}  // namespace prismkit::merge
