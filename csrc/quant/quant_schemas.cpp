// The quant core's schemas (split quantization, SplitQuant). Kernels register themselves beside
// their code: csrc/quant/<op>_cpu.cpp (CPU), csrc/quant/<op>_cuda.cpp (CUDA glue). Semantics:
// the wrappers' docstrings in python/prismkit/ops/quant/__init__.py.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(prismkit, m) {
  m.def("kmeans1d(Tensor values, int k) -> (Tensor centers, Tensor boundaries)");
  m.def("quant_pack(Tensor values, int bits) -> Tensor");
  m.def("quant_unpack(Tensor packed, int bits, int n) -> Tensor");
  m.def(
      "quant_dequantize(Tensor codes, Tensor cluster_ids, Tensor scales, Tensor zeros, int bits, int group_size, "
      "int out_features, int in_features) -> Tensor");
  m.def(
      "quant_linear(Tensor x, Tensor codes, Tensor cluster_ids, Tensor scales, Tensor zeros, Tensor? bias, int bits, "
      "int group_size, int out_features, int in_features) -> Tensor");
}
