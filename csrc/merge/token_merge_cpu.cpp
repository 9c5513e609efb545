// prismkit::token_merge on the CPU: the tokens of each output slot reduced in ascending token
// order (deterministic, no atomics). Per image, a counting sort of dest lists each slot's tokens in
// index order; then every (image, slot) accumulates its members' rows in float32 (float64 for
// float64 inputs): wavg sum(size x) / sum(size), mean, sum or amax. A slot without tokens gets 0
// and size 0. Images in parallel. float16 / bfloat16 inputs are computed in float32.
#include "common/float32_compute.h"
#include "merge/merge_checks.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

namespace prismkit::merge {
namespace {

template <typename scalar_t>
void merge_image(const scalar_t* x, const scalar_t* size, const int64_t* dest, int64_t N, int64_t C, int64_t num_out,
                 Reduce reduce, scalar_t* out, scalar_t* size_out) {
  using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
  std::vector<int64_t> start(num_out + 1, 0), members(N);
  for (int64_t i = 0; i < N; ++i)
    if (dest[i] >= 0) ++start[dest[i] + 1];
  for (int64_t o = 0; o < num_out; ++o) start[o + 1] += start[o];
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t i = 0; i < N; ++i)  // ascending i: each slot's members in index order
    if (dest[i] >= 0) members[fill[dest[i]]++] = i;
  std::vector<acc_t> acc(C);
  for (int64_t o = 0; o < num_out; ++o) {
    const int64_t a = start[o], b = start[o + 1];
    acc_t total = 0;  // summed sizes
    if (reduce == Reduce::Max) {
      std::fill(acc.begin(), acc.end(), -std::numeric_limits<acc_t>::infinity());
    } else {
      std::fill(acc.begin(), acc.end(), acc_t(0));
    }
    for (int64_t m = a; m < b; ++m) {
      const int64_t i = members[m];
      const acc_t s = size ? static_cast<acc_t>(size[i]) : acc_t(1);
      total += s;
      const scalar_t* row = x + i * C;
      if (reduce == Reduce::Max) {
        for (int64_t c = 0; c < C; ++c) {  // NaN propagates, as in torch's amax
          const acc_t v = static_cast<acc_t>(row[c]);
          acc[c] = (v > acc[c] || v != v) && acc[c] == acc[c] ? v : acc[c];
        }
      } else {
        const acc_t w = reduce == Reduce::WeightedMean ? s : acc_t(1);
        for (int64_t c = 0; c < C; ++c) acc[c] += w * static_cast<acc_t>(row[c]);
      }
    }
    const int64_t count = b - a;
    acc_t scale = 1;
    if (reduce == Reduce::WeightedMean) scale = count ? acc_t(1) / total : acc_t(0);
    if (reduce == Reduce::Mean) scale = count ? acc_t(1) / static_cast<acc_t>(count) : acc_t(0);
    scalar_t* dst = out + o * C;
    for (int64_t c = 0; c < C; ++c) {
      const acc_t v = reduce == Reduce::Max ? (count ? acc[c] : acc_t(0)) : acc[c] * scale;
      dst[c] = static_cast<scalar_t>(v);
    }
    size_out[o] = static_cast<scalar_t>(total);
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> token_merge_cpu(const at::Tensor& x, const std::optional<at::Tensor>& size,
                                                   const at::Tensor& dest, int64_t num_out, c10::string_view reduce) {
  const std::string reduce_name(reduce.data(), reduce.size());
  const MergeShape s = check_token_merge_args(x, size, dest, num_out, reduce_name);
  check_token_merge_values(size, dest, num_out);
  const Reduce r = check_reduce(reduce_name);
  if (is_reduced_float(x)) return in_float32(&token_merge_cpu, x, size, dest, num_out, reduce);
  const at::Tensor xc = x.contiguous(), dc = dest.contiguous();
  const at::Tensor sc = size.has_value() ? size->contiguous() : at::Tensor();
  at::Tensor out = at::empty({s.B, num_out, s.C}, x.options());
  at::Tensor size_out = at::empty({s.B, num_out, 1}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "token_merge_cpu", [&] {
    const scalar_t* xp = xc.const_data_ptr<scalar_t>();
    const scalar_t* sp = sc.defined() ? sc.const_data_ptr<scalar_t>() : nullptr;
    const int64_t* dp = dc.const_data_ptr<int64_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    scalar_t* sop = size_out.data_ptr<scalar_t>();
    at::parallel_for(0, s.B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        merge_image(xp + b * s.N * s.C, sp ? sp + b * s.N : nullptr, dp + b * s.N, s.N, s.C, num_out, r,
                    op + b * num_out * s.C, sop + b * num_out);
      }
    });
  });
  return {out, size_out};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("token_merge", &token_merge_cpu); }

}  // namespace prismkit::merge
