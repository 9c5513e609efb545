#include "cswin/cswin_checks.h"

#include "common/checks.h"

namespace prismkit::cswin {

CSWinArgs check_cswin_args(const char* op, const at::Tensor& qkv, int64_t H, int64_t W, int64_t split_size,
                           int64_t num_heads, const at::Tensor& lepe_weight, const at::Tensor& lepe_bias,
                           std::string_view mode, std::string_view padding) {
  TORCH_CHECK_VALUE(mode == "cross" || mode == "full", "prismkit::", op,
                    ": 'mode' must be \"cross\" (two stripe branches) or \"full\" (the last stage), got \"",
                    std::string(mode), "\"");
  TORCH_CHECK_VALUE(padding == "mask" || padding == "zeros", "prismkit::", op,
                    ": 'padding' must be \"mask\" or \"zeros\", got \"", std::string(padding), "\"");
  check_rank(op, "qkv", qkv, 3, "[B, H*W, 3C] (the qkv Linear's output)");
  check_float_dtype(op, "qkv", qkv, /*cuda_float64=*/false);  // CUDA: Triton kernels
  TORCH_CHECK_VALUE(H >= 1 && W >= 1 && qkv.size(1) == H * W, "prismkit::", op, ": 'qkv' must have H*W = ", H, "*", W,
                    " tokens in dim 1, got ", describe(qkv));
  TORCH_CHECK_VALUE(qkv.size(2) % 3 == 0 && qkv.size(2) > 0, "prismkit::", op,
                    ": 'qkv' must have 3C channels in dim 2 (q, k and v), got ", describe(qkv));
  const int64_t C = qkv.size(2) / 3;
  const bool full = mode == "full";
  TORCH_CHECK_VALUE(num_heads >= 1 && C % num_heads == 0 && (full || num_heads % 2 == 0), "prismkit::", op,
                    ": 'num_heads' must divide C = ", C, full ? "" : " and be even (half the heads per branch)",
                    ", got ", num_heads);
  TORCH_CHECK_VALUE(split_size >= 1, "prismkit::", op, ": 'split_size' must be >= 1, got ", split_size);
  check_rank(op, "lepe_weight", lepe_weight, 4, "[C, 1, 3, 3] (the depthwise LePE conv's weight)");
  TORCH_CHECK_VALUE(
      lepe_weight.size(0) == C && lepe_weight.size(1) == 1 && lepe_weight.size(2) == 3 && lepe_weight.size(3) == 3,
      "prismkit::", op, ": 'lepe_weight' must have shape [", C, ", 1, 3, 3], got ", describe(lepe_weight));
  check_rank(op, "lepe_bias", lepe_bias, 1, "[C]");
  check_size(op, "lepe_bias", lepe_bias, 0, C, "C, a third of qkv's channels");
  check_same_dtype(op, "lepe_weight", lepe_weight, "qkv", qkv);
  check_same_dtype(op, "lepe_bias", lepe_bias, "qkv", qkv);
  check_same_device(op, "lepe_weight", lepe_weight, "qkv", qkv);
  check_same_device(op, "lepe_bias", lepe_bias, "qkv", qkv);
  return {qkv.size(0), H, W, C, num_heads, C / num_heads, split_size, full, padding == "mask"};
}

CSWinArgs check_cswin_attention_backward_args(const at::Tensor& grad_out, const at::Tensor& qkv, int64_t H, int64_t W,
                                              int64_t split_size, int64_t num_heads, const at::Tensor& lepe_weight,
                                              const at::Tensor& lepe_bias, std::string_view mode,
                                              std::string_view padding) {
  const char* op = "cswin_attention_backward";
  const CSWinArgs a = check_cswin_args(op, qkv, H, W, split_size, num_heads, lepe_weight, lepe_bias, mode, padding);
  check_rank(op, "grad_out", grad_out, 3, "[B, H*W, C]");
  TORCH_CHECK_VALUE(grad_out.size(0) == a.B && grad_out.size(1) == a.H * a.W && grad_out.size(2) == a.C,
                    "prismkit::", op, ": 'grad_out' must have shape [", a.B, ", ", a.H * a.W, ", ", a.C, "], got ",
                    describe(grad_out));
  check_same_dtype(op, "grad_out", grad_out, "qkv", qkv);
  check_same_device(op, "grad_out", grad_out, "qkv", qkv);
  return a;
}

}  // namespace prismkit::cswin
