// The cross-shaped window attention ops' schemas (a fragment of the prismkit library; see
// csrc/sae/sae_schemas.cpp for why each core has its own). CPU kernels: csrc/cswin/*_cpu.cpp;
// Triton kernels: registered from python/prismkit/ops/cswin/__init__.py. Semantics: the wrapper's
// docstring there.
#include <torch/library.h>

// H and W are SymInt so torch.compile(dynamic=True) traces one graph for every input size (an
// `int` would be specialized, a recompile per resolution); the kernels still take int64_t.
TORCH_LIBRARY_FRAGMENT(prismkit, m) {
  m.def(
      "cswin_attention(Tensor qkv, SymInt H, SymInt W, int split_size, int num_heads, Tensor lepe_weight, "
      "Tensor lepe_bias, float scale, str mode=\"cross\", str padding=\"mask\") -> Tensor");
  m.def(
      "cswin_attention_backward(Tensor grad_out, Tensor qkv, SymInt H, SymInt W, int split_size, int num_heads, "
      "Tensor lepe_weight, Tensor lepe_bias, float scale, str mode=\"cross\", str padding=\"mask\") "
      "-> (Tensor grad_qkv, Tensor grad_lepe_weight, Tensor grad_lepe_bias)");
}
