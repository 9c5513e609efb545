// prismkit::cswin_attention on the CPU: cross-shaped window self-attention with LePE, read
// straight from the qkv Linear's [B, H*W, 3C] output and written as [B, H*W, C] (both branches in
// place, no permute copies, no cat). Threads take (branch, window, batch, head) items; each
// item's scores stay in cache and its LePE runs in the same pass (cswin_window_kernels.cpp).
#include "common/cpu_alloc.h"
#include "common/float32_compute.h"
#include "cswin/cswin_checks.h"
#include "cswin/cswin_work.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <type_traits>

namespace prismkit::cswin {

at::Tensor cswin_attention_cpu(const at::Tensor& qkv, int64_t H, int64_t W, int64_t split_size, int64_t num_heads,
                               const at::Tensor& lepe_weight, const at::Tensor& lepe_bias, double scale,
                               c10::string_view mode, c10::string_view padding) {
  const CSWinArgs a =
      check_cswin_args("cswin_attention", qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias,
                       std::string_view(mode.data(), mode.size()), std::string_view(padding.data(), padding.size()));
  if (is_reduced_float(qkv))
    return in_float32(&cswin_attention_cpu, qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, scale, mode,
                      padding);
  at::Tensor out = empty_for_large_output({a.B, a.H * a.W, a.C}, qkv.options());
  if (a.B == 0) return out;
  const at::Tensor x = qkv.contiguous(), w = lepe_weight.contiguous(), bias = lepe_bias.contiguous();
  const CSWinWork work(a);
  const int64_t HW = a.H * a.W;
  AT_DISPATCH_FLOATING_TYPES(qkv.scalar_type(), "cswin_attention_cpu", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, static_cast<int64_t>(work.items.size()), 1, [&](int64_t i0, int64_t i1) {
      std::vector<scalar_t> scratch;
      auto task_of = [&](int64_t i) {
        const auto& it = work.items[i];
        WindowTask<scalar_t> task = work.task<scalar_t>(a, it, static_cast<scalar_t>(scale),
                                                        w.const_data_ptr<scalar_t>(), bias.const_data_ptr<scalar_t>());
        task.qkv = xp + it.b * HW * 3 * a.C;
        task.out = op + it.b * HW * a.C;
        return task;
      };
      for (int64_t i = i0; i < i1; ++i) {
        const WindowTask<scalar_t> task = task_of(i);
        if (i + 1 < i1) prefetch_window(task_of(i + 1), false);
        scratch.resize(window_scratch_size(task.L, a.head_dim, std::is_same_v<scalar_t, double>));
        window_forward(task, scratch.data());
      }
    });
  });
  return out;
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("cswin_attention", &cswin_attention_cpu); }

}  // namespace prismkit::cswin
