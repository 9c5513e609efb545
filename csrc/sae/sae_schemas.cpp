// The SAE ops' schemas. Each core declares its ops in its own fragment of the prismkit library
// (csrc/<core>/<core>_schemas.cpp), so a core's C++ lives in its own directory and a new core adds
// files without editing a shared one. Kernels register themselves beside their code:
// csrc/sae/<op>_cpu.cpp (CPU), csrc/sae/<op>_cuda.cpp (CUDA glue), and the Python registry entry in
// python/prismkit/ops/sae/__init__.py (Triton kernels). Semantics: the wrappers' docstrings there.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(prismkit, m) {
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
      "jumprelu_encode(Tensor x, Tensor W_enc, Tensor b_enc, Tensor threshold, float bandwidth) "
      "-> (Tensor values, Tensor indices, Tensor offsets, Tensor in_window)");
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
}
