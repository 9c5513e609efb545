// prismkit::cswin_attention_backward on the CPU: gradients to qkv and to the LePE weight and
// bias. Nothing but the inputs is saved by the forward: each (branch, window, batch, head) item
// recomputes its window's softmax. Every qkv gradient entry belongs to exactly one item, so items
// write them without conflicts; LePE gradients are summed per thread, then across threads in
// thread order (deterministic for a given thread count).
#include "common/cpu_alloc.h"
#include "common/float32_compute.h"
#include "cswin/cswin_checks.h"
#include "cswin/cswin_work.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <type_traits>

namespace prismkit::cswin {

std::tuple<at::Tensor, at::Tensor, at::Tensor> cswin_attention_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& qkv, int64_t H, int64_t W, int64_t split_size, int64_t num_heads,
    const at::Tensor& lepe_weight, const at::Tensor& lepe_bias, double scale, c10::string_view mode,
    c10::string_view padding) {
  const CSWinArgs a = check_cswin_attention_backward_args(grad_out, qkv, H, W, split_size, num_heads, lepe_weight,
                                                          lepe_bias, std::string_view(mode.data(), mode.size()),
                                                          std::string_view(padding.data(), padding.size()));
  if (is_reduced_float(qkv))
    return in_float32(&cswin_attention_backward_cpu, grad_out, qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias,
                      scale, mode, padding);
  at::Tensor grad_qkv = empty_for_large_output(qkv.sizes(), qkv.options());
  const int threads = at::get_num_threads();
  at::Tensor partial_w = at::zeros({threads, a.C * 9}, qkv.options());
  at::Tensor partial_b = at::zeros({threads, a.C}, qkv.options());
  if (a.B > 0) {
    const at::Tensor x = qkv.contiguous(), g = grad_out.contiguous(), w = lepe_weight.contiguous(),
                     bias = lepe_bias.contiguous();
    const CSWinWork work(a);
    const int64_t HW = a.H * a.W;
    AT_DISPATCH_FLOATING_TYPES(qkv.scalar_type(), "cswin_attention_backward_cpu", [&] {
      at::parallel_for(0, static_cast<int64_t>(work.items.size()), 1, [&](int64_t i0, int64_t i1) {
        const int thread = at::get_thread_num();
        std::vector<scalar_t> scratch;
        auto task_of = [&](int64_t i) {
          const auto& it = work.items[i];
          WindowTask<scalar_t> task = work.task<scalar_t>(
              a, it, static_cast<scalar_t>(scale), w.const_data_ptr<scalar_t>(), bias.const_data_ptr<scalar_t>());
          task.qkv = x.const_data_ptr<scalar_t>() + it.b * HW * 3 * a.C;
          task.grad_out = g.const_data_ptr<scalar_t>() + it.b * HW * a.C;
          task.grad_qkv = grad_qkv.data_ptr<scalar_t>() + it.b * HW * 3 * a.C;
          task.grad_weight = partial_w.data_ptr<scalar_t>() + thread * a.C * 9;
          task.grad_bias = partial_b.data_ptr<scalar_t>() + thread * a.C;
          return task;
        };
        for (int64_t i = i0; i < i1; ++i) {
          const WindowTask<scalar_t> task = task_of(i);
          if (i + 1 < i1) prefetch_window(task_of(i + 1), true);
          scratch.resize(window_scratch_size(task.L, a.head_dim, std::is_same_v<scalar_t, double>));
          window_backward(task, scratch.data());
        }
      });
    });
  }
  return {grad_qkv, partial_w.sum(0).view({a.C, 1, 3, 3}), partial_b.sum(0)};
}

TORCH_LIBRARY_IMPL(prismkit, CPU, m) { m.impl("cswin_attention_backward", &cswin_attention_backward_cpu); }

}  // namespace prismkit::cswin
