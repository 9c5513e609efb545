// Every prismkit op schema, in one place. Kernels register themselves beside their code:
// CPU in csrc/<core>/<op>_cpu.cpp, CUDA glue in csrc/<core>/<op>_cuda.cpp, Triton kernels
// from python/prismkit/ops/<core>.py. Semantics are documented on the Python wrappers.
#include <torch/library.h>

TORCH_LIBRARY(prismkit, m) {
  // ---- SAE encoding (python/prismkit/ops/sae.py) ----
  m.def("topk_encode(Tensor x, Tensor W_enc, Tensor b_enc, int k) -> (Tensor values, Tensor indices)");
  m.def(
      "batch_topk_encode(Tensor x, Tensor W_enc, Tensor b_enc, int k) "
      "-> (Tensor values, Tensor indices, Tensor offsets)");
  m.def(
      "feature_choice_encode(Tensor x, Tensor W_enc, Tensor b_enc, Tensor capacity) "
      "-> (Tensor values, Tensor indices, Tensor offsets)");
  m.def(
      "threshold_encode(Tensor x, Tensor W_enc, Tensor b_enc, Tensor threshold) "
      "-> (Tensor values, Tensor indices, Tensor offsets)");
  m.def(
      "latent_stats(Tensor x, Tensor W_enc, Tensor b_enc, Tensor? threshold=None) "
      "-> (Tensor fire_count, Tensor max_pre)");
  m.def("sparse_decode(Tensor values, Tensor indices, Tensor? offsets, Tensor W_dec, Tensor? b_dec) -> Tensor");
  m.def("sparse_decode_grad_values(Tensor grad_out, Tensor indices, Tensor? offsets, Tensor W_dec) -> Tensor");
  m.def(
      "sparse_decode_grad_weight(Tensor grad_out, Tensor values, Tensor indices, Tensor? offsets, "
      "int num_latents) -> (Tensor grad_weight, Tensor grad_value_sum)");
  m.def(
      "sparse_decode_backward(Tensor grad_out, Tensor values, Tensor indices, Tensor? offsets, Tensor W_dec) "
      "-> (Tensor grad_values, Tensor grad_weight)");

  // ---- cross-shaped window attention (python/prismkit/ops/cswin.py) ----
  m.def(
      "cswin_attention(Tensor qkv, int H, int W, int split_size, int num_heads, Tensor lepe_weight, "
      "Tensor lepe_bias, float scale, str mode=\"cross\", str padding=\"mask\") -> Tensor");
  m.def(
      "cswin_attention_backward(Tensor grad_out, Tensor qkv, int H, int W, int split_size, int num_heads, "
      "Tensor lepe_weight, Tensor lepe_bias, float scale, str mode=\"cross\", str padding=\"mask\") "
      "-> (Tensor grad_qkv, Tensor grad_lepe_weight, Tensor grad_lepe_bias)");
}
